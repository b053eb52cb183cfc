"""Whether a deployment is a no-code one (its model has `type: mlflow_model` or `type: triton_model`
and the deployment has no `code_configuration`), and what that asks of the model.

- MLflow: the cloud serves the model folder with its own MLflow image, so the YAML needs no
  environment; the folder must hold an `MLmodel` with a python_function flavour (`mlflow_read`).
- Triton: served by NVIDIA's Triton server image, which devtui does not run as a no-code deployment;
  the problem says how to run it as a bring-your-own container.

A deployment with code_configuration (a scoring script that loads the MLflow model itself) or with
`environment.inference_config` (the user's own image serves it) is not no-code: it stays what it is.
"""

from __future__ import annotations

from typing import Any

from .checker import _Checker
from .deployment import EnvironmentSpec, ModelSpec
from .mlflow_model import MLFLOW_MODEL_TYPE, TRITON_MODEL_TYPE, MlflowModel
from .mlflow_read import _MlflowReader
from .models import _DeploymentYaml

# What a no-code MLflow deployment runs in when its YAML names no environment: the cloud picks its
# own MLflow image and installs the model's conda.yaml in it; the runtimes decide what that is here.
NO_CODE_ENVIRONMENT = EnvironmentSpec(image=None, conda_file=None, build_path=None, dockerfile_path=None,
                                      inference_config=None)
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver"
_TRITON_ROUTES = (
    "inference_config: {liveness_route: {port: 8000, path: /v2/health/live}, "
    "readiness_route: {port: 8000, path: /v2/health/ready}, scoring_route: {port: 8000, path: /}}"
)


def model_type(spec: _DeploymentYaml) -> str | None:
    model = spec.model
    value = getattr(model, "type", None) if model is not None and model.string_form is None else None
    return value if isinstance(value, str) else None


def is_no_code(spec: _DeploymentYaml, bad: set[str]) -> bool:
    """Whether the cloud would serve this deployment without a scoring script or an image of the user's."""
    if spec.code_configuration is not None or "code_configuration" in bad:
        return False
    if model_type(spec) not in (MLFLOW_MODEL_TYPE, TRITON_MODEL_TYPE):
        return False
    environment = spec.environment if "environment" not in bad else None
    return environment is None or environment.string_form is not None or environment.inference_config is None


class _NoCodeResolver(_Checker):
    """Reads a no-code deployment's model: an MLflow model folder, or a Triton model (refused)."""

    def mlflow(self, spec: _DeploymentYaml, model: ModelSpec | None) -> MlflowModel | None:
        if model_type(spec) == TRITON_MODEL_TYPE:
            self._triton(model)
            return None
        if model is None:
            if spec.model is None and "model" not in self.bad:
                self.problem(("model",), (
                    "missing: a no-code MLflow deployment serves the MLflow model folder its model names. "
                    "Add `model: {path: ./model, type: mlflow_model}`."
                ))
            return None  # a model that is there but not usable already has its problem
        folder = model.path
        if not folder.is_dir() or not (folder / "MLmodel").is_file():
            self._no_mlmodel(folder)
            return None
        return _MlflowReader(folder, self.problems).read()

    def _no_mlmodel(self, path: Any) -> None:
        what = f"{path} is a file" if path.is_file() else f"there is no MLmodel file in {path}"
        self.problem(("model", "path"), (
            f"{what}, but `type: {MLFLOW_MODEL_TYPE}` says it is an MLflow model: a folder holding MLmodel, the model "
            "file and its environment, as mlflow.<flavour>.save_model writes it. Point model.path at that folder, or "
            "remove `type: mlflow_model` and add code_configuration to serve it with a scoring script."
        ))

    def _triton(self, model: ModelSpec | None) -> None:
        repository = f"$AZUREML_MODEL_DIR/{model.path.name if model is not None else '<model folder>'}"
        self.problem(("model", "type"), (
            f"a no-code Triton deployment is served by NVIDIA's Triton Inference Server image ({TRITON_IMAGE}), "
            "which devtui does not run itself. Run it with the container runtime (--runtime container) as a "
            f"bring-your-own container: an image of your own FROM {TRITON_IMAGE}:<tag>-py3, pulled or built here, "
            f"whose command is `tritonserver --model-repository={repository}`, and Triton's routes: "
            f"`environment: {{image: <your image>, {_TRITON_ROUTES}}}`."
        ))

