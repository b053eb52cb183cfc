"""Faults around the engine: a subscriber that raises, a full disk, a closed stdout (issue 13,
item 7). The endpoint must keep serving, say once what went wrong, and leave nothing running.

Real scoring servers as child processes; the full disk is /dev/full, which fails every write with
ENOSPC, in place of the log files.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, children_of, devtui_command
from devtui import registry, spec
from devtui.cli import Recorder
from devtui.engine import Engine, Launch
from devtui.events import DEVTUI, SOURCES, SUCCEEDED, Logs
from helpers import free_port, pid_alive, wait_for, write_deployment

# Prints 8 KiB per request: a few requests fill a pipe nobody reads (64 KiB on Linux).
SCORE = '''
def init():
    print("init done")

def run(raw):
    print("x" * 8192)
    return {"version": VERSION}

VERSION = 1
'''

DEPLOYMENT = '''
name: blue
endpoint_name: faults
code_configuration:
  code: ./code
  scoring_script: score.py
environment:
  image: python:3.11-slim
request_settings:
  request_timeout_ms: 3000
'''


@pytest.fixture
def deployment(tmp_path) -> Path:
    return write_deployment(tmp_path / "deployment", DEPLOYMENT, score=SCORE)


def save(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 120))


async def until(condition, timeout: float, message: str):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {message}"
        await asyncio.sleep(0.02)


async def answers_all(uri: str, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as client:
        return [(await client.post(uri, content="{}")).status_code for _ in range(count)]


async def version(uri: str) -> int | None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(uri, content="{}")
        return answer.json().get("version") if answer.status_code == 200 else None


def devtui_errors(events: list) -> list[str]:
    return [r.text for e in events if isinstance(e, Logs) for r in e.records
            if r.source == DEVTUI and r.text.startswith("error:")]


def test_a_failing_subscriber_is_reported_once_and_the_engine_goes_on(deployment, tmp_path):
    engine = Engine(spec.load(deployment), tmp_path / "work", Launch(port=0))
    seen: list = []

    def broken(event):
        raise RuntimeError("this subscriber is broken")

    engine.subscribe(broken)
    engine.subscribe(seen.append)

    async def scenario():
        try:
            assert await engine.start() == SUCCEEDED
            assert await answers_all(engine.scoring_uri, 20) == [200] * 20
            save(deployment / "code" / "score.py", SCORE.replace("VERSION = 1", "VERSION = 2"))
            await until(lambda: engine.serving_revision == 2, 30, "the save to be applied")
            assert await version(engine.scoring_uri) == 2
        finally:
            await engine.stop()

    run(scenario())
    errors = devtui_errors(seen)
    assert len(errors) == 1, errors
    assert "broken" in errors[0] and "RuntimeError" in errors[0]


def test_a_full_disk_stops_the_log_files_with_one_error_and_serving_goes_on(deployment, tmp_path):
    claim = registry.claim("faults")
    engine = Engine(spec.load(deployment), claim.folder / "staging", Launch(port=0))
    recorder = Recorder(engine, claim)
    engine.subscribe(recorder)
    seen: list = []
    engine.subscribe(seen.append)
    for source in SOURCES:
        (claim.folder / "logs" / f"{source}.log").symlink_to("/dev/full")

    async def scenario():
        try:
            assert await engine.start() == SUCCEEDED
            # 40 x 8 KiB of print(): far more than a pipe holds if the log pump had died.
            assert await answers_all(engine.scoring_uri, 40) == [200] * 40
            save(deployment / "code" / "score.py", SCORE.replace("VERSION = 1", "VERSION = 2"))
            await until(lambda: engine.serving_revision == 2, 30, "the save to be applied")
            assert await version(engine.scoring_uri) == 2
            assert engine.state == SUCCEEDED
        finally:
            await engine.stop()
            claim.release()

    run(scenario())
    errors = devtui_errors(seen)
    assert len(errors) == 1, errors
    assert "No space left on device" in errors[0] and "log" in errors[0]


def test_a_closed_stdout_ends_up_cleanly_and_leaves_nothing_running(deployment):
    port = free_port()
    process = subprocess.Popen([*devtui_command(), "up", str(deployment), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        for _ in range(3):  # what `devtui up PATH | head -3` reads
            assert process.stdout.readline()
        process.stdout.close()
        wait_for(lambda: process.poll() is not None, timeout=60, message="up to end after its reader went away")
        stderr = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert children_of(process.pid) == []

    def port_closed():
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.TransportError:
            return True
        return False

    wait_for(port_closed, timeout=10, message="the scoring port to close")
    listed = subprocess.run([*devtui_command(), "list", "-o", "json"], capture_output=True, text=True, cwd=ROOT)
    assert json.loads(listed.stdout) == []


def test_a_killed_server_is_restarted_with_a_new_pid(deployment, tmp_path):
    """Issue 13, item 9: after the supervisor is SIGKILLed the endpoint serves again, and what
    `show` lists is the new process."""
    import signal

    engine = Engine(spec.load(deployment), tmp_path / "work", Launch(port=0))
    seen: list = []
    engine.subscribe(seen.append)

    async def scenario():
        try:
            assert await engine.start() == SUCCEEDED
            first = engine.describe().pid
            os.kill(first, signal.SIGKILL)
            await until(lambda: engine.state != SUCCEEDED, 10, "the death to be seen")
            await until(lambda: engine.state == SUCCEEDED and engine.describe().pid != first, 30,
                        "the server to be restarted")
            assert await answers_all(engine.scoring_uri, 3) == [200] * 3
            save(deployment / "code" / "score.py", SCORE.replace("VERSION = 1", "VERSION = 2"))
            await until(lambda: engine.serving_revision == 3, 30, "a save after the restart to be applied")
        finally:
            await engine.stop()

    run(scenario())
    said = [r.text for e in seen if isinstance(e, Logs) for r in e.records]
    assert any("exited with code -9; restarting it" in line for line in said), said


DAEMON_SCORE = '''
import os, time

def init():
    # A daemon as debugpy's adapter makes one: its own session, the server's output kept open.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            # Beside the deployment, not in the code folder: a file written there is a change to serve.
            pid_file = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "daemon.pid")
            with open(pid_file + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(pid_file + ".tmp", pid_file)  # whole, or not there
            time.sleep(300)
        os._exit(0)

def run(raw):
    return {"version": VERSION}

VERSION = 1
'''


def test_a_daemon_that_keeps_the_servers_output_open_does_not_hold_up_a_restart(deployment, tmp_path):
    """A wedged debugpy adapter outlived the server it came from, holding the output pipe: the
    restart waited for that pipe to end and never started the new server. A process of the
    server's that outlives it and keeps its output is ended, said in the log, and the restart
    and the stop go on."""
    (deployment / "code" / "score.py").write_text(DAEMON_SCORE)
    daemon_file = deployment.parent / "daemon.pid"
    engine = Engine(spec.load(deployment), tmp_path / "work", Launch(port=0))
    seen: list = []
    engine.subscribe(seen.append)

    async def scenario():
        try:
            assert await engine.start() == SUCCEEDED
            await until(daemon_file.exists, 10, "the daemon to start")
            first = int(daemon_file.read_text())
            daemon_file.unlink()
            try:
                assert await asyncio.wait_for(engine.restart("a restart", reload_yaml=False), 60) == SUCCEEDED
            except TimeoutError:
                said = [f"{r.source}: {r.text}" for e in seen if isinstance(e, Logs) for r in e.records]
                raise AssertionError("the restart did not finish:\n" + "\n".join(said[-60:])) from None
            assert await answers_all(engine.scoring_uri, 1) == [200]
            await until(lambda: not pid_alive(first), 10, "the first daemon to be ended")
            await until(daemon_file.exists, 10, "the second daemon to start")
        finally:
            await asyncio.wait_for(engine.stop(), 30)

    run(scenario())
    second = int(daemon_file.read_text())
    wait_for(lambda: not pid_alive(second), timeout=10, message="the second daemon to be ended by the stop")
    said = [r.text for e in seen if isinstance(e, Logs) for r in e.records if r.source == DEVTUI]
    assert sum("outlived it and kept its output open" in line for line in said) == 2, said


FORKING_SCORE = '''
import os, time

def init():
    pass

def run(raw):
    if os.fork() == 0:  # a child that outlives everything and keeps the inherited socket
        time.sleep(300)
        os._exit(0)
    return {"forked": True}
'''


def test_processes_forked_by_run_are_ended_by_up_and_down_after_a_sigkill(deployment):
    """Issue 13, item 10: after SIGKILL of the host, a process run() forked kept the port; list
    showed nothing, down said "no local endpoint" and up --port was refused."""
    import signal

    (deployment / "code" / "score.py").write_text(FORKING_SCORE)
    port = free_port()

    def up_and_kill() -> None:
        host = subprocess.Popen([*devtui_command(), "up", str(deployment), "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        try:
            seen: list[str] = []

            def succeeded() -> bool:
                seen.append(host.stdout.readline())
                assert seen[-1] or host.poll() is None, "".join(seen)
                return "provisioning_state: Succeeded" in seen[-1]

            wait_for(succeeded, timeout=60, message="Succeeded")
            assert httpx.post(f"http://127.0.0.1:{port}/score", content="{}", timeout=10).json() == {"forked": True}
            host.send_signal(signal.SIGKILL)
            host.wait()
        finally:
            if host.poll() is None:
                host.kill()
                host.wait()

    def port_free() -> bool:
        import socket

        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    up_and_kill()
    assert not port_free()  # the orphan holds it
    up_and_kill()  # up on the same port ends the orphans first, then serves
    down = subprocess.run([*devtui_command(), "down", "-n", "faults"], capture_output=True, text=True, cwd=ROOT)
    assert down.returncode == 0, down.stderr
    assert "orphaned process" in down.stdout
    wait_for(port_free, timeout=10, message="the port to be free")


WAITING_SCORE = '''
import os, time

def init():
    release = os.path.join(os.path.dirname(__file__), "release")
    deadline = time.monotonic() + 60
    print("init: waiting for the model")
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)

def run(raw):
    return {"ok": True}
'''


def test_up_detach_tells_its_progress_while_a_slow_init_runs(deployment):
    """Issue 13, item 19: `up --detach` printed nothing for the whole of a slow init()."""
    (deployment / "code" / "score.py").write_text(WAITING_SCORE)
    up = subprocess.Popen([*devtui_command(), "up", str(deployment), "--detach"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT)
    said: list[str] = []
    try:
        def progress_during_init() -> bool:
            said.append(up.stderr.readline())
            assert said[-1] or up.poll() is None, "".join(said)
            return "init() runs" in said[-1] and " s)" in said[-1]

        wait_for(progress_during_init, timeout=60, message="progress while init() runs")
        (deployment / "code" / "release").write_text("go")
        out, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        subprocess.run([*devtui_command(), "down", "-n", "faults"], capture_output=True, cwd=ROOT)
    assert up.returncode == 0, "".join(said)
    assert json.loads(out)["provisioning_state"] == "Succeeded"
