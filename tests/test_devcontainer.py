"""The dev container: its configuration is valid for the Dev Containers CLI, and the scenario it
enables works: devtui running inside a container, with the host's Docker socket mounted, deploys
the sample with the container runtime and answers a request."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from devtui.debug import strip_jsonc
from helpers import ROOT, SKLEARN_PREDICTIONS, devtui, unique_name

CLI_PACKAGE = "@devcontainers/cli@0.89.0"


@pytest.fixture(scope="session")
def devcontainer_cli(tmp_path_factory) -> Path:
    """The Dev Containers CLI from the npm registry (installed once per session)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed; the Dev Containers CLI is an npm package")
    prefix = tmp_path_factory.mktemp("devcontainers-cli")
    subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix), CLI_PACKAGE], check=True,
                   capture_output=True, timeout=600)
    return prefix / "node_modules" / ".bin" / "devcontainer"


def read_configuration(cli: Path, workspace: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), "read-configuration", "--workspace-folder", str(workspace)],
                          capture_output=True, text=True, timeout=120)


def test_devcontainer_json_is_valid_for_the_dev_containers_cli(devcontainer_cli, tmp_path):
    result = read_configuration(devcontainer_cli, ROOT)
    assert result.returncode == 0, result.stderr
    configuration = json.loads(result.stdout.strip().splitlines()[-1])["configuration"]
    assert configuration["name"] == "devtui"
    assert "source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind" in configuration["mounts"]
    assert "--network=host" in configuration["runArgs"]
    assert configuration["postCreateCommand"] == "make install-dev"
    assert (ROOT / ".devcontainer" / configuration["build"]["dockerfile"]).is_file()

    # The CLI's parser is lenient (comments, trailing commas), so the check above is on what it read
    # back; what it cannot read at all, it refuses.
    broken = tmp_path / "broken"
    (broken / ".devcontainer").mkdir(parents=True)
    (broken / ".devcontainer" / "devcontainer.json").write_text("[]")
    assert read_configuration(devcontainer_cli, broken).returncode != 0


def _source_digest() -> str:
    digest = hashlib.sha256()
    for folder in ("devtui", "inference_server", "samples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:16]


# devtui's dependencies are installed in a layer of their own, before devtui itself: a change of
# devtui's sources makes a new tag, but the engine's build cache still has that layer (the wheels
# are the same files), so only devtui's own wheel is installed again.
DOCKERFILE = """FROM python:3.11-slim
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY dependencies /tmp/dependencies
RUN python -m pip install --no-index --no-deps /tmp/dependencies/*.whl && rm -rf /tmp/dependencies
COPY devtui /tmp/devtui
RUN python -m pip install --no-index --find-links /tmp/devtui devtui && rm -rf /tmp/devtui
COPY samples /src/samples
WORKDIR /src
"""


def build_devtui_image(client, tag: str, folder: Path) -> None:
    """Build ``tag``: python:3.11-slim with this checkout's wheel and the wheels it depends on,
    downloaded on the host into ``folder``."""
    dependencies, own, source = folder / "dependencies", folder / "devtui", folder / "source"
    # From a copy of what the distribution is made of: setuptools' build/ folder in the checkout
    # keeps modules that were since removed, and a wheel built there would carry them (the server's
    # digest inside would then differ from the host's, and the image would be built again inside).
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("devtui", "inference_server"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(own),
                    str(source)], check=True, timeout=600)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dependencies),
                    "--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
                    *[str(w) for w in own.glob("devtui-*.whl")]], check=True, timeout=600)
    for wheel in dependencies.glob("devtui-*.whl"):  # pip download copies the wheel it was given
        wheel.unlink()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(dependencies, arcname="dependencies")
        tar.add(own, arcname="devtui")
        tar.add(ROOT / "samples", arcname="samples", filter=lambda i: None if "__pycache__" in i.name else i)
    buffer.seek(0)
    client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True, labels={"devtui": "test-image"})


@pytest.fixture(scope="session")
def devtui_image(docker_client, tmp_path_factory) -> str:
    """python:3.11-slim with this checkout of devtui installed, as the dev container has it.
    Containers here cannot reach the package index, so the wheels come from the host. The tag is
    a digest of what went in, and no test removes it: runs of the same sources share it as a
    cache, like devtui's environment images (two runs building it at once only move the tag
    between two equal images)."""
    tag = f"devtui-devcontainer-test:{_source_digest()}"
    try:
        docker_client.images.get(tag)
        return tag
    except Exception:
        pass
    build_devtui_image(docker_client, tag, tmp_path_factory.mktemp("devcontainer-image"))
    return tag


def test_devtui_inside_a_container_deploys_through_the_host_socket(docker_client, devtui_image, tmp_path, run_id):
    # The environment image is built (or found) first from the host: inside, devtui finds it by
    # its hash and builds nothing, since containers here cannot download wheels.
    home = {"DEVTUI_HOME": str(tmp_path / "home")}
    warmup = unique_name(run_id, "dc-warmup")
    devtui("up", str(ROOT / "samples" / "sklearn-regression"), "--runtime", "container", "-n", warmup, "--detach",
           timeout=900, env=home)
    devtui("down", "-n", warmup, timeout=120, env=home)

    # Every devtui inside such a container has the same DEVTUI_HOME, and the engine is the host's:
    # an endpoint name of this run's keeps runs started together apart.
    name = unique_name(run_id, "dc-ep")
    script = (f"set -e; devtui up samples/sklearn-regression --runtime container -n {name} --detach "
              f">/tmp/up.json; devtui invoke -n {name} --request-file samples/sklearn-regression/"
              f"sample-request.json; devtui down -n {name}")
    try:
        output = docker_client.containers.run(
            devtui_image, ["sh", "-c", script], remove=True, network_mode="host",
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
            environment={"DEVTUI_HOME": "/tmp/devtui-home"}, labels={"devtui": "test", "devtui.test": run_id})
    except Exception as ex:  # show the container's own output on failure
        raise AssertionError(f"devtui inside the container failed: {getattr(ex, 'stderr', ex)}") from None
    assert str(SKLEARN_PREDICTIONS) in output.decode()
    left = docker_client.containers.list(all=True, filters={"label": f"devtui.endpoint={name}"})
    assert left == []


def test_launch_json_parser_reads_the_devcontainer_file():
    # devcontainer.json is JSON with comments, like launch.json: the same reader handles it.
    document = json.loads(strip_jsonc((ROOT / ".devcontainer" / "devcontainer.json").read_text()))
    assert document["build"]["context"] == ".."
