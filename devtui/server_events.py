"""What the engine hears from its runtime and what it tells its subscribers.

The runtime reports log lines, progress and the scoring server's events
(``inference_server.protocol``); each event kind has one handler here, which keeps the revision
bookkeeping (what is serving, what a reload answers) and the provisioning state, and emits the
engine's own events (``devtui.events``) to every subscriber, isolated from each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from inference_server import protocol

from .events import (FAILED, SUCCEEDED, UPDATING, DEVTUI, DebuggerChanged, Event, LogRecord, Logs,
                     ProvisioningState, Progress, ReloadFinished, ReloadReason, ReloadStarted, ServerStarted,
                     StateChanged)
from .runtimes import PortInUse, RuntimeFailure


@dataclass(frozen=True)
class DebugSettings:
    """debugpy for the scoring code: listen on host:port (0: a free one); hold init() with wait."""

    port: int = 5678
    wait: bool = False
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class ReloadRequest:
    """A reason to start a new revision, and since when it waits (the reload's duration counts
    from the save, not from the worker's start)."""

    reason: ReloadReason
    files: tuple[str, ...] = ()
    at: float = field(default_factory=time.perf_counter)


class ServerEvents:
    """The engine's runtime sink and event emitter (a base of :class:`devtui.engine.Engine`)."""

    listeners: list[Callable[[Event], None]]
    state: ProvisioningState
    revision: int
    serving_revision: int | None
    scoring_uri: str | None
    last_reload: ReloadFinished | None
    debug: DebugSettings | None
    debugger: DebuggerChanged | None
    host: str
    port: int
    stopped: bool
    served: bool  # a revision of this runtime's server has been ready
    # Why this deployment cannot start at all (a port taken since it was checked): no save or
    # restart would help, so the host that runs the engine ends and says it.
    fatal: PortInUse | None = None
    no_server: bool = False  # the last start failed, or its server ended before it served
    boot_failed: bool = False  # the last start failed in the runtime, before any server ran
    _booted: asyncio.Event  # the first start has an outcome
    _state_before_loss: ProvisioningState | None = None  # while the runtime's engine does not answer
    _debugger_restart: asyncio.Task | None = None  # a restart for a wedged debugger
    _outcome: asyncio.Future | None
    _requests: list[ReloadRequest]
    _started_at: dict[int, ReloadRequest]

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.listeners.append(listener)

    def _emit(self, event: Event) -> None:
        # A subscriber that raises must not take the engine down with it: the exception would end
        # whichever task emitted (the log pump, the server's events), and a server whose output
        # nobody reads blocks on its next print(). It is reported once and gets no more events.
        for listener in tuple(self.listeners):
            try:
                listener(event)
            except Exception as ex:
                self._drop_listener(listener, ex)

    def _drop_listener(self, listener: Callable[[Event], None], ex: Exception) -> None:
        if listener not in self.listeners:
            return
        self.listeners.remove(listener)
        name = getattr(listener, "__qualname__", type(listener).__qualname__)
        self._say(f"error: {name} failed ({type(ex).__name__}: {ex}) and gets no more events; "
                  "the endpoint keeps serving")

    def _say(self, *lines: str) -> None:
        self._emit(Logs(tuple(LogRecord(DEVTUI, line) for line in lines)))

    def _set_state(self, state: ProvisioningState, detail: str = "") -> None:
        self.state = state
        self._emit(StateChanged(state, detail))

    # -- runtime sink ----------------------------------------------------------------------------

    def log(self, source: str, lines: list[str]) -> None:
        now = time.time()
        self._emit(Logs(tuple(LogRecord(source, line, now) for line in lines)))

    def progress(self, step: str, done: float, total: float = 0.0) -> None:
        self._emit(Progress(step, done, total))

    def engine_lost(self, detail: str) -> None:
        # Updating, not Failed: the container may go on serving; saves wait for the engine.
        if self.state != UPDATING:
            self._state_before_loss = self.state
        self._set_state(UPDATING, detail)

    def engine_back(self, detail: str) -> None:
        before, self._state_before_loss = self._state_before_loss, None
        if before is not None and self.state == UPDATING:
            self._set_state(before, detail)
        else:
            self._say(detail)

    def server_event(self, event: protocol.ServerEvent) -> None:
        self._server_handlers[type(event)](event)

    @cached_property
    def _server_handlers(self) -> dict[type, Callable]:
        """One handler per kind of server event; tests check that it covers them all."""
        return {
            protocol.Listening: self._on_listening,
            protocol.Starting: self._on_starting,
            protocol.Ready: self._on_outcome,
            protocol.Failed: self._on_outcome,
            protocol.Crashed: self._on_crashed,
            protocol.Debugger: self._on_debugger,
            protocol.BindFailed: self._on_bind_failed,
            protocol.Stopped: lambda event: None,  # Exited follows, with what devtui expected
            protocol.Exited: self._on_exited,
        }

    def _on_listening(self, event: protocol.Listening) -> None:
        self.port = event.port
        self.scoring_uri = f"http://{_url_host(self.host)}:{self.port}{event.path}"
        described = self.runtime.describe()
        self._emit(ServerStarted(self.scoring_uri, self.port, pid=described.get("pid"),
                                 container_ids=tuple(described.get("container_ids", ()))))

    def _on_starting(self, event: protocol.Starting) -> None:
        self.revision = event.revision
        requested = self._requests or [ReloadRequest(ReloadReason.START if event.first else ReloadReason.MANUAL)]
        self._requests = []
        # Of the requests one worker answers, the one that named files says best why.
        reason = max(requested, key=lambda r: len(r.files)).reason
        files = tuple(dict.fromkeys(f for r in requested for f in r.files))
        self._started_at[event.revision] = ReloadRequest(reason, files, requested[0].at)
        if not event.first or self.serving_revision is not None:
            self._emit(ReloadStarted(event.revision, reason, files))

    def _on_crashed(self, event: protocol.Crashed) -> None:
        self._say(f"The worker of revision {event.revision} exited with code {event.exit_code}; starting it again")
        self._requests.append(ReloadRequest(ReloadReason.CRASH))
        # Nothing serves until the new worker is ready (or fails, which makes it Failed).
        self.serving_revision = None
        self._set_state(UPDATING, f"the worker of revision {event.revision} crashed; starting it again")

    def _on_debugger(self, event: protocol.Debugger) -> None:
        failed = event.state == protocol.DebuggerState.FAILED
        if self.debug is not None and not failed:
            # Keep the port chosen for --debug-port 0 across restarts, so VS Code's config holds.
            self.debug = DebugSettings(event.port, self.debug.wait, self.debug.host)
        self.debugger = DebuggerChanged(str(event.state), event.host, event.port, event.detail)
        self._emit(self.debugger)
        if event.wedged:
            self._restart_wedged_debugger(event)
        elif failed:
            self._say(f"error: the debugger cannot listen on port {event.port}: {event.detail}")

    def _restart_wedged_debugger(self, event: protocol.Debugger) -> None:
        """debugpy stopped answering new clients: once none is attached (one that is keeps its
        session), a restart of the server brings the debug port back."""
        if event.attached:
            self._say(f"The debugger on port {event.port} stopped answering new clients; the server restarts "
                      "once the attached client leaves")
            return
        if self._debugger_restart is None or self._debugger_restart.done():
            self._say(f"The debugger on port {event.port} stopped answering new clients: restarting the server")
            self._debugger_restart = asyncio.get_running_loop().create_task(
                self.restart("the debugger stopped answering", reload_yaml=False))

    def _on_bind_failed(self, event: protocol.BindFailed) -> None:
        if "in use" in event.reason:
            self._port_taken(PortInUse(event.host, event.port))
        else:
            self._resolve(FAILED, f"port {event.port} {event.reason}")

    def _start_failed(self, ex: Exception) -> None:
        """The runtime could not stage or start the server."""
        if isinstance(ex, PortInUse):
            self._port_taken(ex)
        elif isinstance(ex, RuntimeFailure):
            self._say(f"error: {ex}")
            self._resolve(FAILED, str(ex))
        else:  # a bug, but the deployment must still say Failed, not hang
            self._say(f"error: {type(ex).__name__}: {ex}")
            self._resolve(FAILED, f"{type(ex).__name__}: {ex}")

    def _port_taken(self, ex: PortInUse) -> None:
        """Another program has the port. While the deployment starts, that is the end of it
        (``fatal``): the port was free when checked, and no save would free it. Later (a restart
        on the port devtui kept) it is Failed until a restart finds the port free."""
        if not self._booted.is_set():
            self.fatal = ex
            self._resolve(FAILED, str(ex))
        else:
            self._resolve(FAILED, f"{ex}; or free it and restart (`devtui reload --full`)")

    def _on_exited(self, event: protocol.Exited) -> None:
        if not event.expected and not self.stopped:
            self.serving_revision = None
            self._resolve(FAILED, f"the scoring server exited with code {event.exit_code}")
            self._server_died(event.exit_code)

    def _server_died(self, exit_code: int | None) -> None:
        """The server ended unasked (killed, out of memory): the engine restarts it."""

    def _on_outcome(self, event: protocol.Ready | protocol.Failed) -> None:
        if self.stopped:
            return  # a worker cut short by stopping is not a failed revision
        revision = event.revision
        since = self._started_at.pop(revision, ReloadRequest(ReloadReason.MANUAL)).at
        ok = isinstance(event, protocol.Ready)
        if ok:
            self.serving_revision = revision
            self.served = True
            first = event.first
        else:
            self.serving_revision = event.serving_revision  # the supervisor knows best
            first = self.serving_revision is None
        finished = ReloadFinished(revision, ok, round((time.perf_counter() - since) * 1000, 1),
                                  self.serving_revision, first, "" if ok else str(event.stage),
                                  "" if ok else event.traceback, str(event.rung) if ok else "",
                                  event.detail if ok else "")
        self.last_reload = finished
        self._emit(finished)
        if ok:
            if self.state != SUCCEEDED:
                self._resolve(SUCCEEDED, f"revision {revision} is serving at {self.scoring_uri}")
        elif self.serving_revision is None:
            self._resolve(FAILED, f"revision {revision} failed in {event.stage}(); save a fix to try again")

    def _resolve(self, state: ProvisioningState, detail: str) -> None:
        if self.state != state:
            self._set_state(state, detail)
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(state)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
