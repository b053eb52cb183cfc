"""The container runtime against Podman (issue 12): Podman's Docker-compatible API service runs a
deployment end to end as Docker does: image build, volumes, storage-initializer, inference-server,
a hot reload, logs, down. And ``--gpus`` is refused there, since that API ignores GPU requests.

The test starts its own ``podman system service`` on a socket of its own and stops it afterwards.
That service reads a ``containers.conf`` of the test's own with ``default_ulimits = []``: this
sandbox refuses the ulimits Podman sets by default (nofile 1048576), and every container fails
with "error setting rlimit type 7". Skipped where Podman is missing (CI installs it:
scripts/podman.sh, so there it fails instead) or cannot run a container at all (the reason is
Podman's own error).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from devtui.runtimes.container.gpus import PODMAN
from helpers import SKLEARN_PREDICTIONS, devtui, save, show, unique_name, wait_for

BASE = "python:3.11-slim"
LABEL = "devtui.endpoint"


def _unavailable(why: str) -> None:
    if os.environ.get("CI") and "not installed" in why:
        pytest.fail(f"CI installs Podman (scripts/podman.sh): {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """DOCKER_HOST for a Podman API service of this test's own."""
    if shutil.which("podman") is None:
        _unavailable("Podman is not installed (scripts/podman.sh installs it)")
    folder = tmp_path_factory.mktemp("podman")
    conf = folder / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    if subprocess.run(["podman", "image", "exists", BASE], env=env).returncode != 0:
        _unavailable(f"Podman has no {BASE} (scripts/podman.sh copies it from the Docker engine)")
    probe = subprocess.run(["podman", "run", "--rm", "--network=none", BASE, "true"], env=env, capture_output=True,
                           text=True, timeout=120)
    if probe.returncode != 0:
        _unavailable(f"Podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    socket = folder / "podman.sock"
    with open(folder / "service.log", "wb") as log:
        service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"], env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        import docker

        def answers():
            assert service.poll() is None, (folder / "service.log").read_text()
            return socket.exists() and docker.DockerClient(base_url=f"unix://{socket}").ping()

        wait_for(answers, timeout=60, interval=0.1, message="podman system service")
        yield f"unix://{socket}"
    finally:
        service.terminate()
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


SCRIPT = '''import json, os
import joblib, numpy as np
def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))
def run(raw):
    print("scoring on podman")
    predictions = model.predict(np.array(json.loads(raw)["data"], dtype=float))
    return {"revision": REVISION, "predictions": [round(float(p), 2) for p in predictions]}
'''


def test_podman_runs_the_container_runtime_end_to_end(sample, podman, run_id):
    import docker

    folder = sample("sklearn-regression")
    code = folder / "onlinescoring"
    save(code / "score.py", SCRIPT.replace("REVISION", "1"))
    on_podman = {"env": {"DOCKER_HOST": podman}}
    client = docker.DockerClient(base_url=podman)
    gpu_name, name = unique_name(run_id, "pm-gpu"), unique_name(run_id, "podman")
    refused = devtui("up", str(folder), "--runtime", "container", "--gpus", "all", "--detach", "-n", gpu_name,
                     check=2, **on_podman)
    assert PODMAN in refused.stderr

    def invoke() -> dict:
        answer = devtui("invoke", "-n", name, "--request-file", str(folder / "sample-request.json"), **on_podman)
        return json.loads(answer.stdout)

    try:
        devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name, timeout=600, **on_podman)
        deployment = show(name, **on_podman)["deployments"][0]
        assert deployment["docker_daemon"] == f"DOCKER_HOST {podman} (Podman Engine {client.version()['Version']})"
        assert invoke() == {"revision": 1, "predictions": SKLEARN_PREDICTIONS}
        save(code / "score.py", SCRIPT.replace("REVISION", "2"))
        wait_for(lambda: invoke()["revision"] == 2, timeout=60, interval=0.2, message="the reload on Podman")
        assert "scoring on podman" in devtui("logs", "-n", name, **on_podman).stdout
        assert "all files verified" in devtui("logs", "-n", name, "--container", "storage-initializer",
                                              **on_podman).stdout
        devtui("down", "-n", name, **on_podman)
        selector = {"label": f"{LABEL}={name}"}
        left = (client.containers.list(all=True, filters=selector) + client.volumes.list(filters=selector)
                + client.networks.list(filters=selector))
        assert left == []
    finally:
        devtui("down", "-n", name, check=None, **on_podman)
        client.close()
