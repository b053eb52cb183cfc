"""Images for the container runtime: the deployment's environment plus devtui's scoring server.

An ``environment`` of ``image`` + ``conda_file`` becomes that image with the conda file's
packages (conda names mapped to PyPI names) installed with pip; ``build: {path,
dockerfile_path}`` is built as the user wrote it. Either way devtui's scoring server and what it
needs are added on top, in two images, stable layers first as a Dockerfile orders them:

- the *server layer* (``devtui-server:<hash>``): the base image plus the packages the scoring
  server needs, tagged by a hash of the base image's id, its Python and those requirements. It
  is shared by every deployment on that base and reused when only the environment's own
  requirements change;
- the *environment image* (``devtui-env:<hash>``) FROM it: the environment's requirements, then
  the scoring server's source, copied last so a change of devtui alone rebuilds only that step.
  Its tag is a hash of everything that went in, so an unchanged environment is never built twice.

Python packages are resolved and downloaded on the host (``wheels.py``) and installed with
``--no-index``. The server layer records the versions it was given (label ``devtui.server-pins``)
and the environment's requirements are downloaded under them as pip constraints, so they do not
quietly bring other versions of what the server runs on; a requirement that cannot be resolved
with them is downloaded without them, and the log says what it replaces.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import inference_server

from ...registry import LABEL
from ...spec import LocalDeployment, SpecError, load_conda
from .wheels import Wheelhouse, WheelError, pin_lines, pins

# Bump when the Dockerfile templates change, so old images are not reused.
TEMPLATE_VERSION = "3"
# What inference_server imports (debugpy: for --debug; the OpenTelemetry SDK: for --traces).
SERVER_REQUIREMENTS = ["fastapi", "uvicorn[standard]", "werkzeug", "debugpy", "opentelemetry-sdk"]
# The cloud's scoring server packages: devtui's own server stands in for them.
REPLACED = {"azureml-inference-server-http", "azureml-defaults"}
# conda packages that are not Python packages, or that pip brings itself.
CONDA_SKIP = {"python", "pip", "setuptools", "wheel", "ca-certificates", "openssl", "certifi"}
# conda names that differ on PyPI.
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost",
                 "py-lightgbm": "lightgbm", "pyyaml": "PyYAML", "matplotlib-base": "matplotlib",
                 "tensorflow-cpu": "tensorflow", "msgpack-python": "msgpack", "typing_extensions": "typing-extensions"}
# On a server layer, the versions it was given ("name==version ..."); its images inherit it.
PINS_LABEL = f"{LABEL}.server-pins"
# On an environment image, the server layer it was built FROM.
SERVER_LAYER_LABEL = f"{LABEL}.server-layer"


class ImageError(Exception):
    """An image cannot be built; the message says why and what to do."""


@dataclass
class CondaEnvironment:
    file: Path
    python: str | None = None
    requirements: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


def conda_requirement(spec: str) -> str | None:
    """A conda match spec as a pip requirement, or None for what pip does not install.

    ``numpy=1.26`` means 1.26.*, ``numpy==1.26.4`` exactly, ``numpy>=1.2`` as written;
    a channel prefix (``conda-forge::numpy``) and a build string are dropped."""
    spec = spec.split("::", 1)[-1].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    if not match:
        return spec
    name, version = match.group(1), match.group(2).strip()
    if name.lower() in CONDA_SKIP:
        return None
    name = CONDA_TO_PYPI.get(name.lower(), name)
    version = version.split(" ")[0]  # a build string follows a space
    if not version:
        return name
    if version[0] in "<>!~" or version.startswith("=="):
        return f"{name}{version}"
    if version.startswith("="):
        version = version[1:]
    return f"{name}=={version}" if version.count(".") >= 2 else f"{name}=={version}.*"


def read_conda(path: Path) -> CondaEnvironment:
    try:
        # Checked for its shape: a string where the dependencies list belongs would otherwise be
        # read one character at a time, and pip asked for packages named `n`, `u`, `m`, ...
        document = load_conda(path)
    except SpecError as ex:
        raise ImageError(f"the conda file cannot be used:\n{ex}") from None
    environment = CondaEnvironment(path)
    for item in document.get("dependencies") or []:
        if isinstance(item, dict):
            for requirement in item.get("pip") or []:
                environment.requirements.append(str(requirement))
            continue
        item = str(item)
        name = re.split(r"[=<>!~ ]", item.split("::", 1)[-1], maxsplit=1)[0].lower()
        if name == "python":
            pin = item.split("::", 1)[-1][len("python"):].lstrip("=<>~ ")
            environment.python = pin or None
            continue
        requirement = conda_requirement(item)
        if requirement:
            environment.requirements.append(requirement)
    kept = []
    for requirement in environment.requirements:
        name = re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].lower()
        (environment.replaced if name in REPLACED else kept).append(requirement)
    environment.requirements = kept
    return environment


def python_differs(pin: str | None, python: str) -> bool:
    """Whether a conda file's ``python`` pin (``3.12``, ``3.11.7``, ``>=3.10``) names another
    Python than the image's (``3.11``); a pin with an operator is taken as met."""
    if not pin or pin[0] in "<>!~":
        return False
    return pin.rstrip(".*").split(".")[:2] != python.split(".")[:2]


def user_image_tag(deployment: LocalDeployment) -> str:
    """The tag of the image built from the deployment's own Dockerfile. Endpoint and deployment
    names may have capitals (the cloud accepts `Rel-ICU`: its names are case-insensitive), an
    image repository may not, so the names are lowercased; letters, digits and hyphens are all
    the cloud allows, and all valid in a repository name. The tag is the DEVTUI_HOME's label, so
    two homes with an endpoint of the same name do not overwrite each other's image."""
    from ...registry import home_label

    return f"devtui-user-{deployment.endpoint_name}-{deployment.deployment_name}:{home_label()}".lower()


def _server_digest() -> str:
    folder = Path(inference_server.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([TEMPLATE_VERSION, *parts]).encode()).hexdigest()[:16]


# Installs the wheels in the build context (downloaded on the host) without reaching an index.
_INSTALL = """COPY requirements.txt /tmp/devtui/requirements.txt
COPY wheels /tmp/devtui/wheels
RUN python -m pip install --no-index --find-links /tmp/devtui/wheels -r /tmp/devtui/requirements.txt \\
    && rm -rf /tmp/devtui
"""


def _server_layer_dockerfile(base: str) -> str:
    # PYTHONPATH and the working directory are the scoring server's and never change: set here,
    # so the environment image ends with the one step that does (the server's source).
    return f"""FROM {base}
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONPATH=/opt/devtui
{_INSTALL}WORKDIR /var/azureml-app
"""


def _label_line(labels: dict[str, str]) -> str:
    """All the labels in one LABEL step: given to the engine's build API instead, the classic
    builder adds a step (a container and a commit, ~0.1 s) per label."""
    return "LABEL " + " ".join(f"{json.dumps(key)}={json.dumps(value)}" for key, value in labels.items()) + "\n"


def _environment_dockerfile(server_layer: str, install: bool) -> str:
    return f"FROM {server_layer}\n{_INSTALL if install else ''}COPY inference_server /opt/devtui/inference_server\n"


class ImageBuilder:
    repository = "devtui-env"  # the environment images' name; the tag is a hash of what went in
    layer_repository = "devtui-server"  # the server layers' name, shared by every environment

    def __init__(self, client, deployment: LocalDeployment, cache: Path,
                 log: Callable[[list[str]], None], progress: Callable[[str, float, float], None]):
        self.client = client
        self.deployment = deployment
        self.cache = cache
        self.log = lambda *lines: log(list(lines))
        self.progress = progress
        self.wheels = Wheelhouse(self.log, progress)
        self.building = False  # an engine-side build runs: it ends when devtui's connection does
        self.base_note = ""  # why this base (a kind of deployment says it): said when an image is built

    def cancel(self) -> None:
        """Stop downloading; a build in progress ends with devtui (the engine cancels it)."""
        self.wheels.cancel()

    # -- base image ------------------------------------------------------------------------------

    def base(self) -> str:
        environment = self.deployment.environment
        if environment.image:
            return self.local_or_pulled(environment.image)
        return self._build_user_image()

    def present(self, image: str) -> bool:
        """Whether ``image`` is on the engine already."""
        try:
            self.client.images.get(image)
        except Exception:
            return False
        return True

    def local_or_pulled(self, image: str) -> str:
        if not self.present(image):
            self.log(f"Pulling {image} ...")
            try:
                self.client.images.pull(image)
            except Exception as ex:
                raise ImageError(f"image {image} is not on this Docker engine and cannot be "
                                 f"pulled ({ex}). Pull or build it first (offline machines: "
                                 "scripts/build-base-image.sh builds python:3.11-slim).") from None
        return image

    def _build_user_image(self) -> str:
        environment = self.deployment.environment
        tag = user_image_tag(self.deployment)
        self.log(f"Building {environment.dockerfile} (context {environment.build_path})")
        self._stream_build(lambda: self.client.api.build(
            path=str(environment.build_path), dockerfile=environment.dockerfile_path or "Dockerfile", tag=tag,
            rm=True, forcerm=True, decode=True, labels=self._labels()), f"the Dockerfile {environment.dockerfile}")
        return tag

    def python_version(self, image: str) -> str:
        """The image's Python as "3.11"; cached per image id, since it costs a container run."""
        image_id = self.client.images.get(image).id
        known_file = self.cache / "python-versions.json"
        known = json.loads(known_file.read_text()) if known_file.exists() else {}
        if image_id in known:
            return known[image_id]
        probe = None
        try:
            # create/start/remove by hand: run(remove=True) leaves the container behind when
            # it cannot even start, which is exactly the case of an image without Python.
            probe = self.client.containers.create(
                image, ["python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], entrypoint=[],
                labels={**self._labels(), LABEL: "probe"})
            probe.start()
            if probe.wait(timeout=60).get("StatusCode") != 0:
                raise RuntimeError(probe.logs().decode(errors="replace").strip()[-300:])
            version = probe.logs(stderr=False).decode().strip()
        except Exception as ex:
            raise ImageError(f"image {image} has no usable Python (`python -c ...` failed: {ex}). devtui's "
                             "scoring server needs python on the PATH; add it to the image, or use an "
                             "inference_config to run a server of your own.") from None
        finally:
            if probe is not None:
                try:
                    probe.remove(force=True)
                except Exception:
                    pass
        known[image_id] = version
        self.cache.mkdir(parents=True, exist_ok=True)
        known_file.write_text(json.dumps(known))
        return version

    # -- the image -------------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        from ...registry import home_label

        return {LABEL: "image", f"{LABEL}.endpoint": self.deployment.endpoint_name,
                f"{LABEL}.deployment": self.deployment.deployment_name, f"{LABEL}.home": home_label()}

    def ensure(self) -> str:
        """The tag of an image with the environment and the scoring server, built if needed."""
        started = time.perf_counter()
        base = self.base()
        python = self.python_version(base)
        base_id = self.client.images.get(base).id
        server, own = self.server_requirements(), self.requirements(base, python)
        tag = f"{self.repository}:{_key(base_id, python, server, own, _server_digest())}"
        if self.present(tag):
            self.log(f"Image {tag} is up to date ({base} + {len(server) + len(own)} requirements); nothing to build.")
            return tag
        if self.base_note:
            self.log(self.base_note)
        layer = self.server_layer(base, base_id, python, server)
        self.log(f"Building image {tag}: server layer {layer} + {', '.join(own) or 'no requirements of its own'}"
                 ", then devtui's scoring server")
        with tempfile.TemporaryDirectory(prefix="devtui-build-") as folder:
            wheels = Path(folder) / "wheels"
            wheels.mkdir()
            if own:
                pinned = self.client.images.get(layer).labels.get(PINS_LABEL, "")
                self._download(own, python, wheels, dict(pin.split("==", 1) for pin in pinned.split()))
            self._build(_environment_dockerfile(layer, bool(own)), own, wheels, tag,
                        {**self._labels(), SERVER_LAYER_LABEL: layer}, "the environment image", server_source=True)
        self.log(f"Built {tag} in {time.perf_counter() - started:.1f} s")
        return tag

    def server_layer(self, base: str, base_id: str, python: str, requirements: list[str]) -> str:
        """The tag of ``base`` plus what the scoring server needs, built if no environment built it yet."""
        tag = f"{self.layer_repository}:{_key(base_id, python, requirements)}"
        if self.present(tag):
            self.log(f"Server layer {tag} is up to date ({base} + {', '.join(requirements)}): reused, not rebuilt.")
            return tag
        started = time.perf_counter()
        self.log(f"Building server layer {tag}: {base} (Python {python}) + {', '.join(requirements)}")
        with tempfile.TemporaryDirectory(prefix="devtui-build-") as folder:
            wheels = Path(folder) / "wheels"
            self._download(requirements, python, wheels)
            # Not the endpoint's labels: the layer is shared by every deployment on this base.
            labels = {LABEL: "server-layer", PINS_LABEL: " ".join(pin_lines(pins(wheels)))}
            self._build(_server_layer_dockerfile(base), requirements, wheels, tag, labels, "the server layer")
        self.log(f"Built server layer {tag} in {time.perf_counter() - started:.1f} s")
        return tag

    def server_requirements(self) -> list[str]:
        """What the scoring server needs installed: the server layer's requirements."""
        return list(SERVER_REQUIREMENTS)

    def requirements(self, base: str, python: str) -> list[str]:
        """The environment's own requirements, installed over the server layer: the conda file's."""
        conda_file = self.deployment.environment.conda_file
        return self.conda_requirements(conda_file, base, python).requirements if conda_file else []

    def conda_requirements(self, conda_file: Path, base: str, python: str) -> CondaEnvironment:
        """``conda_file`` read, with a warning where it pins another Python than the image's."""
        conda = read_conda(conda_file)
        if python_differs(conda.python, python):
            self.log(f"WARNING: {conda_file.name} pins python={conda.python} but {base} has Python {python}; "
                     "devtui uses the image's Python. Pick an image with that Python to match the cloud.")
        if conda.replaced:
            self.log(f"Not installing {', '.join(conda.replaced)}: devtui's scoring server stands in for it.")
        return conda

    @property
    def requirements_file(self) -> Path | None:
        """The user's file the requirements come from, which a download error names."""
        return self.deployment.environment.conda_file

    @property
    def requirements_are_conda(self) -> bool:
        """Whether ``requirements_file`` is a conda file, whose conda-only packages have no wheel."""
        source = self.requirements_file
        return source is not None and source == self.deployment.environment.conda_file

    def _download(self, requirements: list[str], python: str, wheels: Path,
                  pinned: dict[str, str] | None = None) -> None:
        """The server layer's wheels (no ``pinned``) or the environment's, under the server
        layer's versions (``wheels.Wheelhouse.download_under``)."""
        arch = self.client.info().get("Architecture", "x86_64")
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
        try:
            if pinned is None:
                self.wheels.download(requirements, python, arch, wheels)
            else:
                self.wheels.download_under(pinned, requirements, python, arch, wheels, self.requirements_file,
                                           self.requirements_are_conda)
        except WheelError as ex:
            raise ImageError(str(ex)) from None

    def _build(self, dockerfile: str, requirements: list[str], wheels: Path, tag: str, labels: dict[str, str],
               what: str, server_source: bool = False) -> None:
        if self.wheels.cancelled:  # between the layers: the next one is not started
            raise ImageError("the image build was cancelled")
        context = self._context(dockerfile + _label_line(labels), requirements, wheels, server_source)
        self._stream_build(lambda: self.client.api.build(
            fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True), what)

    @staticmethod
    def _context(dockerfile: str, requirements: list[str], wheels: Path, server_source: bool) -> io.BytesIO:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            def add_text(name: str, text: str) -> None:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

            add_text("Dockerfile", dockerfile)
            add_text("requirements.txt", "\n".join(requirements) + "\n")
            tar.add(wheels, arcname="wheels")
            if server_source:
                tar.add(Path(inference_server.__file__).parent, arcname="inference_server",
                        filter=lambda info: None if "__pycache__" in info.name else info)
        buffer.seek(0)
        return buffer

    def _stream_build(self, start, what: str) -> None:
        """Run a build and stream its output into the log, with progress by step."""
        last: list[str] = []
        self.building = True
        try:
            for chunk in start():
                if "error" in chunk:
                    detail = chunk.get("error", "").strip()
                    raise ImageError(f"building {what} failed: {detail}\n" + "\n".join(last[-10:]))
                text = chunk.get("stream", "").rstrip()
                if not text:
                    continue
                for line in text.splitlines():
                    last.append(line)
                    self.log(f"  {line}")
                    step = re.match(r"Step (\d+)/(\d+)", line)
                    if step:
                        self.progress(f"Building {what}", int(step.group(1)), int(step.group(2)))
        except ImageError:
            raise
        except Exception as ex:
            raise ImageError(f"building {what} failed: {ex}") from None
        finally:
            self.building = False
