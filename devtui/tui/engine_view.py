"""The engine's events rendered: one handler per kind of event, each updating the widgets that
show it (the status, the log, the failure panel, the Invoke tab), and what every event may have
changed in the engine (the deployment, the YAML's problems, whether anything serves)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from ..engine import Engine
from ..events import (DEVTUI, FAILED, SUCCEEDED, DebuggerChanged, DebuggerState, LogRecord, Logs, Progress,
                      ReloadFinished, ReloadStarted, Rung, ServerStarted, StateChanged, Traces)
from .widgets import DeploymentPanel, ProgressLine

if TYPE_CHECKING:
    from .app import DevtuiApp


def nothing_serves(engine: Engine) -> str:
    """Why no revision answers requests now, or "" when one does."""
    if engine.serving_revision is not None:
        return ""
    last = engine.last_reload
    if last is not None and not last.ok and last.serving_revision is None:
        return f"revision {last.revision} failed in {last.stage or 'start'}(); nothing is serving"
    if engine.state == FAILED:
        return "the deployment is Failed; nothing is serving"
    return "no revision is serving yet"


class EngineView:
    def __init__(self, app: DevtuiApp) -> None:
        self.app = app
        self.debug_announced = False
        self.deployment_shown = None

    @cached_property
    def handlers(self) -> dict[type, Callable]:
        """One handler per kind of engine event, built once."""
        app = self.app
        return {
            Logs: self._logs,
            StateChanged: self._state_changed,
            ServerStarted: self._server_started,
            DebuggerChanged: self._debugger_changed,
            ReloadStarted: self._reload_started,
            ReloadFinished: self._reload_finished,
            Progress: lambda event: app.query_one("#progress", ProgressLine).update(event),
            Traces: lambda event: app.traces.add(event.revision, event.otlp),
        }

    def _logs(self, event: Logs) -> None:
        self.app.logs.add(event.records)
        if self.app.explainer.pending:
            self.app.explainer.check(self.app.logs.buffer.all)

    def sync(self) -> None:
        """What every event may have changed in the engine: the deployment (a restart loads the
        YAML again), the YAML's problems, and whether anything serves."""
        deployment = self.app.engine.deployment
        if deployment is not self.deployment_shown:
            self.deployment_shown = deployment
            self.app.query_one("#deployment", DeploymentPanel).show(deployment)
            self.app.invoke_panel.timeout_s = deployment.request_settings.request_timeout_ms / 1000 + 10
        self.app.failure.show_yaml(self.app.engine.spec_error, self.app.engine.serving_revision)
        self.app.invoke_panel.not_serving = nothing_serves(self.app.engine)
        self.app.invoke_panel.serving(self.app.engine.serving_revision)

    def _state_changed(self, event: StateChanged) -> None:
        # The line the devtui log file has for it (cli.views.Recorder writes it there), so the
        # app's devtui source shows the provisioning as `devtui logs --container devtui` does.
        self.app.logs.add([LogRecord(DEVTUI, f"provisioning_state: {event.state}"
                                             + (f" ({event.detail})" if event.detail else ""), time.time())])
        self.app.status.state = event.state
        # While quitting, the status keeps saying what the stop waits for.
        self.app.status.detail = self.app.quitter.said or event.detail
        if event.state == SUCCEEDED:
            self.app.status.revision = self.app.engine.serving_revision
            if not self.app.request_text:
                self.app.invoke_panel.prefill_from_swagger()

    def _server_started(self, event: ServerStarted) -> None:
        placement = event.placement  # which Docker engine, by now connected
        self.app.status.docker_daemon, self.app.status.context = placement.docker_daemon or "", placement.docker_context
        self.app.status.scoring_uri = event.scoring_uri
        self.app.invoke_panel.scoring_uri = event.scoring_uri
        self.app.invoke_panel.reset_connections()

    def _debugger_changed(self, event: DebuggerChanged) -> None:
        self.app.status.debugger = (f"{event.state} {event.detail}" if event.state == DebuggerState.STOPPED
                                else f"{event.state} on 127.0.0.1:{event.port}")
        self.app.traces.held(event.detail if event.state == DebuggerState.STOPPED else "", event.held)
        if event.state == DebuggerState.LISTENING and not self.debug_announced:
            self.debug_announced = True
            self.app.notify(f"Debugger listening on 127.0.0.1:{event.port}: attach with "
                        f"'devtui: attach to {self.app.engine.deployment.endpoint_name}' in .vscode/launch.json",
                        title="Debugger", timeout=6)

    def _reload_started(self, event: ReloadStarted) -> None:
        self.app.status.detail = f"reloading revision {event.revision} ({event.reason})"

    def _reload_finished(self, event: ReloadFinished) -> None:
        status = self.app.status
        status.revision = event.serving_revision
        status.record_reload(event)
        if event.ok:
            self.app.failure.clear_reload()
            if event.rung != Rung.PATCH:  # a new worker: the old one's connections end with it
                self.app.invoke_panel.reset_connections()
            status.detail = f"revision {event.revision} is serving"
            if not event.first:
                self.app.notify(f"Revision {event.revision} is serving: {event.how} in {event.duration_ms:.0f} ms",
                            title="Reloaded", timeout=3)
        else:
            # The panel says it all, headline first: no notification to cover it.
            self.app.failure.show_reload(event, self.app.engine.deployment.code_dir)
            status.detail = (f"revision {event.revision} failed; revision {event.serving_revision} is still serving"
                             if event.serving_revision else f"revision {event.revision} failed; nothing is serving")
