"""request_settings as the scoring server emulates them, with run() called on the event loop one
call at a time (issue 9): requests that arrive while run() holds the worker are counted in
flight as the endpoint's front end counts them, and their time runs from when they arrived.

Requests go over raw sockets, so that a test knows they are in the server's sockets before
run() lets the worker go (a file the test creates)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest

from contract_servers import start_ours
from helpers import wait_for

SCRIPT = Path(__file__).parent / "contract_scripts" / "score_gate.py"


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def _send(sock: socket.socket, body: dict) -> None:
    data = json.dumps(body).encode()
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


def _answer(sock: socket.socket) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read() or b"{}")


def _hold(port: int, gate: Path, **options) -> socket.socket:
    """A request whose run() holds the worker until ``gate`` exists; returns once it does."""
    holder = _connect(port)
    _send(holder, {"gate": str(gate), **options})
    wait_for(lambda: Path(f"{gate}.running").exists(), message="run() to hold the worker")
    return holder


def test_requests_that_arrive_while_run_holds_the_worker_count_it_in_flight(tmp_path):
    # At most 2 in flight: the one run() holds, and one of the four that arrive meanwhile.
    server = start_ours(SCRIPT, None, tmp_path, "--max-concurrent-requests", "1", name="ours-arrivals")
    gate = tmp_path / "gate"
    try:
        kept = [_connect(server.port) for _ in range(2)]
        for sock in kept:  # keep-alive connections, open and answered before, as most clients keep them
            _send(sock, {})
            assert _answer(sock)[0] == 200
        holder = _hold(server.port, gate)
        fresh = [_connect(server.port) for _ in range(2)]  # opened while run() holds the worker
        for sock in kept + fresh:
            _send(sock, {})
        sent = time.monotonic()
        # They wait in their sockets while run() holds the worker: that is the case under test.
        wait_for(lambda: time.monotonic() > sent + 0.1, message="the requests to wait 100 ms")
        gate.touch()
        assert _answer(holder) == (200, {"gated": True})
        answers = [_answer(sock) for sock in kept + fresh]
        assert sorted(status for status, _ in answers) == [200, 429, 429, 429], answers
        assert all("2 x request_settings.max_concurrent_requests_per_instance" in body["message"]
                   for status, body in answers if status == 429), answers
        # Once they are answered, the worker takes requests again.
        again = _connect(server.port)
        _send(again, {})
        assert _answer(again) == (200, {"gated": False})
    finally:
        server.stop()


def test_a_request_whose_time_runs_out_while_it_waits_is_408_and_never_runs(tmp_path):
    server = start_ours(SCRIPT, None, tmp_path, "--request-timeout-ms", "300", name="ours-waiting")
    gate, mark = tmp_path / "gate", tmp_path / "mark"
    try:
        # A run() that catches the timeout's interruption and goes on: too late all the same.
        holder = _hold(server.port, gate, stubborn=True)
        waiting = _connect(server.port)
        _send(waiting, {"mark": str(mark)})
        sent = time.monotonic()
        # What is tested is a request timeout: time has to pass, not an event.
        wait_for(lambda: time.monotonic() > sent + 0.5, message="the waiting request's 300 ms to pass")
        gate.touch()
        holder_status, holder_body = _answer(holder)
        assert holder_status == 408 and "request_timeout_ms" in holder_body["message"]
        status, body = _answer(waiting)
        assert status == 408 and "request_timeout_ms" in body["message"]
        assert not mark.exists(), "run() was called for a request the endpoint had already answered 408"
        assert "did not finish within 300 ms" in server.output()
        assert "waited 300 ms behind other run() calls" in server.output()
        # The worker goes on serving; a request that does not wait is answered.
        again = _connect(server.port)
        _send(again, {"mark": str(mark)})
        assert _answer(again) == (200, {"gated": False})
        assert mark.exists()
    finally:
        server.stop()


def test_run_calls_at_once_follow_worker_count_not_max_concurrent_requests(monkeypatch, tmp_path):
    """As in the cloud: max_concurrent_requests_per_instance sets the 429 limit; how many run()
    calls execute at once is the scoring server's WORKER_COUNT (default 1)."""
    from inference_server.options import options_from, parse

    script = str(SCRIPT)
    monkeypatch.setenv("AML_APP_ROOT", str(tmp_path))
    # options_from sets these as the reference server does: restored after the test.
    for name in ("WORKER_COUNT", "AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR", "HTTP_X_MS_SERVER_VERSION"):
        monkeypatch.delenv(name, raising=False)
    options = options_from(parse(["--entry_script", script, "--max-concurrent-requests", "8"]))
    assert (options.max_concurrent, options.max_in_flight) == (1, 16)
    monkeypatch.setenv("WORKER_COUNT", "3")
    assert options_from(parse(["--entry_script", script])).max_concurrent == 3
    assert options_from(parse(["--entry_script", script, "--worker_count", "2"])).max_concurrent == 2
    monkeypatch.setenv("WORKER_COUNT", "many")
    with pytest.raises(SystemExit, match="WORKER_COUNT='many' is not a whole number"):
        options_from(parse(["--entry_script", script]))


def test_admission_counts_each_connection_once_and_simultaneous_arrivals_together():
    """The rules of inference_server/admission.py on their own, with arrivals given as 'this long
    ago' as the kernel reports them: limit 2, as for max_concurrent_requests_per_instance 1."""
    from inference_server.admission import Admission

    admission = Admission(2)
    holder = admission.arrive(1.0, "holder")  # run() held the loop since it arrived
    admission.leave(holder)  # and answered it just now
    first = admission.arrive(0.5, "k1")  # read now, arrived while the holder ran
    second = admission.arrive(0.5, "k2")  # at the same moment, on another connection
    assert (first.admitted, first.in_flight) == (True, 1)
    assert (second.admitted, second.in_flight) == (False, 2)

    # A client that sends its next request on the same connection the moment it has its answer:
    # to the kernel's clock that is at once, and the connection still counts once.
    admission = Admission(2)
    before = admission.arrive(1.0, "a")
    admission.leave(before)
    admission.arrive(0.499, "a")
    other = admission.arrive(0.5, "b")
    assert (other.admitted, other.in_flight) == (True, 1)
