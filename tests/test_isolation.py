"""The container runtime as a user runs it, and as an attacker on the same engine sees it.

- The terminal app works in the container runtime: the scoring URI reaches the app, and Invoke
  answers (issue 13, item 6; the foreground ``up`` is test_container's Ctrl-C test).
- Nothing but the host reaches an endpoint's containers: a container on the engine's default
  bridge cannot connect to the scoring port or the debugger's (issue 13, item 1).

Real engine, real containers; every endpoint name carries this run's unique prefix, and only
what the test created is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess

import httpx
import pytest

from conftest import ROOT, devtui_command
from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED
from devtui.tui.app import DevtuiApp
from helpers import wait_for

RUN = f"iso{os.getpid() % 100000:x}{secrets.token_hex(2)}"
DEVTUI_TRACEBACK = re.compile(r'File "[^"]*/(devtui|inference_server)/|Traceback \(most recent call last\)')
PROBE_IMAGE = "python:3.11-slim"  # the base image CI builds offline; any image with Python will do


def unique(name: str) -> str:
    return f"{RUN}-{name}"


def labelled(client, name: str) -> tuple[list, list, list]:
    selector = {"label": f"devtui.endpoint={name}"}
    return (client.containers.list(all=True, filters=selector), client.volumes.list(filters=selector),
            client.networks.list(filters=selector))


@pytest.fixture
def endpoint(docker_client):
    """endpoint("x") reserves a run-unique endpoint name; afterwards `devtui down`, and nothing
    labelled with it may remain: no container, volume or network."""
    names: list[str] = []

    def reserve(name: str) -> str:
        names.append(unique(name))
        return names[-1]

    yield reserve
    problems = []
    for name in names:
        subprocess.run([*devtui_command(), "down", "-n", name], capture_output=True, timeout=120, cwd=ROOT)
        left = [item for group in labelled(docker_client, name) for item in group]
        if left:
            problems.append(f"{name}: left {[item.name for item in left]}")
            for item in left:
                item.remove(force=True) if hasattr(item, "status") else item.remove()
    assert not problems, "; ".join(problems)


def up_detached(folder, name: str, *extra: str) -> dict:
    # From the sample's folder: --debug writes .vscode/launch.json where devtui runs.
    result = subprocess.run([*devtui_command(), "up", str(folder), "--runtime", "container", "--detach", "-n", name,
                             *extra], capture_output=True, text=True, timeout=300, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not DEVTUI_TRACEBACK.search(result.stderr), result.stderr
    return json.loads(result.stdout)


# -- item 6: the foreground up and the app in the container runtime ------------------------------


def test_the_app_invokes_in_the_container_runtime(sample, endpoint, docker_client, tmp_path):
    name = endpoint("app")
    folder = sample("sklearn-regression")
    engine = Engine(spec.load(folder, name=name), tmp_path / "work", Launch(runtime="container", port=0, name=name))
    app = DevtuiApp(engine, request_text=(folder / "sample-request.json").read_text(), save_folder=tmp_path)

    async def until(pilot, condition, timeout: float, message: str):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            assert loop.time() < deadline, f"timed out waiting for {message}"
            await pilot.pause(0.05)

    async def scenario():
        try:
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: engine.state == SUCCEEDED, 240, "Succeeded")
                await until(pilot, lambda: app.invoke_panel.scoring_uri, 10, "the app to learn the scoring URI")
                assert app.invoke_panel.scoring_uri == engine.scoring_uri
                # The header names the engine the containers run on (issue 12).
                assert "Docker Engine" in app.status.docker_daemon
                assert "[docker: default]" in str(app.query_one("#status-text").content)  # named briefly
                await pilot.press("ctrl+j")
                await until(pilot, lambda: app.invoke_panel.history, 30, "an answer")
                exchange = app.invoke_panel.history[0]
                assert exchange.status == 200, exchange.answer
                assert "199.85" in exchange.answer
        finally:
            if not engine.stopped:
                await engine.stop()

    asyncio.run(asyncio.wait_for(scenario(), 300))


# -- item 1: nobody but the host gets in --------------------------------------------------------------


PROBE = r"""
import json, socket, sys
results = {}
for target in json.loads(sys.argv[1]):
    host, port = target
    try:
        socket.create_connection((host, port), timeout=2).close()
        results[f"{host}:{port}"] = "connected"
    except OSError as ex:
        results[f"{host}:{port}"] = type(ex).__name__
print(json.dumps(results))
"""


def test_other_containers_cannot_reach_the_scoring_or_debug_port(sample, endpoint, docker_client):
    name = endpoint("sec")
    folder = sample("sklearn-regression")
    shown = up_detached(folder, name, "--debug", "--debug-port", "0")
    # From the host, both answer on 127.0.0.1.
    assert httpx.get(shown["scoring_uri"].rsplit("/", 1)[0] + "/", timeout=10).text == "Healthy"
    debug_port = shown["deployments"][0]["debugger"]["port"]

    server = next(c for c in labelled(docker_client, name)[0] if c.labels.get("devtui") == "inference-server")
    server.reload()
    networks = server.attrs["NetworkSettings"]["Networks"]
    assert "bridge" not in networks, f"the endpoint's container is on the default bridge: {list(networks)}"
    addresses = [settings["IPAddress"] for settings in networks.values() if settings.get("IPAddress")]
    assert addresses, networks
    # Published on the host's loopback only.
    for bindings in server.attrs["NetworkSettings"]["Ports"].values():
        assert all(binding["HostIp"] == "127.0.0.1" for binding in bindings or []), server.attrs["NetworkSettings"]

    targets = [[address, port] for address in addresses for port in (5001, debug_port)]
    output = docker_client.containers.run(PROBE_IMAGE, ["python", "-c", PROBE, json.dumps(targets)], entrypoint=[],
                                          remove=True, network="bridge", name=unique("probe"),
                                          labels={"devtui.test": RUN})
    results = json.loads(output.decode().strip().splitlines()[-1])
    assert "connected" not in results.values(), results


# -- items 9 and 11: a killed container comes back; down during a recreate leaves nothing ----------


def show(name: str) -> dict:
    result = subprocess.run([*devtui_command(), "show", "-n", name], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_killed_container_is_restarted_and_a_save_then_applies(sample, endpoint, docker_client):
    name = endpoint("kill")
    folder = sample("sklearn-regression")
    shown = up_detached(folder, name)
    first = shown["deployments"][0]["container_ids"]
    server = next(c for c in labelled(docker_client, name)[0] if c.labels.get("devtui") == "inference-server")
    server.kill()

    def serving_again():
        record = show(name)
        deployment = record["deployments"][0]
        return (record["provisioning_state"] == "Succeeded" and deployment["container_ids"] != first
                and deployment["revision"] == 2)

    wait_for(serving_again, timeout=120, message="the killed container to be replaced")
    score = folder / "onlinescoring" / "score.py"
    score.write_text(score.read_text().replace("def run(raw_data):", "def run(raw_data):\n    return 'edited'"))
    wait_for(lambda: httpx.post(show(name)["scoring_uri"], content="{}", timeout=10).text == '"edited"',
             timeout=60, message="the save after the restart to be applied")
    log = subprocess.run([*devtui_command(), "logs", "-n", name, "--container", "devtui"], capture_output=True,
                         text=True, cwd=ROOT).stdout
    assert "409" not in log and "Conflict" not in log, log


def test_down_during_a_recreate_leaves_no_volume(sample, endpoint, docker_client):
    """A YAML change recreates the containers (rung 3); `down` at that moment used to leave an
    unlabelled volume behind (the engine makes one for a mount whose volume was just removed)."""
    folder = sample("sklearn-regression")
    for attempt in range(3):
        name = endpoint(f"recreate{attempt}")
        up_detached(folder, name)
        deployment = folder / "deployment.yml"
        text = re.sub(r"\n  RECREATE: .*", "", deployment.read_text())
        deployment.write_text(text.replace("  LOG_LEVEL: INFO", f"  LOG_LEVEL: INFO\n  RECREATE: '{attempt}'"))
        wait_for(lambda: show(name)["provisioning_state"] == "Updating", timeout=30, interval=0.005,
                 message="the recreate to begin")
        down = subprocess.run([*devtui_command(), "down", "-n", name], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert down.returncode == 0, down.stderr
        prefix = f"devtui-{name}-"
        left = [v.name for v in docker_client.volumes.list() if v.name.startswith(prefix)]
        left += [c.name for c in docker_client.containers.list(all=True) if c.name.startswith(prefix)]
        assert left == [], left


def test_a_save_in_a_large_code_folder_copies_only_what_changed(sample, endpoint, docker_client):
    """Issue 13, item 16: with thousands of files in the code folder, each save copied all of them
    and the storage-initializer logged a line per file."""
    name = endpoint("large")
    folder = sample("sklearn-regression")
    extra = folder / "onlinescoring" / "data"
    extra.mkdir()
    for i in range(2000):
        (extra / f"f{i:04d}.txt").write_text(f"file {i}\n")
    shown = up_detached(folder, name)
    initializer_log = subprocess.run([*devtui_command(), "logs", "-n", name, "--container", "storage-initializer"],
                                     capture_output=True, text=True, cwd=ROOT).stdout
    assert len(initializer_log.splitlines()) < 200, len(initializer_log.splitlines())
    assert "more files, all verified" in initializer_log

    score = folder / "onlinescoring" / "score.py"
    score.write_text(score.read_text().replace("def run(raw_data):", "def run(raw_data):\n    return 'large'"))
    wait_for(lambda: httpx.post(shown["scoring_uri"], content="{}", timeout=10).text == '"large"', timeout=60,
             message="the save to be applied")
    devtui_log = subprocess.run([*devtui_command(), "logs", "-n", name, "--container", "devtui"],
                                capture_output=True, text=True, cwd=ROOT).stdout
    assert "code: copied 1 changed file" in devtui_log and "2001 files in all" in devtui_log, devtui_log
