"""The image a prompt flow deployment runs in, in the container runtime.

The YAML names prompt flow's runtime image (``mcr.microsoft.com/azureml/promptflow/promptflow-runtime``).
Where the engine has it, it is the base, as any image is. Where it has not (no registry access, or not
pulled yet: it is several GB), devtui builds a stand-in rather than pull it: the project's Python base
image plus ``promptflow-core`` (the version devtui's flow extra installs here, so both runtimes serve
with the same prompt flow) plus devtui's scoring server. The stand-in is named
``devtui-promptflow-runtime:<hash>`` and labelled ``devtui.stands-in-for=<the runtime image>``, so
nobody takes it for the real one; its ``promptflow-core`` is in the server layer, with the scoring
server's own packages. Either way the flow's ``requirements.txt`` is installed above that layer,
through the same host-side wheelhouse as a conda file (``images.ImageBuilder``): a change of it
rebuilds the environment image, and only that (``watch.classify``).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from .images import LABEL, ImageBuilder, ImageError

# The project's Python base image (scripts/build-base-image.sh builds it offline).
STAND_IN_BASE = "python:3.11-slim"
STAND_IN_LABEL = f"{LABEL}.stands-in-for"


def promptflow_requirement() -> str:
    """promptflow-core at the version installed here (devtui[flow] pins it)."""
    try:
        return f"promptflow-core=={metadata.version('promptflow-core')}"
    except metadata.PackageNotFoundError:
        return "promptflow-core"


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of a flow's requirements.txt. pip options (``-r``, ``-e``,
    ``--index-url``, ...) cannot be honoured by a download on the host followed by an offline
    install, so they are an error naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as ex:
        raise ImageError(f"{path}: cannot be read ({ex.strerror})") from None
    requirements = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = re.split(r"(^|\s)#", line, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ImageError(f"{path}:{number}: `{line}` is a pip option; the container runtime installs the "
                             "flow's requirements from wheels downloaded on this machine and takes package lines "
                             "only (name, version, markers). List the packages themselves.")
        requirements.append(line)
    return requirements


class FlowImageBuilder(ImageBuilder):
    """The environment image of a flow on prompt flow's runtime image (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stand_in = False  # known once base() ran

    def base(self) -> str:
        runtime_image = self.deployment.environment.image
        if self.present(runtime_image):
            return runtime_image
        self.stand_in = True
        self.repository = "devtui-promptflow-runtime"
        self.log(f"{runtime_image} is not on this Docker engine: building a stand-in for it from {STAND_IN_BASE} "
                 f"with {promptflow_requirement()} (labelled {STAND_IN_LABEL}). `docker pull` the runtime image "
                 "to run in the real one.")
        return self.local_or_pulled(STAND_IN_BASE)

    def server_requirements(self) -> list[str]:
        # The stand-in's prompt flow is in its server layer: it does not change with the flow.
        return super().server_requirements() + ([promptflow_requirement()] if self.stand_in else [])

    def requirements(self, base: str, python: str) -> list[str]:
        requirements = super().requirements(base, python)
        if self.requirements_file is not None:
            requirements += read_requirements(self.requirements_file)
        return requirements

    @property
    def requirements_file(self) -> Path | None:
        return self.deployment.flow.requirements

    def _labels(self) -> dict[str, str]:
        labels = super()._labels()
        if self.stand_in:
            labels[STAND_IN_LABEL] = self.deployment.environment.image
        return labels
