"""Images for the container runtime: the deployment's environment plus devtui's scoring server.

An ``environment`` of ``image`` + ``conda_file`` becomes that image with the conda file's
packages (conda names mapped to PyPI names) installed with pip; ``build: {path,
dockerfile_path}`` is built as the user wrote it. Either way devtui's scoring server and what it
needs are added on top. Python packages are resolved and downloaded on the host into a wheel
folder and installed in the image with ``--no-index``: this works where containers cannot reach
the package index, and it reuses the host's pip cache. The tag is a hash of everything that went
in, so an unchanged environment is never built twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import inference_server

from .spec import LocalDeployment, SpecError, load_conda

# Bump when the Dockerfile template changes, so old images are not reused.
TEMPLATE_VERSION = "1"
# What inference_server imports (debugpy: for --debug).
SERVER_REQUIREMENTS = ["fastapi", "uvicorn[standard]", "werkzeug", "debugpy"]
# The cloud's scoring server packages: devtui's own server stands in for them.
REPLACED = {"azureml-inference-server-http", "azureml-defaults"}
# conda packages that are not Python packages, or that pip brings itself.
CONDA_SKIP = {"python", "pip", "setuptools", "wheel", "ca-certificates", "openssl", "certifi"}
# conda names that differ on PyPI.
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost",
                 "py-lightgbm": "lightgbm", "pyyaml": "PyYAML", "matplotlib-base": "matplotlib",
                 "tensorflow-cpu": "tensorflow", "msgpack-python": "msgpack", "typing_extensions": "typing-extensions"}
LABEL = "devtui"


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


def user_image_tag(deployment: LocalDeployment) -> str:
    """The tag of the image built from the deployment's own Dockerfile. Endpoint and deployment
    names may have capitals (the cloud accepts `Rel-ICU`: its names are case-insensitive), an
    image repository may not, so the names are lowercased; letters, digits and hyphens are all
    the cloud allows, and all valid in a repository name. The tag is the DEVTUI_HOME's label, so
    two homes with an endpoint of the same name do not overwrite each other's image."""
    from .registry import home_label

    return f"devtui-user-{deployment.endpoint_name}-{deployment.deployment_name}:{home_label()}".lower()


def _server_digest() -> str:
    folder = Path(inference_server.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _dockerfile(base: str) -> str:
    return f"""FROM {base}
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY requirements.txt /tmp/devtui/requirements.txt
COPY wheels /tmp/devtui/wheels
RUN python -m pip install --no-index --find-links /tmp/devtui/wheels -r /tmp/devtui/requirements.txt \\
    && rm -rf /tmp/devtui
COPY inference_server /opt/devtui/inference_server
ENV PYTHONPATH=/opt/devtui
WORKDIR /var/azureml-app
"""


class ImageBuilder:
    repository = "devtui-env"  # the environment images' name; the tag is a hash of what went in

    def __init__(self, client, deployment: LocalDeployment, cache: Path,
                 log: Callable[[list[str]], None], progress: Callable[[str, float, float], None]):
        self.client = client
        self.deployment = deployment
        self.cache = cache
        self.log = lambda *lines: log(list(lines))
        self.progress = progress
        self.pip: subprocess.Popen | None = None
        self.cancelled = False
        self.building = False  # an engine-side build runs: it ends when devtui's connection does

    def cancel(self) -> None:
        """Stop downloading; a build in progress ends with devtui (the engine cancels it)."""
        self.cancelled = True
        if self.pip is not None and self.pip.poll() is None:
            self.pip.kill()

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
        from .registry import home_label

        return {LABEL: "image", f"{LABEL}.endpoint": self.deployment.endpoint_name,
                f"{LABEL}.deployment": self.deployment.deployment_name, f"{LABEL}.home": home_label()}

    def ensure(self) -> str:
        """The tag of an image with the environment and the scoring server, built if needed."""
        started = time.perf_counter()
        base = self.base()
        python = self.python_version(base)
        requirements = self.requirements(base, python)
        key = hashlib.sha256(json.dumps([TEMPLATE_VERSION, self.client.images.get(base).id, python, requirements,
                                         _server_digest()]).encode()).hexdigest()[:16]
        tag = f"{self.repository}:{key}"
        try:
            self.client.images.get(tag)
        except Exception:
            pass
        else:
            self.log(f"Image {tag} is up to date ({base} + {len(requirements)} requirements); nothing to build.")
            return tag
        self.log(f"Building image {tag}: {base} (Python {python}) + {', '.join(requirements)}")
        with tempfile.TemporaryDirectory(prefix="devtui-build-") as folder:
            wheels = Path(folder) / "wheels"
            self._download(requirements, python, wheels, self.requirements_file)
            context = self._context(base, requirements, wheels)
            self._stream_build(lambda: self.client.api.build(
                fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True,
                labels=self._labels()),
                "the environment image")
        self.log(f"Built {tag} in {time.perf_counter() - started:.1f} s")
        return tag

    def requirements(self, base: str, python: str) -> list[str]:
        """What pip installs into ``base``: the scoring server's packages and the conda file's."""
        requirements = list(SERVER_REQUIREMENTS)
        conda_file = self.deployment.environment.conda_file
        if conda_file:
            conda = read_conda(conda_file)
            if conda.python and not python.startswith(conda.python.rstrip(".*")) \
                    and not conda.python.startswith(python):
                self.log(f"WARNING: {conda_file.name} pins python={conda.python} but {base} has Python {python}; "
                         "devtui uses the image's Python. Pick an image with that Python to match the cloud.")
            if conda.replaced:
                self.log(f"Not installing {', '.join(conda.replaced)}: devtui's scoring server stands in for it.")
            requirements += conda.requirements
        return requirements

    @property
    def requirements_file(self) -> Path | None:
        """The user's file the requirements come from, which a download error names."""
        return self.deployment.environment.conda_file

    def _download(self, requirements: list[str], python: str, wheels: Path, source: Path | None) -> None:
        """Resolve and download wheels for the image's Python and platform, on the host."""
        arch = self.client.info().get("Architecture", "x86_64")
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
        platforms = [f"manylinux_2_{n}_{arch}" for n in (36, 34, 31, 28, 17)] + [f"manylinux2014_{arch}",
                                                                              f"linux_{arch}"]
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   "--dest", str(wheels)]
        for platform in platforms:
            command += ["--platform", platform]
        self.log(f"Downloading wheels for Python {python} on {arch} (pip, on this machine)")
        self.progress("Downloading wheels", 0, 0)
        process = self.pip = subprocess.Popen(command + requirements, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True)
        output = []
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith(("Collecting", "Saved", "ERROR")):
                self.log(f"  {line.rstrip()}")
        if process.wait() != 0:
            if self.cancelled:
                raise ImageError("the image build was cancelled")
            missing = re.findall(r"No matching distribution found for (\S+)", "\n".join(output))
            where = f"{source}: " if source else ""
            if missing:
                hint = (" If it is a conda-only package, drop it or name its PyPI equivalent in the pip section."
                        if source == self.deployment.environment.conda_file else " Check the name and the version.")
                raise ImageError(f"{where}no wheel on PyPI for {', '.join(missing)} (Python {python}, {arch}).{hint}")
            raise ImageError(f"{where}pip could not download the requirements:\n" + "\n".join(output[-15:]))
        count = len(list(wheels.glob("*.whl")))
        self.progress("Downloading wheels", count, count)
        self.log(f"  {count} wheels ready")

    def _context(self, base: str, requirements: list[str], wheels: Path) -> io.BytesIO:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            def add_text(name: str, text: str) -> None:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

            add_text("Dockerfile", _dockerfile(base))
            add_text("requirements.txt", "\n".join(requirements) + "\n")
            tar.add(wheels, arcname="wheels")
            server = Path(inference_server.__file__).parent
            tar.add(server, arcname="inference_server",
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
