"""Any engine, any GPU (issue 12): which Docker engine devtui talks to (``--context``, DOCKER_HOST,
DOCKER_CONTEXT, the Docker CLI's current context), how ``show`` names it, and ``--gpus``.

Two tests run two engines: the machine's, and one of this module's own (private_engine.py). A
context that points at the private one runs the deployment there and nothing on the machine's; and
that engine, stopped under a running endpoint and started again, leaves nothing once the endpoint
is down. They share the private engine and the images copied into it (from the machine's engine:
nothing in its network namespace reaches the package index), as copying them is the slow part.
The GPU tests run on the machine's engine, which has no GPU runtime: ``--gpus`` must fail plainly
and leave nothing behind. Podman is in test_podman.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import FAILED, Logs
from devtui.runtimes import RuntimeFailure
from devtui.runtimes.container.docker_context import DEFAULT_HOST, read_context, resolve
from devtui.runtimes.container.gpus import NO_GPU_RUNTIME, GpuRequest, suggestion
from devtui.runtimes.process import ProcessRuntime
from helpers import SAMPLES, devtui, run_async, show, unique_name, wait_for

LABEL = "devtui.endpoint"


def write_context(config: Path, name: str, host: str, tls: bool = False) -> None:
    """A context in the Docker CLI's store layout (what `docker context create` writes)."""
    import hashlib

    key = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / key
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls:
        folder = config / "contexts" / "tls" / key / "docker"
        folder.mkdir(parents=True)
        for name in ("ca.pem", "cert.pem", "key.pem"):
            (folder / name).write_text("not a real certificate\n")


def labelled(client, name: str) -> list[str]:
    selector = {"label": f"{LABEL}={name}"}
    return ([c.name for c in client.containers.list(all=True, filters=selector)]
            + [v.name for v in client.volumes.list(filters=selector)]
            + [n.name for n in client.networks.list(filters=selector)])


# -- which engine ---------------------------------------------------------------------------------


def test_resolution_follows_the_docker_clis_order(tmp_path):
    config = tmp_path / "docker-config"
    write_context(config, "one", "unix:///tmp/one.sock")
    write_context(config, "two", "tcp://10.0.0.2:2375")
    base = {"DOCKER_CONFIG": str(config)}
    assert resolve(environ=base).host == DEFAULT_HOST
    (config / "config.json").write_text(json.dumps({"currentContext": "one"}))
    assert resolve(environ=base).describe() == "context one at unix:///tmp/one.sock"
    assert resolve(environ={**base, "DOCKER_CONTEXT": "two"}).host == "tcp://10.0.0.2:2375"
    with_host = {**base, "DOCKER_CONTEXT": "two", "DOCKER_HOST": "unix:///tmp/h.sock"}
    assert resolve(environ=with_host).describe() == "DOCKER_HOST unix:///tmp/h.sock"
    # An explicit --context wins over everything, DOCKER_HOST included, as `docker --context` does.
    assert resolve("two", environ=with_host).describe() == "context two at tcp://10.0.0.2:2375"
    assert resolve("default", environ=with_host).host == "unix:///tmp/h.sock"


def test_an_unknown_context_says_which_exist(tmp_path):
    config = tmp_path / "docker-config"
    write_context(config, "colima", "unix:///tmp/colima.sock")
    with pytest.raises(RuntimeFailure, match=r"no Docker context named 'nope' \(from DOCKER_CONTEXT\).*colima"):
        resolve(environ={"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "nope"})


def test_a_tls_context_carries_its_certificates(tmp_path):
    config = tmp_path / "docker-config"
    write_context(config, "remote", "tcp://10.0.0.3:2376", tls=True)
    address = read_context("remote", "--context", {"DOCKER_CONFIG": str(config)})
    kwargs = address.client_kwargs()
    assert kwargs["base_url"] == "tcp://10.0.0.3:2376"
    tls = kwargs["tls"]
    assert tls.cert[0].endswith("cert.pem") and tls.ca_cert.endswith("ca.pem") and tls.verify is True


@pytest.mark.skipif(shutil.which("docker") is None, reason="the Docker CLI is not installed")
def test_a_context_the_docker_cli_created_is_found_without_a_config_json(tmp_path):
    """The SDK's own ContextAPI misses it (it looks beside a config.json that is not there)."""
    config = tmp_path / "docker-config"
    subprocess.run(["docker", "--config", str(config), "context", "create", "made-by-cli",
                    "--docker", "host=unix:///tmp/cli.sock"], check=True, capture_output=True)
    assert not (config / "config.json").exists()
    assert resolve("made-by-cli", environ={"DOCKER_CONFIG": str(config)}).host == "unix:///tmp/cli.sock"


def test_up_and_the_app_refuse_an_unknown_context_before_anything_starts(sample, tmp_path):
    folder = sample("sklearn-regression")
    env = {"DOCKER_CONFIG": str(tmp_path / "empty-config")}
    for command in (["up", str(folder), "--detach"], [str(folder)]):
        result = devtui(*command, "--runtime", "container", "--context", "nope", check=2, env=env)
        assert "no Docker context named 'nope'" in result.stderr
    result = devtui("up", str(folder), "--runtime", "container", "--detach", check=2,
                    env={**env, "DOCKER_CONTEXT": "gone"})
    assert "no Docker context named 'gone' (from DOCKER_CONTEXT)" in result.stderr


def environment_image(client, folder: Path, tmp_path: Path) -> str:
    """The sklearn sample's environment image on ``client``'s engine, built there if missing."""
    from devtui.runtimes.container.images import ImageBuilder

    builder = ImageBuilder(client, spec.load(folder), tmp_path / "image-cache", lambda lines: None,
                           lambda *args: None)
    return builder.ensure()


@pytest.fixture(scope="module")
def sklearn_engine(private_engine, docker_client, tmp_path_factory):
    """The module's own engine, holding the sklearn sample's images from the machine's engine."""
    image = environment_image(docker_client, SAMPLES / "sklearn-regression", tmp_path_factory.mktemp("images"))
    private_engine.load(docker_client, "python:3.11-slim", image)
    return private_engine


@pytest.fixture
def own_engine(sklearn_engine):
    """That engine, running: started again if a test that stopped it failed before it could."""
    if not sklearn_engine.running:
        sklearn_engine.start()
    return sklearn_engine


def test_a_context_runs_the_deployment_on_its_engine(sample, docker_client, own_engine, run_id, tmp_path):
    """Two engines: the context names the private one, so the containers are there and not on
    the machine's (which the default socket still reaches), and `show` names the engine."""
    folder = sample("sklearn-regression")
    config = tmp_path / "docker-config"
    write_context(config, "private", own_engine.host)
    name = unique_name(run_id, "ctx")
    env = {"DOCKER_CONFIG": str(config)}
    inside = own_engine.enter  # its published ports are on its namespace's loopback
    client = own_engine.client()
    try:
        devtui("up", str(folder), "--runtime", "container", "--context", "private", "--detach", "-n", name,
               env=env, inside=inside)
        record = show(name, env=env, inside=inside)
        deployment = record["deployments"][0]
        assert deployment["docker_daemon"].startswith(f"context private at {own_engine.host} (Docker Engine ")
        assert deployment["docker_context"] == "private"
        assert labelled(client, name) and not labelled(docker_client, name)
        answer = devtui("invoke", "-n", name, "--request-file", str(folder / "sample-request.json"),
                        env=env, inside=inside)
        assert json.loads(answer.stdout) == [199.85, 74.01]
        devtui("down", "-n", name, env=env, inside=inside)
        assert labelled(client, name) == []
    finally:
        devtui("down", "-n", name, check=None, env=env, inside=inside)
        client.close()


def test_engine_restarted_under_a_running_endpoint(sample, own_engine, run_id):
    folder = sample("sklearn-regression")
    name = unique_name(run_id, "ct-engine-restart")
    on_it = own_engine.cli
    client = own_engine.client()
    try:
        devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name, **on_it)
        own_engine.stop()
        # A lost engine is waited for, not taken for the server's death.
        log = lambda: devtui("logs", "-n", name, "--container", "devtui", **on_it).stdout  # noqa: E731
        wait_for(lambda: "the Docker engine does not answer" in log(), timeout=60)
        assert show(name, **on_it)["provisioning_state"] == "Updating"
        own_engine.start()
        # The container stopped with the engine: once it answers, devtui starts the server again.
        wait_for(lambda: show(name, **on_it)["provisioning_state"] == "Succeeded", timeout=120)
        devtui("down", "-n", name, **on_it)
        assert labelled(client, name) == []
    finally:
        devtui("down", "-n", name, check=None, **on_it)
        client.close()


# -- GPUs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, count, ids", [("all", -1, ()), ("2", 2, ()), ("device=0", None, ("0",)),
                                              ('"device=0,2"', None, ("0", "2")),
                                              ("device=GPU-3a2b", None, ("GPU-3a2b",))])
def test_gpus_read_as_docker_run_reads_them(text, count, ids):
    request = GpuRequest.parse(text)
    assert (request.count, request.device_ids) == (count, ids)
    assert GpuRequest.parse(str(request)) == request
    [device_request] = request.device_requests()
    assert device_request["Capabilities"] == [["gpu"]]
    assert device_request["Count"] == (count or 0) and device_request["DeviceIDs"] == list(ids)


def test_a_bad_gpus_value_says_what_it_takes(sample):
    result = devtui("up", str(sample("sklearn-regression")), "--gpus", "some", check=2)
    assert "--gpus takes all, a number of GPUs (2), or device=ID" in result.stderr


def test_a_gpu_instance_type_suggests_gpus():
    for instance_type in ("Standard_NC6s_v3", "Standard_ND96asr_v4", "Standard_NV36ads_A10_v5", "standard_nc24ads_a100_v4"):
        assert "--gpus all" in suggestion(instance_type), instance_type
    for instance_type in ("Standard_DS3_v2", "Standard_F4s_v2", None):
        assert suggestion(instance_type) is None


def test_up_with_gpus_on_an_engine_without_a_gpu_runtime_fails_plainly_and_leaves_nothing(
        sample, docker_client, run_id):
    folder = sample("sklearn-regression")
    name = unique_name(run_id, "gpu-none")
    try:
        result = devtui("up", str(folder), "--runtime", "container", "--gpus", "all", "--detach", "-n", name, check=2)
        assert NO_GPU_RUNTIME in result.stderr
        assert labelled(docker_client, name) == []
        assert "no local endpoint" in devtui("show", "-n", name, check=1).stderr
    finally:
        devtui("down", "-n", name, check=None)


def test_the_container_runtime_checks_gpus_before_it_creates_anything(sample, docker_client, run_id, tmp_path):
    """The app and an engine that had no image for up's check: the runtime checks after its image
    build, before any volume or container, and the deployment fails with the same words."""
    folder = sample("sklearn-regression")
    deployment = spec.load(folder, name=unique_name(run_id, "gpu-rt"))
    engine = Engine(deployment, tmp_path / "work", Launch(runtime="container", watch=False, gpus=GpuRequest(count=-1)))
    logs: list[str] = []
    engine.subscribe(lambda e: logs.extend(r.text for r in e.records) if isinstance(e, Logs) else None)

    async def scenario():
        try:
            state = await engine.start()
            left = labelled(docker_client, deployment.endpoint_name)
        finally:
            await engine.stop()
        return state, left

    state, left = run_async(scenario(), timeout=300)
    assert state == FAILED and left == []
    assert any(NO_GPU_RUNTIME in line for line in logs), logs
    described = engine.describe()
    assert described.gpus == "all"
    assert "(Docker Engine " in described.docker_daemon and described.docker_host  # the engine, named for `show`


def test_the_process_runtime_notes_that_it_uses_the_hosts_gpus(sample, tmp_path):
    class Sink:
        lines: list[str] = []

        def log(self, source, lines):
            self.lines += lines

    sink = Sink()
    runtime = ProcessRuntime(spec.load(sample("sklearn-regression")),
                             Launch(gpus=GpuRequest(count=-1), context="remote"), tmp_path, sink)
    runtime._notes()
    assert any("--gpus all is for containers" in line and "uses its GPUs directly" in line for line in sink.lines)
    assert any("--context remote is for containers" in line for line in sink.lines)

