"""The devtui terminal app: the engine's events rendered, the engine's methods on keys.

It never talks to processes or Docker itself: every action calls the engine, and everything
shown comes from an engine event. Long work (deploy, restart) runs in Textual workers.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, ProgressBar, TabbedContent, TabPane

from .. import runtimes
from ..engine import DebugSettings, Engine, PortInUse, accept_reload_requests
from ..events import (SUCCEEDED, DebuggerChanged, Event, Logs, Progress, ReloadFinished, ReloadStarted, ServerStarted,
                      StateChanged)
from .commands import BINDINGS, Command
from .widgets import DeploymentPanel, InvokePanel, LogView, StatusBar, TracebackPanel

class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class DevtuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "devtui"
    BINDINGS = BINDINGS

    def __init__(self, engine: Engine, request_text: str | None = None, log_capacity: int = 10_000,
                 save_folder: Path | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.request_text = request_text
        self.log_capacity = log_capacity
        self.save_folder = save_folder or Path.cwd()
        self.stopping = False
        self._debug_announced = False
        engine.subscribe(lambda event: self.post_message(EngineEvent(event)))

    # -- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        d = self.engine.deployment
        yield StatusBar(d.endpoint_name, d.deployment_name, self.engine.runtime_name, id="status")
        yield ProgressBar(id="progress", show_eta=False)
        with Horizontal(id="main"):
            yield DeploymentPanel(id="deployment")
            with TabbedContent(id="tabs", initial="logs-tab"):
                with TabPane("Logs", id="logs-tab"):
                    yield LogView(self.log_capacity, id="logs")
                with TabPane("Invoke", id="invoke-tab"):
                    yield InvokePanel(self.request_text or "{}", id="invoke")
        yield TracebackPanel(id="traceback")
        yield Footer()

    @property
    def logs(self) -> LogView:
        return self.query_one("#logs", LogView)

    @property
    def invoke_panel(self) -> InvokePanel:
        return self.query_one("#invoke", InvokePanel)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    def on_mount(self) -> None:
        self.query_one("#deployment", DeploymentPanel).show(self.engine.deployment)
        self.query_one("#progress").display = False
        self.query_one("#traceback").display = False
        self.invoke_panel.timeout_s = self.engine.deployment.request_settings.request_timeout_ms / 1000 + 10
        if self.engine.debug is not None:
            self.status.debugger = f"starting on 127.0.0.1:{self.engine.debug.port}"
        try:
            # `devtui down` from another shell sends SIGTERM: leave as cleanly as on `q`.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminate)
            accept_reload_requests(self.engine)  # `devtui reload [--full]` from another shell
        except (NotImplementedError, RuntimeError):
            pass
        self.deploy()

    def _terminate(self) -> None:
        self.call_later(self.action_quit)

    @work(exclusive=True, group="engine")
    async def deploy(self) -> None:
        await self.engine.start()

    # -- engine events ----------------------------------------------------------------------------

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        self.handlers[type(message.event)](message.event)

    @property
    def handlers(self) -> dict[type, Callable]:
        """One handler per kind of engine event; a test checks that it covers them all."""
        return {
            Logs: lambda event: self.logs.add(event.records),
            StateChanged: self._state_changed,
            ServerStarted: self._server_started,
            DebuggerChanged: self._debugger_changed,
            ReloadStarted: self._reload_started,
            ReloadFinished: self._reload_finished,
            Progress: self._progress,
        }

    def _state_changed(self, event: StateChanged) -> None:
        self.status.state = event.state
        self.status.detail = event.detail
        if event.state == SUCCEEDED:
            self.status.revision = self.engine.serving_revision
            if not self.request_text:
                self._prefill_from_swagger()

    def _server_started(self, event: ServerStarted) -> None:
        self.status.scoring_uri = event.scoring_uri
        self.invoke_panel.scoring_uri = event.scoring_uri

    def _debugger_changed(self, event: DebuggerChanged) -> None:
        self.status.debugger = (f"{event.state} {event.detail}" if event.state == "stopped"
                                else f"{event.state} on 127.0.0.1:{event.port}")
        if event.state == "listening" and not self._debug_announced:
            self._debug_announced = True
            self.notify(f"Debugger listening on 127.0.0.1:{event.port}: attach with "
                        f"'devtui: attach to {self.engine.deployment.endpoint_name}' in .vscode/launch.json",
                        title="Debugger", timeout=6)

    def _reload_started(self, event: ReloadStarted) -> None:
        self.status.detail = f"reloading revision {event.revision} ({event.reason})"

    def _progress(self, event: Progress) -> None:
        bar = self.query_one("#progress", ProgressBar)
        done = event.total and event.done >= event.total
        bar.display = not done
        bar.update(total=event.total or None, progress=event.done)

    def _reload_finished(self, event: ReloadFinished) -> None:
        status = self.status
        status.revision = event.serving_revision
        status.record_reload(event.revision, event.ok, event.duration_ms)
        panel = self.query_one("#traceback", TracebackPanel)
        if event.ok:
            panel.clear_failure()
            status.detail = f"revision {event.revision} is serving"
            if not event.first:
                self.notify(f"Revision {event.revision} is serving: {event.how} in {event.duration_ms:.0f} ms",
                            title="Reloaded", timeout=3)
        else:
            panel.show_failure(event.revision, event.stage or "start", event.traceback, event.serving_revision)
            status.detail = (f"revision {event.revision} failed; revision {event.serving_revision} is still serving"
                             if event.serving_revision else f"revision {event.revision} failed; nothing is serving")
            self.notify(f"Revision {event.revision} failed in {event.stage or 'start'}", severity="error",
                        title="Reload failed", timeout=5)

    @on(InvokePanel.Answered)
    def _answered(self, message: InvokePanel.Answered) -> None:
        self.status.record_latency(message.exchange.latency_ms)

    @work(group="swagger")
    async def _prefill_from_swagger(self) -> None:
        """No sample-request.json: take the example from the swagger document, if it has one."""
        import httpx

        uri = self.engine.scoring_uri
        if not uri:
            return
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                document = (await client.get(uri.rsplit("/", 1)[0] + "/swagger.json")).json()
            example = document["definitions"]["ServiceInput"]["example"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return
        if example and self.invoke_panel.editor.text.strip() in ("", "{}"):
            self.invoke_panel.set_request(json.dumps(example, indent=2))

    # -- actions ----------------------------------------------------------------------------------

    def action_invoke(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "invoke-tab"
        self.invoke_panel.send()

    @work(group="engine-action")
    async def action_reload(self) -> None:
        self.notify("Reloading...", timeout=2)
        await self.engine.reload("manual", swap=True)

    @work(exclusive=True, group="engine-action")
    async def action_restart(self) -> None:
        self.notify("Restarting the deployment...", timeout=2)
        await self.engine.restart("restart requested")

    def action_focus_logs(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "logs-tab"
        self.logs.lines.focus()

    def action_focus_invoke(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "invoke-tab"
        self.invoke_panel.editor.focus()

    def action_toggle_follow(self) -> None:
        self.logs.follow = not self.logs.follow

    def action_toggle_timestamps(self) -> None:
        self.logs.timestamps = not self.logs.timestamps

    def action_filter_logs(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "logs-tab"
        self.query_one("#log-filter", Input).focus()

    def action_clear_logs(self) -> None:
        self.logs.clear()

    def action_save_logs(self) -> None:
        name = f"devtui-{self.engine.deployment.endpoint_name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path = self.logs.save(self.save_folder / name)
        self.notify(f"Saved {len(self.logs.visible_records())} lines to {path}", title="Logs saved")

    @work(exclusive=True, group="engine-action")
    async def action_switch_runtime(self) -> None:
        available = await asyncio.to_thread(runtimes.available)  # asks the Docker engine: not on the loop
        if len(available) < 2:
            self.notify(f"Only the {available[0]} runtime is available here.", severity="warning")
            return
        following = available[(available.index(self.engine.runtime_name) + 1) % len(available)]
        self.notify(f"Switching to the {following} runtime...")
        await self.engine.switch_runtime(following)
        self.status.runtime = following
        self.status.refresh_text()

    @work(exclusive=True, group="engine-action")
    async def action_toggle_debugger(self) -> None:
        if self.engine.debug is None:
            settings = DebugSettings(self.engine.debugger.port if self.engine.debugger else 5678)
            try:
                self.notify(f"Starting the debugger on port {settings.port} (the server restarts)...")
                self._debug_announced = False
                await self.engine.set_debug(settings)
            except PortInUse as ex:
                self.notify(str(ex), severity="error")
        else:
            self.notify("Stopping the debugger (the server restarts)...")
            await self.engine.set_debug(None)
            self.status.debugger = "off"

    async def action_quit(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.status.detail = "stopping..."
        self.workers.cancel_group(self, "engine")
        self.workers.cancel_group(self, "engine-action")
        await self.engine.stop()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: every key's command (from BINDINGS, the one list), then Textual's own."""
        for binding in self.BINDINGS:
            if isinstance(binding, Command):
                yield SystemCommand(binding.title, binding.tooltip, partial(self.run_action, binding.action))
        yield from super().get_system_commands(screen)
