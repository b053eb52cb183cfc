"""The typed result of reading a spec: `LocalDeployment` and the settings it is made of. These are
what the engine and the runtimes consume; nothing here reads a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .mlflow_model import MlflowModel
from .paths import _absolute
from .problems import Problem


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


# The prompt flow runtime image the Azure ML docs name for flow deployments (or one built FROM it):
# a deployment in it, whose model is a flow folder, is served by prompt flow's own serving app.
PROMPTFLOW_RUNTIME_IMAGE = "mcr.microsoft.com/azureml/promptflow/promptflow-runtime"
# Where a flow deployment answers when its YAML gives no inference_config: the routes the docs give
# every flow deployment on the runtime image.
DEFAULT_FLOW_ROUTES = InferenceConfig(
    liveness_route=Route(8080, "/health"), readiness_route=Route(8080, "/health"), scoring_route=Route(8080, "/score"),
)


@dataclass(frozen=True)
class FlowInput:
    name: str
    type: str  # as the flow file says: string, int, double, bool, list, object, chat_history
    default: object = None  # None: required (unless the type is chat_history)
    is_chat_input: bool = False
    is_chat_history: bool = False


@dataclass(frozen=True)
class FlowNode:
    name: str
    kind: str  # a DAG node's type (python, llm, prompt, ...); "flex" for a flex entry; "prompty"
    source: Path | None  # absolute: the node's source file, where it has one


@dataclass(frozen=True)
class FlowInclude:
    """One entry of a flow's ``additional_includes``: what `pf flow build` copies into the flow
    folder, a file under its own name or a folder with its contents (``name``); ``zip``: a folder
    ``X`` named as ``X.zip``, which prompt flow packs into that file."""

    entry: str  # as the flow file writes it
    source: Path  # absolute, links resolved: the file or folder the user edits
    kind: str  # "file", "folder" or "zip"
    line: int | None = None  # the entry's line in the flow file

    @property
    def name(self) -> str:
        """Where it lands, relative to the flow folder."""
        return self.source.name + ".zip" if self.kind == "zip" else self.source.name

    def __str__(self) -> str:
        """The entry and where it comes from, as `validate`, the log and the app show it."""
        what = "folder, packed" if self.kind == "zip" else self.kind
        return f"{self.name} <- {self.source} ({what}; {self.entry})"


@dataclass(frozen=True)
class FlowSpec:
    """A prompt flow deployment: ``model.path`` is the flow folder. Read without prompt flow."""

    folder: Path  # absolute: the flow folder (the deployment's model.path)
    flow_file: str  # relative to folder: flow.dag.yaml, flow.flex.yaml or NAME.prompty
    kind: str  # "dag", "flex" or "prompty"
    inputs: tuple[FlowInput, ...] = ()
    outputs: tuple[str, ...] = ()
    nodes: tuple[FlowNode, ...] = ()
    chat_output: str | None = None
    sample: dict | None = None  # samples.json, else the inputs' defaults
    requirements: Path | None = None  # absolute: the flow's requirements.txt
    includes: tuple[FlowInclude, ...] = ()  # additional_includes, resolved: devtui stages them
    links: tuple[Path, ...] = ()  # symbolic links in the folder, each one prompt flow can follow
    runtime_image: bool = True  # the image is prompt flow's runtime image: devtui serves the flow
    # The routes the flow answers at: the YAML's inference_config, else DEFAULT_FLOW_ROUTES. With the
    # runtime image this is the only place they are: `EnvironmentSpec.inference_config` stays None,
    # since it marks a bring-your-own container; a custom image (runtime_image False) has them in both.
    inference_config: InferenceConfig = DEFAULT_FLOW_ROUTES

    @property
    def chat_input(self) -> str | None:
        return next((i.name for i in self.inputs if i.is_chat_input), None)

    @property
    def chat_history(self) -> str | None:
        return next((i.name for i in self.inputs if i.is_chat_history), None)

    @property
    def is_chat(self) -> bool:
        return self.chat_input is not None and self.chat_history is not None


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
    flow: FlowSpec | None = None  # set when the model is a prompt flow folder (no code_configuration)
    mlflow: MlflowModel | None = None  # set for a no-code MLflow deployment (spec/mlflow.py)
    # What loads but deserves a look (a key nobody knows, most likely misspelled). Not part of
    # what runs, so two deployments differing only in their warnings are equal.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)

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
