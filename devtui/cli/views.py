"""What the hosted engine's events become outside it: lines on stdout (``Printer``), the registry
record and the log files (``Recorder``), VS Code's attach configuration (``LaunchConfig``), and a
pinned request's replays as devtui log lines (``ReplayLog``, for `up --replay`).

``Printer`` and ``Recorder`` have one handler per event class, in a table keyed by the class;
``tests/test_views.py`` checks that each table names every class of ``events.Event``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from .. import registry
from ..debug import LaunchJsonError, attach_configuration, merge_launch_json
from ..engine import Engine
from ..events import (DEVTUI, SOURCES, DebuggerChanged, DebuggerState, LogRecord, Logs, Progress, ReloadFinished,
                      ReloadStarted, ServerStarted, StateChanged, Traces)
from ..logs import LogFiles
from ..traces import TraceFile
from ..traces import path as traces_path
from ..record import swagger_uri
from ..replay import Replayed, ReplayWaiting

Handlers = dict[type, Callable[[Any, Any], None]]


def _detail(text: str) -> str:
    return f" ({text})" if text else ""


class Printer:
    """The foreground view of ``up``: every log line prefixed with its source. When the reader
    goes away (`devtui up PATH | head -3`), ``on_closed`` is called once: the host stops."""

    width = max(map(len, SOURCES))

    def __init__(self, on_closed: Callable[[], None] | None = None):
        self.on_closed = on_closed
        self.closed = False

    def line(self, source: str, text: str) -> None:
        print(f"{source:<{self.width}} | {text}", flush=False)

    def __call__(self, event) -> None:
        if self.closed:
            return
        try:
            handler = self.handlers.get(type(event))
            if handler is not None:
                handler(self, event)
            sys.stdout.flush()
        except BrokenPipeError:
            self.closed = True
            # Later writes (and the interpreter's final flush) go nowhere instead of failing.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if self.on_closed is not None:
                self.on_closed()

    def _logs(self, event: Logs) -> None:
        for record in event.records:
            self.line(record.source, record.text)

    def _state(self, event: StateChanged) -> None:
        self.line(DEVTUI, f"provisioning_state: {event.state}{_detail(event.detail)}")

    def _debugger(self, event: DebuggerChanged) -> None:
        self.line(DEVTUI, f"debugger {event.state} on {event.host}:{event.port}{_detail(event.detail)}")

    def _reload_started(self, event: ReloadStarted) -> None:
        files = f": {', '.join(Path(f).name for f in event.files)}" if event.files else ""
        self.line(DEVTUI, f"reloading revision {event.revision} ({event.reason}{files})")

    def _reload_finished(self, event: ReloadFinished) -> None:
        if event.first and event.ok:
            return  # the state change says it: Succeeded
        if event.ok:
            self.line(DEVTUI, f"revision {event.revision} is serving: {event.how} in {event.duration_ms:.0f} ms")
            return
        serving = (f"revision {event.serving_revision} keeps serving" if event.serving_revision
                   else "nothing is serving")
        self.line(DEVTUI, f"revision {event.revision} failed in {event.stage} ({event.duration_ms:.0f} ms); "
                          f"{serving}. The traceback is above; save a fix to try again.")

    def _quiet(self, event) -> None:
        """Shown by the lines around it (ServerStarted: the server's own log) or not at all."""

    handlers: ClassVar[Handlers] = {
        Logs: _logs, StateChanged: _state, DebuggerChanged: _debugger, ReloadStarted: _reload_started,
        ReloadFinished: _reload_finished, ServerStarted: _quiet, Progress: _quiet, Traces: _quiet,
    }


class Recorder:
    """Keeps the registry record, the log files and the trace file in step with the engine's events."""

    def __init__(self, engine: Engine, claim: registry.Claim):
        self.engine, self.claim = engine, claim
        self.files: LogFiles | None = LogFiles(claim.folder / "logs")
        self.traces: TraceFile | None = TraceFile(traces_path(claim.folder))
        d = engine.deployment
        claim.update(name=d.endpoint_name, auth_mode=d.auth_mode, location="local",
                     provisioning_state=engine.state, scoring_uri=None, swagger_uri=None,
                     traffic={d.deployment_name: 100}, tags=d.endpoint_tags, properties={},
                     deployment_file=str(d.deployment_file), logs=str(self.files.folder),
                     deployments=[engine.describe()])

    def __call__(self, event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    def _write(self, records) -> None:
        if self.files is None:
            return
        try:
            self.files.write(records)
        except OSError as ex:
            # A full disk (or a vanished folder) ends the log files, not the endpoint: say so once.
            files, self.files = self.files, None
            files.close(quiet=True)
            self.engine.log(DEVTUI, [f"error: writing the log files in {files.folder} failed ({ex.strerror}); "
                                     "they stop here, the endpoint keeps serving and the app still shows its logs"])

    def _logs(self, event: Logs) -> None:
        self._write(event.records)

    def _traces(self, event: Traces) -> None:
        if self.traces is None:
            return
        try:
            self.traces.write(event.otlp)
        except OSError as ex:
            traces, self.traces = self.traces, None
            traces.close()
            self.engine.log(DEVTUI, [f"error: writing the traces in {traces.file} failed ({ex.strerror}); "
                                     "traces stop being kept, the endpoint keeps serving"])

    def _state(self, event: StateChanged) -> None:
        # The devtui log says why the state changed, for `devtui logs --container devtui`.
        self._write([LogRecord(DEVTUI, f"provisioning_state: {event.state}{_detail(event.detail)}")])
        self._update(event)

    def _update(self, event) -> None:
        """The record follows what `show` prints: state, scoring URI, the deployment."""
        uri = self.engine.scoring_uri
        fatal = {"fatal": str(self.engine.fatal)} if self.engine.fatal is not None else {}
        self.claim.update(provisioning_state=self.engine.state, scoring_uri=uri, swagger_uri=swagger_uri(uri),
                          deployments=[self.engine.describe()], **fatal)

    def _ignore(self, event) -> None:
        """Nothing recorded changes (the next state change or reload records the outcome)."""

    handlers: ClassVar[Handlers] = {
        Logs: _logs, StateChanged: _state, ServerStarted: _update, ReloadFinished: _update, DebuggerChanged: _update,
        ReloadStarted: _ignore, Progress: _ignore, Traces: _traces,
    }


class LaunchConfig:
    """Writes (or updates) the VS Code attach configuration once the debugger listens."""

    def __init__(self, engine: Engine, folder: Path):
        self.engine, self.folder, self.written = engine, folder, None

    def __call__(self, event) -> None:
        if not isinstance(event, DebuggerChanged) or event.state != DebuggerState.LISTENING:
            return
        placement = self.engine.placement  # local_code: the code folder, or a prompt flow's folder
        configuration = attach_configuration(self.engine.deployment.endpoint_name, "127.0.0.1", event.port,
                                             placement.local_code, placement.code_path,
                                             list(placement.debug_mappings) or None)
        if configuration == self.written:
            return
        try:
            path = merge_launch_json(self.folder, configuration)
        except (LaunchJsonError, OSError) as ex:
            self.engine.log(DEVTUI, [f"warning: {ex}"])
            return
        self.written = configuration
        self.engine.log(DEVTUI, [f"debugger listening on 127.0.0.1:{event.port}; attach with the configuration "
                                 f"{configuration['name']!r} in {path} (F5 in VS Code)"])


class ReplayLog:
    """`up --replay FILE`: each replay as devtui log lines, so `up` prints them with its log and
    the devtui log file keeps them (`devtui logs --container devtui`, with --detach too)."""

    DIFF_LINES = 200  # of a diff in the log; the rest is counted

    def __init__(self, engine: Engine):
        self.engine = engine

    def __call__(self, event) -> None:
        self.engine.log(DEVTUI, self.handlers[type(event)](self, event))

    def _replayed(self, event: Replayed) -> list[str]:
        answer = event.answer
        where = f"revision {event.revision}" if event.revision is not None else "the endpoint"
        how = (f"older than revision {event.reload.revision}, which was serving when it was sent" if event.stale
               else event.how)
        if answer.status is None:
            return [f"replay: {where}{_detail(how)}: {answer.why}"]
        head = f"replay: {where}{_detail(how)}: {answer.status_text}"
        if not answer.ok:
            reason = answer.exception or answer.message or answer.body.strip()[:200]
            return [f"{head}: {reason}" if reason else head]
        head += f" in {answer.latency_ms:.0f} ms"
        if event.baseline:
            return [f"{head}: the baseline of {event.request.describe()}; each reload sends it again and shows "
                    "what changed"]
        before = f"revision {event.previous.revision}" if event.previous.revision is not None else "the previous answer"
        if not event.changed:
            return [f"{head}; no change since {before}"]
        shown = event.diff[:self.DIFF_LINES]
        more = [f"  ... and {len(event.diff) - len(shown)} more lines"] if len(event.diff) > len(shown) else []
        return [f"{head}; the body changed since {before}:", *(f"  {line}" for line in shown), *more]

    def _waiting(self, event: ReplayWaiting) -> list[str]:
        where = f" {event.detail}" if event.detail else ""
        return [f"replay: revision {event.revision} serves; the replay waits while the debugger holds a "
                f"request{where}"]

    handlers: ClassVar[dict[type, Callable[[Any, Any], list[str]]]] = {
        Replayed: _replayed, ReplayWaiting: _waiting,
    }
