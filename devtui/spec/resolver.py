"""From validated documents to one `LocalDeployment`: validate both files against the models,
settle the endpoint and deployment names, and hand the model, code and environment sections to
their resolvers. Every problem is collected; nothing is raised here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .checker import _Checker
from .deployment import EnvironmentSpec, FlowSpec, LocalDeployment, ModelSpec, Probe, RequestSettings
from .environment import _EnvironmentResolver
from .flow import _FlowResolver
from .local_files import _LocalFilesResolver
from .mlflow import NO_CODE_ENVIRONMENT, _NoCodeResolver, is_no_code
from .mlflow_model import MlflowModel
from .messages import _describe, _problem_from_error
from .models import _DeploymentYaml, _EndpointYaml, _ProbeYaml, _RequestSettingsYaml, _Section
from .names import _name_problem
from .paths import _display
from .problems import Problem
from .unknown_keys import _unknown_keys
from .yaml_lines import _Document


def _validate(model: type[_Section], doc: _Document, problems: list[Problem]) -> tuple[Any, set[str]]:
    """Validate DOC; report every error; return the model built from the valid sections and
    the names of the top-level sections that were invalid (so later checks skip them instead of
    piling a "missing" on top of a "wrong type")."""
    data = {}
    for key, value in doc.data.items():
        if isinstance(key, str):
            data[key] = value
        else:  # `null:`, `2021-01-01:`, `1:` parse as non-text keys; no section is called that
            shown = "null" if key is None else str(key)
            problems.append(Problem(doc.file, doc.line((key,)), shown,
                                    f"a key must be a name, but `{shown}:` reads as {_describe(key)}; "
                                    "remove it, or quote it if it is meant as text"))
    bad: set[str] = set()
    for _ in range(2):
        try:
            return model.model_validate(data), bad
        except ValidationError as error:
            for detail in error.errors():
                problems.append(_problem_from_error(doc, detail))
                bad.add(detail["loc"][0])
            data = {key: value for key, value in data.items() if key not in bad}
    return model.model_validate({}), bad


class _Resolver(_Checker):
    """Checks the validated sections against the file system and each other, and builds the
    `LocalDeployment`. Each check appends its problems and returns None instead of raising,
    so one run reports everything."""

    def __init__(self, deployment_doc: _Document, endpoint_doc: _Document | None,
                 name_override: str | None, problems: list[Problem]):
        super().__init__(deployment_doc, problems, set())
        self.endpoint_doc = endpoint_doc
        self.name_override = name_override
        self.warnings: list[Problem] = []

    def resolve(self) -> LocalDeployment | None:
        spec, self.bad = _validate(_DeploymentYaml, self.doc, self.problems)
        endpoint, endpoint_bad = (None, set())
        if self.endpoint_doc is not None:
            endpoint, endpoint_bad = _validate(_EndpointYaml, self.endpoint_doc, self.problems)
        self.warnings = self._unknown_keys(spec, endpoint)

        local_files = _LocalFilesResolver(self.doc, self.problems, self.bad)
        deployment_name = self._deployment_name(spec)
        endpoint_name = self._endpoint_name(spec, endpoint, endpoint_bad)
        model = local_files.model(spec.model, deployment_name)
        code_dir = scoring_script = flow = mlflow = None
        if is_no_code(spec, self.bad):
            environment, mlflow = self._no_code(spec, model)
        else:
            environment = _EnvironmentResolver(self.doc, self.problems, self.bad).environment(spec.environment)
            code_dir, scoring_script, flow, environment = self._code_or_flow(spec, local_files, model, environment)
        environment_variables = self._environment_variables(spec.environment_variables)

        if self.problems or deployment_name is None or endpoint_name is None or environment is None:
            return None
        return LocalDeployment(
            endpoint_name=endpoint_name,
            deployment_name=deployment_name,
            auth_mode=(endpoint.auth_mode if endpoint is not None and endpoint.auth_mode else "key"),
            deployment_file=self.doc.file,
            endpoint_file=self.endpoint_doc.file if self.endpoint_doc is not None else None,
            model=model,
            code_dir=code_dir,
            scoring_script=scoring_script,
            environment=environment,
            environment_variables=environment_variables,
            request_settings=_request_settings(spec.request_settings),
            liveness_probe=_probe(spec.liveness_probe),
            readiness_probe=_probe(spec.readiness_probe),
            instance_type=spec.instance_type,
            instance_count=spec.instance_count if spec.instance_count is not None else 1,
            tags=dict(spec.tags or {}),
            endpoint_tags=dict(endpoint.tags or {}) if endpoint is not None else {},
            flow=flow,
            mlflow=mlflow,
            warnings=tuple(self.warnings),
        )

    def _code_or_flow(self, spec: _DeploymentYaml, local_files: _LocalFilesResolver, model: ModelSpec | None,
                      environment: EnvironmentSpec | None) -> tuple[Path | None, str | None, FlowSpec | None,
                                                                    EnvironmentSpec | None]:
        """(code folder, scoring script, flow, environment): a scoring script, or a prompt flow
        in the model folder."""
        is_flow, flow = _FlowResolver(self.doc, self.problems, self.bad).flow(spec, model, environment)
        if not is_flow:  # a flow deployment has no code_configuration
            return *local_files.code(spec.code_configuration, spec.environment), None, environment
        if flow is not None and flow.runtime_image and environment is not None:
            # devtui serves it: the routes live in the FlowSpec; an inference_config on the
            # environment would mark a bring-your-own container.
            environment = replace(environment, inference_config=None)
        return None, None, flow, environment

    def _no_code(self, spec: _DeploymentYaml, model: ModelSpec | None) -> tuple[EnvironmentSpec | None,
                                                                                 MlflowModel | None]:
        """(environment, MLflow model) of a no-code deployment: the cloud brings its own image, so
        an environment is optional (and checked as any other when given)."""
        if spec.environment is None and "environment" not in self.bad:
            environment: EnvironmentSpec | None = NO_CODE_ENVIRONMENT
        else:
            environment = _EnvironmentResolver(self.doc, self.problems, self.bad).environment(spec.environment)
        return environment, _NoCodeResolver(self.doc, self.problems, self.bad).mlflow(spec, model)

    def _unknown_keys(self, spec: _DeploymentYaml, endpoint: _EndpointYaml | None) -> list[Problem]:
        warnings = _by_line(_unknown_keys(spec, self.doc, "a deployment"))
        if endpoint is not None and self.endpoint_doc is not None:
            warnings += _by_line(_unknown_keys(endpoint, self.endpoint_doc, "an endpoint"))
        return warnings

    # -- names

    def _deployment_name(self, spec: _DeploymentYaml) -> str | None:
        if spec.name is None:
            if "name" not in self.bad:
                self.problem(("name",), "missing: every deployment needs a name. Add `name: blue` at the top level.")
            return None
        if (why := _name_problem(spec.name, "deployment")) is not None:
            self.problem(("name",), why)
        return spec.name

    def _endpoint_name(self, spec: _DeploymentYaml, endpoint: _EndpointYaml | None, endpoint_bad: set[str]) -> str | None:
        if self.name_override is not None:
            # -n wins over both files, so a mismatch between them no longer matters.
            if (why := _name_problem(self.name_override, "endpoint")) is not None:
                self.problems.append(Problem(self.doc.file, None, "-n/--name", why))
            return self.name_override

        from_deployment = spec.endpoint_name
        from_endpoint = endpoint.name if endpoint is not None else None
        if from_deployment is not None and from_endpoint is not None and from_deployment != from_endpoint:
            assert self.endpoint_doc is not None
            endpoint_where = f"{_display(self.endpoint_doc.file)}:{self.endpoint_doc.line(('name',))}"
            deployment_where = f"{_display(self.doc.file)}:{self.doc.line(('endpoint_name',))}"
            self.problem(("endpoint_name",), (
                f"{from_deployment!r} ({deployment_where}) does not match the endpoint's name {from_endpoint!r} "
                f"({endpoint_where}). Make them match, or pass -n NAME to use one name for both."
            ))
            return None
        if from_deployment is not None:
            if (why := _name_problem(from_deployment, "endpoint")) is not None:
                self.problem(("endpoint_name",), why)
            return from_deployment
        if from_endpoint is not None:
            assert self.endpoint_doc is not None
            if (why := _name_problem(from_endpoint, "endpoint")) is not None:
                self.problem(("name",), why, self.endpoint_doc)
            return from_endpoint
        if "endpoint_name" not in self.bad and "name" not in endpoint_bad:
            self.problem(("endpoint_name",), (
                "missing: the deployment does not say which endpoint it belongs to. Add "
                "`endpoint_name: my-endpoint`, pass an endpoint YAML with `name:`, or pass -n NAME."
            ))
        return None

    # -- environment variables

    def _environment_variables(self, variables: dict[str, str] | None) -> dict[str, str]:
        result = {}
        for key, value in (variables or {}).items():
            # The OS refuses such names when the server starts; better to say so here.
            if not key or "=" in key or "\0" in key:
                self.problem(("environment_variables", key), (
                    f"{key!r} is not a valid environment variable name (it is empty or contains '='). Rename it."
                ))
                continue
            result[key] = value
        return result


def _by_line(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda problem: problem.line or 0)


def _probe(probe: _ProbeYaml | None) -> Probe:
    if probe is None:
        return Probe()
    return Probe(**probe.model_dump(include={"initial_delay", "period", "timeout", "failure_threshold", "success_threshold"}))


def _request_settings(settings: _RequestSettingsYaml | None) -> RequestSettings:
    return RequestSettings(**(settings or _RequestSettingsYaml()).model_dump(
        include={"request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms"}))
