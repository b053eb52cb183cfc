"""debugpy in the supervisor: it listens once, and every worker forked from there joins the
client's session as a child process, reload after reload. This module tells devtui what the
debugger is doing: listening, attached, stopped at a breakpoint in a worker, or failed.

debugpy itself listens on a loopback port of its own; the debug port belongs to a gate process
(debug_gate.py) that lets through only connections that speak DAP, since one stray connection
(a port scan) is enough to stop debugpy's listener for good. The gate is started again if it
exits, and says when debugpy stops answering: the debugger is then shown as failed, with why.
"""

from __future__ import annotations

import logging
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable

from .protocol import Debugger, DebuggerState, HeldRequest, ServerEvent

logger = logging.getLogger("azmlinfsrv.supervisor")

INNER_HOST = "127.0.0.1"  # where debugpy listens, behind the gate
START_TIMEOUT_S = 30.0
LOGGED_REJECTIONS = 3  # one by one, of those the gate reports together
WEDGED = ("debugpy stopped answering new connections: a client attached now keeps debugging the "
          "workers it has, but no client can attach and no new worker can be debugged. "
          "devtui restarts the server once no client is attached (`devtui reload --full` does it now)")


class GateError(Exception):
    pass


class GateProcess:
    """The running gate: its process, and the lines it says (debug_gate.py's protocol)."""

    def __init__(self, host: str, port: int):
        # Through a shell that execs Python: once debugpy listens it patches process creation so
        # that every Python started runs under the debugger, and it spots Python by the first
        # argument alone. The gate must not join the user's session as a process of its own.
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", 'exec "$@"', "sh", sys.executable, "-m", "inference_server.debug_gate", host, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(__file__)))
        self.out = self.process.stdout.fileno()
        os.set_blocking(self.out, False)
        self.buffer = b""
        self.gone = False
        first = self._first_line()
        if not first.startswith("listening "):
            self.stop()
            raise GateError(first.removeprefix("failed ") or "the gate exited as it started")
        self.port = int(first.split()[1])

    def _first_line(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        with selectors.DefaultSelector() as selector:
            selector.register(self.out, selectors.EVENT_READ)
            while not self.gone and time.monotonic() < deadline:
                selector.select(deadline - time.monotonic())
                if lines := self.lines():
                    return lines[0]
        return f"failed the gate did not start within {START_TIMEOUT_S:g} s" if not self.gone else ""

    def forward_to(self, port: int) -> None:
        self.process.stdin.write(f"upstream {INNER_HOST} {port}\n".encode())
        self.process.stdin.flush()

    def lines(self) -> list[str]:
        """What the gate said since last asked (never blocks); ``gone`` once it has exited."""
        while True:
            try:
                chunk = os.read(self.out, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self.gone = True
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def stop(self) -> None:
        """Its stdin closing is what ends it; its exit status goes to the supervisor's reaper."""
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def close(self, timeout: float = 3.0) -> None:
        """Stop it and wait until it has let go of the debug port: a server started next (a
        restart) binds the same port at once."""
        self.stop()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class DebugListener:
    def __init__(self, host: str, port: int, emit: Callable[[ServerEvent], None]):
        self.host = host
        self.port = port  # the real one once listening, when 0 was asked for
        self.emit = emit
        self.attached = False
        self.stopped_at: str | None = None  # where a worker is held at a breakpoint
        self.held: tuple[HeldRequest, ...] = ()  # the requests that worker was serving
        self.wedged = False  # debugpy no longer answers new clients
        self.gate: GateProcess | None = None
        self.inner_port = 0  # debugpy's own, behind the gate

    def close(self) -> None:
        """The server stops: the gate goes, and the debug port with it, before the server exits."""
        if self.gate is not None:
            self.gate.close()
            self.gate = None

    def listen(self) -> bool:
        """Open the debug port and start debugpy's listener; False (and said so) when it cannot."""
        import debugpy

        try:
            self.gate = GateProcess(self.host, self.port)
            self.port = self.gate.port
            debugpy.configure(subProcess=True)
            _, self.inner_port = debugpy.listen((INNER_HOST, 0))
        except Exception as ex:
            if self.gate is not None:
                self.gate.stop()
            logger.error(f"The debugger cannot listen on {self.host}:{self.port}: {ex}")
            self._emit(DebuggerState.FAILED, detail=str(ex))
            return False
        self.gate.forward_to(self.inner_port)
        logger.info(f"Debugger (debugpy) listening on {self.host}:{self.port}; "
                    "attach once, breakpoints survive reloads")
        self._emit(DebuggerState.LISTENING)
        return True

    def poll(self) -> None:
        """Hear the gate, and notice a client attaching or going (debugpy has no callback for either)."""
        import debugpy

        if self.gate is not None:
            rejected = 0
            for line in self.gate.lines():
                rejected += line.startswith("rejected ")
                if rejected <= LOGGED_REJECTIONS or not line.startswith("rejected "):
                    self._hear(line)
            if rejected > LOGGED_REJECTIONS:  # a scan that keeps knocking: one line for the rest
                logger.info(f"The debug port closed {rejected - LOGGED_REJECTIONS} more connections "
                            "that were not debugger clients")
            if self.gate.gone:
                self._restart_gate()
        attached = debugpy.is_client_connected()
        if attached != self.attached:
            self.attached = attached
            if not attached:
                self.stopped_at, self.held = None, ()
            logger.info(f"Debugger {self._state()}")
            self._emit_state()

    def _hear(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "rejected":
            peer, _, why = rest.partition(" ")
            logger.info(f"The debug port closed a connection from {peer}, which {why} (not a debugger client)")
        elif word in ("wedged", "answering"):
            self.wedged = word == "wedged"
            if self.wedged:
                logger.error(f"Debugger on {self.host}:{self.port}: {WEDGED}")
            else:
                logger.info("Debugger: debugpy answers new clients again")
            self._emit_state()

    def _restart_gate(self) -> None:
        """The gate exited (killed, crashed): the debug port is open again at once, the same one."""
        self.gate.stop()
        self.gate = None
        try:
            self.gate = GateProcess(self.host, self.port)
        except (GateError, OSError) as ex:
            logger.error(f"The debug port's gate exited, and the debugger cannot listen on "
                         f"{self.host}:{self.port} again: {ex}")
            self._emit(DebuggerState.FAILED, detail=f"the debug port closed and cannot open again: {ex}")
            return
        self.gate.forward_to(self.inner_port)
        logger.warning(f"The debug port's gate exited; listening on {self.host}:{self.port} again")
        self._emit_state()

    def workers_stopped(self, workers) -> None:
        """The workers (each with its ``debug_stop`` and ``held`` requests) said where the debugger
        holds them: the first one held is shown, with every held worker's requests; a worker gone
        holds nothing."""
        stopped = [w for w in workers if w.debug_stop]
        self.worker_stopped(stopped[0].debug_stop if stopped else None, tuple(r for w in stopped for r in w.held))

    def worker_stopped(self, where: str | None, held: tuple[HeldRequest, ...] = ()) -> None:
        """A worker reported that the debugger holds it at ``where`` serving ``held``, or let it go (None)."""
        self.stopped_at, self.held = where, held if where else ()
        self._emit_state()

    def _state(self) -> DebuggerState:
        # A stop comes first: requests wait on it. A wedged debugpy next: the attached client
        # keeps working, but no other can attach.
        if self.stopped_at:
            return DebuggerState.STOPPED
        if self.wedged:
            return DebuggerState.FAILED
        return DebuggerState.ATTACHED if self.attached else DebuggerState.LISTENING

    def _emit_state(self) -> None:
        state = self._state()
        detail = f"at {self.stopped_at}" if state == DebuggerState.STOPPED else \
            WEDGED if state == DebuggerState.FAILED else ""
        self._emit(state, detail=detail)

    def _emit(self, state: DebuggerState, detail: str = "") -> None:
        self.emit(Debugger(state=state, host=self.host, port=self.port, detail=detail, attached=self.attached,
                           wedged=self.wedged and state == DebuggerState.FAILED,
                           held=self.held if state == DebuggerState.STOPPED else ()))
