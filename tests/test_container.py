"""The container runtime against a real Docker engine: `devtui up --runtime container` as a user
runs it (a real CLI process, real containers, volumes and images), no mocks.

Every test uses its own endpoint name, under this run's prefix (the ``run_id`` fixture), so runs
sharing the engine never meet; the ``endpoint`` fixture runs `devtui down` afterwards and proves
that no container or volume labelled with that endpoint is left, then removes the images built
from the test's own Dockerfiles (tagged with that name). devtui's environment images and the
server layers below them stay: they are shared by content hash and cached between runs. The test that restarts an engine under a
running endpoint is in test_engines.py, with the other test that runs an engine of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from devtui.runtimes.container.images import PINS_LABEL, SERVER_LAYER_LABEL
from devtui.spec import load as load_spec
from helpers import (ROOT, SAMPLES, SKLEARN_PREDICTIONS, Timeout, devtui, devtui_command, free_port, pid_alive, read_until, save,
                     show, wait_for)

EXPECTED = SKLEARN_PREDICTIONS  # what the process runtime answers for the sklearn sample's request
REQUEST = SAMPLES / "sklearn-regression" / "sample-request.json"
LABEL = "devtui.endpoint"
NO_ENGINE = "unix:///tmp/nonexistent.sock"


def labelled(client, name: str) -> tuple[list, list]:
    selector = {"label": f"{LABEL}={name}"}
    return client.containers.list(all=True, filters=selector), client.volumes.list(filters=selector)


def logs(name: str, container: str = "inference-server", **options) -> str:
    return devtui("logs", "-n", name, "--container", container, **options).stdout


def set_deployment(folder: Path, old: str, new: str) -> None:
    deployment = folder / "deployment.yml"
    text = deployment.read_text()
    assert old in text, text
    save(deployment, text.replace(old, new))


def up_detached(folder: Path, name: str, *extra: str, check: int = 0, **options) -> subprocess.CompletedProcess:
    return devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name, *extra, check=check, **options)


# -- 1. the sklearn sample ------------------------------------------------------------------------


def test_sklearn_sample_in_containers(sample, endpoint, docker_client):
    name = endpoint("ct-sklearn")
    folder = sample("sklearn-regression")
    port = free_port()

    shown = json.loads(up_detached(folder, name, "--port", str(port)).stdout)

    assert shown["name"] == name and shown["provisioning_state"] == "Succeeded"
    assert shown["scoring_uri"] == f"http://127.0.0.1:{port}/score"
    deployment = shown["deployments"][0]
    assert deployment["runtime"] == "container" and deployment["revision"] == 1
    assert deployment["image"].startswith("devtui-env:")
    ids = deployment["container_ids"]
    assert len(ids) == 2
    assert show(name)["deployments"][0]["container_ids"] == ids

    answer = devtui("invoke", "-n", name, "--request-file", str(REQUEST)).stdout
    assert json.loads(answer) == EXPECTED

    # Both containers, labelled; show lists exactly them.
    containers, volumes = labelled(docker_client, name)
    by_role = {c.labels["devtui"]: c for c in containers}
    assert set(by_role) == {"inference-server", "storage-initializer"}
    for role, container in by_role.items():
        assert container.labels[LABEL] == name and container.labels["devtui.deployment"] == "blue"
        assert container.name == f"devtui-{name}-blue-{role}"
    assert sorted(c.short_id for c in containers) == sorted(ids)
    assert len(volumes) >= 2 and all(v.attrs["Labels"]["devtui.deployment"] == "blue" for v in volumes)

    # The port is published on 127.0.0.1 only.
    server = by_role["inference-server"]
    server.reload()
    assert server.status == "running"
    published = server.attrs["NetworkSettings"]["Ports"]["5001/tcp"]
    assert published and all(b["HostIp"] == "127.0.0.1" for b in published), published
    assert {b["HostPort"] for b in published} == {str(port)}
    requested = server.attrs["HostConfig"]["PortBindings"]
    assert all(b["HostIp"] == "127.0.0.1" for bindings in requested.values() for b in bindings), requested

    # The storage-initializer ran, exited 0 and stays there; its log names the model file.
    initializer = by_role["storage-initializer"]
    initializer.reload()
    assert initializer.status == "exited" and initializer.attrs["State"]["ExitCode"] == 0
    model = folder / "model" / "sklearn_regression_model.pkl"
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    initializer_log = logs(name, "storage-initializer")
    line = next((line for line in initializer_log.splitlines() if "sklearn_regression_model.pkl" in line
                 and "sha256:" in line), None)
    assert line, initializer_log
    assert f"({model.stat().st_size} bytes)" in line and f"sha256:{digest[:12]}" in line, line

    # AZUREML_MODEL_DIR contains the model folder under its own name; the code folder is AML_APP_ROOT.
    probe = ("import json, os; d = os.environ['AZUREML_MODEL_DIR']; "
             "print(json.dumps({k: os.environ.get(k) for k in ('AZUREML_MODEL_DIR', 'AML_APP_ROOT', "
             "'AZUREML_ENTRY_SCRIPT', 'PREDICTION_ROUND_DIGITS')} | {'listing': sorted(os.listdir(d)), "
             "'size': os.path.getsize(os.path.join(d, 'model', 'sklearn_regression_model.pkl')), "
             "'script': os.path.isfile(os.path.join(os.environ['AML_APP_ROOT'], 'score.py'))}))")
    code, output = server.exec_run(["python", "-c", probe])
    assert code == 0, output
    inside = json.loads(output.decode().strip().splitlines()[-1])
    assert inside["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/blue-model/1", inside
    assert inside["listing"] == ["model"] and inside["size"] == model.stat().st_size, inside
    assert inside["AML_APP_ROOT"].startswith("/var/azureml-app/") and inside["script"], inside
    assert inside["AZUREML_ENTRY_SCRIPT"] == "score.py" and inside["PREDICTION_ROUND_DIGITS"] == "2", inside

    # No bind mounts: everything the containers see arrived through named volumes.
    for container in containers:
        mounts = container.attrs["Mounts"]
        assert mounts and all(m["Type"] == "volume" for m in mounts), (container.name, mounts)
        # docker-py writes named volumes as Binds "volume:/path"; a host path would start with "/".
        binds = container.attrs["HostConfig"].get("Binds") or []
        assert not [b for b in binds if b.startswith("/")], binds

    devtui("down", "-n", name)
    assert labelled(docker_client, name) == ([], [])
    assert "no local endpoint" in devtui("show", "-n", name, check=1).stderr


# -- 2. an unchanged environment is not built again -------------------------------------------------


def test_second_up_builds_nothing(sample, endpoint, docker_client):
    name = endpoint("ct-rebuild")
    folder = sample("sklearn-regression")
    first = json.loads(up_detached(folder, name).stdout)["deployments"][0]["image"]
    devtui("down", "-n", name)
    assert labelled(docker_client, name) == ([], [])

    second = json.loads(up_detached(folder, name).stdout)["deployments"][0]["image"]

    log = logs(name, "devtui")
    assert second == first
    assert f"Image {second} is up to date" in log, log
    assert "Building image" not in log and "Downloading wheels" not in log, log


def write_pip_list(conda: Path, *requirements: str) -> None:
    save(conda, "name: env\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
         + "".join(f"      - '{requirement}'\n" for requirement in requirements))


@pytest.fixture
def build_environment(docker_client, run_id, tmp_path):
    """build_environment(folder) -> (tag, log lines): the deployment's environment image, built by
    devtui's image builder on the real engine if missing. The tests give their requirements a
    marker that always holds but names this run, so the environment images are theirs alone
    and are removed afterwards; the server layers below them are shared and stay."""
    from devtui.runtimes.container.images import ImageBuilder

    built: list[str] = []

    def build(folder: Path) -> tuple[str, list[str]]:
        lines: list[str] = []
        tag = ImageBuilder(docker_client, load_spec(folder), tmp_path / "image-cache", lines.extend,
                           lambda *progress: None).ensure()
        if any(line.startswith(f"Built {tag}") for line in lines):
            built.append(tag)
        return tag, lines

    build.marker = f'; platform_system != "{run_id}"'
    yield build
    for tag in built:
        docker_client.images.remove(tag, force=True)


def test_a_change_of_the_conda_pip_list_rebuilds_only_the_environment_layer(sample, build_environment,
                                                                             docker_client):
    folder = sample("sklearn-regression")
    conda = folder / "environment" / "conda.yaml"
    write_pip_list(conda, "six" + build_environment.marker)
    first, _ = build_environment(folder)

    write_pip_list(conda, "six" + build_environment.marker, "more-itertools" + build_environment.marker,
                   "anyio" + build_environment.marker)
    second, log = build_environment(folder)

    assert second != first
    layer = docker_client.images.get(second).labels[SERVER_LAYER_LABEL]
    assert docker_client.images.get(first).labels[SERVER_LAYER_LABEL] == layer
    layer_id = docker_client.images.get(layer).id
    for image in (first, second):
        history = docker_client.images.get(image).history()
        assert layer_id in [step["Id"] for step in history], image
        # The scoring server's source is the last step (but for the labels the engine adds after
        # the Dockerfile's own): a change of devtui rebuilds only that.
        last = next(step["CreatedBy"] for step in history if "#(nop)  LABEL" not in step["CreatedBy"])
        assert "COPY" in last and "/opt/devtui/inference_server" in last, history
    assert any(line.startswith(f"Server layer {layer} is up to date") and "reused" in line for line in log), log
    assert not any(line.startswith(("Building server layer", "Built server layer")) for line in log), log
    assert any(line.startswith(f"Building image {second}") and "more-itertools" in line for line in log), log
    # anyio is one of the server's packages too: the environment gets the version the server has.
    pinned = dict(pin.split("==") for pin in docker_client.images.get(layer).labels[PINS_LABEL].split())
    assert any(re.search(rf"Saved \S*anyio-{re.escape(pinned['anyio'])}-", line) for line in log), log


def test_a_requirement_that_conflicts_with_the_server_layer_wins_and_is_named(sample, build_environment,
                                                                            docker_client):
    folder = sample("sklearn-regression")
    # fastapi needs a newer starlette: no resolution meets both.
    write_pip_list(folder / "environment" / "conda.yaml", "starlette<0.30" + build_environment.marker)

    tag, log = build_environment(folder)

    layer = docker_client.images.get(tag).labels[SERVER_LAYER_LABEL]
    pinned = dict(pin.split("==") for pin in docker_client.images.get(layer).labels[PINS_LABEL].split())
    warning = [line for line in log if line.startswith("WARNING: conda.yaml: ")]
    assert len(warning) == 1, log
    assert f"starlette=={pinned['starlette']}" in warning[0] and \
        re.search(rf"replaces starlette {re.escape(pinned['starlette'])} with 0\.2\d", warning[0]), warning


# -- 3. hot reload ----------------------------------------------------------------------------------

SCORE = '''
import json, os

import joblib
import numpy as np

VERSION = "{version}"


def init():
    global model, size, tag
    folder = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model")
    path = os.path.join(folder, "sklearn_regression_model.pkl")
    model = joblib.load(path)
    size = os.path.getsize(path)
    tag = open(os.path.join(folder, "tag.txt")).read().strip()


def run(raw):
    data = np.array(json.loads(raw)["data"], dtype=float)
    return {{"version": VERSION, "predictions": [round(float(p), 2) for p in model.predict(data)],
             "model_size": size, "model_tag": tag, "greeting": os.environ.get("GREETING")}}
'''


def score(name: str) -> dict | None:
    """The endpoint's answer to the sample request, or None while it has none (a restart)."""
    uri = show(name)["scoring_uri"]
    if not uri:
        return None
    try:
        answer = httpx.post(uri, content=REQUEST.read_bytes(), timeout=10)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def answers(name: str, predicate, timeout: float = 60) -> dict:
    return wait_for(lambda: (lambda a: a if a and predicate(a) else None)(score(name)), timeout=timeout,
                    interval=0.2, message=f"an answer of {name} that satisfies the test")


def test_hot_reload_ladder_in_containers(sample, endpoint, docker_client):
    name = endpoint("ct-reload")
    folder = sample("sklearn-regression")
    script = folder / "onlinescoring" / "score.py"
    tag = folder / "model" / "tag.txt"
    tag.write_text("model-a\n")
    script.write_text(SCORE.format(version="v1"))
    up_detached(folder, name)
    first = score(name)
    assert first["version"] == "v1" and first["predictions"] == EXPECTED and first["model_tag"] == "model-a"
    assert first["model_size"] == (folder / "model" / "sklearn_regression_model.pkl").stat().st_size
    ids = show(name)["deployments"][0]["container_ids"]

    # Rung 1: a save in the code folder reaches the running container; VERSION is module-level, so a
    # new worker answers.
    save(script, SCORE.format(version="v2"))
    answers(name, lambda a: a["version"] == "v2")
    revision = wait_for(lambda: show(name)["deployments"][0]["revision"], message="a serving revision")
    assert revision >= 2
    assert show(name)["deployments"][0]["container_ids"] == ids  # the same containers

    # A save that does not compile: the old revision keeps answering and stays the serving one.
    save(script, SCORE.format(version="v3").replace("def init():", "def init(:"))
    failed = wait_for(lambda: (lambda d: d if d["latest_revision"] > revision else None)(show(name)["deployments"][0]),
                      timeout=60, interval=0.2, message="the broken revision to be tried")
    wait_for(lambda: "SyntaxError" in logs(name), timeout=30, interval=0.2)
    assert failed["revision"] == revision and show(name)["provisioning_state"] == "Succeeded"
    assert score(name)["version"] == "v2"
    assert show(name)["deployments"][0]["revision"] == revision

    save(script, SCORE.format(version="v4"))
    answers(name, lambda a: a["version"] == "v4")

    # Rung 0: only run() changed: patched into the running worker inside the container, init() not run.
    save(script, SCORE.format(version="v4").replace('"greeting":', '"patched": True, "greeting":'))
    answers(name, lambda a: a.get("patched") is True)
    assert show(name)["deployments"][0]["last_reload"]["how"] == "patched run() in place (model kept)"
    copies = logs(name, "storage-initializer").count("model: copying")
    assert copies == 1

    # Rung 2: a model file changes: the storage-initializer copies it again, the answer follows.
    save(tag, "model-b, a longer tag\n")
    changed = answers(name, lambda a: a["model_tag"] == "model-b, a longer tag")
    assert changed["version"] == "v4" and changed["predictions"] == EXPECTED
    initializer_log = logs(name, "storage-initializer")
    assert initializer_log.count("model: copying") == 2, initializer_log
    assert f"tag.txt ({tag.stat().st_size} bytes)" in initializer_log, initializer_log
    containers, _ = labelled(docker_client, name)
    initializer = next(c for c in containers if c.labels["devtui"] == "storage-initializer")
    assert initializer.status == "exited" and initializer.attrs["State"]["ExitCode"] == 0

    # Rung 3: environment_variables change: the containers are recreated and run() sees it.
    before = {c.labels["devtui"]: c.id for c in labelled(docker_client, name)[0]}
    set_deployment(folder, "  LOG_LEVEL: INFO\n", "  LOG_LEVEL: INFO\n  GREETING: hello from the yaml\n")
    recreated = answers(name, lambda a: a["greeting"] == "hello from the yaml", timeout=90)
    assert recreated["version"] == "v4" and recreated["model_tag"] == "model-b, a longer tag"
    after = {c.labels["devtui"]: c.id for c in labelled(docker_client, name)[0]}
    assert set(after) == {"inference-server", "storage-initializer"}
    assert after["inference-server"] != before["inference-server"], (before, after)
    assert after["storage-initializer"] != before["storage-initializer"], (before, after)
    assert show(name)["deployments"][0]["environment_variables"]["GREETING"] == "hello from the yaml"


# -- 4. faults --------------------------------------------------------------------------------------


def test_no_engine_is_one_clear_error_and_creates_nothing(sample, endpoint, docker_client, devtui_home):
    name = endpoint("ct-noengine")
    folder = sample("sklearn-regression")
    for mode in (["--detach"], []):
        result = devtui("up", str(folder), "--runtime", "container", "-n", name, *mode, check=2,
                        env={"DOCKER_HOST": NO_ENGINE}, timeout=60)
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Docker" in result.stderr and NO_ENGINE in result.stderr, result.stderr
        assert "start" in result.stderr.lower() and "--runtime process" in result.stderr, result.stderr
        assert not (devtui_home / "endpoints" / name).exists()
        assert labelled(docker_client, name) == ([], [])
    assert devtui("list", "-o", "json").stdout.strip() == "[]"


def write_build_deployment(folder: Path, dockerfile: str) -> None:
    """Turn the sample copy into one whose environment is `build: {path, dockerfile_path}`."""
    (folder / "docker").mkdir()
    (folder / "docker" / "Dockerfile.devtui").write_text(dockerfile)
    set_deployment(folder, "environment:\n  conda_file: ./environment/conda.yaml\n  image: python:3.11-slim\n",
                   "environment:\n  build:\n    path: ./docker\n    dockerfile_path: Dockerfile.devtui\n")


def test_dockerfile_that_fails_to_build(sample, endpoint, docker_client):
    name = endpoint("ct-badbuild")
    folder = sample("sklearn-regression")
    write_build_deployment(folder, "FROM python:3.11-slim\nRUN false\n")

    result = up_detached(folder, name, check=1)

    assert "failed" in result.stderr and "Dockerfile.devtui" in result.stderr, result.stderr
    assert "false' returned a non-zero code: 1" in result.stderr, result.stderr
    assert show(name)["provisioning_state"] == "Failed"
    assert "RUN false" in logs(name, "devtui")
    devtui("down", "-n", name)
    assert labelled(docker_client, name) == ([], [])
    remove_build_leftovers(docker_client, name)  # a known bug: see the next test


def build_containers(name: str) -> set[str]:
    """The containers the Docker build ran steps in, as its log (streamed by devtui) names them."""
    return set(re.findall(r"Running in ([0-9a-f]{12})", logs(name, "devtui")))


def remove_build_leftovers(client, name: str) -> list[str]:
    """Remove (and return) the build step containers that still exist."""
    left = [c for step in build_containers(name) for c in client.containers.list(all=True, filters={"id": step})]
    for container in left:
        container.remove(force=True)
    return [c.short_id for c in left]


def test_failed_build_leaves_no_intermediate_container(sample, endpoint, docker_client):
    name = endpoint("ct-badbuild-leak")
    folder = sample("sklearn-regression")
    write_build_deployment(folder, "FROM python:3.11-slim\nRUN false\n")
    up_detached(folder, name, check=1)
    assert build_containers(name)
    devtui("down", "-n", name)
    left = remove_build_leftovers(docker_client, name)
    assert not left, f"the failed build left containers {left}"


def test_dockerfile_that_builds_serves_and_purge_removes_its_images(sample, endpoint, docker_client, tmp_path):
    name = endpoint("ct-buildok")
    folder = sample("sklearn-regression")
    write_build_deployment(folder, "FROM python:3.11-slim\nRUN echo from-the-dockerfile > /built.txt\n")
    # This image has no scikit-learn: a script that needs only the standard library.
    save(folder / "onlinescoring" / "score.py",
         "import json, os\n\ndef init():\n    pass\n\ndef run(raw):\n"
         "    return {'built': open('/built.txt').read().strip(), 'rows': len(json.loads(raw)['data'])}\n")
    process = subprocess.Popen([*devtui_command(), "up", str(folder), "--runtime", "container", "-n", name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        # The images first (a build may download wheels), then at most 20 s to an outcome.
        wait_for(lambda: re.search(r"Built devtui-env|is up to date", logs(name, "devtui")), timeout=240,
                 interval=0.5, message="the environment image")
        try:
            state = wait_for(lambda: (lambda s: s if s in ("Succeeded", "Failed") else None)(
                show(name)["provisioning_state"]), timeout=20, interval=0.2)
        except Timeout:
            pytest.fail(f"still {show(name)['provisioning_state']} 20 s after the image was ready; the "
                        f"storage-initializer log:\n{logs(name, 'storage-initializer')}")
        assert state == "Succeeded", logs(name, "devtui") + logs(name)
        assert score(name) == {"built": "from-the-dockerfile", "rows": 2}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # What was built on the endpoint's own image serves nothing else: --purge removes it all, even
    # though the engine refuses to remove an image another is built on.
    selector = {"label": f"{LABEL}={name}"}
    built = {tag.split(":")[0] for image in docker_client.images.list(filters=selector) for tag in image.tags}
    assert built == {f"devtui-user-{name}-blue", "devtui-server", "devtui-env"}, built
    devtui("down", "-n", name, "--purge")
    assert docker_client.images.list(filters=selector) == []


@pytest.fixture
def image_without_python(docker_client, run_id):
    """A tiny image FROM scratch holding one static file: no shell, no Python. Its tag is this
    run's, and so is its label, which the containers made from it carry too."""
    tag = f"devtui-test-no-python:{run_id}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for filename, text in (("Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"), ("hello.txt", "hi\n")):
            info = tarfile.TarInfo(filename)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    buffer.seek(0)
    label = f"devtui.test={tag}"
    image, _ = docker_client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True, forcerm=True,
                                          labels={"devtui.test": tag})
    yield tag
    for container in docker_client.containers.list(all=True, filters={"ancestor": image.id, "label": label}):
        container.remove(force=True)
    docker_client.images.remove(tag)


def test_image_without_python(sample, endpoint, docker_client, image_without_python):
    name = endpoint("ct-nopython")
    folder = sample("sklearn-regression")
    set_deployment(folder, "image: python:3.11-slim", f"image: {image_without_python}")

    result = up_detached(folder, name, check=1)

    assert f"image {image_without_python} has no usable Python" in result.stderr, result.stderr
    assert "python on the PATH" in result.stderr, result.stderr
    assert show(name)["provisioning_state"] == "Failed"
    devtui("down", "-n", name)
    assert labelled(docker_client, name) == ([], [])


def test_image_without_python_leaves_no_probe_container(sample, endpoint, docker_client, image_without_python):
    name = endpoint("ct-nopython-leak")
    folder = sample("sklearn-regression")
    set_deployment(folder, "image: python:3.11-slim", f"image: {image_without_python}")
    up_detached(folder, name, check=1)
    devtui("down", "-n", name)
    left = docker_client.containers.list(all=True, filters={"ancestor": image_without_python})
    assert not left, f"left {[(c.name, c.status, c.labels) for c in left]}"


def test_conda_package_without_a_pypi_equivalent(sample, endpoint, docker_client):
    name = endpoint("ct-conda")
    folder = sample("sklearn-regression")
    conda = folder / "environment" / "conda.yaml"
    text = conda.read_text()
    assert "  - pip\n" in text
    conda.write_text(text.replace("  - pip\n", "  - pip\n  - cudatoolkit=11.8\n", 1))

    result = up_detached(folder, name, check=1)

    assert "conda.yaml" in result.stderr and "no wheel on PyPI for cudatoolkit" in result.stderr, result.stderr
    assert show(name)["provisioning_state"] == "Failed"
    assert "cudatoolkit" in logs(name, "devtui")
    devtui("down", "-n", name)
    assert labelled(docker_client, name) == ([], [])


def test_init_that_raises(sample, endpoint, docker_client):
    name = endpoint("ct-initfail")
    folder = sample("sklearn-regression")
    script = folder / "onlinescoring" / "score.py"
    script.write_text(script.read_text().replace(
        "def init():", "def init():\n    raise RuntimeError('no model in this container')"))

    result = up_detached(folder, name, check=1)

    assert "RuntimeError: no model in this container" in result.stderr, result.stderr
    shown = show(name)
    assert shown["provisioning_state"] == "Failed" and shown["deployments"][0]["revision"] is None
    server_log = logs(name)
    assert "Traceback (most recent call last)" in server_log and 'score.py", line' in server_log, server_log
    assert "RuntimeError: no model in this container" in server_log
    devtui("down", "-n", name)
    assert labelled(docker_client, name) == ([], [])


# -- 5. a killed host, its registry gone --------------------------------------------------------------


def test_down_finds_containers_by_label_when_the_registry_is_gone(sample, endpoint, docker_client, devtui_home):
    name = endpoint("ct-orphan")
    up_detached(sample("sklearn-regression"), name)
    record_file = devtui_home / "endpoints" / name / "endpoint.json"
    host = json.loads(record_file.read_text())["host_pid"]
    assert pid_alive(host)
    os.kill(host, signal.SIGKILL)
    wait_for(lambda: not pid_alive(host), timeout=10)
    shutil.rmtree(devtui_home / "endpoints" / name)
    containers, volumes = labelled(docker_client, name)
    assert len(containers) == 2 and len(volumes) >= 2  # nothing cleaned up after a SIGKILL

    result = devtui("down", "-n", name)

    assert labelled(docker_client, name) == ([], [])
    for item in [*containers, *volumes]:
        assert item.name in result.stdout, result.stdout


def test_list_after_a_killed_host_says_the_host_is_gone(sample, endpoint, docker_client, devtui_home):
    """Issue 19, item 14: after a SIGKILL of the host, `list` still said Succeeded, though nothing
    applied a save any more."""
    name = endpoint("ct-gone")
    up_detached(sample("sklearn-regression"), name)
    host = json.loads((devtui_home / "endpoints" / name / "endpoint.json").read_text())["host_pid"]
    os.kill(host, signal.SIGKILL)
    wait_for(lambda: not pid_alive(host), timeout=10)

    row = next(line for line in devtui("list").stdout.splitlines() if line.startswith(f"{name} "))
    assert "host gone" in row and "Succeeded" not in row, row
    listed = next(r for r in json.loads(devtui("list", "-o", "json").stdout) if r["name"] == name)
    shown = show(name)
    for record in (listed, shown):
        assert record["provisioning_state"] == "host gone", record
        assert record["deployments"][0]["provisioning_state"] == "host gone", record
        assert "gone" in record["properties"]["devtui"] and f"devtui down -n {name}" in record["properties"]["devtui"]
    # What is true besides: the container still answers.
    assert json.loads(devtui("invoke", "-n", name, "--request-file", str(REQUEST)).stdout) == EXPECTED


# -- 6. Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_on_foreground_up_leaves_nothing(sample, endpoint, docker_client):
    name = endpoint("ct-ctrlc")
    folder = sample("sklearn-regression")
    process = subprocess.Popen([*devtui_command(), "up", str(folder), "--runtime", "container", "-n", name],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: list[str] = []
    try:
        read_until(process, "provisioning_state: Succeeded", seen=lines)
        containers, volumes = labelled(docker_client, name)
        assert len(containers) == 2 and len(volumes) >= 2
        assert score(name) == EXPECTED
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "Stopped; nothing is left running." in output
    # The engine once passed the runtime's `image` into ServerStarted: a traceback in a callback.
    assert "Traceback (most recent call last)" not in output, output
    assert any(line.startswith("storage-initializer | ") for line in output.splitlines())
    assert labelled(docker_client, name) == ([], []), output
    assert devtui("list", "-o", "json").stdout.strip() == "[]"


# -- 7. bring your own container ------------------------------------------------------------------


def test_custom_container_sample_serves_on_its_own_routes(sample, endpoint, docker_client):
    name = endpoint("ct-custom")
    folder = sample("custom-container")
    shown = json.loads(up_detached(folder, name).stdout)
    assert shown["provisioning_state"] == "Succeeded" and shown["scoring_uri"].endswith("/predict")
    answer = json.loads(devtui("invoke", "-n", name, "--request-file", str(folder / "sample-request.json")).stdout)
    assert answer == {"predictions": EXPECTED}
    server = docker_client.containers.get(f"devtui-{name}-blue-inference-server")
    assert server.attrs["Config"]["Cmd"] == ["python", "/app/app.py"]  # the image's own command
    bindings = server.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert all(b["HostIp"] == "127.0.0.1" for b in bindings)
    assert "loaded 10 coefficients" in logs(name)


def test_liveness_failures_restart_a_custom_container(sample, endpoint, docker_client):
    name = endpoint("ct-liveness")
    folder = sample("custom-container")
    # A server whose liveness route fails: after failure_threshold probes it must be restarted.
    app = folder / "server" / "app.py"
    app.write_text(app.read_text().replace('if self.path in ("/live", "/ready"):', 'if self.path == "/ready":'))
    set_deployment(folder, "liveness_probe:\n  initial_delay: 2\n  period: 5\n  timeout: 2\n  failure_threshold: 3",
                   "liveness_probe:\n  initial_delay: 0\n  period: 1\n  timeout: 1\n  failure_threshold: 2")
    up_detached(folder, name)
    server = docker_client.containers.get(f"devtui-{name}-blue-inference-server")
    started = server.attrs["State"]["StartedAt"]
    wait_for(lambda: "restarting the container" in logs(name, "devtui"), timeout=60)
    assert "liveness probe failed 2 times in a row (/live)" in logs(name, "devtui")

    def restarted():
        server.reload()
        return server.attrs["State"]["StartedAt"] != started and server.status == "running"

    wait_for(restarted, timeout=60)
    # It came back on the same host port and still answers its scoring route.
    wait_for(lambda: devtui("invoke", "-n", name, "--request-file", str(folder / "sample-request.json"),
                            check=None).returncode == 0, timeout=30)


def test_ctrl_c_during_an_image_build_leaves_nothing_running(sample, endpoint, docker_client):
    name = endpoint("ct-ctrl-c-build")
    folder = sample("sklearn-regression")
    marker = f"devtui-test-{os.getpid()}-{time.monotonic_ns()}"
    # A build step that takes long and cannot be cached from an earlier run (the marker).
    write_build_deployment(folder, f"FROM python:3.11-slim\nRUN echo {marker} && sleep 120\n")
    host = subprocess.Popen([*devtui_command(), "up", str(folder), "--runtime", "container", "-n", name],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(host.stdout), daemon=True).start()
    try:
        # The step's container runs once the builder says so, after the step line names the marker.
        wait_for(lambda: any(marker in line for line in lines)
                 and any("Running in" in line for line in lines[next(i for i, l in enumerate(lines) if marker in l):]),
                 timeout=120, message="the build step to run")
        host.send_signal(signal.SIGINT)
        wait_for(lambda: host.poll() is not None, timeout=30, message="devtui to exit after Ctrl-C")
    finally:
        if host.poll() is None:
            host.kill()
    assert host.returncode == 0

    def build_step_gone():
        return not [c for c in docker_client.containers.list(all=True)
                    if marker in " ".join(c.attrs["Config"].get("Cmd") or [])]

    wait_for(build_step_gone, timeout=60, message="the engine to cancel the build step")
    containers, volumes = labelled(docker_client, name)
    assert containers == [] and volumes == []


def test_a_file_deleted_from_the_code_folder_is_deleted_in_the_container(sample, endpoint, docker_client):
    name = endpoint("ct-delete")
    folder = sample("sklearn-regression")
    code = folder / "onlinescoring"
    (code / "helper.py").write_text("VALUE = 1\n")
    script = ("import os\ndef init():\n    pass\ndef run(raw):\n"
              "    return {'helper': os.path.exists(os.path.join(os.environ['AML_APP_ROOT'], 'helper.py')), 'v': V}\n")
    save(code / "score.py", script.replace("V}", "1}"))
    up_detached(folder, name)
    assert score(name) == {"helper": True, "v": 1}
    (code / "helper.py").unlink()
    save(code / "score.py", script.replace("V}", "2}"))
    assert answers(name, lambda a: a and a.get("v") == 2) == {"helper": False, "v": 2}


def test_another_devtui_home_cannot_touch_an_endpoint_of_the_same_name(sample, endpoint, docker_client, tmp_path):
    name = endpoint("ct-homes")
    folder = sample("sklearn-regression")
    up_detached(folder, name)
    other = {"DEVTUI_HOME": str(tmp_path / "other-home")}
    assert "no local endpoint" in devtui("down", "-n", name, check=1, env=other).stderr
    refused = devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name, check=1, env=other)
    assert "another DEVTUI_HOME" in refused.stderr
    devtui("down", "-n", name, env=other, check=None)
    assert score(name) == EXPECTED
    assert show(name)["provisioning_state"] == "Succeeded"


def test_files_the_ignore_file_leaves_out_never_reach_the_container(sample, endpoint, docker_client):
    """.amlignore (and the default litter) as the cloud's upload applies it: not copied by the
    storage-initializer, not pushed by a save's sync (test_ignore.py: nor does it start a swap)."""
    name = endpoint("ct-ignore")
    folder = sample("sklearn-regression")
    code = folder / "onlinescoring"
    (code / ".amlignore").write_text("secrets/\n*.log\n")
    (code / "secrets").mkdir()
    (code / "secrets" / "token.txt").write_text("not for the cloud\n")
    (code / "debug.log").write_text("local noise\n")
    (code / "score.py~").write_text("an editor's backup\n")
    script = ("import os\ndef init():\n    pass\ndef run(raw):\n    root = os.environ['AML_APP_ROOT']\n"
              "    return {'files': sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) "
              "for f in fs if not f.startswith('.devtui')), 'v': V}\n")
    save(code / "score.py", script.replace("V}", "1}"))
    up_detached(folder, name)
    assert score(name) == {"files": [".amlignore", "score.py"], "v": 1}
    assert "token.txt" not in logs(name, "storage-initializer")
    (code / "secrets" / "later.txt").write_text("saved while it runs\n")
    (code / "more.log").write_text("saved while it runs\n")
    save(code / "score.py", script.replace("V}", "2}"))
    assert answers(name, lambda a: a.get("v") == 2) == {"files": [".amlignore", "score.py"], "v": 2}
