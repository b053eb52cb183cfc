"""While no revision serves, every connection is answered at once: 503 and why (issue 13, item 8).

A first revision that failed in init() (``--stay-up-on-failure``, as devtui starts the server), an
init() still running, a worker that crashed and is starting again: the socket is bound and nobody
accepts on it, so a client would wait for ever. Real servers (``python -m inference_server``) as
child processes; a blocked init() waits for a file the test creates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from helpers import ROOT, free_port, pid_alive, wait_for
from inference_server import protocol

GOOD = '''
import os
def init():
    pass
def run(raw):
    return {"revision": "good", "pid": os.getpid()}
'''
INIT_RAISES = '''
def init():
    raise RuntimeError("init failed on purpose")
def run(raw):
    return {"revision": "broken"}
'''
# init() waits until the test creates the file RELEASE (a path next to the script).
BLOCKED = '''
import os, time
RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")
def init():
    while not os.path.exists(RELEASE):
        time.sleep(0.02)
def run(raw):
    return {"revision": "released", "pid": os.getpid()}
'''
CLIENT_TIMEOUT = 5  # generous: an answer "at once" is far below it; today's hang is far above


@dataclass
class Server:
    folder: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    log_file: object = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str) -> None:
        wait_for(lambda: text in self.log() or self.process.poll() is not None, timeout=30,
                 message=f"{text!r} in the server's log")
        assert self.process.poll() is None, f"the server exited with {self.process.returncode}:\n{self.log()}"

    def save(self, source: str) -> None:
        (self.folder / "score.py").write_text(source)

    def reload(self, source: str) -> None:
        self.save(source)
        self.process.send_signal(signal.SIGHUP)

    def release(self) -> None:
        (self.folder / "release").write_text("go")

    def post(self, **kwargs) -> httpx.Response:
        return httpx.post(self.url + "/score", content=b'{"data": 1}', timeout=CLIENT_TIMEOUT, **kwargs)

    def hold_a_request(self) -> tuple[threading.Thread, list[httpx.Response]]:
        """A request in flight, sent from a thread, whose run() (RUN_BLOCKS) runs until
        ``release()``; its answer lands in the list."""
        answers: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: answers.append(
            httpx.post(self.url + "/score", content=b"{}", timeout=60)))
        thread.start()
        wait_for(lambda: (self.folder / "running").exists(), timeout=30, message="run() to be running")
        return thread, answers


@pytest.fixture
def start(tmp_path):
    started: list[Server] = []

    def start_server(source: str, *extra: str, pass_fds: tuple[int, ...] = ()) -> Server:
        folder = tmp_path / f"code{len(started)}"
        folder.mkdir()
        (folder / "score.py").write_text(source)
        port = free_port()
        env = dict(os.environ, AML_APP_ROOT=str(folder), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        env.pop("AZUREML_MODEL_DIR", None)
        # The server under test is this checkout's, whatever the environment has installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        log_path = tmp_path / f"server{len(started)}.log"
        log_file = open(log_path, "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "inference_server", "--entry_script", str(folder / "score.py"),
             "--port", str(port), "--stay-up-on-failure", *extra],
            env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=pass_fds)
        server = Server(folder, port, process, log_path, log_file)
        started.append(server)
        return server

    yield start_server
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)
        try:
            os.killpg(server.process.pid, signal.SIGKILL)  # workers too: nothing outlives the test
        except (ProcessLookupError, PermissionError):
            pass
        server.log_file.close()


def assert_not_serving(answer: httpx.Response, why: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    message = answer.json()["message"]
    assert why in message and "nothing is serving" in message, message
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-ms-run-function-failed"] == "False"
    assert answer.headers["x-ms-server-version"].startswith("devtui-inference-server/")
    assert answer.headers["x-request-id"] and answer.headers["x-ms-request-id"]


def test_a_failed_first_revision_answers_503_saying_why_then_serves_after_a_fix(start):
    server = start(INIT_RAISES, "--first-revision", "3")
    server.wait_log("Revision 3 failed")

    answer = server.post(headers={"x-request-id": "abc-123", "x-ms-client-request-id": "client-7"})
    assert_not_serving(answer, "revision 3 failed in init()")
    assert "save a fix" in answer.json()["message"]
    assert answer.headers["x-request-id"] == "abc-123"
    assert answer.headers["x-ms-client-request-id"] == answer.headers["x-ms-request-id"] == "client-7"
    assert "retry-after" not in answer.headers  # waiting does not help: only a fix does

    # Liveness and every other route too: nothing behind them can answer.
    assert_not_serving(httpx.get(server.url + "/", timeout=CLIENT_TIMEOUT), "revision 3 failed in init()")
    assert_not_serving(httpx.get(server.url + "/swagger.json", timeout=CLIENT_TIMEOUT), "failed in init()")
    head = httpx.head(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert head.status_code == 503 and head.content == b""

    # A keep-alive client is told to close, and its next request is answered the same way.
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        for _ in range(3):
            assert_not_serving(client.post(server.url + "/score", content=b"{}"), "failed in init()")

    server.reload(GOOD)
    wait_for(lambda: server.post().status_code == 200, timeout=30, message="the fixed revision to answer 200")
    assert server.post().json()["revision"] == "good"
    assert httpx.get(server.url + "/", timeout=CLIENT_TIMEOUT).text == "Healthy"


def test_a_script_that_cannot_load_says_so(start):
    server = start("def init(:\n    pass\n")
    server.wait_log("Revision 1 failed")
    assert_not_serving(server.post(), "revision 1 failed to load the scoring script")


def test_a_large_body_still_gets_its_answer(start):
    """The answer comes before the body is read; the rest is read and dropped before the close,
    or the client would get a connection reset instead of the 503."""
    server = start(INIT_RAISES)
    server.wait_log("Revision 1 failed")
    body = b'{"data": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    assert_not_serving(httpx.post(server.url + "/score", content=body, timeout=CLIENT_TIMEOUT), "failed in init()")


def test_the_connection_is_closed_after_the_answer(start):
    server = start(INIT_RAISES)
    server.wait_log("Revision 1 failed")
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):  # ends only when the server closes
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nconnection: close" in head.lower()
    assert "failed in init()" in json.loads(body)["message"]


@pytest.mark.parametrize("how", ["fork", "spawn"])
def test_a_revision_in_init_answers_503_and_the_ready_worker_takes_over_without_losing_a_request(start, how):
    server = start(BLOCKED, *(["--no-fork"] if how == "spawn" else []))
    server.wait_log("Invoking user's init function")

    answer = server.post()
    assert_not_serving(answer, "revision 1 is starting (init() is running)")
    assert answer.headers["retry-after"] == "1"

    # Clients keep sending across the hand-over: each request gets 503 or 200, none an error.
    stop = threading.Event()
    answers: list[int] = []
    errors: list[str] = []

    def client(keep_alive: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        with httpx.Client(timeout=CLIENT_TIMEOUT, limits=limits) as http:
            while not stop.is_set():
                try:
                    answers.append(http.post(server.url + "/score", content=b"{}").status_code)
                except httpx.HTTPError as ex:
                    errors.append(f"{type(ex).__name__}: {ex}")

    threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: answers.count(503) >= 20, timeout=30, message="503s before the release")
        server.release()
        wait_for(lambda: answers.count(200) >= 200, timeout=60, message="200s after the release")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert set(answers) == {200, 503}
    assert server.post().json()["revision"] == "released"


def test_a_crashed_worker_answers_503_while_it_starts_again(start):
    server = start(BLOCKED)
    server.release()
    wait_for(lambda: server.post().status_code == 200, timeout=30, message="the first revision to serve")
    pid = server.post().json()["pid"]
    (server.folder / "release").unlink()  # the restarted worker's init() blocks again
    os.kill(pid, signal.SIGKILL)
    server.wait_log("restarting it")
    wait_for(lambda: server.post().status_code == 503, timeout=30, message="503 while the worker restarts")
    assert_not_serving(server.post(), "is starting (init() is running)")
    server.release()
    wait_for(lambda: server.post().status_code == 200, timeout=30, message="the restarted worker to serve")


def test_a_reload_where_the_old_revision_keeps_serving_never_answers_503(start):
    server = start(GOOD)
    wait_for(lambda: server.post().status_code == 200, timeout=30, message="the first revision to serve")

    stop = threading.Event()
    answers: list[int] = []
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
            while not stop.is_set():
                try:
                    answers.append(http.post(server.url + "/score", content=b"{}").status_code)
                except httpx.HTTPError as ex:
                    errors.append(f"{type(ex).__name__}: {ex}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        server.reload(INIT_RAISES)  # fails: revision 1 keeps serving
        server.wait_log("Revision 2 failed")
        server.reload(BLOCKED)  # starts, and stays in init(): revision 1 keeps serving meanwhile
        server.wait_log("Starting worker")
        wait_for(lambda: server.log().count("Invoking user's init function") >= 3, timeout=30,
                 message="revision 3 in init()")
        count = len(answers)
        wait_for(lambda: len(answers) >= count + 20, timeout=30, message="answers while revision 3 is in init()")
        server.release()
        wait_for(lambda: server.post().json()["revision"] == "released", timeout=30, message="revision 3 serving")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert set(answers) == {200}


# run() says it runs (the file "running"), then waits until the test creates the file "release":
# a request in flight that a stop must drain.
RUN_BLOCKS = '''
import os, time
HERE = os.path.dirname(os.path.abspath(__file__))
def init():
    pass
def run(raw):
    open(os.path.join(HERE, "running"), "w").close()
    while not os.path.exists(os.path.join(HERE, "release")):
        time.sleep(0.02)
    return {"revision": "drained"}
'''


def test_a_stopping_server_answers_503_while_it_drains(start):
    server = start(RUN_BLOCKS)
    wait_for(lambda: httpx.get(server.url + "/", timeout=CLIENT_TIMEOUT).status_code == 200, timeout=30,
             message="the first revision to serve")
    thread, in_flight = server.hold_a_request()
    try:
        server.process.terminate()
        answer = wait_for(lambda: (a := server.post()).status_code == 503 and a, timeout=30,
                          message="503 while the server drains")
        assert_not_serving(answer, "the server is stopping")
    finally:
        server.release()
        thread.join(timeout=30)
    assert in_flight[0].json() == {"revision": "drained"}  # the request in flight was not cut
    assert server.process.wait(timeout=30) == 0


# -- a swap is announced once the old worker no longer accepts ----------------------------------------


class Events:
    """The server's events, read from the pipe devtui would pass (--events-fd)."""

    def __init__(self, fd: int):
        os.set_blocking(fd, False)
        self.fd, self.buffer, self.seen = fd, b"", []

    def read(self) -> list[protocol.ServerEvent]:
        try:
            while chunk := os.read(self.fd, 65536):
                self.buffer += chunk
        except BlockingIOError:
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        self.seen += [protocol.decode(line) for line in lines if line]
        return self.seen

    def ready(self, revision: int) -> protocol.Ready | None:
        return next((e for e in self.read() if isinstance(e, protocol.Ready) and e.revision == revision), None)


def sigterm_pending(pid: int) -> bool:
    """Whether SIGTERM was sent to ``pid`` and waits there (the process is stopped)."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return bool(int(fields["ShdPnd"], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.fixture
def swapping(start):
    """A server whose events the test reads, and which swaps (SIGUSR2); ``hold`` seconds at most
    for the old worker to stop accepting."""
    opened: list[int] = []

    def swapping_server(hold: float, source: str = GOOD, *extra: str) -> tuple[Server, Events]:
        read_end, write_end = os.pipe()
        opened.append(read_end)
        server = start(source, "--events-fd", str(write_end), "--handover-timeout", str(hold), *extra,
                       pass_fds=(write_end,))
        os.close(write_end)
        events = Events(read_end)
        wait_for(lambda: events.ready(1), timeout=30, message="revision 1 ready")
        return server, events

    yield swapping_server
    for fd in opened:
        os.close(fd)


def test_a_swap_is_announced_only_once_the_old_worker_stopped_accepting(swapping):
    """A client that connects on the Ready event must reach the new revision: the old worker
    stops accepting only when it next runs, so Ready waits for it to say so. A request in flight
    keeps the old worker alive while it drains (two run()s at a time run on threads; one at a time
    runs on the event loop, which then accepts nothing)."""
    server, events = swapping(120, RUN_BLOCKS, "--worker_count", "2")
    old = events.ready(1).pid
    thread, in_flight = server.hold_a_request()
    try:
        os.kill(old, signal.SIGSTOP)  # it cannot stop accepting until it runs again
        try:
            server.save(GOOD.replace('"good"', '"swapped"'))
            server.process.send_signal(signal.SIGUSR2)
            server.wait_log("Revision 2 ready")
            wait_for(lambda: sigterm_pending(old), timeout=30, message="the supervisor to tell the old worker to stop")
            assert events.ready(2) is None, "Ready while the old worker may still accept connections"
        finally:
            os.kill(old, signal.SIGCONT)
        # The old worker's word lets Ready go: not the 120 s limit, nor its exit (it still drains).
        ready = wait_for(lambda: events.ready(2), timeout=30, message="revision 2 announced")
        assert pid_alive(old) and not in_flight
        assert server.post().json() == {"revision": "swapped", "pid": ready.pid}
    finally:
        server.release()
        thread.join(timeout=60)
    assert in_flight[0].json() == {"revision": "drained"}  # by the old worker: drained, not cut


def test_an_old_worker_that_does_not_answer_delays_the_swap_only_briefly(swapping):
    """A worker held by a debugger (here: stopped) accepts nothing meanwhile: Ready goes out
    after the hold anyway, and the new revision answers."""
    server, events = swapping(hold=0.25)
    old = events.ready(1).pid
    os.kill(old, signal.SIGSTOP)
    try:
        server.save(GOOD.replace('"good"', '"swapped"'))
        server.process.send_signal(signal.SIGUSR2)
        ready = wait_for(lambda: events.ready(2), timeout=30, message="revision 2 announced")
        assert server.post().json() == {"revision": "swapped", "pid": ready.pid}
    finally:
        os.kill(old, signal.SIGCONT)

