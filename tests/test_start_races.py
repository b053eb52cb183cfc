"""What `up` does when something else takes the endpoint's name or its port while it starts
(issue 19, items 9 and 14): the one that cannot have it says so once, exits 2 and leaves nothing
running; the other is not disturbed.

The port is taken at an exact point: after every check devtui makes and before the scoring
server binds. In the process runtime a ``sitecustomize`` holds the server's interpreter at its
start until the test has taken the port; in the container runtime a proxy in front of the real
Docker engine holds devtui's first request about the inference-server container.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from devtui import orphans
from engine_proxy import engine_proxy  # noqa: F401 (a fixture)
from helpers import ROOT, devtui, devtui_command, free_port, wait_for

# Imported by every Python started with the test's PYTHONPATH: the scoring server's interpreter
# (`python -m inference_server`) waits at its start until the test opens the gate.
GATE = '''
import os, time

def _is_the_server():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return b"inference_server" in f.read().split(b"\\0")
    except OSError:
        return False

_gate = os.environ.get("TEST_SERVER_GATE")
if _gate and _is_the_server() and not os.path.exists(_gate + ".open"):
    open(_gate + ".waiting", "w").close()
    _deadline = time.monotonic() + 120
    while not os.path.exists(_gate + ".open") and time.monotonic() < _deadline:
        time.sleep(0.02)
'''


def taken(port: int) -> socket.socket:
    """A socket of another program, listening on ``port``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_two_ups_of_one_name_at_once_one_serves_and_the_other_says_why_once(sample):
    folder = sample("sklearn-regression")
    ups = [subprocess.Popen([*devtui_command(), "up", str(folder), "--detach"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    try:
        outputs = [finish(up, 120) for up in ups]
        codes = [up.returncode for up in ups]
        assert sorted(codes) == [0, 2], outputs
        winner, loser = (outputs[0], outputs[1]) if codes[0] == 0 else (outputs[1], outputs[0])
        assert json.loads(winner[0])["provisioning_state"] == "Succeeded"
        error = loser[1]
        assert error.count("error:") == 1 and "already has a deployment" in error, error
        assert error.startswith("error: "), error  # nothing detached, so no progress before it
        assert len(json.loads(devtui("list", "-o", "json").stdout)) == 1
    finally:
        devtui("down", "--all")


def test_a_port_taken_after_the_check_exits_2_naming_it_and_leaves_nothing_running(sample, tmp_path):
    folder = sample("sklearn-regression")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GATE)
    gate = tmp_path / "gate"
    port = free_port()
    environment = {**os.environ, "TEST_SERVER_GATE": str(gate),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    up = subprocess.Popen([*devtui_command(), "up", str(folder), "--detach", "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environment)
    try:
        waiting = Path(f"{gate}.waiting")
        wait_for(lambda: waiting.exists() or up.poll() is not None, timeout=60, message="the server to start")
        assert up.poll() is None, finish(up)
        with taken(port):
            Path(f"{gate}.open").touch()
            _, error = finish(up, 120)
        assert up.returncode == 2, error
        assert f"port {port} on 127.0.0.1 is already in use" in error and "--port" in error, error
        assert error.count("error:") == 1, error
        assert "retries on the next save" not in error, error
        assert devtui("list", "-o", "json").stdout.strip() == "[]"
        assert orphans.find("my-endpoint") == []
    finally:
        Path(f"{gate}.open").touch()
        if up.poll() is None:
            finish(up, 1)
        devtui("down", "--all")


def test_a_port_taken_before_the_container_starts_exits_2_and_leaves_nothing(sample, engine_proxy,  # noqa: F811
                                                                              endpoint, docker_client):
    name = endpoint("ct-port-race")
    engine_proxy.hold(f"devtui-{name}-blue-inference-server".encode())
    port = free_port()
    up = subprocess.Popen([*devtui_command(), "up", str(sample("sklearn-regression")), "--runtime", "container",
                           "--detach", "-n", name, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT, env={**os.environ, "DOCKER_HOST": engine_proxy.host})
    try:
        wait_for(lambda: engine_proxy.held.is_set() or up.poll() is not None, timeout=600,
                 message="devtui to ask for the inference-server container")
        assert up.poll() is None, finish(up)
        with taken(port):
            engine_proxy.release()
            _, error = finish(up)
    finally:
        engine_proxy.release()
        if up.poll() is None:
            finish(up, 1)
    assert up.returncode == 2, error
    assert f"port {port} on 127.0.0.1 is already in use" in error and "--port" in error, error
    assert error.count("error:") == 1, error
    selector = {"label": f"devtui.endpoint={name}"}
    assert docker_client.containers.list(all=True, filters=selector) == []
    assert docker_client.volumes.list(filters=selector) == []
    assert devtui("list", "-o", "json").stdout.strip() == "[]"
