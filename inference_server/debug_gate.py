"""The debug port's gate: a small process that owns the debug port and hands debugpy only
connections that speak the Debug Adapter Protocol.

debugpy's adapter accepts every connection on one thread, and a connection that closes at once
(a port scan's connect-and-close) kills that thread: the port still accepts, but no client is
ever answered again. So debugpy listens on a loopback port of its own, and this gate listens on
the debug port. A connection gets through only once it has sent one whole DAP request
(``Content-Length: N`` and a JSON request); one that closes first, sends something else, or says
nothing for ``HANDSHAKE_S`` is closed here, and debugpy never sees it. Each connection waits on
its own, so a silent one never holds up a real client.

Once through, a connection is piped both ways. debugpy greets each client at once (telemetry
events); a connection it leaves unanswered for ``GREETING_S`` means its listener is wedged
after all, which the gate reports. A client that leaves before the greeting came does not
close its side towards debugpy until it came, so it cannot kill debugpy's thread either.

It runs as a process, not a thread, because the supervisor forks workers and keeps no threads
(supervisor.py). It talks to the supervisor in lines: it reads ``upstream HOST PORT`` (where
debugpy listens) on stdin and stops at the end of stdin (the supervisor is gone); it writes
``listening PORT`` or ``failed REASON``, then ``rejected PEER REASON``, ``wedged`` and
``answering`` (debugpy greeted again), on stdout.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

HANDSHAKE_S = 10.0  # VS Code sends `initialize` as soon as it connects
GREETING_S = 10.0  # debugpy greets in milliseconds; this is for a busy machine
HEADER_LIMIT = 1024
BODY_LIMIT = 1 << 20
BUFFER_LIMIT = 4 << 20  # what one side may have sent that the other has not read yet
_HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*: *[\x20-\x7e]*")
_HEADER_START = re.compile(rb"([A-Za-z][A-Za-z0-9-]*(:[\x20-\x7e]*)?)?\r?")  # a header line, cut short

NOT_DAP = "sent something that is not the Debug Adapter Protocol"


def first_request(data: bytes) -> tuple[bool, str]:
    """Whether ``data`` is, or begins with, one whole DAP request: (True, "") when it is,
    (True, why not) when it can never be, (False, "") while more may make it one."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    lines = head.split(b"\r\n")
    # Every line so far must be a header line (the last one may be cut short); an HTTP request
    # or a TLS hello is not.
    if any(not _HEADER_LINE.fullmatch(line) for line in (lines if end >= 0 else lines[:-1])):
        return True, NOT_DAP
    if end < 0:
        return (True, NOT_DAP) if len(data) > HEADER_LIMIT or not _HEADER_START.fullmatch(lines[-1]) else (False, "")
    length = _content_length(lines)
    if length is None:
        return True, NOT_DAP
    body = data[end + 4:end + 4 + length]
    if len(body) < length:
        return False, ""
    return (True, "") if _is_request(body) else (True, NOT_DAP)


def _content_length(lines: list[bytes]) -> int | None:
    """The body's length the header lines give, when within bounds."""
    for line in lines:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
            return length if 0 < length <= BODY_LIMIT else None
    return None


def _is_request(body: bytes) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "request" and isinstance(message.get("command"), str)


@dataclass
class Pending:
    """A connection that has not yet shown it speaks DAP."""

    sock: socket.socket
    peer: str
    deadline: float
    data: bytes = b""


@dataclass
class Pipe:
    """A DAP client joined to debugpy: what each side has sent that the other has not read yet."""

    client: socket.socket | None
    upstream: socket.socket
    deadline: float  # for debugpy's greeting
    to_client: bytes = b""
    to_upstream: bytes = b""
    greeted: int = 0  # messages debugpy sent: its greeting is two, then the answer to the first request
    ends: list[socket.socket] = field(default_factory=list)

    def greeting_done(self) -> bool:
        return self.greeted >= 3

    def on_deadline(self) -> bool:
        """Whether ``deadline`` still applies: debugpy has not said a word yet, or the client
        left and only the rest of the greeting keeps this open."""
        return not self.greeting_done() and (self.greeted == 0 or self.client is None)


class Gate:
    def __init__(self, listener: socket.socket, say, handshake_s: float = HANDSHAKE_S,
                 greeting_s: float = GREETING_S):
        self.listener = listener
        self.say = say  # one line to the supervisor
        self.handshake_s, self.greeting_s = handshake_s, greeting_s
        self.upstream: tuple[str, int] | None = None
        self.selector = selectors.DefaultSelector()
        self.pending: dict[socket.socket, Pending] = {}
        self.pipes: dict[socket.socket, Pipe] = {}
        self.wedged = False
        listener.setblocking(False)

    def forward_to(self, host: str, port: int) -> None:
        """debugpy listens at host:port: start accepting (connections wait in the backlog till then)."""
        first = self.upstream is None
        self.upstream = (host, port)
        if first:
            self.selector.register(self.listener, selectors.EVENT_READ, "accept")

    def step(self, timeout: float) -> list[selectors.SelectorKey]:
        """Wait up to ``timeout`` for something to do, and do it; what was ready that the
        gate does not own (the caller registered it) is returned."""
        now = time.monotonic()
        deadlines = [p.deadline for p in self.pending.values()] + \
            [p.deadline for p in self._pipes() if p.on_deadline()]
        wait = max(0.0, min([timeout, *(d - now for d in deadlines)]))
        others = []
        for key, events in self.selector.select(wait):
            if key.data == "accept":
                self._accept()
            elif key.fileobj in self.pending:
                self._handshake(self.pending[key.fileobj])
            elif key.fileobj in self.pipes:
                self._pump(self.pipes[key.fileobj], key.fileobj, events)
            else:
                others.append(key)
        self._expire(time.monotonic())
        return others

    def _pipes(self) -> list[Pipe]:
        return list({id(p): p for p in self.pipes.values()}.values())

    def _accept(self) -> None:
        try:
            sock, address = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        sock.setblocking(False)
        self.pending[sock] = Pending(sock, f"{address[0]}:{address[1]}", time.monotonic() + self.handshake_s)
        self.selector.register(sock, selectors.EVENT_READ)

    def _handshake(self, pending: Pending) -> None:
        try:
            chunk = pending.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            return self._reject(pending, "closed it without a word" if not pending.data else "closed it mid-message")
        pending.data += chunk
        done, problem = first_request(pending.data)
        if problem:
            self._reject(pending, problem)
        elif done:
            self._join(pending)

    def _reject(self, pending: Pending, why: str) -> None:
        self.say(f"rejected {pending.peer} {why}")
        self._forget(pending.sock)
        del self.pending[pending.sock]

    def _join(self, pending: Pending) -> None:
        del self.pending[pending.sock]
        self.selector.unregister(pending.sock)
        try:
            upstream = socket.create_connection(self.upstream, timeout=self.greeting_s)
        except OSError as ex:
            self.say(f"rejected {pending.peer} debugpy does not accept connections ({ex})")
            self._set_wedged(True)
            pending.sock.close()
            return
        upstream.setblocking(False)
        pipe = Pipe(pending.sock, upstream, time.monotonic() + self.greeting_s, to_upstream=pending.data)
        pipe.ends = [pending.sock, upstream]
        for sock in pipe.ends:
            self.pipes[sock] = pipe
        self._arm(pipe)

    def _pump(self, pipe: Pipe, sock: socket.socket, events: int) -> None:
        """Move what ``sock`` has to say to the other side, and what waits for ``sock`` to it."""
        if events & selectors.EVENT_WRITE:
            self._flush(pipe, sock)
        if events & selectors.EVENT_READ and sock in self.pipes:
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":
                return self._end(pipe, sock)
            if chunk and sock is pipe.upstream:
                if not pipe.greeted:  # a new connection greeted: debugpy accepts again
                    self._set_wedged(False)
                pipe.greeted += chunk.count(b"Content-Length")
                if pipe.client is None and pipe.greeting_done():
                    return self._close(pipe)
                pipe.to_client += chunk if pipe.client is not None else b""
            elif chunk:
                pipe.to_upstream += chunk
        if pipe.upstream in self.pipes:
            self._arm(pipe)

    def _flush(self, pipe: Pipe, sock: socket.socket) -> None:
        waiting = pipe.to_client if sock is pipe.client else pipe.to_upstream
        try:
            sent = sock.send(waiting)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._end(pipe, sock)
        if sock is pipe.client:
            pipe.to_client = pipe.to_client[sent:]
        else:
            pipe.to_upstream = pipe.to_upstream[sent:]

    def _end(self, pipe: Pipe, sock: socket.socket) -> None:
        """One side closed. The client's leaving is passed on to debugpy only after its greeting:
        debugpy writing its greeting to a connection already closed is what kills its listener."""
        if sock is pipe.client and not pipe.greeting_done() and pipe.upstream in self.pipes:
            self._forget(sock)
            pipe.client, pipe.to_client = None, b""
            pipe.ends.remove(sock)
            del self.pipes[sock]
            self._arm(pipe)
            return
        self._close(pipe)

    def _close(self, pipe: Pipe) -> None:
        for sock in pipe.ends:
            self.pipes.pop(sock, None)
            self._forget(sock)

    def _arm(self, pipe: Pipe) -> None:
        """Ask to write where something waits to be written, and to read from a side while what
        it sent before is not piling up unread on the other (a client that never reads must not
        fill the gate's memory)."""
        sides = ((pipe.client, pipe.to_client, pipe.to_upstream), (pipe.upstream, pipe.to_upstream, pipe.to_client))
        for sock, waiting, unread in sides:
            if sock is None:
                continue
            events = (selectors.EVENT_READ if len(unread) < BUFFER_LIMIT else 0) | \
                (selectors.EVENT_WRITE if waiting else 0)
            registered = sock in self.selector.get_map()
            if not events:
                if registered:
                    self.selector.unregister(sock)
            elif registered:
                self.selector.modify(sock, events)
            else:
                self.selector.register(sock, events)

    def _expire(self, now: float) -> None:
        for pending in [p for p in self.pending.values() if p.deadline <= now]:
            self._reject(pending, f"sent no DAP request within {self.handshake_s:g} s")
        for pipe in self._pipes():
            if pipe.on_deadline() and pipe.deadline <= now:
                if pipe.greeted == 0:
                    self._set_wedged(True)
                self._close(pipe)

    def _set_wedged(self, wedged: bool) -> None:
        if wedged != self.wedged:
            self.wedged = wedged
            self.say("wedged" if wedged else "answering")

    def _forget(self, sock: socket.socket) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As debugpy did: a port left in TIME_WAIT by the last run can be bound again at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def main(host: str, port: int) -> int:
    # Signals sent to the whole process group are the supervisor's business (SIGHUP reloads,
    # Ctrl+C stops it); the gate ends when the supervisor does, at the end of its stdin.
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        listener = bind(host, port)
    except OSError as ex:
        say(f"failed {ex}")
        return 2
    say(f"listening {listener.getsockname()[1]}")
    gate = Gate(listener, say)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    gate.selector.register(stdin, selectors.EVENT_READ, "stdin")
    lines = b""
    while True:
        if not gate.step(60.0):
            continue
        try:
            chunk = os.read(stdin, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            return 0  # the supervisor is gone
        lines += chunk
        while b"\n" in lines:
            line, lines = lines.split(b"\n", 1)
            words = line.decode().split()
            if words[:1] == ["upstream"]:
                gate.forward_to(words[1], int(words[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
