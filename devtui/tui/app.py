"""The devtui terminal app: the engine's events rendered, the engine's methods on keys.

It never talks to processes or Docker itself: every action calls the engine, and everything
shown comes from an engine event (or what the engine holds when one arrives). Long work (deploy,
restart) runs in Textual workers. The widgets own their keys and behaviour; the app wires them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import TabbedContent, TabPane

from .. import runtimes
from ..engine import DebugSettings, Engine, PortInUse, accept_reload_requests
from ..events import (FAILED, SUCCEEDED, DebuggerChanged, Event, Logs, Progress, ReloadFinished, ReloadStarted,
                      ServerStarted, StateChanged)
from .commands import BINDINGS, palette_commands
from .exchange import sample_request
from .focus import Focus
from .quitting import Quitter
from .screens import HelpScreen
from .widgets import (AppFooter, ChatPanel, DeploymentPanel, FailurePanel, InvokePanel, LogView, ProgressLine,
                      StatusBar)

# Below this many columns the deployment panel starts folded away (`b` brings it back).
NARROW = 120


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


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


class DevtuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "devtui"
    BINDINGS = BINDINGS
    AUTO_FOCUS = "#log-lines"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]

    def __init__(self, engine: Engine, request_text: str | None = None, log_capacity: int = 10_000,
                 save_folder: Path | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.request_text = request_text if request_text is not None else sample_request(engine.deployment)
        self.chat = engine.deployment.flow is not None and engine.deployment.flow.is_chat
        self.log_capacity = log_capacity
        self.save_folder = save_folder or Path.cwd()
        self.quitter = Quitter(self)
        self.focus = Focus(self)
        self._debug_announced = False
        self._deployment_shown = None
        engine.subscribe(lambda event: self.post_message(EngineEvent(event)))

    # -- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        d = self.engine.deployment
        yield StatusBar(d.endpoint_name, d.deployment_name, self.engine.runtime_name, id="status")
        yield ProgressLine(id="progress")
        with Horizontal(id="main"):
            yield DeploymentPanel(id="deployment")
            with TabbedContent(id="tabs", initial="logs-tab"):
                with TabPane("Logs", id="logs-tab"):
                    yield LogView(self.log_capacity, self.save_folder, d.endpoint_name, id="logs")
                with TabPane("Invoke", id="invoke-tab"):
                    yield InvokePanel(self.request_text or "{}", d.deployment_file.parent, id="invoke")
                if self.chat:
                    with TabPane("Chat", id="chat-tab"):
                        yield ChatPanel(lambda: self.engine.deployment, lambda: self.engine.scoring_uri, id="chat")
        yield FailurePanel(id="failure")
        yield AppFooter()

    @property
    def logs(self) -> LogView:
        return self.query_one("#logs", LogView)

    @property
    def invoke_panel(self) -> InvokePanel:
        return self.query_one("#invoke", InvokePanel)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def failure(self) -> FailurePanel:
        return self.query_one("#failure", FailurePanel)

    def on_mount(self) -> None:
        self._sync()
        if self.engine.debug is not None:
            self.status.debugger = f"starting on 127.0.0.1:{self.engine.debug.port}"
        try:
            # `devtui down` from another shell sends SIGTERM: leave as cleanly as on `q`.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: self.call_later(self.action_quit))
            accept_reload_requests(self.engine)  # `devtui reload [--full]` from another shell
        except (NotImplementedError, RuntimeError):
            pass
        self.deploy()

    @work(exclusive=True, group="engine")
    async def deploy(self) -> None:
        await self.engine.start()

    # -- engine events ----------------------------------------------------------------------------

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        try:
            self.handlers[type(message.event)](message.event)
            self._sync()
        except NoMatches:  # the app is closing and its widgets are gone; the engine still reports
            pass

    @cached_property
    def handlers(self) -> dict[type, Callable]:
        """One handler per kind of engine event, built once; a test checks that it covers them all."""
        return {
            Logs: lambda event: self.logs.add(event.records),
            StateChanged: self._state_changed,
            ServerStarted: self._server_started,
            DebuggerChanged: self._debugger_changed,
            ReloadStarted: self._reload_started,
            ReloadFinished: self._reload_finished,
            Progress: lambda event: self.query_one("#progress", ProgressLine).update(event),
        }

    def _sync(self) -> None:
        """What every event may have changed in the engine: the deployment (a restart loads the
        YAML again), the YAML's problems, and whether anything serves."""
        deployment = self.engine.deployment
        if deployment is not self._deployment_shown:
            self._deployment_shown = deployment
            self.query_one("#deployment", DeploymentPanel).show(deployment)
            self.invoke_panel.timeout_s = deployment.request_settings.request_timeout_ms / 1000 + 10
        self.failure.show_yaml(self.engine.spec_error, self.engine.serving_revision)
        self.invoke_panel.not_serving = nothing_serves(self.engine)

    def _state_changed(self, event: StateChanged) -> None:
        self.status.state = event.state
        # While quitting, the status keeps saying what the stop waits for.
        self.status.detail = self.quitter.said or event.detail
        if event.state == SUCCEEDED:
            self.status.revision = self.engine.serving_revision
            if not self.request_text:
                self.invoke_panel.prefill_from_swagger()

    def _server_started(self, event: ServerStarted) -> None:
        self.status.engine = self.engine.describe().engine or ""  # which Docker engine, by now connected
        self.status.scoring_uri = event.scoring_uri
        self.invoke_panel.scoring_uri = event.scoring_uri
        self.invoke_panel.reset_connections()

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

    def _reload_finished(self, event: ReloadFinished) -> None:
        status = self.status
        status.revision = event.serving_revision
        status.record_reload(event.revision, event.ok, event.duration_ms)
        if event.ok:
            self.failure.clear_reload()
            if event.rung != "patch":  # a new worker: the old one's connections end with it
                self.invoke_panel.reset_connections()
            status.detail = f"revision {event.revision} is serving"
            if not event.first:
                self.notify(f"Revision {event.revision} is serving: {event.how} in {event.duration_ms:.0f} ms",
                            title="Reloaded", timeout=3)
        else:
            # The panel says it all, headline first: no notification to cover it.
            self.failure.show_reload(event, self.engine.deployment.code_dir)
            status.detail = (f"revision {event.revision} failed; revision {event.serving_revision} is still serving"
                             if event.serving_revision else f"revision {event.revision} failed; nothing is serving")

    @on(InvokePanel.Answered)
    def _answered(self, message: InvokePanel.Answered) -> None:
        if message.exchange.status is not None:
            self.status.record_latency(message.exchange.latency_ms, message.exchange.exec_ms)

    @on(InvokePanel.TracebackWanted)
    def _traceback_wanted(self, message: InvokePanel.TracebackWanted) -> None:
        exchange = message.exchange
        self.action_focus_logs()
        if not self.logs.reveal(exchange.request_id, exchange.sent, exchange.at):
            self.notify(f"The log has no traceback of request {exchange.request_id or '(no x-request-id)'} "
                        "(yet, or no longer)", severity="warning")

    # -- actions ----------------------------------------------------------------------------------

    def action_invoke(self) -> None:
        if self.chat and (chat := self.query_one("#chat", ChatPanel)).has_focus_within:
            chat.send(chat.message.value)  # ctrl+j sends what is being written: the chat message
        else:
            self.query_one("#tabs", TabbedContent).active = "invoke-tab"
            self.focus.keep_visible()  # the field typed in may be hidden now: before the next key
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
        self.focus.show("logs-tab")

    @on(events.DescendantFocus)
    @on(TabbedContent.TabActivated, "#tabs")
    def _focus_moved(self) -> None:
        self.call_after_refresh(self.focus.keep_visible)

    def action_back_to_log(self) -> None:
        self.action_focus_logs()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # esc (and its hint in the footer) wherever the focus is, except on the log itself; chat: a chat flow's.
        return (self.chat if action == "focus_chat"
                else action != "back_to_log" or getattr(self.focused, "id", None) != "log-lines")

    def action_focus_invoke(self) -> None:
        self.focus.show("invoke-tab")

    def action_focus_chat(self) -> None:
        self.focus.show("chat-tab")

    def action_toggle_side_panel(self) -> None:
        self.query_one("#deployment", DeploymentPanel).toggle()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    @work(exclusive=True, group="engine-action")
    async def action_switch_runtime(self) -> None:
        # It asks the Docker engine (the one --context names): not on the event loop.
        available = await asyncio.to_thread(runtimes.available, context=self.engine.runtime.options.context)
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

    def action_quit(self) -> None:
        self.quitter.press()

    def requests_in_flight(self) -> int:
        """This app's requests still waiting for their answer (Invoke and Chat)."""
        chat = self.chat and self.query_one("#chat", ChatPanel).busy
        return self.invoke_panel.in_flight + int(bool(chat))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: every key's command (from the binding lists), then Textual's own."""
        yield from palette_commands(self)
        yield from super().get_system_commands(screen)
