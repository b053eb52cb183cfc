"""A short loss of the Docker engine under a running endpoint (issue 19, item 8): devtui says the
engine does not answer and waits for it; the container keeps serving meanwhile; when the engine
answers again devtui follows the same container again and applies the saves that came meanwhile.

The engine is the machine's real one, reached through a proxy the test runs (engine_proxy.py),
which cuts every connection and refuses new ones for the pause.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from engine_proxy import engine_proxy  # noqa: F401 (a fixture)
from helpers import SAMPLES, SKLEARN_PREDICTIONS, devtui, save, wait_for

REQUEST = SAMPLES / "sklearn-regression" / "sample-request.json"


def up(folder, name: str, env: dict) -> dict:
    return json.loads(devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name, env=env).stdout)


def state(name: str) -> str:
    return json.loads(devtui("show", "-n", name).stdout)["provisioning_state"]


def devtui_log(name: str) -> str:
    return devtui("logs", "-n", name, "--container", "devtui").stdout


def answer(uri: str):
    try:
        response = httpx.post(uri, content=REQUEST.read_bytes(), timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def edited(original: str, marker: str) -> str:
    return original.replace("def run(raw_data):", f"def run(raw_data):\n    return {marker!r}")


@pytest.mark.parametrize("pause_s", [4, 10])
def test_a_short_loss_of_the_engine_is_waited_out_and_the_saves_meanwhile_applied(
        sample, engine_proxy, endpoint, docker_client, pause_s):  # noqa: F811
    name = endpoint("ct-outage")
    folder = sample("sklearn-regression")
    script = folder / "onlinescoring" / "score.py"
    original = script.read_text()
    env = {"DOCKER_HOST": engine_proxy.host}
    uri = up(folder, name, env)["scoring_uri"]
    assert answer(uri) == SKLEARN_PREDICTIONS
    server = {"label": [f"devtui.endpoint={name}", "devtui=inference-server"]}
    before = [c.id for c in docker_client.containers.list(all=True, filters=server)]
    try:
        engine_proxy.pause()
        paused_at = time.monotonic()
        wait_for(lambda: "the Docker engine does not answer" in devtui_log(name), timeout=60, interval=0.2,
                 message="devtui to say that the engine does not answer")
        assert state(name) == "Updating"
        assert answer(uri) == SKLEARN_PREDICTIONS  # the container serves on, without the engine

        save(script, edited(original, "saved while the engine was away"))
        wait_for(lambda: "the save is applied once it answers again" in devtui_log(name), timeout=30, interval=0.2,
                 message="devtui to keep the save for later")
        # The outage lasts as long as the test says, whatever devtui does meanwhile.
        wait_for(lambda: time.monotonic() - paused_at >= pause_s, timeout=pause_s + 1, interval=0.1)
    finally:
        engine_proxy.resume()

    wait_for(lambda: answer(uri) == "saved while the engine was away", timeout=90, interval=0.2,
             message="the save made during the outage to be served")
    wait_for(lambda: state(name) == "Succeeded", timeout=30, interval=0.2, message="Succeeded")
    save(script, edited(original, "saved after"))
    wait_for(lambda: answer(uri) == "saved after", timeout=60, interval=0.2, message="a later save to be served")
    log = devtui_log(name)
    assert "the Docker engine answers again" in log, log
    assert "exited with code None" not in log and "taken by another process" not in log, log
    containers = docker_client.containers.list(all=True, filters=server)
    assert [c.id for c in containers] == before and containers[0].status == "running"  # the same one, adopted
    devtui("down", "-n", name, env=env)
    assert docker_client.containers.list(all=True, filters={"label": f"devtui.endpoint={name}"}) == []


def test_down_while_the_engine_does_not_answer_says_so_and_a_later_down_removes_the_containers(
        sample, engine_proxy, endpoint, docker_client):  # noqa: F811
    name = endpoint("ct-outage-down")
    env = {"DOCKER_HOST": engine_proxy.host}
    up(sample("sklearn-regression"), name, env)
    selector = {"label": f"devtui.endpoint={name}"}
    try:
        engine_proxy.pause()
        down = devtui("down", "-n", name, env=env)
        assert "does not answer" in down.stderr and f"devtui down -n {name}" in down.stderr, down.stderr
        assert docker_client.containers.list(all=True, filters=selector)  # true: they still run
    finally:
        engine_proxy.resume()
    again = devtui("down", "-n", name, env=env)
    assert "removed" in again.stdout, again.stdout
    assert docker_client.containers.list(all=True, filters=selector) == []
