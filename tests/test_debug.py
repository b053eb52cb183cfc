"""Debugging as VS Code does it: a real DAP client over debugpy's socket, attached once with the
configuration devtui wrote into .vscode/launch.json, hitting a breakpoint in run() before and
after hot reloads, in both runtimes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from dap import DapError, DebugClient, Session, local_variables, stopped_frame
from devtui.debug import strip_jsonc
from helpers import devtui, devtui_command, free_port, new_run_id, save, show, unique_name, wait_for

BREAK_AT = "    predictions = model.predict(data)\n"


def launch_configuration(folder: Path, endpoint: str) -> dict:
    """The attach configuration, read from launch.json as VS Code reads it (comments allowed)."""
    document = json.loads(strip_jsonc((folder / ".vscode" / "launch.json").read_text()))
    return next(c for c in document["configurations"] if c["name"] == f"devtui: attach to {endpoint}")


def breakpoint_line(score: Path) -> int:
    return score.read_text().splitlines(keepends=True).index(BREAK_AT) + 1


def post_in_background(url: str, body: bytes, headers: dict | None = None) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def send():
        result["answer"] = httpx.post(url, content=body, headers=headers, timeout=60)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, result


def latest_child(client: DebugClient) -> object:
    """The newest worker's session: on a busy machine another child (a worker that was swapped
    out meanwhile) may have joined before it."""
    child = client.next_child()
    while True:
        try:
            child = client.next_child(timeout=2)
        except DapError:
            return child


def hit_breakpoint_twice_across_a_reload(cwd: Path, folder: Path, name: str, remote_root: str) -> None:
    score = folder / "onlinescoring" / "score.py"
    configuration = launch_configuration(cwd, name)
    assert configuration["type"] == "debugpy" and configuration["request"] == "attach"
    assert configuration["connect"]["host"] == "127.0.0.1"
    assert configuration["pathMappings"] == [{"localRoot": str(folder / "onlinescoring"), "remoteRoot": remote_root}]
    record = show(name, cwd=cwd)
    url = record["scoring_uri"]
    body = (folder / "sample-request.json").read_bytes()
    line = breakpoint_line(score)

    client = DebugClient(configuration)
    try:
        client.set_breakpoints(str(score), [line])
        child = client.next_child()
        wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)

        thread, result = post_in_background(url, body)
        thread_id, frame = stopped_frame(child)
        assert Path(frame["source"]["path"]) == score and frame["line"] == line
        variables = local_variables(child, frame["id"])
        assert "raw_data" in variables and variables["data"].startswith("array(")
        # The current stop is reported, as the app's header and `show` display it.
        debugger = wait_for(lambda: (d := show(name, cwd=cwd)["deployments"][0]["debugger"])["state"] == "stopped" and d,
                            timeout=30)
        assert debugger["detail"] == f"at score.py:{line} in run()"
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].status_code == 200 and len(result["answer"].json()) == 2
        wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)

        # A save that changes run() only is patched into the same worker (rung 0): the same child
        # session, and the breakpoint hits in the new code.
        revision = record["deployments"][0]["revision"]
        changed = re.sub(r"digits = int\(.*\)", "digits = 1", score.read_text())
        assert changed != score.read_text()
        save(score, changed)
        deployment = wait_for(lambda: (d := show(name, cwd=cwd)["deployments"][0])["revision"] > revision and d,
                              timeout=60)
        assert deployment["last_reload"]["how"] == "patched run() in place (model kept)"
        thread, result = post_in_background(url, body)
        thread_id, frame = stopped_frame(child)
        assert Path(frame["source"]["path"]) == score and frame["line"] == line
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].json() == [199.8, 74.0]  # the new code rounds to one digit

        # A save that changes init(): a new worker joins the same session; no re-attach.
        revision = deployment["revision"]
        save(score, score.read_text().replace("def init():", "def init():\n    logger.info('init, edited')"))
        client.set_breakpoints(str(score), [line + 1])  # the editor moves the breakpoint with the line
        wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["revision"] > revision, timeout=60)
        child = latest_child(client)
        thread, result = post_in_background(url, body)
        thread_id, frame = stopped_frame(child)
        assert Path(frame["source"]["path"]) == score and frame["line"] == line + 1
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].json() == [199.8, 74.0]
    finally:
        client.close()


@pytest.fixture
def workspace(tmp_path, sample):
    """A folder to start devtui in (launch.json lands there) with a copy of the sample."""
    folder = sample("sklearn-regression")
    cwd = tmp_path / "workspace"
    cwd.mkdir()
    (cwd / ".vscode").mkdir()
    # A launch.json of the user's own, with a comment: both must survive.
    (cwd / ".vscode" / "launch.json").write_text(
        '{\n  // mine\n  "version": "0.2.0",\n  "configurations": [\n'
        '    {"name": "Python: file", "type": "debugpy", "request": "launch", "program": "${file}"}\n  ]\n}\n')
    yield cwd, folder
    devtui("down", "--all", check=None, cwd=cwd)


def test_process_runtime_breakpoints_survive_reloads(workspace):
    cwd, folder = workspace
    port = free_port()
    devtui("up", str(folder), "--debug", "--debug-port", str(port), "--detach", cwd=cwd)
    text = (cwd / ".vscode" / "launch.json").read_text()
    assert "// mine" in text and '"Python: file"' in text
    assert launch_configuration(cwd, "my-endpoint")["connect"]["port"] == port
    assert show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["port"] == port
    hit_breakpoint_twice_across_a_reload(cwd, folder, "my-endpoint", str(folder / "onlinescoring"))

    # Starting again does not add a second configuration.
    devtui("down", "--all", cwd=cwd)
    devtui("up", str(folder), "--debug", "--debug-port", str(port), "--detach", cwd=cwd)
    names = [c["name"] for c in json.loads(strip_jsonc((cwd / ".vscode" / "launch.json").read_text()))["configurations"]]
    assert names == ["Python: file", "devtui: attach to my-endpoint"]


def test_debug_wait_holds_init_until_a_client_attaches(workspace):
    cwd, folder = workspace
    port = free_port()
    host = subprocess.Popen([*devtui_command(), "up", str(folder), "--debug-port", str(port), "--debug-wait"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(host.stdout), daemon=True).start()
    client = None
    try:
        wait_for(lambda: any("Waiting for a debugger to attach" in line for line in lines), timeout=60)
        assert show("my-endpoint", cwd=cwd)["provisioning_state"] == "Creating"
        assert not any("Invoking user's init function" in line for line in lines), "".join(lines)
        client = DebugClient(launch_configuration(cwd, "my-endpoint"))
        wait_for(lambda: show("my-endpoint", cwd=cwd)["provisioning_state"] == "Succeeded", timeout=60)
        assert any("Invoking user's init function" in line for line in lines)
    finally:
        if client:
            client.close()
        host.send_signal(signal.SIGINT)
        host.wait(60)


def test_a_second_devtui_on_the_same_debug_port_is_refused(workspace, sample):
    cwd, folder = workspace
    port = free_port()
    devtui("up", str(folder), "--debug-port", str(port), "--detach", cwd=cwd)
    other = devtui("up", str(sample("inference-schema")), "--debug-port", str(port), "--detach", check=2, cwd=cwd)
    assert f"debug port {port}" in other.stderr and "already in use" in other.stderr
    assert "Traceback" not in other.stderr


def test_container_runtime_breakpoints_with_the_in_container_path(workspace, docker_client, run_id):
    cwd, folder = workspace
    # Containers are named after the endpoint, on an engine other runs share: a name of this run's.
    name = unique_name(run_id, "debug")
    port = free_port()
    devtui("up", str(folder), "--runtime", "container", "-n", name, "--debug", "--debug-port", str(port), "--detach",
           cwd=cwd)
    server = docker_client.containers.get(f"devtui-{name}-blue-inference-server")
    bindings = server.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    hit_breakpoint_twice_across_a_reload(cwd, folder, name, "/var/azureml-app/onlinescoring")


def test_a_stop_at_a_breakpoint_longer_than_the_request_timeout_is_not_a_408(workspace):
    """Issue 9: with the default request_settings every inspected request became a 408."""
    import time

    cwd, folder = workspace
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text().replace("request_timeout_ms: 5000", "request_timeout_ms: 1000"))
    devtui("up", str(folder), "--debug", "--debug-port", str(free_port()), "--detach", cwd=cwd)
    score = folder / "onlinescoring" / "score.py"
    client = DebugClient(launch_configuration(cwd, "my-endpoint"))
    try:
        client.set_breakpoints(str(score), [breakpoint_line(score)])
        child = client.next_child()
        wait_for(lambda: show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)
        thread, result = post_in_background(show("my-endpoint", cwd=cwd)["scoring_uri"],
                                            (folder / "sample-request.json").read_bytes())
        thread_id, _ = stopped_frame(child)
        stopped_at = time.monotonic()
        # The user inspects for longer than request_timeout_ms (the duration under test, not a wait for a state).
        wait_for(lambda: time.monotonic() - stopped_at > 1.5, timeout=5)
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].status_code == 200, result["answer"].text
    finally:
        client.close()
    log = devtui("logs", "-n", "my-endpoint", cwd=cwd).stdout
    assert "the request timeout (1000 ms) is suspended" in log, log


@pytest.mark.parametrize("runtime", ["process", "container"])
def test_breakpoints_in_a_flows_node_hit_and_keep_hitting_across_reloads(tmp_path, request, runtime):
    """A prompt flow's node file is debugged as score.py is: launch.json maps the flow folder (to
    its folder in the container), and a save (a new worker building the flow again) joins the
    same session."""
    from flow_reference import copy_sample

    pytest.importorskip("promptflow.core")
    if runtime == "container":
        request.getfixturevalue("docker_client")  # skips (or, under CI, fails) without an engine
    sample = copy_sample("flow-basic", tmp_path)
    node = sample / "flow" / "repeat.py"
    cwd = tmp_path / "workspace"
    cwd.mkdir()
    name = unique_name(new_run_id(), f"flowdebug{runtime[0]}")
    devtui("up", str(sample), "-n", name, "--runtime", runtime, "--debug", "--debug-port", str(free_port()),
           "--detach", cwd=cwd, timeout=600)
    try:
        configuration = launch_configuration(cwd, name)
        remote = str(sample / "flow") if runtime == "process" else "/var/azureml-app/azureml-models/blue-model/1/flow"
        assert configuration["pathMappings"] == [{"localRoot": str(sample / "flow"), "remoteRoot": remote}]
        url = show(name, cwd=cwd)["scoring_uri"]
        body = (sample / "sample-request.json").read_bytes()
        line = node.read_text().splitlines().index('    return " ".join([text] * count)') + 1
        client = DebugClient(configuration)
        try:
            client.set_breakpoints(str(node), [line])
            child = client.next_child()
            wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)
            for separator, edited in ((" ", " + "), (" + ", None)):
                thread, result = post_in_background(url, body)
                thread_id, frame = stopped_frame(child)
                assert Path(frame["source"]["path"]) == node and frame["line"] == line
                assert local_variables(child, frame["id"])["count"] == "3"
                child.request("continue", {"threadId": thread_id})
                thread.join(60)
                assert result["answer"].json()["result"] == separator.join(["hello flow"] * 3)
                if edited is None:
                    break
                revision = show(name, cwd=cwd)["deployments"][0]["revision"]
                save(node, node.read_text().replace(f'"{separator}".join', f'"{edited}".join'))
                wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["revision"] > revision, timeout=60)
                child = latest_child(client)
        finally:
            client.close()
    finally:
        devtui("down", "-n", name, cwd=cwd, check=None)


# -- stray connections to the debug port (issue 19, item 7) ----------------------------------------


def closed_by_the_other_side(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything ``sock`` receives until the other side closes it (a timeout fails the test)."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def stray_connections(port: int) -> socket.socket:
    """What port scans and confused clients do to the debug port: three connect-and-closes in a
    row, an HTTP request, and a connection that says nothing (returned, still open)."""
    for _ in range(3):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        # Turned away before debugpy saw it: debugpy would have greeted it with telemetry events.
        assert closed_by_the_other_side(garbage) == b""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def hit_breakpoint_once(cwd: Path, folder: Path, name: str) -> None:
    """A real client attaches, sets a breakpoint, a request stops there, and `show` says so."""
    score = folder / "onlinescoring" / "score.py"
    line = breakpoint_line(score)
    client = DebugClient(launch_configuration(cwd, name))
    try:
        client.set_breakpoints(str(score), [line])
        child = client.next_child()
        wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)
        thread, result = post_in_background(show(name, cwd=cwd)["scoring_uri"],
                                            (folder / "sample-request.json").read_bytes())
        thread_id, frame = stopped_frame(child)
        assert Path(frame["source"]["path"]).name == "score.py" and frame["line"] == line
        debugger = wait_for(lambda: (d := show(name, cwd=cwd)["deployments"][0]["debugger"])["state"] == "stopped" and d,
                            timeout=30)
        assert debugger["detail"] == f"at score.py:{line} in run()"
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].status_code == 200
        wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)
    finally:
        client.close()


def test_stray_connections_to_the_debug_port_leave_debugging_working(workspace):
    """Issue 19, item 7: after one connect-and-close (a port scan), debugpy answered no client
    again, and `show` still said listening."""
    cwd, folder = workspace
    port = free_port()
    devtui("up", str(folder), "--debug", "--debug-port", str(port), "--detach", cwd=cwd)
    silent = stray_connections(port)
    try:
        assert show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "listening"
        hit_breakpoint_once(cwd, folder, "my-endpoint")  # while the silent one is still connected
    finally:
        silent.close()
    log = devtui("logs", "-n", "my-endpoint", cwd=cwd).stdout
    assert "The debug port closed a connection from 127.0.0.1:" in log, log
    assert "which closed it without a word (not a debugger client)" in log, log


def test_container_runtime_stray_connections_to_the_debug_port(workspace, docker_client, run_id):
    cwd, folder = workspace
    name = unique_name(run_id, "debugscan")
    port = free_port()
    devtui("up", str(folder), "--runtime", "container", "-n", name, "--debug", "--debug-port", str(port), "--detach",
           cwd=cwd)
    stray_connections(port).close()
    hit_breakpoint_once(cwd, folder, name)


def gate_process(port: int) -> tuple[int, list[bytes]]:
    """The gate process that owns the debug port ``port`` (its command line names the port):
    its pid and its command line."""
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"inference_server.debug_gate" in argv and str(port).encode() in argv:
            return int(entry), argv
    raise LookupError(f"no gate process for port {port}")


def test_a_gate_that_dies_is_started_again_on_the_same_port(workspace):
    cwd, folder = workspace
    port = free_port()
    devtui("up", str(folder), "--debug", "--debug-port", str(port), "--detach", cwd=cwd)
    first, _ = gate_process(port)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: f"The debug port's gate exited; listening on 127.0.0.1:{port} again"
             in devtui("logs", "-n", "my-endpoint", cwd=cwd).stdout, timeout=30)
    second, argv = gate_process(port)
    # Started while debugpy follows subprocesses, yet not under the debugger: it would join the
    # user's session as a process of their own.
    assert second != first and not any(b"pydevd" in arg or b"debugpy" in arg for arg in argv), argv
    hit_breakpoint_once(cwd, folder, "my-endpoint")


def answers(port: int, timeout: float) -> bool:
    """Whether debugpy's adapter on ``port`` answers a DAP `initialize` within ``timeout``."""
    session = Session("127.0.0.1", port, "probe")
    try:
        session.request("initialize", {"clientID": "probe", "adapterID": "debugpy"}, timeout=timeout)
        return True
    except DapError:
        return False
    finally:
        session.close()


def test_a_wedged_debugpy_is_shown_as_failed_and_restarted_once_no_client_is_attached(workspace):
    """If debugpy's listener is stopped after all (here by connecting to it directly, past the
    gate), `show` says so instead of listening, a client that was attached keeps working, and
    once it leaves devtui restarts the server, which brings the debug port back."""
    cwd, folder = workspace
    port = free_port()
    devtui("up", str(folder), "--debug", "--debug-port", str(port), "--detach", cwd=cwd)
    client = DebugClient(launch_configuration(cwd, "my-endpoint"))
    try:
        child = client.next_child()  # the worker's session, joined before debugpy stops answering
        sockets = client.parent.wait_event("debugpySockets")["sockets"]
        inner = next(s["port"] for s in sockets if not s["internal"])
        assert inner != port  # debugpy's own port is not the debug port

        def wedged() -> bool:
            socket.create_connection(("127.0.0.1", inner), timeout=10).close()
            return not answers(inner, timeout=3)

        wait_for(wedged, timeout=120)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as late:
            body = json.dumps({"seq": 1, "type": "request", "command": "initialize", "arguments": {}}).encode()
            late.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert closed_by_the_other_side(late) == b""
        debugger = wait_for(lambda: (d := show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"])["state"] == "failed"
                            and d, timeout=30)
        assert "debugpy stopped answering new connections" in debugger["detail"]
        assert "restarts the server once no client is attached" in debugger["detail"]
        # The attached client still works, and a stop at its breakpoint shows before the failure.
        score = folder / "onlinescoring" / "score.py"
        client.set_breakpoints(str(score), [breakpoint_line(score)])
        thread, result = post_in_background(show("my-endpoint", cwd=cwd)["scoring_uri"],
                                            (folder / "sample-request.json").read_bytes())
        thread_id, _ = stopped_frame(child)
        wait_for(lambda: show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "stopped", timeout=30)
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].status_code == 200
        wait_for(lambda: show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "failed", timeout=30)
    finally:
        client.close()
    # Once the client left, devtui restarts the server by itself, and the debug port answers again.
    wait_for(lambda: show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "listening", timeout=60)
    assert "stopped answering new clients: restarting the server" in devtui(
        "logs", "-n", "my-endpoint", "--container", "devtui", cwd=cwd).stdout
    hit_breakpoint_once(cwd, folder, "my-endpoint")


def test_a_save_while_a_request_is_held_at_a_breakpoint_swaps_at_once_and_the_stop_clears(workspace):
    """A worker held at a breakpoint is frozen whole (debugpy suspends its event loop too), so it
    can neither apply a patch nor give up waiting for one: the save is a worker swap at once, said
    so. Once the held request is let go and the old worker exits, the stop is no longer shown."""
    cwd, folder = workspace
    devtui("up", str(folder), "--debug", "--debug-port", str(free_port()), "--detach", cwd=cwd)
    score = folder / "onlinescoring" / "score.py"
    line = breakpoint_line(score)
    client = DebugClient(launch_configuration(cwd, "my-endpoint"))
    try:
        client.set_breakpoints(str(score), [line])
        child = client.next_child()
        record = show("my-endpoint", cwd=cwd)
        thread, result = post_in_background(record["scoring_uri"], (folder / "sample-request.json").read_bytes())
        thread_id, _ = stopped_frame(child)
        wait_for(lambda: show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "stopped", timeout=30)
        revision = record["deployments"][0]["revision"]
        save(score, re.sub(r"digits = int\(.*\)", "digits = 1", score.read_text()))  # run() only: a patch otherwise
        deployment = wait_for(lambda: (d := show("my-endpoint", cwd=cwd)["deployments"][0])["revision"] > revision
                              and d, timeout=30)
        assert deployment["last_reload"]["how"].startswith("worker swap (a request is held at a breakpoint"), deployment
        child.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].status_code == 200  # the held request finishes on the code it started with
        wait_for(lambda: show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)
        # The new worker serves the save, and stops at the same breakpoint.
        thread, result = post_in_background(record["scoring_uri"], (folder / "sample-request.json").read_bytes())
        newest = latest_child(client)
        thread_id, _ = stopped_frame(newest)
        newest.request("continue", {"threadId": thread_id})
        thread.join(60)
        assert result["answer"].json() == [199.8, 74.0]
    finally:
        client.close()


def test_requests_from_any_client_held_at_a_breakpoint_are_reported_by_x_request_id(workspace):
    """Issue 23, item 5: a request sent by curl (here httpx), not from the app, that the debugger
    holds is in flight in the Traces tab: the stop that reaches devtui names it by its x-request-id
    (the client's, or the one the server answers with), with its trace id, and clears once let go."""
    cwd, folder = workspace
    devtui("up", str(folder), "--debug", "--debug-port", str(free_port()), "--traces", "--detach", cwd=cwd)
    score = folder / "onlinescoring" / "score.py"
    client = DebugClient(launch_configuration(cwd, "my-endpoint"))

    def debugger() -> dict:
        return show("my-endpoint", cwd=cwd)["deployments"][0]["debugger"]

    try:
        client.set_breakpoints(str(score), [breakpoint_line(score)])
        child = client.next_child()
        url, body = show("my-endpoint", cwd=cwd)["scoring_uri"], (folder / "sample-request.json").read_bytes()
        request_id, seen = f"curl-{new_run_id()}", {}
        for headers in ({"x-request-id": request_id}, {}):  # the client's id, then none: the server's own
            thread, result = post_in_background(url, body, headers)
            thread_id, _ = stopped_frame(child)
            held = wait_for(lambda: (d := debugger())["state"] == "stopped" and d.get("held"), timeout=30)
            assert [(h["method"], h["path"]) for h in held] == [("POST", "/score")], held
            assert re.fullmatch(r"[0-9a-f]{32}", held[0]["trace_id"]), held
            child.request("continue", {"threadId": thread_id})
            thread.join(60)
            answer = result["answer"]
            assert answer.status_code == 200
            assert held[0]["request_id"] == answer.headers["x-request-id"] == headers.get("x-request-id",
                                                                                            held[0]["request_id"])
            assert "held" not in wait_for(lambda: (d := debugger())["state"] == "attached" and d, timeout=30)
            seen[held[0]["trace_id"]] = held[0]["request_id"]
    finally:
        client.close()
    # The trace id said is the one the request's trace has.
    wait_for(lambda: seen.items() <= {(t["trace_id"], t["request_id"]) for t in json.loads(
        devtui("traces", "-n", "my-endpoint", "-o", "json", cwd=cwd).stdout)}, timeout=30, message="their traces")
