"""Endpoint and deployment YAML -> one typed, validated `LocalDeployment`.

This module owns reading the two files a user would pass to
`az ml online-deployment create --local`: finding them in a folder, parsing them with
line numbers, checking them against what a *local* endpoint can run (local files only, no
registered assets), resolving every path against the YAML that names it, and filling in the
cloud's defaults. Every problem becomes a `Problem` carrying file, line, field and what to do;
`load` collects all of them before raising one `SpecError`, so a user fixes a file in one pass.

Nothing here starts processes, touches Docker or writes files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "EnvironmentSpec",
    "InferenceConfig",
    "LocalDeployment",
    "ModelSpec",
    "Probe",
    "Problem",
    "RequestSettings",
    "Route",
    "SpecError",
    "find_files",
    "load",
]


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where it is and what to do about it."""

    file: Path
    line: int | None  # 1-based
    field: str | None  # dotted path, e.g. "code_configuration.code"
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        where = _display(self.file)
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class SpecError(Exception):
    """Every problem found in the spec files, one `Problem` each."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


@dataclass(frozen=True)
class RequestSettings:
    request_timeout_ms: int = 5000
    max_concurrent_requests_per_instance: int = 1
    max_queue_wait_ms: int | None = None


@dataclass(frozen=True)
class Probe:
    initial_delay: int = 10
    period: int = 10
    timeout: int = 2
    failure_threshold: int = 30
    success_threshold: int = 1


@dataclass(frozen=True)
class Route:
    port: int
    path: str


@dataclass(frozen=True)
class InferenceConfig:
    liveness_route: Route
    readiness_route: Route
    scoring_route: Route


@dataclass(frozen=True)
class ModelSpec:
    path: Path  # absolute; a folder or a single file
    name: str  # from the YAML, or f"{deployment_name}-model"
    version: str  # "1" when the YAML gives none


@dataclass(frozen=True)
class EnvironmentSpec:
    image: str | None
    conda_file: Path | None  # absolute
    build_path: Path | None  # absolute
    dockerfile_path: str | None  # relative to build_path; "Dockerfile" when build is given
    inference_config: InferenceConfig | None  # set for a bring-your-own container

    @property
    def dockerfile(self) -> Path | None:
        if self.build_path is None or self.dockerfile_path is None:
            return None
        return _absolute(self.build_path / self.dockerfile_path)


@dataclass(frozen=True)
class LocalDeployment:
    endpoint_name: str
    deployment_name: str
    auth_mode: str
    deployment_file: Path  # absolute
    endpoint_file: Path | None  # absolute
    model: ModelSpec | None
    code_dir: Path | None
    scoring_script: str | None  # posix path relative to code_dir
    environment: EnvironmentSpec
    environment_variables: dict[str, str]
    request_settings: RequestSettings
    liveness_probe: Probe
    readiness_probe: Probe
    instance_type: str | None
    instance_count: int
    tags: dict[str, str]  # the deployment's tags
    endpoint_tags: dict[str, str] = field(default_factory=dict)  # the endpoint file's tags

    @property
    def scoring_script_path(self) -> Path | None:
        if self.code_dir is None or self.scoring_script is None:
            return None
        return self.code_dir / self.scoring_script

    @property
    def watched_files(self) -> list[Path]:
        """Spec files whose change means a restart or a rebuild (code and model are watched as folders)."""
        files = [self.deployment_file, self.endpoint_file, self.environment.conda_file, self.environment.dockerfile]
        return [f for f in files if f is not None]


# --------------------------------------------------------------------------- finding the files

_YAML_SUFFIXES = (".yml", ".yaml")
# Keys only a deployment has; a folder also holds conda files and the like, which have none.
_DEPLOYMENT_KEYS = {"endpoint_name", "model", "code_configuration", "environment"}
# Keys an endpoint YAML may have besides auth_mode; "only name/description/tags" plus the
# cloud-only ones, so a real endpoint file without auth_mode is still recognised.
_ENDPOINT_ONLY_KEYS = {
    "$schema", "name", "description", "tags", "traffic", "mirror_traffic", "identity",
    "public_network_access", "kind",
}


def find_files(path: Path, endpoint_file: Path | None = None) -> tuple[Path, Path | None]:
    """PATH is a deployment YAML, or a folder holding exactly one deployment YAML and optionally
    one endpoint YAML (*.yml/*.yaml). Returns absolute (deployment file, endpoint file or None)."""
    path = Path(path)
    if endpoint_file is not None:
        endpoint_file = Path(endpoint_file)
        if not endpoint_file.exists():
            raise SpecError([Problem(endpoint_file, None, None, (
                f"endpoint file {_absolute(endpoint_file)} not found. Check the path."
            ))])
        if not endpoint_file.is_file():
            raise SpecError([Problem(endpoint_file, None, None, "is a folder; pass the endpoint YAML file itself.")])
        endpoint_file = _absolute(endpoint_file)

    if not path.exists():
        raise SpecError([Problem(path, None, None, (
            f"{_absolute(path)} not found. Pass a deployment YAML or the folder that holds it."
        ))])

    if path.is_file():
        if _classify(path) == "endpoint":
            raise SpecError([Problem(path, None, None, (
                "this is an endpoint YAML, not a deployment. Pass the deployment YAML "
                "(the one with model, code_configuration and environment), or the folder holding both."
            ))])
        return _absolute(path), endpoint_file

    candidates = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _YAML_SUFFIXES)
    deployments, endpoints, unreadable = [], [], []
    for candidate in candidates:
        if endpoint_file is not None and _absolute(candidate) == endpoint_file:
            continue
        kind = _classify(candidate)
        if kind == "deployment":
            deployments.append(candidate)
        elif kind == "endpoint":
            endpoints.append(candidate)
        elif kind == "unreadable":
            unreadable.append(candidate)

    if not deployments:
        message = f"no deployment YAML in {_display(path)}"
        if candidates:
            message += f" (looked at {', '.join(p.name for p in candidates)})"
        problems = [Problem(path, None, None, message + (
            ". A deployment YAML has endpoint_name, model, code_configuration and environment; "
            "pass its path, or a folder holding one."
        ))]
        # A file that does not parse may well be the deployment: show why, with its line.
        for broken in unreadable:
            _read_yaml(broken, problems)
        raise SpecError(problems)
    if len(deployments) > 1:
        names = ", ".join(p.name for p in deployments)
        raise SpecError([Problem(path, None, None, (
            f"{len(deployments)} deployment YAMLs in {_display(path)}: {names}. A local endpoint runs exactly "
            f"one deployment; pass one file instead of the folder, e.g. {_display(deployments[0])}."
        ))])
    if endpoint_file is None and len(endpoints) > 1:
        names = ", ".join(p.name for p in endpoints)
        raise SpecError([Problem(path, None, None, (
            f"{len(endpoints)} endpoint YAMLs in {_display(path)}: {names}. Keep one, or pass the deployment "
            "file and name the endpoint file explicitly."
        ))])
    if endpoint_file is None and endpoints:
        endpoint_file = _absolute(endpoints[0])
    return _absolute(deployments[0]), endpoint_file


def _classify(file: Path) -> Literal["deployment", "endpoint", "other", "unreadable"]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "unreadable"
    if not isinstance(data, dict):
        return "other"
    schema = data.get("$schema")
    if isinstance(schema, str) and schema:
        lowered = schema.lower()
        if "onlinedeployment" in lowered:
            return "deployment"
        if "onlineendpoint" in lowered:
            return "endpoint"
        # Some other Azure ML asset (batch deployment, environment, model...): not ours,
        # even though a batch deployment has the same keys as an online one.
        return "other"
    keys = set(data)
    if keys & _DEPLOYMENT_KEYS:
        return "deployment"
    if "auth_mode" in keys or ("name" in keys and keys <= _ENDPOINT_ONLY_KEYS):
        return "endpoint"
    return "other"


# --------------------------------------------------------------------------- YAML with line numbers


class _Document:
    """A parsed YAML mapping plus the line of every key path in it."""

    def __init__(self, file: Path, data: dict[str, Any], lines: dict[tuple[Any, ...], int]):
        self.file = file
        self.folder = file.parent
        self.data = data
        self.lines = lines

    def line(self, path: Iterable[Any]) -> int | None:
        """Line of PATH, or of its nearest enclosing key: a missing key is reported where its
        parent is, and the root maps to the first line of the document."""
        path = tuple(part for part in path if part != "[key]")
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _read_yaml(file: Path, problems: list[Problem]) -> _Document | None:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(file, None, None, "is not UTF-8 text. Save it as UTF-8 YAML."))
        return None
    except OSError as error:
        problems.append(Problem(file, None, None, f"cannot be read ({error.strerror}). Check the path and its permissions."))
        return None

    loader = yaml.SafeLoader(text)
    try:
        # Composing first keeps the node tree, whose marks give every key its line; the same
        # nodes are then constructed into plain Python data for pydantic.
        node = loader.get_single_node()
        if node is None:
            problems.append(Problem(file, 1, None, _EMPTY_MESSAGE))
            return None
        data = loader.construct_document(node)
        lines: dict[tuple[Any, ...], int] = {(): node.start_mark.line + 1}
        _index_lines(loader, node, (), lines, set())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        if error.context and "single document" in error.context:
            problems.append(Problem(file, line, None, (
                "the file holds more than one YAML document (separated by '---'). "
                "Keep one deployment (or endpoint) per file."
            )))
            return None
        what = error.problem or error.context or "invalid YAML"
        if mark is not None:
            what += f" at column {mark.column + 1}"
        # "while parsing a flow sequence" points where the unclosed construct began, often
        # lines above where the parser gave up; both places help.
        if error.context and error.problem and error.context_mark is not None and error.context_mark is not mark:
            what += f" ({error.context} from line {error.context_mark.line + 1})"
        problems.append(Problem(
            file, line, None,
            f"YAML syntax error: {what}. Fix the YAML here: check indentation, "
            "a missing ':' or an unclosed quote or bracket.",
        ))
        return None
    except yaml.YAMLError as error:
        problems.append(Problem(file, None, None, f"YAML syntax error: {error}. Fix the YAML."))
        return None
    finally:
        loader.dispose()

    if data is None:
        problems.append(Problem(file, 1, None, _EMPTY_MESSAGE))
        return None
    if not isinstance(data, dict):
        fix = "Remove the '- ' in front of the keys." if isinstance(data, list) else "Write one `key: value` per line."
        problems.append(Problem(
            file, lines[()], None,
            f"the top level is {_describe(data)}, but a spec file is a mapping of `key: value` lines "
            f"(name:, endpoint_name:, model:, ...). {fix}",
        ))
        return None
    return _Document(file, data, lines)


_EMPTY_MESSAGE = (
    "the file is empty (or holds only comments). A deployment YAML needs at least name, endpoint_name, "
    "code_configuration and environment; an endpoint YAML needs name."
)


def _index_lines(loader: yaml.SafeLoader, node: yaml.Node, path: tuple[Any, ...],
                 lines: dict[tuple[Any, ...], int], active: set[int]) -> None:
    # `active` guards against recursive anchors (&a ... *a inside itself).
    if id(node) in active:
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            # Keys are constructed the way PyYAML built the data (`1:` is the int 1), so the
            # paths match pydantic's `loc`. A duplicate key overwrites: PyYAML keeps the last one.
            key = loader.construct_object(key_node)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(loader, value_node, path + (key,), lines, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _index_lines(loader, item, path + (index,), lines, active)
    active.discard(id(node))


# --------------------------------------------------------------------------- pydantic models of the YAML


def _whole_number(value: Any) -> Any:
    # YAML `true` is a Python bool, which pydantic would quietly accept as 1.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _single_value(value: Any) -> str:
    # Environment variables and tags are strings in the cloud; YAML gives ints, floats, dates
    # and booleans, which become the text a shell user would expect ("true", not "True").
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise PydanticCustomError("single_value_type", "Input should be a single value")
    return str(value)


_WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
_SingleValue = Annotated[str, BeforeValidator(_single_value)]
_Port = Annotated[_WholeNumber, Field(ge=1, le=65535)]
# The key that carries the string spelling (`model: azureml:name:1`) inside the mapping model;
# it cannot be written in YAML by accident.
_STRING_FORM = "<string form>"


class _Section(BaseModel):
    # A YAML that deploys to the cloud must run locally unchanged, so unknown keys are kept.
    model_config = ConfigDict(extra="allow", populate_by_name=False)


class _StringOrMapping(_Section):
    """A section the cloud accepts as a string (an asset reference) or as an inline mapping."""

    string_form: str | None = Field(default=None, alias=_STRING_FORM)

    @model_validator(mode="before")
    @classmethod
    def _wrap_string(cls, value: Any) -> Any:
        return {_STRING_FORM: value} if isinstance(value, str) else value


class _ModelYaml(_StringOrMapping):
    path: str | None = None
    name: str | None = None
    version: _SingleValue | None = None


class _CodeConfigurationYaml(_Section):
    code: str
    scoring_script: str


class _BuildYaml(_Section):
    path: str
    dockerfile_path: str = "Dockerfile"


class _RouteYaml(_Section):
    port: _Port
    path: str


class _InferenceConfigYaml(_Section):
    liveness_route: _RouteYaml
    readiness_route: _RouteYaml
    scoring_route: _RouteYaml


class _EnvironmentYaml(_StringOrMapping):
    image: str | None = None
    # A path, or (cloud-only) an inline conda mapping: checked by hand below.
    conda_file: Any = None
    build: _BuildYaml | None = None
    inference_config: _InferenceConfigYaml | None = None


class _RequestSettingsYaml(_Section):
    # 180000 ms is the cloud's ceiling for request_timeout_ms; catching it here is the point.
    request_timeout_ms: Annotated[_WholeNumber, Field(ge=1, le=180_000)] = 5000
    max_concurrent_requests_per_instance: Annotated[_WholeNumber, Field(ge=1)] = 1
    max_queue_wait_ms: Annotated[_WholeNumber, Field(ge=0)] | None = None


class _ProbeYaml(_Section):
    initial_delay: Annotated[_WholeNumber, Field(ge=0)] = 10
    period: Annotated[_WholeNumber, Field(ge=1)] = 10
    timeout: Annotated[_WholeNumber, Field(ge=1)] = 2
    failure_threshold: Annotated[_WholeNumber, Field(ge=1)] = 30
    success_threshold: Annotated[_WholeNumber, Field(ge=1)] = 1


class _DeploymentYaml(_Section):
    # Required keys are Optional here and checked by hand: their absence depends on the
    # endpoint file and on -n, and should not hide the other sections' problems.
    name: str | None = None
    endpoint_name: str | None = None
    model: _ModelYaml | None = None
    code_configuration: _CodeConfigurationYaml | None = None
    environment: _EnvironmentYaml | None = None
    environment_variables: dict[str, _SingleValue] | None = None
    request_settings: _RequestSettingsYaml | None = None
    liveness_probe: _ProbeYaml | None = None
    readiness_probe: _ProbeYaml | None = None
    instance_type: str | None = None
    instance_count: Annotated[_WholeNumber, Field(ge=1)] | None = None
    tags: dict[str, _SingleValue] | None = None


class _EndpointYaml(_Section):
    name: str | None = None
    auth_mode: str | None = None
    tags: dict[str, _SingleValue] | None = None


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


# --------------------------------------------------------------------------- messages

_EXAMPLE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
_ROUTE_EXAMPLES = {"liveness_route": "/health", "readiness_route": "/ready", "scoring_route": "/score"}
_EXAMPLES = {
    "name": "name: blue",
    "endpoint_name": "endpoint_name: my-endpoint",
    "auth_mode": "auth_mode: key",
    "model": "model: {path: ./model}",
    "model.path": "path: ./model",
    "model.name": "name: my-model",
    "model.version": "version: 1",
    "code_configuration": "code_configuration: {code: ./src, scoring_script: score.py}",
    "code_configuration.code": "code: ./src",
    "code_configuration.scoring_script": "scoring_script: score.py",
    "environment": f"environment: {{image: {_EXAMPLE_IMAGE}, conda_file: ./conda.yml}}",
    "environment.image": f"image: {_EXAMPLE_IMAGE}",
    "environment.conda_file": "conda_file: ./conda.yml",
    "environment.build": "build: {path: ./docker, dockerfile_path: Dockerfile}",
    "environment.build.path": "path: ./docker",
    "environment.build.dockerfile_path": "dockerfile_path: Dockerfile",
    "environment.inference_config": (
        "inference_config: {liveness_route: {port: 8080, path: /health}, "
        "readiness_route: {port: 8080, path: /ready}, scoring_route: {port: 8080, path: /score}}"
    ),
    "environment_variables": "environment_variables: {LOG_LEVEL: INFO}",
    "request_settings": "request_settings: {request_timeout_ms: 5000, max_concurrent_requests_per_instance: 1}",
    "request_settings.request_timeout_ms": "request_timeout_ms: 5000",
    "request_settings.max_concurrent_requests_per_instance": "max_concurrent_requests_per_instance: 1",
    "request_settings.max_queue_wait_ms": "max_queue_wait_ms: 500",
    "instance_type": "instance_type: Standard_DS3_v2",
    "instance_count": "instance_count: 1",
    "tags": "tags: {team: ml}",
}


def _example(path: tuple[Any, ...]) -> str:
    parts = [str(p) for p in path if p != "[key]"]
    dotted = ".".join(parts)
    if dotted in _EXAMPLES:
        return _EXAMPLES[dotted]
    leaf = parts[-1] if parts else ""
    if parts[:1] in (["liveness_probe"], ["readiness_probe"]):
        if len(parts) == 1:
            return f"{leaf}: {{initial_delay: 10, period: 10, timeout: 2}}"
        return f"{leaf}: {getattr(Probe(), leaf, 10)}"
    if parts[:2] == ["environment", "inference_config"] and len(parts) >= 3:
        route = parts[2]
        example_path = _ROUTE_EXAMPLES.get(route, "/score")
        if len(parts) == 3:
            return f"{route}: {{port: 8080, path: {example_path}}}"
        return "port: 8080" if leaf == "port" else f"path: {example_path}"
    if parts[:1] in (["environment_variables"], ["tags"]) and len(parts) == 2:
        return f'{leaf}: "value"'
    return f"{leaf}: ..."


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path if part != "[key]")


def _problem_from_error(doc: _Document, detail: Any) -> Problem:
    loc = tuple(part for part in detail["loc"] if part != _STRING_FORM)
    kind, value, ctx = detail["type"], detail.get("input"), detail.get("ctx") or {}
    example = _example(loc)
    found = _describe(value)
    if detail["loc"][-1] == "[key]":
        message = f"the key {value!r} must be text. Put it in quotes: `\"{value}\": ...`."
    elif kind == "missing":
        message = f"missing. Add `{example}`."
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"expected a whole number, found {found}. Write e.g. `{example}`."
    elif kind == "string_type":
        message = f"expected text, found {found}. Write e.g. `{example}`"
        message += " (quote it if it looks like a number or true/false)." if value is not None else "."
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping of `key: value` lines, found {found}. Write e.g. `{example}`."
    elif kind == "single_value_type":
        message = f"expected a single value (text, number or true/false), found {found}. Write e.g. `{example}`."
    elif kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        word = "at least" if kind == "greater_than_equal" else "more than"
        message = f"must be {word} {bound}, found {value!r}. Write e.g. `{example}`."
    elif kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        word = "at most" if kind == "less_than_equal" else "less than"
        limit = " (the cloud's limit)" if loc[-1:] == ("request_timeout_ms",) else ""
        message = f"must be {word} {bound}{limit}, found {value!r}. Lower it."
    else:
        message = f"{detail['msg']} (found {found}). Write e.g. `{example}`."
    return Problem(doc.file, doc.line(loc), _dotted(loc), message)


# --------------------------------------------------------------------------- names and paths

_NAME_PATTERN = re.compile(r"^[A-Za-z](?:[-A-Za-z0-9]*[A-Za-z0-9])?$")
_URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _name_problem(name: str, kind: str) -> str | None:
    """Why NAME breaks Azure's rule for endpoint/deployment names, with a fix; None if it is fine."""
    if 3 <= len(name) <= 32 and _NAME_PATTERN.match(name):
        return None
    if len(name) < 3:
        why = f"it has {len(name)} character{'s' if len(name) != 1 else ''}, at least 3 are needed"
    elif len(name) > 32:
        why = f"it has {len(name)} characters, at most 32 are allowed"
    elif not name[0].isascii() or not name[0].isalpha():
        why = "it must start with a letter"
    elif name.endswith("-"):
        why = "it must not end with a hyphen"
    else:
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
        why = f"it contains {', '.join(repr(c) for c in bad)}; only letters, digits and hyphens are allowed"
    message = (
        f"{name!r} is not a valid {kind} name: {why}. Azure needs 3-32 letters, digits and hyphens, "
        "starting with a letter and not ending with a hyphen."
    )
    suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", name).lstrip("-0123456789")[:32].rstrip("-")
    if suggestion != name and 3 <= len(suggestion) and _NAME_PATTERN.match(suggestion):
        message += f" Rename it, e.g. {suggestion!r}."
    else:
        message += " Rename it."
    return message


def _is_registered(reference: str) -> bool:
    # `azureml:name:1`, `azureml://registries/...` and full ARM ids all name workspace assets.
    return reference.startswith("azureml:") or reference.lower().startswith("/subscriptions/")


def _absolute(path: Path) -> Path:
    # Absolute and normalised, but symlinks are NOT resolved: the model folder is mounted under
    # its own name (`$AZUREML_MODEL_DIR/<folder name>/...`), and resolving a symlinked folder
    # would rename it to its target's name and break the script's paths.
    return Path(os.path.abspath(os.path.expanduser(path)))


# --------------------------------------------------------------------------- load


def load(path: Path | str, endpoint_file: Path | str | None = None, name: str | None = None) -> LocalDeployment:
    """Read and check the deployment (and endpoint) YAML. NAME (the CLI's -n) overrides the
    endpoint name of both files. Collects ALL problems before raising one SpecError."""
    deployment_file, endpoint_path = find_files(Path(path), Path(endpoint_file) if endpoint_file is not None else None)
    problems: list[Problem] = []
    deployment_doc = _read_yaml(deployment_file, problems)
    endpoint_doc = _read_yaml(endpoint_path, problems) if endpoint_path is not None else None
    if deployment_doc is None:
        raise SpecError(problems)
    result = _Resolver(deployment_doc, endpoint_doc, name, problems).resolve()
    if problems or result is None:
        order = {deployment_file: 0, endpoint_path: 1}
        raise SpecError(sorted(problems, key=lambda p: (order.get(p.file, 2), p.line or 0)))
    return result


class _Resolver:
    """Checks the validated sections against the file system and each other, and builds the
    `LocalDeployment`. Each check appends its problems and returns None instead of raising,
    so one run reports everything."""

    def __init__(self, deployment_doc: _Document, endpoint_doc: _Document | None,
                 name_override: str | None, problems: list[Problem]):
        self.doc = deployment_doc
        self.endpoint_doc = endpoint_doc
        self.name_override = name_override
        self.problems = problems

    def problem(self, path: tuple[Any, ...], message: str, doc: _Document | None = None) -> None:
        doc = doc or self.doc
        self.problems.append(Problem(doc.file, doc.line(path), _dotted(path) or None, message))

    def resolve(self) -> LocalDeployment | None:
        spec, self.bad = _validate(_DeploymentYaml, self.doc, self.problems)
        endpoint, endpoint_bad = (None, set())
        if self.endpoint_doc is not None:
            endpoint, endpoint_bad = _validate(_EndpointYaml, self.endpoint_doc, self.problems)

        deployment_name = self._deployment_name(spec)
        endpoint_name = self._endpoint_name(spec, endpoint, endpoint_bad)
        model = self._model(spec.model, deployment_name)
        environment = self._environment(spec.environment)
        code_dir, scoring_script = self._code(spec.code_configuration, spec.environment, spec.model)
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
            request_settings=RequestSettings(**(spec.request_settings or _RequestSettingsYaml()).model_dump(
                include={"request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms"})),
            liveness_probe=_probe(spec.liveness_probe),
            readiness_probe=_probe(spec.readiness_probe),
            instance_type=spec.instance_type,
            instance_count=spec.instance_count if spec.instance_count is not None else 1,
            tags=dict(spec.tags or {}),
            endpoint_tags=dict(endpoint.tags or {}) if endpoint is not None else {},
        )

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

    # -- model

    def _model(self, model: _ModelYaml | None, deployment_name: str | None) -> ModelSpec | None:
        if model is None:
            return None
        if model.string_form is not None:
            reference = model.string_form
            if _is_registered(reference):
                self.problem(("model",), (
                    f"{reference!r} is a model registered in an Azure ML workspace; a local endpoint needs "
                    "local files. Point at the model on disk instead: `model: {path: ./model}`."
                ))
            else:
                # The cloud reads a bare string as an asset reference, so do not guess it is a path.
                self.problem(("model",), (
                    f"a bare string ({reference!r}) is not a local model. Write `model: {{path: {reference}}}`."
                ))
            return None
        if model.path is None:
            self.problem(("model", "path"), (
                "missing: a local model needs the path of its file or folder. Add `model: {path: ./model}`."
            ))
            return None
        path = self._local_path(("model", "path"), model.path, "model")
        if path is None:
            return None
        if not path.exists():
            self.problem(("model", "path"), (
                f"{path} not found (model.path {model.path!r} is relative to {self.doc.folder}). "
                "Fix the path, or put the model file or folder there."
            ))
            return None
        return ModelSpec(
            path=path,
            name=model.name or f"{deployment_name}-model",
            version=model.version if model.version else "1",
        )

    def _local_path(self, where: tuple[Any, ...], raw: str, what: str) -> Path | None:
        """RAW resolved against the deployment YAML's folder, or None (with a problem) when it
        names something remote."""
        if _is_registered(raw) or _URL_PATTERN.match(raw):
            self.problem(where, (
                f"{raw!r} is not a local path; a local endpoint reads its {what} from this machine. "
                f"Download it and write a path relative to {self.doc.file.name}, e.g. `{_example(where)}`."
            ))
            return None
        if not raw.strip():
            self.problem(where, f"is empty. Write a path relative to {self.doc.file.name}, e.g. `{_example(where)}`.")
            return None
        return _absolute(self.doc.folder / Path(os.path.expanduser(raw)))

    # -- code

    def _code(self, code: _CodeConfigurationYaml | None, environment: _EnvironmentYaml | None,
              model: _ModelYaml | None) -> tuple[Path | None, str | None]:
        if code is None:
            # Only claim it is missing when we can tell the environment brings no server of its
            # own: not when the environment section was unreadable or names a registered asset.
            unknown = "environment" in self.bad or (environment is not None and environment.string_form is not None)
            byoc = environment is not None and environment.inference_config is not None
            if not (unknown or byoc) and "code_configuration" not in self.bad:
                message = (
                    "missing: a local deployment needs a scoring script. Add "
                    "`code_configuration: {code: ./src, scoring_script: score.py}`, or use a bring-your-own "
                    "container with `environment.inference_config`."
                )
                if model is not None and getattr(model, "type", None) == "mlflow_model":
                    message += " (No-code MLflow deployments only run in the cloud.)"
                self.problem(("code_configuration",), message)
            return None, None

        where = ("code_configuration", "code")
        code_dir = self._local_path(where, code.code, "code")
        if code_dir is None:
            return None, None
        if not code_dir.exists():
            self.problem(where, (
                f"folder {code_dir} not found (code {code.code!r} is relative to {self.doc.folder}). "
                "Fix the path, or create the folder with your scoring script in it."
            ))
            return None, None
        if not code_dir.is_dir():
            self.problem(where, (
                f"{code_dir} is a file; code must be the folder holding the scoring script. "
                f"Write `code: {_posix_relative(code_dir.parent, self.doc.folder)}`."
            ))
            return None, None

        where = ("code_configuration", "scoring_script")
        raw_script = code.scoring_script.replace("\\", "/")
        if not raw_script.strip():
            self.problem(where, f"is empty. Name the script inside {code_dir}, e.g. `scoring_script: score.py`.")
            return None, None
        script = _absolute(code_dir / raw_script)
        if os.path.commonpath([script, code_dir]) != str(code_dir):
            self.problem(where, (
                f"{script} is outside the code folder {code_dir}; only the code folder is deployed. "
                "Move the script into it, or point code at a folder that contains it."
            ))
            return None, None
        if not script.is_file():
            state = "is a folder" if script.is_dir() else "not found"
            self.problem(where, (
                f"{script} {state} (scoring_script {code.scoring_script!r} is relative to the code folder {code_dir}). "
                "Fix the name, or create the script there."
            ))
            return None, None
        return code_dir, script.relative_to(code_dir).as_posix()

    # -- environment

    def _environment(self, environment: _EnvironmentYaml | None) -> EnvironmentSpec | None:
        if environment is None:
            if "environment" not in self.bad:
                self.problem(("environment",), (
                    f"missing: a local deployment needs an environment. Add `{_EXAMPLES['environment']}` "
                    "or `environment: {build: {path: ./docker}}`."
                ))
            return None
        if environment.string_form is not None:
            reference = environment.string_form
            if _is_registered(reference):
                self.problem(("environment",), (
                    f"{reference!r} is an environment registered in an Azure ML workspace; a local endpoint "
                    f"builds from local files. Use `{_EXAMPLES['environment']}` (the image and conda file the "
                    "registered environment was made from), or `environment: {build: {path: ./docker}}`."
                ))
            else:
                self.problem(("environment",), (
                    f"a bare string ({reference!r}) is not a local environment. If it is a Docker image, write "
                    f"`environment: {{image: {reference}}}`."
                ))
            return None

        ok = True
        if environment.image and environment.build is not None:
            self.problem(("environment", "build"), "give either image (with conda_file) or build, not both. Remove one.")
            ok = False
        elif not environment.image and environment.build is None:
            self.problem(("environment",), (
                f"needs an image or a build. Add `{_EXAMPLES['environment.image']}` (with an optional "
                "`conda_file: ./conda.yml`) or `build: {path: ./docker}`."
            ))
            ok = False

        conda_file = self._conda_file(environment.conda_file)
        if environment.conda_file is not None and conda_file is None:
            ok = False

        build_path = dockerfile_path = None
        if environment.build is not None:
            build_path, dockerfile_path = self._build(environment.build)
            if build_path is None:
                ok = False

        inference_config = None
        if environment.inference_config is not None:
            routes = environment.inference_config
            inference_config = InferenceConfig(
                liveness_route=Route(routes.liveness_route.port, routes.liveness_route.path),
                readiness_route=Route(routes.readiness_route.port, routes.readiness_route.path),
                scoring_route=Route(routes.scoring_route.port, routes.scoring_route.path),
            )
        if not ok:
            return None
        return EnvironmentSpec(
            image=environment.image or None,
            conda_file=conda_file,
            build_path=build_path,
            dockerfile_path=dockerfile_path,
            inference_config=inference_config,
        )

    def _conda_file(self, raw: Any) -> Path | None:
        where = ("environment", "conda_file")
        if raw is None:
            return None
        if isinstance(raw, dict):
            # The cloud accepts the conda spec inline; the runtimes here need a file to hash,
            # watch and copy into an image, so ask for one rather than writing it ourselves.
            self.problem(where, (
                "an inline conda specification is not supported locally. Move it to a file next to "
                f"{self.doc.file.name} and write `conda_file: ./conda.yml`."
            ))
            return None
        if not isinstance(raw, str):
            self.problem(where, f"expected the path of a conda YAML, found {_describe(raw)}. Write e.g. `conda_file: ./conda.yml`.")
            return None
        path = self._local_path(where, raw, "conda file")
        if path is None:
            return None
        if not path.is_file():
            state = "is a folder" if path.is_dir() else "not found"
            self.problem(where, (
                f"{path} {state} (conda_file {raw!r} is relative to {self.doc.folder}). "
                "Fix the path, or remove conda_file to use the image as it is."
            ))
            return None
        return path

    def _build(self, build: _BuildYaml) -> tuple[Path | None, str | None]:
        where = ("environment", "build", "path")
        path = self._local_path(where, build.path, "Docker build context")
        if path is None:
            return None, None
        if not path.is_dir():
            state = "is a file; build.path is the folder holding the Dockerfile" if path.exists() else "not found"
            self.problem(where, (
                f"{path} {state} (build.path {build.path!r} is relative to {self.doc.folder}). "
                "Fix the path to the Docker build context folder."
            ))
            return None, None
        dockerfile = _absolute(path / build.dockerfile_path)
        if not dockerfile.is_file():
            self.problem(("environment", "build", "dockerfile_path"), (
                f"{dockerfile} not found (dockerfile_path {build.dockerfile_path!r} is relative to the build "
                f"folder {path}). Create it, or set `dockerfile_path:` to the Dockerfile's name in that folder."
            ))
            return None, None
        return path, build.dockerfile_path

    # -- the rest

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


def _probe(probe: _ProbeYaml | None) -> Probe:
    if probe is None:
        return Probe()
    return Probe(**probe.model_dump(include={"initial_delay", "period", "timeout", "failure_threshold", "success_threshold"}))


def _posix_relative(path: Path, start: Path) -> str:
    relative = Path(os.path.relpath(path, start)).as_posix()
    return relative if relative.startswith(".") else f"./{relative}"


def _display(path: Path) -> str:
    """PATH relative to the working directory when it is below it, else as it is."""
    try:
        return str(_absolute(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
