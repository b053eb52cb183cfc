"""While no revision serves, the supervisor answers every connection itself: 503 and why.

The supervisor keeps the socket bound while no worker serves: the first revision failed
(``--stay-up-on-failure``), its init() is still running, or the serving worker crashed and is
starting again. The kernel would complete each connection into the listen queue and nobody would
ever answer it. So while that lasts the supervisor accepts, reads the request head, answers a
minimal HTTP/1.1 503 with the id headers every answer carries and a JSON ``{"message": ...}``
saying why, and closes. It stops accepting as soon as a worker reports ready: the connections
still in the listen queue are then the worker's, and the ones already taken here are answered
here, so none is lost. A reload while a revision serves never comes here.

A stopping server answers here too, to the end: the idle kept-alive connections its worker hands
over (no worker is left to take them), and, before it exits, whatever still waits in the listen
queue, which closing the socket would reset.

It runs in the supervisor's selector loop: no threads, nothing heavy imported, safe to fork from.
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from functools import partial

from . import protocol
from .ids import id_headers, server_version

logger = logging.getLogger("azmlinfsrv")

HEAD_LIMIT = 64 * 1024  # a longer request head is answered with what has come
READ_TIMEOUT = 5.0  # a client that sends no request head in this long is closed unanswered
LINGER = 2.0  # after the answer, what the client still sends (a body) is read and dropped this long at most
ACCEPTS_PER_WAKE = 64
MAX_CONNECTIONS = 256  # open here at once; more wait in the listen queue for their turn
READS_PER_WAKE = 16
FINISH_S = 0.5  # how long a stopping supervisor answers what is left before it exits

_FAILED = {
    protocol.Stage.LOAD: "failed to load the scoring script",
    protocol.Stage.INIT: "failed in init()",
    protocol.Stage.START: "exited before it was ready",
    protocol.Stage.READINESS: "never passed its readiness probe",
}
_STATUS_TEXT = {431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass(frozen=True)
class Reason:
    """Why nothing serves, as the 503 says it."""

    message: str
    retry_after: int | None = None  # seconds; None where waiting does not help (only a fix does)


class NotServing:
    """Follows the supervisor's own events to know whether a revision serves, and if not, why."""

    def __init__(self) -> None:
        self.serving: int | None = None
        self.why: Reason | None = None  # the latest reason; it applies only while nothing serves

    def observe(self, event: protocol.ServerEvent) -> None:
        if isinstance(event, protocol.Ready):
            self.serving = event.revision
        elif isinstance(event, protocol.Starting):
            self.why = Reason(f"revision {event.revision} is starting (init() is running); "
                              "nothing is serving yet", retry_after=1)
        elif isinstance(event, protocol.Failed) and event.serving_revision is None:
            self.serving = None
            self.why = Reason(f"revision {event.revision} {_FAILED.get(event.stage, 'failed')}; "
                              "nothing is serving: save a fix to try again (the log has the traceback)")
        elif isinstance(event, protocol.Crashed):
            self.serving = None
            self.why = Reason(f"revision {event.revision} crashed ({_exit(event.exit_code)}); "
                              "nothing is serving until a new worker is ready", retry_after=1)

    def reason(self, stopping: bool) -> Reason | None:
        """Why no connection would be answered, or None when a worker takes them."""
        if stopping:
            return Reason("the server is stopping; nothing is serving")
        return None if self.serving is not None else self.why


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    why: Reason  # as it was when the connection was accepted
    accepted: float
    deadline: float
    head: bytes = b""
    answered: bool = False


class Unavailable:
    """The supervisor's 503 answers; the supervisor calls :meth:`update` once per turn of its loop,
    after reading its workers' statuses and before the handlers registered here run."""

    def __init__(self, selector: selectors.BaseSelector):
        self.selector = selector
        self.sock: socket.socket | None = None
        self.not_serving = NotServing()
        self.why: Reason | None = None  # set: nothing serves, connections are answered here
        self.accepting = False  # the listening socket is in the selector
        self.connections: set[_Connection] = set()
        self.version = server_version()

    def listen(self, sock: socket.socket) -> None:
        # Non-blocking is a property of the socket all workers share; their event loops set it too.
        sock.setblocking(False)
        self.sock = sock

    def observe(self, event: protocol.ServerEvent) -> None:
        self.not_serving.observe(event)

    def update(self, stopping: bool) -> None:
        """Accept here from now on, or stop accepting; close connections past their deadline."""
        self.why = self.not_serving.reason(stopping)
        now = time.monotonic()
        for connection in [c for c in self.connections if c.deadline <= now]:
            self._close(connection)
        accepting = self._may_accept()
        if self.sock is not None and accepting != self.accepting:
            if accepting:
                self.selector.register(self.sock, selectors.EVENT_READ, self._accept)
            else:
                self.selector.unregister(self.sock)
            self.accepting = accepting

    def adopt(self, fds: list[int]) -> None:
        """Kept-alive connections a stopping worker handed over with no worker to take them:
        their next request is answered here while nothing serves; else they close."""
        for fd in fds:
            sock = socket.socket(fileno=fd)
            if self.why is None:
                sock.close()
                continue
            self._add(sock)

    def finish(self, most_s: float = FINISH_S) -> None:
        """Before the supervisor exits: answer what waits in the listen queue and what is open
        here, for ``most_s`` at most, until nothing is left. A connection that sends nothing
        meanwhile is closed unanswered (it never asked)."""
        if self.sock is None:
            return
        deadline = time.monotonic() + most_s
        while (left := deadline - time.monotonic()) > 0:
            self.update(stopping=True)
            self._accept()
            if not self.connections:
                break
            for key, _ in self.selector.select(timeout=min(left, 0.05)):
                if isinstance(key.data, partial) and key.fileobj is not self.sock:
                    key.data()
        for connection in list(self.connections):
            self._close(connection)

    def fds(self) -> list[int]:
        """The connections open here, which a forked worker must not keep open."""
        return [c.sock.fileno() for c in self.connections]

    def _may_accept(self) -> bool:
        # None: a worker is ready, and what waits in the listen queue is its now.
        return self.why is not None and len(self.connections) < MAX_CONNECTIONS

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            if not self._may_accept():
                return
            try:
                sock, _ = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as ex:  # out of fds (they free up as connections close), a client gone
                if ex.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    logger.debug(f"Not accepting while nothing serves: {ex!r}")
                    return
                continue
            self._add(sock)

    def _add(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        now = time.monotonic()
        connection = _Connection(sock, self.why, now, now + READ_TIMEOUT)
        self.connections.add(connection)
        self.selector.register(sock, selectors.EVENT_READ, partial(self._on_readable, connection))

    def _on_readable(self, connection: _Connection) -> None:
        if connection not in self.connections:
            return  # closed earlier in this turn
        for _ in range(READS_PER_WAKE):
            try:
                chunk = connection.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close(connection)
                return
            if not connection.answered:
                connection.head += chunk
                if b"\r\n\r\n" in connection.head or b"\n\n" in connection.head or len(connection.head) > HEAD_LIMIT:
                    self._answer(connection)
            # else: the rest of a request body, read only so that closing does not reset the
            # connection before the client has read its answer

    def _answer(self, connection: _Connection) -> None:
        method, path, headers = _parse(connection.head)
        ids, refused = id_headers(headers, self.version)
        status, why = (431, Reason(refused)) if refused else (503, connection.why)
        body = json.dumps({"message": why.message}).encode()
        lines = [b"HTTP/1.1 %d %s" % (status, _STATUS_TEXT[status]), b"content-length: %d" % len(body),
                 b"content-type: application/json", b"x-ms-run-function-failed: False"]
        lines += [name + b": " + value for name, value in ids]
        if why.retry_after is not None:
            lines.append(b"retry-after: %d" % why.retry_after)
        lines.append(b"connection: close")
        data = b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if method == "HEAD" else body)
        try:
            # A few hundred bytes into the empty send buffer of a new connection: this returns at
            # once; the timeout only bounds a client that never reads.
            connection.sock.settimeout(1.0)
            connection.sock.sendall(data)
            connection.sock.shutdown(socket.SHUT_WR)
            connection.sock.setblocking(False)
        except OSError:
            self._close(connection)
            return
        connection.answered = True
        connection.deadline = time.monotonic() + LINGER
        elapsed = (time.monotonic() - connection.accepted) * 1000
        logger.info(f"{method} {path} {status} {elapsed:.3f}ms {len(body)} (nothing is serving)")

    def _close(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        try:
            self.selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()


def _parse(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and headers (by lower-case name, the first of each) of a request head.

    Lenient: a malformed head is answered all the same; lines split on any line break, so no
    value taken from here can carry one into the answer's headers."""
    lines = head.decode("latin-1").splitlines()
    request_line = lines[0].split(" ") if lines else []
    method = request_line[0] if request_line else "-"
    path = request_line[1] if len(request_line) > 1 else "-"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            break
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    return method, path, headers


def _exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"
