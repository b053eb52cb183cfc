"""The image a no-code MLflow deployment runs in, in the container runtime.

The cloud serves such a deployment with Azure's MLflow inference image, whose start script installs
the model's own ``conda.yaml`` before the server starts (dynamic installation). Here the same
packages are installed when the image is built, through the host-side wheelhouse and the two layers
of every environment image (``images.py``): the *server layer* is the base image plus devtui's
scoring server and what its MLflow script needs besides the model's packages (inference-schema,
which the cloud's image brings with azmlinfsrv); the *environment image* above it holds the pip
section of the model's ``conda.yaml``. A change of ``conda.yaml`` rebuilds that image only
(``watch.classify``); a retrained model is staged and swapped, as in the process runtime.

The YAML names no environment for a no-code deployment; the base is then the project's Python image
(``python:3.11-slim``, which ``scripts/build-base-image.sh`` builds offline). A YAML that names one
(``image`` with an optional ``conda_file``, or a ``build``) gets it, with its conda file instead of the
model's, as the cloud uses a deployment's own environment instead of installing the model's.

The model's ``mlflow`` requirement is installed as ``mlflow-skinny`` at the same version: the
cloud's MLflow image loads models with mlflow-skinny, and the scoring path (``mlflow.pyfunc`` and the
flavour's loader) is all in it; full ``mlflow`` adds the tracking server and UI (Flask, SQLAlchemy,
alembic, gunicorn, matplotlib, ...), hundreds of MB that serving never imports. mlflow-skinny leaves
out numpy and pandas, which ``mlflow.pyfunc`` imports (full mlflow brings them): they are added where
the model's requirements do not name them.

The model's ``python=`` pin may name another Python than the image's (MLflow writes the one it saved
with). The wheels are resolved for the image's Python: where they resolve, the log warns and the
build goes on; where they do not, the revision fails with one line naming both versions.
"""

from __future__ import annotations

import re
from pathlib import Path

from .images import ImageBuilder, ImageError, python_differs
from .wheels import WheelError, canonical

# The project's Python base image, where the YAML names no environment.
MLFLOW_BASE = "python:3.11-slim"
# What inference_server/mlflow_score.py imports besides mlflow and the model's own packages.
SCORING_REQUIREMENTS = ["inference-schema>=1.8"]
# What mlflow.pyfunc imports and mlflow-skinny does not install.
PYFUNC_REQUIREMENTS = ("numpy", "pandas")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(\[[^\]]*\])?(.*)$")


def _name(requirement: str) -> str:
    match = _REQUIREMENT.match(requirement)
    return canonical(match.group(1)) if match else canonical(requirement)


def scoring_requirements(requirements: list[str], mlflow_version: str | None) -> list[str]:
    """The model's pip requirements as the image installs them: ``mlflow`` as ``mlflow-skinny`` at
    the same version (its extras dropped: they are full mlflow's), then what scoring needs and they
    do not name: mlflow-skinny (at the version that saved the model), numpy, pandas."""
    mapped = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match and canonical(match.group(1)) == "mlflow":
            requirement = f"mlflow-skinny{match.group(3)}"
        mapped.append(requirement)
    named = {_name(requirement) for requirement in mapped}
    if "mlflow-skinny" not in named:
        mapped.append(f"mlflow-skinny=={mlflow_version}" if mlflow_version else "mlflow-skinny")
    return mapped + [name for name in PYFUNC_REQUIREMENTS if name not in named]


class MlflowImageBuilder(ImageBuilder):
    """The environment image of a no-code MLflow deployment (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.python_pin: str | None = None  # the model's python= pin, once requirements() read it
        self.base_image: str | None = None

    @property
    def own_environment(self) -> bool:
        """Whether the YAML names an environment, which then replaces the model's."""
        environment = self.deployment.environment
        return bool(environment.image or environment.build_path)

    def base(self) -> str:
        if self.own_environment:
            return super().base()
        # Said with a build, not at every check that finds the image up to date.
        self.base_note = (f"No-code MLflow deployment: the cloud serves it with Azure's MLflow inference image; "
                          f"devtui builds on {MLFLOW_BASE} with the model's {self._file_name()} installed, as the "
                          "cloud installs it.")
        return self.local_or_pulled(MLFLOW_BASE)

    def server_requirements(self) -> list[str]:
        return super().server_requirements() + SCORING_REQUIREMENTS

    @property
    def requirements_file(self) -> Path | None:
        if self.own_environment:
            return self.deployment.environment.conda_file
        return self.deployment.mlflow.environment_file

    @property
    def requirements_are_conda(self) -> bool:
        return True

    def requirements(self, base: str, python: str) -> list[str]:
        self.base_image = base
        own: list[str] = []
        if self.requirements_file is not None:
            conda = self.conda_requirements(self.requirements_file, base, python)
            self.python_pin, own = conda.python, conda.requirements
        return scoring_requirements(own, self.deployment.mlflow.mlflow_version)

    def _download(self, requirements: list[str], python: str, wheels: Path,
                  pinned: dict[str, str] | None = None) -> None:
        try:
            super()._download(requirements, python, wheels, pinned)
        except ImageError as ex:
            cause = ex.__context__
            if pinned is None or not python_differs(self.python_pin, python) or not isinstance(cause, WheelError):
                raise
            what = f"no wheel of {', '.join(cause.missing)}" if cause.missing else "no set of wheels that resolves"
            raise ImageError(
                f"{self.requirements_file}: the model pins Python {self.python_pin} and {self.base_image} has Python "
                f"{python}, for which pip finds {what}: serve it on an image with Python {self.python_pin} "
                "(environment.image in the deployment YAML), or save the model with Python "
                f"{python}.") from None

    def _file_name(self) -> str:
        file = self.deployment.mlflow.environment_file
        return file.name if file is not None else "requirements (it names no conda.yaml)"
