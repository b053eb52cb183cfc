"""The debug port's gate (inference_server/debug_gate.py), on real sockets: what it lets through to
debugpy, what it turns away, and how it tells that debugpy stopped answering (issue 19, item 7).
The runs with devtui and debugpy themselves are in test_debug.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest

from helpers import ROOT, wait_for
from inference_server.debug_gate import BUFFER_LIMIT, NOT_DAP, Gate, bind, first_request


def dap(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


INITIALIZE = dap({"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "debugpy"}})
TELEMETRY = dap({"seq": 1, "type": "event", "event": "output", "body": {"category": "telemetry"}})


@pytest.mark.parametrize("data, verdict", [
    (b"", (False, "")),
    (b"Content-Len", (False, "")),
    (b"Content-Length: 12\r", (False, "")),
    (INITIALIZE[:-5], (False, "")),
    (INITIALIZE, (True, "")),
    (INITIALIZE + b"Content-Length: 3", (True, "")),  # the next message may follow at once
    (b"content-length:%d\r\n\r\n%s" % (len(INITIALIZE) - 22, INITIALIZE[22:]), (True, "")),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", (True, NOT_DAP)),
    (b"GET", (False, "")),  # could still be a header's name
    (b"GET /", (True, NOT_DAP)),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", (True, NOT_DAP)),  # a TLS hello
    (b"SSH-2.0-OpenSSH_9.6\r\n", (True, NOT_DAP)),
    (b"\r\n\r\n", (True, NOT_DAP)),
    (b"X-Other: 1\r\n\r\n{}", (True, NOT_DAP)),  # no Content-Length
    (b"Content-Length: 0\r\n\r\n", (True, NOT_DAP)),
    (b"Content-Length: 99999999\r\n\r\n", (True, NOT_DAP)),
    (b"Content-Length: 4\r\n\r\nnope", (True, NOT_DAP)),
    (b"Content-Length: 2\r\n\r\n[]", (True, NOT_DAP)),
    (TELEMETRY, (True, NOT_DAP)),  # an event, not a request
    (b"X" * 2000, (True, NOT_DAP)),  # a header that never ends
])
def test_first_request_tells_dap_from_the_rest(data, verdict):
    assert first_request(data) == verdict


class Running:
    """A gate on a free port, stepping in a thread, in front of ``upstream``; what it says is kept."""

    def __init__(self, upstream: int, handshake_s: float = 10, greeting_s: float = 10):
        self.said: list[str] = []
        self.gate = Gate(bind("127.0.0.1", 0), self.said.append, handshake_s, greeting_s)
        self.port = self.gate.listener.getsockname()[1]
        self.gate.forward_to("127.0.0.1", upstream)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.gate.step(0.05)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        for sock in [*self.gate.pending, *self.gate.pipes]:
            sock.close()
        self.gate.listener.close()


@pytest.fixture
def upstream():
    """A listening socket where debugpy would be: the test accepts (or not) and answers itself."""
    sock = bind("127.0.0.1", 0)
    sock.settimeout(10)
    yield sock
    sock.close()


@pytest.fixture
def gate(upstream):
    gates: list[Running] = []

    def start(**timeouts) -> Running:
        gates.append(Running(upstream.getsockname()[1], **timeouts))
        return gates[-1]

    yield start
    for running in gates:
        running.stop()


def receive(sock: socket.socket, size: int, chunk: int = 65536) -> bytes:
    received = b""
    while len(received) < size:
        data = sock.recv(chunk)
        assert data, f"closed after {len(received)} of {size} bytes"
        received += data
    return received


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_only_a_dap_request_gets_through_and_a_silent_connection_holds_up_no_one(gate, upstream):
    running = gate(handshake_s=1)
    running.connect().close()  # a port scan
    with running.connect() as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_until_closed(garbage) == b""
    silent = running.connect()
    with running.connect() as client:
        client.sendall(INITIALIZE)
        debugpy, _ = upstream.accept()  # the first connection debugpy sees is the real client's
        with debugpy:
            debugpy.settimeout(10)
            assert debugpy.recv(65536) == INITIALIZE
            debugpy.sendall(TELEMETRY * 2)
            assert receive(client, len(TELEMETRY) * 2) == TELEMETRY * 2
    # The silent one is closed once its time is up, without a byte.
    assert read_until_closed(silent) == b""
    wait_for(lambda: len([line for line in running.said if line.startswith("rejected")]) == 3)
    rejected = [line.split(" ", 2)[2] for line in running.said]
    assert rejected == ["closed it without a word", NOT_DAP, "sent no DAP request within 1 s"]


def test_a_large_answer_reaches_a_slow_client_whole(gate, upstream):
    running = gate()
    answer = dap({"seq": 2, "type": "response", "request_seq": 1, "success": True,
                  "body": {"value": "x" * 5_000_000}})
    with running.connect() as client:
        client.sendall(INITIALIZE)
        debugpy, _ = upstream.accept()
        with debugpy:
            debugpy.settimeout(10)
            assert debugpy.recv(65536) == INITIALIZE
            sender = threading.Thread(target=debugpy.sendall, args=(answer,), daemon=True)
            sender.start()
            assert receive(client, len(answer), chunk=1000) == answer  # in smaller bites than debugpy writes
            sender.join(10)


def test_a_client_that_does_not_read_does_not_fill_the_gates_memory(gate, upstream):
    running = gate()
    answer = dap({"seq": 2, "type": "response", "request_seq": 1, "success": True,
                  "body": {"value": "x" * (5 * BUFFER_LIMIT)}})
    with running.connect() as client:
        client.sendall(INITIALIZE)
        debugpy, _ = upstream.accept()
        with debugpy:
            debugpy.settimeout(30)
            assert debugpy.recv(65536) == INITIALIZE
            sender = threading.Thread(target=debugpy.sendall, args=(answer,), daemon=True)
            sender.start()

            def pipe_of_debugpy():
                return next(p for p in running.gate.pipes.values() if p.upstream.getpeername() == debugpy.getsockname())

            # The gate stops reading from debugpy while the client lets its share pile up.
            wait_for(lambda: pipe_of_debugpy().upstream not in running.gate.selector.get_map(),
                     message="the gate to stop reading from debugpy", timeout=60)
            assert len(pipe_of_debugpy().to_client) < BUFFER_LIMIT + 65536
            assert receive(client, len(answer)) == answer  # and the rest follows when it reads
            sender.join(30)


def test_a_debugpy_that_accepts_no_more_is_reported_wedged(gate, upstream):
    """debugpy's listener, once its thread is dead, still completes connections but never
    accepts them: nothing greets the client. The gate says so, and says so again when it answers;
    a client attached before keeps talking to debugpy, which is not answering a new one."""
    running = gate(greeting_s=1)
    attached = running.connect()
    attached.sendall(INITIALIZE)
    debugpy_attached, _ = upstream.accept()
    debugpy_attached.sendall(TELEMETRY)
    assert receive(attached, len(TELEMETRY)) == TELEMETRY
    with running.connect() as client:  # debugpy accepts no more from here
        client.sendall(INITIALIZE)
        assert read_until_closed(client) == b""  # closed at the deadline, not left hanging
    wait_for(lambda: running.said == ["wedged"])
    debugpy_attached.sendall(TELEMETRY)
    assert receive(attached, len(TELEMETRY)) == TELEMETRY
    assert running.said == ["wedged"]
    # The queued connection that was given up on, then a new one that is greeted.
    upstream.accept()[0].close()
    with running.connect() as client:
        client.sendall(INITIALIZE)
        debugpy, _ = upstream.accept()
        with debugpy:
            debugpy.sendall(TELEMETRY)
            assert receive(client, len(TELEMETRY)) == TELEMETRY
            wait_for(lambda: running.said == ["wedged", "answering"])
    attached.close()
    debugpy_attached.close()


def test_a_client_that_leaves_at_once_is_not_passed_on_before_debugpy_greeted_it(gate, upstream):
    """debugpy writing its greeting to a connection already closed is what killed its listener:
    the gate keeps its side open until the greeting (two events and an answer) has come."""
    running = gate()
    with running.connect() as client:
        client.sendall(INITIALIZE)
        debugpy, _ = upstream.accept()
    with debugpy:
        debugpy.settimeout(10)
        assert debugpy.recv(65536) == INITIALIZE
        wait_for(lambda: all(p.client is None for p in running.gate.pipes.values()) and running.gate.pipes,
                 message="the gate to notice the client left")
        debugpy.sendall(TELEMETRY * 2)
        debugpy.sendall(dap({"seq": 3, "type": "response", "request_seq": 1, "success": True}))
        assert read_until_closed(debugpy) == b""  # closed now, and only now
    wait_for(lambda: not running.gate.pipes)


def test_the_gate_process_reports_a_taken_port_and_ends_with_its_stdin(upstream):
    taken = upstream.getsockname()[1]
    refused = subprocess.run([sys.executable, "-m", "inference_server.debug_gate", "127.0.0.1", str(taken)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stdout.startswith("failed ") and "in use" in refused.stdout

    process = subprocess.Popen([sys.executable, "-m", "inference_server.debug_gate", "127.0.0.1", "0"],
                               cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("listening ")
        process.stdin.close()  # the supervisor is gone
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
