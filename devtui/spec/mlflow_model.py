"""What devtui knows of an MLflow model folder, read from its `MLmodel` without importing mlflow:
`MlflowModel` (flavours, signature, input example, environment) and the kinds of model a no-code
deployment can name. Nothing here reads a file; `mlflow_read` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# `model.type` values of a deployment's model that mean "no code": the cloud brings the server.
MLFLOW_MODEL_TYPE = "mlflow_model"
TRITON_MODEL_TYPE = "triton_model"
# The only flavour the cloud can generate a scoring script for (it loads the model with
# mlflow.pyfunc.load_model), so the only one a no-code deployment can serve.
PYFUNC_FLAVOR = "python_function"


@dataclass(frozen=True)
class SignatureField:
    """One input, output or parameter of an MLflow signature."""

    name: str | None  # None for an unnamed tensor or column
    type: str  # a column's type (double, long, string, ...), or "tensor"
    dtype: str | None = None  # a tensor's numpy dtype
    shape: tuple[int, ...] | None = None  # a tensor's shape; -1 is any size
    required: bool = True
    default: object = None  # a parameter's default

    def __str__(self) -> str:
        if self.type == "tensor":
            shape = "x".join("?" if size == -1 else str(size) for size in self.shape or ())
            what = f"tensor {self.dtype or '?'}[{shape}]"
        else:
            what = self.type
        text = f"{self.name}: {what}" if self.name else what
        return text if self.required else f"{text} (optional)"


@dataclass(frozen=True)
class MlflowSignature:
    inputs: tuple[SignatureField, ...] = ()
    outputs: tuple[SignatureField, ...] = ()
    params: tuple[SignatureField, ...] = ()

    @property
    def kind(self) -> str:
        """"columns" (requests carry a split-orient DataFrame), "tensors" or "none"."""
        if not self.inputs:
            return "none"
        return "tensors" if all(field.type == "tensor" for field in self.inputs) else "columns"


@dataclass(frozen=True)
class MlflowModel:
    """A no-code MLflow deployment's model folder (`model.path`), as its `MLmodel` describes it."""

    folder: Path  # absolute: the model folder; the cloud sets MLFLOW_MODEL_FOLDER to its name
    flavors: tuple[str, ...]  # in the MLmodel's order; python_function is always one
    loader_module: str  # python_function's loader_module, e.g. mlflow.sklearn
    model_file: Path | None  # absolute: what python_function names (model_path or data), if it names one
    signature: MlflowSignature | None = None
    input_example: Path | None = None  # absolute: saved_input_example_info's file, when it is there
    environment_file: Path | None = None  # absolute: python_function's conda environment (conda.yaml)
    python_env: Path | None = None  # absolute: python_function's virtualenv file (python_env.yaml)
    python_version: str | None = None  # as python_function (or else python_env.yaml) gives it
    requirements_file: Path | None = None  # absolute: requirements.txt in the folder
    requirements: tuple[str, ...] = ()  # its requirement lines, comments and options left out
    mlflow_version: str | None = None  # the mlflow that saved the model
    # sha256 of environment_file as it was read: a save that rewrites it unchanged (MLflow writes the
    # whole folder) is a model change, one that changes it an environment change (``watch.classify``).
    environment_digest: str | None = None

    @property
    def mlmodel(self) -> Path:
        return self.folder / "MLmodel"

    @property
    def flavor_library(self) -> str | None:
        """The library the model needs besides mlflow: the flavour other than python_function
        (sklearn, lightgbm, ...), if there is one."""
        return next((flavor for flavor in self.flavors if flavor != PYFUNC_FLAVOR), None)
