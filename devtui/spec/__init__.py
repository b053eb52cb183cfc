"""Endpoint and deployment YAML -> one typed, validated `LocalDeployment`.

This package owns reading the two files a user would pass to
`az ml online-deployment create --local`: finding them in a folder, parsing them with
line numbers, checking them against what a *local* endpoint can run (local files only, no
registered assets), resolving every path against the YAML that names it, and filling in the
cloud's defaults. Every problem becomes a `Problem` carrying file, line, field and what to do;
`load` collects all of them before raising one `SpecError`, so a user fixes a file in one pass.

Nothing here starts processes, touches Docker or writes files.

Modules, in the order a load goes through them:

- `files`: which files to read (`find_files`).
- `yaml_lines`: YAML parsed with the line of every key, within the limits of `yaml_limits`
  (size, values once aliases are expanded, depth), so hostile input costs milliseconds.
- `models`: the pydantic models of the YAML.
- `resolver`, `local_files`, `environment` (with `conda`, on `checker`): from validated sections to a
  `LocalDeployment`, checked against the file system.
- `flow`: whether the deployment is a prompt flow deployment (no code_configuration, the model a flow
  folder) and what its YAML must then say; `flow_read` and `flow_check` read the flow's own file
  (flow.dag.yaml, flow.flex.yaml or a .prompty) into a `FlowSpec`, with file:line problems, and
  without importing prompt flow.
- `mlflow`: whether the deployment is a no-code one (an MLflow or Triton model, no code_configuration);
  `mlflow_read` reads the MLflow model's `MLmodel` into an `MlflowModel` (`mlflow_model`), with
  file:line problems, and without importing mlflow.
- `unknown_keys`: warnings for keys neither devtui nor the cloud knows (`LocalDeployment.warnings`).
- `loader`: `load`, which runs all of the above.
- `deployment`, `problems`: the result types and the error types.
- `messages`, `names`, `paths`: wording, Azure's naming rule, how paths are resolved and shown.
"""

from .conda import load_conda
from .deployment import (DEFAULT_FLOW_ROUTES, PROMPTFLOW_RUNTIME_IMAGE, EnvironmentSpec, FlowInput, FlowNode, FlowSpec,
                         InferenceConfig, LocalDeployment, ModelSpec, Probe, RequestSettings, Route)
from .files import find_files
from .flow import is_runtime_image, promptflow_core_installed
from .loader import load
from .mlflow_model import MlflowModel, MlflowSignature, SignatureField
from .problems import Problem, SpecError

__all__ = [
    "DEFAULT_FLOW_ROUTES",
    "PROMPTFLOW_RUNTIME_IMAGE",
    "EnvironmentSpec",
    "FlowInput",
    "FlowNode",
    "FlowSpec",
    "InferenceConfig",
    "LocalDeployment",
    "MlflowModel",
    "MlflowSignature",
    "ModelSpec",
    "Probe",
    "Problem",
    "RequestSettings",
    "Route",
    "SignatureField",
    "SpecError",
    "find_files",
    "is_runtime_image",
    "load",
    "load_conda",
    "promptflow_core_installed",
]
