"""The inference-server container's log as the container runtime follows it, through a loss of
the Docker engine.

``LogPump`` streams the log on a thread; here its lines become log lines and server events, and
its end is judged. A container that ended is reported (``Exited``), and the engine restarts it.
A stream that broke because the engine stopped answering (an engine restarting, a dropped
connection to a remote one) is not the container's end: the container keeps running, and serving
what it served. Restarting then would only fail (nothing can be created) or collide with the old
container's port. So the runtime says that the engine does not answer, asks it again with
back-off, and when it answers: follows the container again from where its log broke off (or, if
it ended meanwhile, reports that), and applies the saves that came meanwhile (``defer``).
"""

from __future__ import annotations

import itertools
import threading
import time

from inference_server import protocol

from ...events import DEVTUI, INFERENCE_SERVER
from . import docker_engine
from ..base import RuntimeFailure
from .log_pump import LogPump

# Between two tries to reach a lost engine: quick at first (a restart takes seconds), then calmer.
ENGINE_BACKOFF_S = (0.5, 1, 2, 5, 10)
# How long one try waits for an answer: an engine that hangs counts as one that does not answer.
PING_TIMEOUT_S = 5
# While the engine stays away, how often the log says it still waits.
STILL_WAITING_S = 60


class _LogFrom:
    """The container, its log read from ``since`` (a time) on: what it logged before was read."""

    def __init__(self, container, since: float):
        self._container, self._since = container, since

    def logs(self, *, since=None, **options):
        return self._container.logs(since=since or self._since, **options)

    def __getattr__(self, name: str):
        return getattr(self._container, name)


class ServerLog:
    """Follows ``runtime.server`` (a ContainerRuntime's inference-server) and keeps following it
    across a loss of the engine; ``runtime`` takes the lines (``_log``) and the server's events
    (``_event``), and applies a deferred save (``_reload``)."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.pump: LogPump | None = None
        self.heard_at: float | None = None  # when the last piece of the log arrived
        self.lost = False  # the engine does not answer; a thread waits for it
        self._broken = False  # the log stream ended with the engine lost: follow again when it answers
        self._pending: bool | None = None  # a save that came meanwhile: whether it asked for a swap
        self._lock = threading.Lock()
        self._wake = threading.Event()  # stopping: the wait ends at once

    def follow(self, container, since: float | None = None) -> None:
        source = container if since is None else _LogFrom(container, since)
        self.pump = LogPump(source, self.runtime.line_splitter, self._lines, self._ended, self.runtime)
        self.pump.start()

    def join(self, timeout: float) -> None:
        if self.pump is not None:
            self.pump.join(timeout)

    def stop(self) -> None:
        self._wake.set()

    # -- what the pump reports -----------------------------------------------------------------------

    def _lines(self, lines: list[str]) -> None:
        self.heard_at = time.time()
        texts = []
        for line in lines:
            if protocol.is_event_line(line):
                try:
                    self.server_event(protocol.decode(line))
                except ValueError as ex:
                    texts.append(f"devtui: an unreadable server event: {ex}")
            else:
                texts.append(line)
        if texts:
            self.runtime._log(INFERENCE_SERVER, texts)

    def server_event(self, event: protocol.ServerEvent) -> None:
        """The server sees its container's ports; users reach the published ones."""
        if isinstance(event, protocol.Listening):
            event = protocol.Listening(host="127.0.0.1", port=self.runtime.host_port, pid=None, path=event.path)
        elif isinstance(event, protocol.Debugger):
            event = protocol.Debugger(state=event.state, host="127.0.0.1", port=event.port, detail=event.detail,
                                      held=event.held)
        self.runtime._event(event)

    def _ended(self, event: protocol.ServerEvent) -> None:
        # No exit code: the engine did not say how the container ended, or whether it did.
        if (isinstance(event, protocol.Exited) and event.exit_code is None and not event.expected
                and not self.runtime.stopping):
            with self._lock:
                self._broken = True
            self.lose()
            return
        self.runtime._event(event)

    # -- the engine lost and found -------------------------------------------------------------------

    def defer(self, swap: bool) -> bool:
        """Keep a save for when the engine answers again, if it does not answer now."""
        with self._lock:
            if not self.lost:
                return False
            self._keep(swap)
        return True

    def lose(self, pending: bool | None = None) -> None:
        """The engine may be gone: find out, and wait for it, on a thread. ``pending``: a save
        that could not be applied (whether it asked for a swap)."""
        with self._lock:
            if pending is not None:
                self._keep(pending)
            if self.lost:
                return
            self.lost = True
        threading.Thread(target=self._wait, daemon=True, name="waiting for the Docker engine").start()

    def _keep(self, swap: bool) -> None:
        self._pending = swap or bool(self._pending)
        self.runtime._log(DEVTUI, ["The Docker engine does not answer: the save is applied once it answers again"])

    def answers(self) -> bool:
        try:
            docker_engine.connect(PING_TIMEOUT_S, address=self.runtime.address).close()
        except RuntimeFailure:
            return False
        return True

    def _wait(self) -> None:
        since = self.heard_at or time.time()
        started = said = time.monotonic()
        for attempt in itertools.count():
            if self.runtime.stopping:
                return
            if self.answers():
                break
            delay = ENGINE_BACKOFF_S[min(attempt, len(ENGINE_BACKOFF_S) - 1)]
            now = time.monotonic()
            if attempt == 0:
                self._tell(self.runtime.sink.engine_lost,
                           f"the Docker engine does not answer ({self.runtime.docker_daemon}); the inference-server container "
                           "may go on serving what it served, and saves wait for the engine. Asking it again in "
                           f"{delay:g} s, then less often")
            elif now - said >= STILL_WAITING_S:
                said = now
                self.runtime._log(DEVTUI, [f"The Docker engine still does not answer ({now - started:.0f} s)"])
            self._wake.wait(delay)  # the back-off itself; stop() ends it
        self._found(since, away=time.monotonic() - started if attempt else None)

    def _tell(self, deliver, detail: str) -> None:
        """To the engine (``RuntimeSink.engine_lost`` or ``engine_back``), on its event loop."""
        self.runtime.outbox.put(deliver, detail)

    def _found(self, since: float, away: float | None) -> None:
        """The engine answers: follow the container again, or report that it ended."""
        import docker.errors

        server = self.runtime.server
        try:
            server.reload()
            state = server.attrs.get("State") or {}
        except docker.errors.NotFound:
            state = {"Status": "removed"}
        except Exception:  # gone again already: wait again
            self._wait()
            return
        with self._lock:
            pending, self._pending = self._pending, None
            # Found by a save rather than by the stream's end, the loss may have left the stream
            # reading on: a second pump would deliver every line twice.
            broken, self._broken = self._broken, False
            self.lost = False
        again = f"the Docker engine answers again after {away:.0f} s" if away is not None else ""
        if state.get("Status") != "running":
            said = again or "the Docker engine answers"
            self.runtime._log(DEVTUI, [f"{said[0].upper()}{said[1:]}; the inference-server container ended meanwhile "
                                       f"({state.get('Status')})"])
            self.runtime._event(protocol.Exited(exit_code=state.get("ExitCode"), expected=False))
            return
        if broken or self.pump is None or not self.pump.is_alive():
            self.follow(server, since)
        if away is not None:
            self._tell(self.runtime.sink.engine_back,
                       f"{again}; the inference-server container kept running, and devtui follows it again")
        if pending is not None:
            try:
                self.runtime._reload(pending)
            except Exception as ex:  # as a save that fails at once is reported
                self.runtime._log(DEVTUI, [f"error: applying the saves made while the engine was away failed: {ex}"])
