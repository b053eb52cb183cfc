"""A client that hangs up on a streamed answer frees its slot (issue 19, item 6).

Four clients in turn ask for an answer that streams forever, read a little of it and close their
sockets; each must get its 200, and then so must a new request, where before they were answered
429 ("2 already in flight") until the worker was replaced. The generator behind each stream is
stopped and closed: its ``finally`` writes a file. Real servers (``python -m inference_server``,
its supervisor forking the worker) and real sockets; the endpoint is emulated with
max_concurrent_requests_per_instance 1, so 2 requests may be in flight.

For score.py, a run() that returns ``AMLResponse(generator, 200)`` is streamed, as the reference
server's gunicorn streams it (it was read whole first, which an endless generator never let end),
with run() on the event loop (WORKER_COUNT 1) and on threads (WORKER_COUNT 3). For a prompt flow,
a chat node that yields forever, on prompt flow's flask engine (its default), in the process
runtime's server and through `devtui up --runtime container`. (On the fastapi engine Starlette
already let the request go when its client left.)
"""

from __future__ import annotations

import importlib.util
import json
import socket
import textwrap
from pathlib import Path

import pytest

from contract_servers import start_ours, start_server
from helpers import free_port, wait_for

HANGUPS = 4

SCRIPT = '''\
import itertools
import json
import os
import time

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(raw):
    request = json.loads(raw)
    return AMLResponse(lines(request["name"], request.get("count"), os.environ["STREAM_MARKS"]), 200,
                       {"Content-Type": "text/plain"})


def lines(name, count, marks):
    """COUNT lines, or lines without end; a file named NAME in MARKS once it is closed."""
    try:
        for index in itertools.count() if count is None else range(count):
            time.sleep(0.005)
            yield f"{name} {index}\\n"
    finally:
        open(os.path.join(marks, name), "w").close()
'''

FLOW = {
    "flow.dag.yaml": """\
inputs:
  question:
    type: string
    is_chat_input: true
  chat_history:
    type: list
    default: []
    is_chat_history: true
outputs:
  answer:
    type: string
    reference: ${reply.output}
    is_chat_output: true
nodes:
- name: reply
  type: python
  source:
    type: code
    path: reply.py
  inputs:
    question: ${inputs.question}
""",
    "reply.py": """\
import itertools
import os
import time
from collections.abc import Iterator

from promptflow.core import tool


@tool
def reply(question: str) -> Iterator[str]:
    \"\"\"Words without end, or three for the question "last"; a file named after the question in
    STREAM_MARKS once the generator is closed.\"\"\"
    try:
        for index in itertools.count() if question != "last" else range(3):
            time.sleep(0.005)
            yield f"{question} {index} "
    finally:
        if os.environ.get("STREAM_MARKS"):  # not in a container
            open(os.path.join(os.environ["STREAM_MARKS"], question), "w").close()
""",
}


def _request(port: int, body: dict, accept: bytes = b"") -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s"
                 b"Content-Length: %d\r\n\r\n%s" % (accept, len(data), data))
    return sock


def _read_a_little_and_hang_up(port: int, body: dict, until: bytes, accept: bytes = b"") -> int:
    """Ask for a stream; on a 200, read until UNTIL has come, then close the socket. The status."""
    with _request(port, body, accept) as sock:
        got = b""
        while b"\r\n\r\n" not in got:
            got += sock.recv(4096) or b"?\r\n\r\n"  # the end of the stream, as an empty answer
        status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else 0
        while status == 200 and until not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        return status


def _hang_up_then_score_again(port: int, marks: Path | None, finite: dict, accept: bytes) -> None:
    for client in range(HANGUPS):
        name = f"client{client}"
        wait_for(lambda name=name: _read_a_little_and_hang_up(port, {"question": name, "name": name},
                                                              f"{name} 1".encode(), accept) == 200,
                 timeout=15, message=f"{name}'s stream to be answered 200 (not 429)")

    def answered() -> bool:
        with _request(port, finite) as sock:
            head = sock.recv(64)
            return head.startswith(b"HTTP/1.1 200 ")

    wait_for(answered, timeout=15, message="a new request to be answered 200 (not 429)")
    if marks is None:
        return
    wait_for(lambda: all((marks / f"client{client}").exists() for client in range(HANGUPS)), timeout=15,
             message="every hung-up stream's generator to be closed")


@pytest.mark.parametrize("worker_count", ["1", "3"])
def test_a_score_py_stream_whose_client_hangs_up_frees_its_slot(tmp_path, monkeypatch, worker_count):
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "code" / "score.py"
    script.parent.mkdir()
    script.write_text(SCRIPT, encoding="utf-8")
    monkeypatch.setenv("STREAM_MARKS", str(marks))
    server = start_ours(script, None, tmp_path, "--max-concurrent-requests", "1", "--worker_count", worker_count,
                        name=f"ours-stream-{worker_count}")
    try:
        _hang_up_then_score_again(server.port, marks, {"name": "last", "count": 3}, b"")
        assert "The client left before the answer was complete" in server.output()
    finally:
        server.stop()


@pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                    reason="promptflow-core is not installed (pip install -e '.[flow]')")
def test_a_flow_stream_whose_client_hangs_up_frees_its_slot(tmp_path):
    import sys

    from contract_servers import base_env

    marks = tmp_path / "marks"
    marks.mkdir()
    flow = tmp_path / "flow"
    flow.mkdir()
    for name, text in FLOW.items():
        (flow / name).write_text(textwrap.dedent(text), encoding="utf-8")
    env = base_env(flow / "flow.dag.yaml")
    env = {key: value for key, value in env.items() if not key.startswith(("PROMPTFLOW_", "PF_"))}
    env["STREAM_MARKS"] = str(marks)
    port = free_port()
    command = [sys.executable, "-m", "inference_server", "--flow", str(flow), "--port", str(port),
               "--max-concurrent-requests", "1"]
    server = start_server("ours-flow-stream", command, env, tmp_path, port, tmp_path / "flow.log",
                          ready_path="/health", timeout=60)
    try:
        _hang_up_then_score_again(port, marks, {"question": "last"}, b"Accept: text/event-stream\r\n")
        assert "The client left before the answer was complete" in server.output()
    finally:
        server.stop()


def test_a_finite_stream_is_sent_as_the_reference_server_sends_it(tmp_path, monkeypatch):
    """Chunked, without a content-length, with the same body: streamed, not read whole first."""
    import httpx

    from contract_servers import start_reference

    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "code" / "score.py"
    script.parent.mkdir()
    script.write_text(SCRIPT, encoding="utf-8")
    monkeypatch.setenv("STREAM_MARKS", str(marks))
    answers = {}
    for name, start in (("ours", start_ours), ("reference", start_reference)):
        with start(script, None, tmp_path, name=f"{name}-finite-stream") as server:
            answers[name] = httpx.post(f"{server.url}/score", json={"name": name, "count": 5}, timeout=30)
    ours, reference = answers["ours"], answers["reference"]
    assert (ours.status_code, ours.headers["content-type"]) == (reference.status_code,
                                                                reference.headers["content-type"])
    assert ours.text.replace("ours", "reference") == reference.text == "".join(f"reference {i}\n" for i in range(5))
    assert "content-length" not in reference.headers and reference.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in ours.headers and ours.headers["transfer-encoding"] == "chunked"
    assert ours.headers["x-ms-run-function-failed"] == reference.headers["x-ms-run-function-failed"] == "False"


def test_a_stream_whose_generator_fails_is_cut_short_and_its_traceback_logged(tmp_path):
    """The client must not take a cut stream for a whole one: the connection closes without the
    last chunk. The log has the script's traceback, from its own code on."""
    import httpx

    script = tmp_path / "code" / "score.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent('''\
        from azureml.contrib.services.aml_response import AMLResponse


        def init():
            pass


        def broken():
            yield "one\\n"
            raise ValueError("broke mid-stream")


        def run(raw):
            return AMLResponse(broken(), 200)
        '''), encoding="utf-8")
    with start_ours(script, None, tmp_path, name="ours-broken-stream") as server:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{server.url}/score", json={}, timeout=30)
        assert httpx.get(server.url, timeout=30).status_code == 200  # and the worker goes on serving
        log = wait_for(lambda: server.output() if "broke mid-stream" in server.output() else None,
                       message="the traceback in the log")
    traceback = log[log.index("Encountered Exception"):]
    assert f'File "{script}", line 10, in broken' in traceback and "ValueError: broke mid-stream" in traceback
    assert "inference_server" not in traceback.split("ValueError")[0], traceback


@pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                    reason="promptflow-core is not installed (pip install -e '.[flow]')")
def test_a_flow_stream_whose_client_hangs_up_frees_its_slot_in_a_container(tmp_path, endpoint):
    """The same through `devtui up --runtime container` (the chat sample's deployment, its default
    request_settings: 2 in flight), the client on the container's published port."""
    from urllib.parse import urlsplit

    from flow_reference import copy_sample
    from helpers import devtui, show

    sample = copy_sample("flow-chat", tmp_path)
    for path in (sample / "flow").glob("*.py"):
        path.unlink()
    for name, text in FLOW.items():
        (sample / "flow" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    name = endpoint("hangup")
    devtui("up", str(sample), "--runtime", "container", "--detach", "-n", name, timeout=600)
    port = urlsplit(show(name)["scoring_uri"]).port
    _hang_up_then_score_again(port, None, {"question": "last"}, b"Accept: text/event-stream\r\n")
    assert "The client left before the answer was complete" in devtui("logs", "-n", name).stdout


@pytest.mark.anyio
async def test_the_wsgi_bridge_ends_the_request_and_closes_the_answer_when_its_client_leaves():
    """inference_server/wsgi_bridge.py on its own: a WSGI app whose answer never ends, a client
    that hangs up after a few chunks. The request ends (its slot is free) and the answer is
    closed, as WSGI requires, on the thread that iterated it."""
    import asyncio
    import threading
    import time

    from helpers import HangingUpClient, async_wait_for
    from inference_server.wsgi_bridge import WsgiBridge

    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def words():
            try:
                while True:
                    time.sleep(0.001)
                    yield b"word "
            finally:
                closed.set()

        return words()

    client = HangingUpClient("GET")
    sent = client.sent
    request = client.request(WsgiBridge(app))
    await async_wait_for(lambda: len(sent) > 3, message="the answer to stream")
    assert sent[0]["status"] == 200
    client.hang_up()
    await asyncio.wait_for(request, 10)
    await async_wait_for(closed.is_set, message="the answer to be closed")
    assert all(message.get("more_body", True) for message in sent), "a stream cut short was sent as complete"
