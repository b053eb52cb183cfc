"""Whether a deployment is a prompt flow deployment, and what the deployment YAML must then say.

A deployment without `code_configuration` whose `model.path` is a flow is one: a folder holding
`flow.dag.yaml`, `flow.flex.yaml` (or `.yml`) or exactly one `.prompty`, or a `.prompty` file itself
(prompt flow serves a single .prompty as a flow; only that file is deployed then). Its image decides
who serves it:

- prompt flow's runtime image (`PROMPTFLOW_RUNTIME_IMAGE`, any tag): devtui serves the flow with
  promptflow-core, which must be installed; `inference_config` is optional (the docs' routes,
  /health and /score on 8080, are the default) and kept in `FlowSpec.inference_config`, not in
  `EnvironmentSpec.inference_config`, which stays the mark of a bring-your-own container;
- any other image, or a Docker build: a bring-your-own container as today, which needs
  `inference_config`.

With the runtime image, a model folder without a flow file is an error; with another image the
deployment is an ordinary one (and `local_files` says code_configuration is missing).
The flow files themselves are read by `flow_read`."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

from .checker import _Checker
from .deployment import PROMPTFLOW_RUNTIME_IMAGE, EnvironmentSpec, FlowSpec, ModelSpec
from .flow_read import _FlowReader
from .models import _DeploymentYaml, _EnvironmentYaml

_DAG_FILES = ("flow.dag.yaml", "flow.dag.yml")
_FLEX_FILES = ("flow.flex.yaml", "flow.flex.yml")
_PROMPTY = ".prompty"
FLOW_FILE_NAMES = "flow.dag.yaml, flow.flex.yaml (or .yml) or a single .prompty file"
RESPONSE_FIELDS_VARIABLE = "PROMPTFLOW_RESPONSE_INCLUDED_FIELDS"
_CHAT_INPUT, _CHAT_OUTPUT = "azureml.promptflow.chat_input", "azureml.promptflow.chat_output"
_ROUTES_EXAMPLE = (
    "inference_config: {liveness_route: {port: 8080, path: /health}, readiness_route: {port: 8080, path: /health}, "
    "scoring_route: {port: 8080, path: /score}}"
)
_INSTALL = "pip install 'devtui[flow]'` (or `make install` in a devtui checkout)"


def is_runtime_image(image: str | None) -> bool:
    """Whether IMAGE is prompt flow's runtime image, with any tag or digest."""
    if not image:
        return False
    return image == PROMPTFLOW_RUNTIME_IMAGE or image.startswith((PROMPTFLOW_RUNTIME_IMAGE + ":",
                                                                  PROMPTFLOW_RUNTIME_IMAGE + "@"))


def promptflow_core_installed() -> bool:
    """Whether promptflow-core can be imported here, found without importing any of it (importing
    the serving stack takes a second; only the flow worker does that)."""
    top = importlib.util.find_spec("promptflow")
    if top is None or top.submodule_search_locations is None:
        return False
    return importlib.machinery.PathFinder.find_spec("core", list(top.submodule_search_locations)) is not None


class _FlowResolver(_Checker):
    """Recognises a flow deployment and checks what it asks of the deployment YAML."""

    def flow(self, spec: _DeploymentYaml, model: ModelSpec | None,
             environment: EnvironmentSpec | None) -> tuple[bool, FlowSpec | None]:
        """(whether this is a flow deployment, so code_configuration is not missing; its FlowSpec,
        None when it has problems). A deployment that is no flow gives (False, None)."""
        if spec.code_configuration is not None or "code_configuration" in self.bad:
            return False, None
        yaml_environment = spec.environment if "environment" not in self.bad else None
        image = _image(yaml_environment)
        runtime = is_runtime_image(image)
        if model is None:
            if runtime:
                self._missing_model(spec)
            return runtime, None
        found = self._flow_file(model.path, runtime)
        if found is None:
            return runtime, None
        if not runtime and not self._routes_given(yaml_environment, image, found[0]):
            return True, None
        flow = _FlowReader(*found, self.problems, whole_folder=model.path.is_dir()).read()
        self._deployment_settings(spec.environment_variables or {}, image if runtime else None)
        if flow is None:
            return True, None
        flow = self._chat_properties(flow)
        routes = environment.inference_config if environment is not None else None
        return True, replace(flow, runtime_image=runtime, **({"inference_config": routes} if routes else {}))

    def _chat_properties(self, flow: FlowSpec) -> FlowSpec:
        """The model's ``azureml.promptflow.chat_input``/``chat_output`` properties (what the studio
        reads to treat a deployment as a chat) name the chat's input and output; they must exist."""
        model = self.doc.data.get("model")
        properties = model.get("properties") if isinstance(model, dict) else None
        if not isinstance(properties, dict):
            return flow
        inputs, chat_output = flow.inputs, flow.chat_output
        named = properties.get(_CHAT_INPUT)
        if isinstance(named, str):
            if named not in {i.name for i in inputs}:
                self._unknown_chat_name(_CHAT_INPUT, named, "input", [i.name for i in inputs])
            else:
                inputs = tuple(replace(i, is_chat_input=i.name == named) for i in inputs)
        named = properties.get(_CHAT_OUTPUT)
        if isinstance(named, str):
            if named not in flow.outputs:
                self._unknown_chat_name(_CHAT_OUTPUT, named, "output", list(flow.outputs))
            else:
                chat_output = named
        return replace(flow, inputs=inputs, chat_output=chat_output)

    def _unknown_chat_name(self, key: str, named: str, what: str, known: list[str]) -> None:
        self.problem(("model", "properties", key), (
            f"{named!r} is not one of the flow's {what}s ({', '.join(known) or 'none'}). Name the {what} the chat uses."
        ))

    def _missing_model(self, spec: _DeploymentYaml) -> None:
        # A model that is there but not usable already has its problem.
        if spec.model is None and "model" not in self.bad:
            self.problem(("model",), (
                "missing: a prompt flow deployment serves the flow folder its model names. "
                "Add `model: {path: ./my-flow}`."
            ))

    def _deployment_settings(self, variables: dict[str, str], runtime_image: str | None) -> None:
        """What the deployment YAML must say for a flow: a response filter prompt flow can read,
        and, when devtui serves the flow (RUNTIME_IMAGE), promptflow-core installed."""
        self._response_fields(variables)
        if runtime_image is not None and not promptflow_core_installed():
            self.problem(("environment", "image"), (
                f"{runtime_image} is prompt flow's runtime image, so devtui serves the flow itself with "
                f"promptflow-core, which is not installed for {sys.executable}. Install devtui's flow extra: `{_INSTALL}."
            ))

    def _flow_file(self, path: Path, runtime: bool) -> tuple[Path, str, str] | None:
        """(flow folder, flow file in it, kind) for the model at PATH, or None. Only with the
        runtime image is a model without a flow file a problem."""
        if path.is_file():
            if path.suffix.lower() == _PROMPTY:
                return path.parent, path.name, "prompty"
            if runtime:
                self._no_flow_file(f"{path} is a file, not a flow folder")
            return None
        yamls = [name for name in _DAG_FILES + _FLEX_FILES if (path / name).is_file()]
        if len(yamls) > 1:
            self.problem(("model", "path"), (
                f"the flow folder {path} holds {' and '.join(yamls)}; prompt flow serves exactly one flow. "
                "Remove (or rename) the ones that are not the flow."
            ))
            return None
        if yamls:
            return path, yamls[0], "dag" if yamls[0] in _DAG_FILES else "flex"
        prompties = _prompties(path)
        if len(prompties) == 1:
            return path, prompties[0], "prompty"
        if runtime:
            found = f"{len(prompties)} .prompty files ({', '.join(prompties)})" if prompties else "no flow file"
            self._no_flow_file(f"the flow folder {path} holds {found}")
        return None

    def _no_flow_file(self, what: str) -> None:
        self.problem(("model", "path"), (
            f"{what}. A prompt flow deployment's model is a folder holding {FLOW_FILE_NAMES}; point model.path "
            "at it, or add code_configuration to serve a scoring script instead."
        ))

    def _routes_given(self, environment: _EnvironmentYaml | None, image: str | None, folder: Path) -> bool:
        """Whether a custom image serving a flow says where it answers (a problem when not)."""
        if environment is None or environment.string_form is not None or environment.inference_config is not None:
            return True  # no environment, or a registered one: its own problem says so
        what = f"the image {image!r}" if image else "an image built from environment.build"
        self.problem(("environment", "inference_config"), (
            f"missing: the model is the prompt flow in {folder}, and {what} is not prompt flow's runtime image "
            f"({PROMPTFLOW_RUNTIME_IMAGE}), so it runs as a bring-your-own container and devtui needs its routes. "
            f"Add `{_ROUTES_EXAMPLE}`, or use `image: {PROMPTFLOW_RUNTIME_IMAGE}:latest` to have devtui serve the flow."
        ))
        return False

    def _response_fields(self, variables: dict[str, str]) -> None:
        value = variables.get(RESPONSE_FIELDS_VARIABLE)
        if value is None:
            return
        try:
            fields = json.loads(value)
        except json.JSONDecodeError as error:
            why = f"it is not JSON: {error.msg}"
        else:
            if isinstance(fields, list) and all(isinstance(field, str) for field in fields):
                return
            why = "it is JSON, but not a list of output names"
        self.problem(("environment_variables", RESPONSE_FIELDS_VARIABLE), (
            f"{value!r} must be a JSON list of the flow's output names ({why}); prompt flow keeps only those "
            f"fields in the response. Write e.g. `{RESPONSE_FIELDS_VARIABLE}: '[\"answer\"]'`."
        ))


def _image(environment: _EnvironmentYaml | None) -> str | None:
    """The image the YAML names; None for a build, which is never prompt flow's own image."""
    if environment is None or environment.build is not None:
        return None
    return environment.image


def _prompties(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == _PROMPTY and p.is_file())
    except OSError:  # an unreadable folder: whatever reads the model next says so
        return []
