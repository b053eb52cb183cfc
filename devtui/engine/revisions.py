"""What the engine hears from its runtime: the runtime's sink, owned by the engine.

The runtime reports log lines, progress and the scoring server's events
(``inference_server.protocol``); each server event kind has one handler here, which keeps the
revision bookkeeping (what is serving, what a reload answers) and the provisioning state, and
emits the engine's own events (``devtui.events``). What only the engine can do (start a server
again after it died, restart a wedged debugger) it is asked through the callbacks it gave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from inference_server import protocol

from ..events import (CREATING, FAILED, SUCCEEDED, UPDATING, DebuggerChanged, Placement, Progress,
                      ProvisioningState, ReloadFinished, ReloadReason, ReloadStarted, ServerStarted, StateChanged, Traces)
from ..runtimes import PortInUse, RuntimeFailure
from ..scrub import Scrubber
from .emitter import Emitter


@dataclass(frozen=True)
class ReloadRequest:
    """A reason to start a new revision, and since when it waits (the reload's duration counts
    from the save, not from the worker's start)."""

    reason: ReloadReason
    files: tuple[str, ...] = ()
    at: float = field(default_factory=time.perf_counter)


@dataclass
class Owner:
    """What the revisions ask of the engine that owns them."""

    stopped: Callable[[], bool]
    placement: Callable[[], Placement]  # where the runtime put the server, once it listens
    server_died: Callable[[int | None], None]  # it ended unasked: start it again
    restart: Callable[[str, str], None]  # a restart of the server: what to say, and the reason it applies
    debug_port: Callable[[int], None]  # the port the debugger listens on
    scrubber: Callable[[], Scrubber] = Scrubber  # what hides the deployment's secrets in what is kept


class Revisions:
    """The provisioning state and the revisions of one engine's server."""

    def __init__(self, emitter: Emitter, host: str, owner: Owner):
        self.emitter, self.host, self.owner = emitter, host, owner
        self.state: ProvisioningState = CREATING
        self.revision = 0
        self.serving_revision: int | None = None
        self.port = 0
        self.scoring_uri: str | None = None
        self.placement = Placement()
        self.last_reload: ReloadFinished | None = None
        self.debugger: DebuggerChanged | None = None
        self.served = False  # a revision of this runtime's server has been ready
        # Why this deployment cannot start at all (a port taken since it was checked): no save or
        # restart would help, so the host that runs the engine ends and says it.
        self.fatal: PortInUse | None = None
        self.no_server = False  # the last start failed, or its server ended before it served
        self.boot_failed = False  # the last start failed in the runtime, before any server ran
        self.booted = asyncio.Event()  # the first start has an outcome
        self.outcome: asyncio.Future | None = None
        self.requests: list[ReloadRequest] = []  # asked for, not yet answered by a starting worker
        self._started_at: dict[int, ReloadRequest] = {}  # revision -> what it answers
        self._state_before_loss: ProvisioningState | None = None  # while the Docker engine does not answer

    # -- the engine's side -----------------------------------------------------------------------

    def booting(self) -> asyncio.Future:
        """A (re)start begins: its outcome, Succeeded or Failed, resolves the future returned."""
        self.outcome = asyncio.get_running_loop().create_future()
        self.requests = [ReloadRequest(ReloadReason.START)]
        self.no_server = self.boot_failed = False
        return self.outcome

    def new_server(self) -> None:
        """A new server replaces the one that served (a restart, a runtime switch)."""
        self.serving_revision = None
        self.served = False

    def set_state(self, state: ProvisioningState, detail: str = "") -> None:
        self.state = state
        self.emitter.emit(StateChanged(state, detail))

    def resolve(self, state: ProvisioningState, detail: str) -> None:
        if self.state != state:
            self.set_state(state, detail)
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result(state)

    def start_failed(self, ex: Exception) -> None:
        """The runtime could not stage or start the server."""
        self.no_server = self.boot_failed = True
        if isinstance(ex, PortInUse):
            self.port_taken(ex)
        elif isinstance(ex, RuntimeFailure):
            self.emitter.say(f"error: {ex}")
            self.resolve(FAILED, str(ex))
        else:  # a bug, but the deployment must still say Failed, not hang
            self.emitter.say(f"error: {type(ex).__name__}: {ex}")
            self.resolve(FAILED, f"{type(ex).__name__}: {ex}")

    def port_taken(self, ex: PortInUse) -> None:
        """Another program has the port. While the deployment starts, that is the end of it
        (``fatal``): the port was free when checked, and no save would free it. Later (a restart
        on the port devtui kept) it is Failed until a restart finds the port free."""
        if not self.booted.is_set():
            self.fatal = ex
            self.resolve(FAILED, str(ex))
        else:
            self.resolve(FAILED, f"{ex}; or free it and restart (`devtui reload --full`)")

    # -- the runtime's sink ----------------------------------------------------------------------

    def log(self, source: str, lines: list[str]) -> None:
        self.emitter.log(source, lines)

    def progress(self, step: str, done: float, total: float = 0.0) -> None:
        self.emitter.emit(Progress(step, done, total))

    def engine_lost(self, detail: str) -> None:
        # Updating, not Failed: the container may go on serving; saves wait for the engine.
        if self.state != UPDATING:
            self._state_before_loss = self.state
        self.set_state(UPDATING, detail)

    def engine_back(self, detail: str) -> None:
        before, self._state_before_loss = self._state_before_loss, None
        if before is not None and self.state == UPDATING:
            self.set_state(before, detail)
        else:
            self.emitter.say(detail)

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
            protocol.Spans: self._on_spans,
        }

    def _on_spans(self, event: protocol.Spans) -> None:
        # Hidden here, once, so that every listener (the trace file, the app) gets the batch without
        # secrets: an attribute, an input or an exception's message may quote one.
        self.emitter.emit(Traces(event.revision, self.owner.scrubber().text(event.otlp)))

    def _on_listening(self, event: protocol.Listening) -> None:
        self.port = event.port
        self.scoring_uri = f"http://{_url_host(self.host)}:{self.port}{event.path}"
        self.placement = self.owner.placement()
        self.emitter.emit(ServerStarted(self.scoring_uri, self.port, self.placement))

    def _on_starting(self, event: protocol.Starting) -> None:
        self.revision = event.revision
        requested = self.requests or [ReloadRequest(ReloadReason.START if event.first else ReloadReason.MANUAL)]
        self.requests = []
        # Of the requests one worker answers, the one that named files says best why.
        reason = max(requested, key=lambda r: len(r.files)).reason
        files = tuple(dict.fromkeys(f for r in requested for f in r.files))
        self._started_at[event.revision] = ReloadRequest(reason, files, requested[0].at)
        if not event.first or self.serving_revision is not None:
            self.emitter.emit(ReloadStarted(event.revision, reason, files))

    def _on_crashed(self, event: protocol.Crashed) -> None:
        self.emitter.say(f"The worker of revision {event.revision} exited with code {event.exit_code}; "
                         "starting it again")
        self.requests.append(ReloadRequest(ReloadReason.CRASH))
        # Nothing serves until the new worker is ready (or fails, which makes it Failed).
        self.serving_revision = None
        self.set_state(UPDATING, f"the worker of revision {event.revision} crashed; starting it again")

    def _on_debugger(self, event: protocol.Debugger) -> None:
        failed = event.state == protocol.DebuggerState.FAILED
        if not failed:
            self.owner.debug_port(event.port)
        self.debugger = DebuggerChanged(event.state, event.host, event.port, event.detail, event.held)
        self.emitter.emit(self.debugger)
        if event.wedged:
            self._wedged_debugger(event)
        elif failed:
            self.emitter.say(f"error: the debugger cannot listen on port {event.port}: {event.detail}")

    def _wedged_debugger(self, event: protocol.Debugger) -> None:
        """debugpy stopped answering new clients: once none is attached (one that is keeps its
        session), a restart of the server brings the debug port back."""
        if event.attached:
            self.emitter.say(f"The debugger on port {event.port} stopped answering new clients; the server "
                             "restarts once the attached client leaves")
            return
        self.owner.restart(f"The debugger on port {event.port} stopped answering new clients: restarting the server",
                           "the debugger stopped answering")

    def _on_bind_failed(self, event: protocol.BindFailed) -> None:
        if "in use" in event.reason:
            self.port_taken(PortInUse(event.host, event.port))
        else:
            self.resolve(FAILED, f"port {event.port} {event.reason}")

    def _on_exited(self, event: protocol.Exited) -> None:
        if not event.expected and not self.owner.stopped():
            self.serving_revision = None
            self.resolve(FAILED, f"the scoring server exited with code {event.exit_code}")
            # A server that never served (a taken port, a debugger that cannot listen) would only
            # fail the same way again: it waits for a save or a restart instead.
            self.no_server = not self.served
            if self.served:
                self.owner.server_died(event.exit_code)

    def _on_outcome(self, event: protocol.Ready | protocol.Failed) -> None:
        if self.owner.stopped():
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
                                  self.serving_revision, first, None if ok else event.stage,
                                  "" if ok else event.traceback, event.rung if ok else None,
                                  event.detail if ok else "")
        self.last_reload = finished
        self.emitter.emit(finished)
        if ok:
            if self.state != SUCCEEDED:
                self.resolve(SUCCEEDED, f"revision {revision} is serving at {self.scoring_uri}")
        elif self.serving_revision is None:
            self.resolve(FAILED, f"revision {revision} failed in {event.stage}(); save a fix to try again")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
