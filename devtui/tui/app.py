"""The devtui terminal app: the engine's events rendered, the engine's methods on keys.

It never talks to processes or Docker itself: every action calls the engine, and everything
shown comes from an engine event (or what the engine holds when one arrives). Long work (deploy,
restart) runs in Textual workers. The widgets own their keys and behaviour; the app wires them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from functools import cached_property, partial
from pathlib import Path

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import TabbedContent, TabPane

from .. import runtimes
from ..engine import DebugSettings, Engine, accept_reload_requests
from ..events import Event
from .commands import BINDINGS, no_chat_reason, palette_commands
from .exchange import sample_request
from .engine_view import EngineView
from .failures import Explainer, TracebackWanted
from .focus import Focus
from .pinning import Pinning, PinWanted, ReplayMessage
from .quitting import Quitter
from .tracing import RequestSent, Tracing, earlier_traces
from .screens import HelpScreen
from .widgets import (AppFooter, ChatPanel, DeploymentPanel, FailurePanel, InvokePanel, LogView, ProgressLine,
                      StatusBar, TracesPanel)

# Below this many columns the deployment panel starts folded away (`b` brings it back).
NARROW = 120


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


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
        self.explainer = Explainer()
        self.view = EngineView(self)
        self.pinning = Pinning(self)  # replay on save: nothing is sent until a request is pinned
        self.tracing = Tracing(self)
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
                with TabPane("Traces", id="traces-tab"):
                    yield TracesPanel(self.engine.launch.traces, earlier=earlier_traces(self.engine), id="traces")
        yield FailurePanel(id="failure")
        yield AppFooter()

    @property
    def logs(self) -> LogView:
        return self.query_one("#logs", LogView)

    @property
    def invoke_panel(self) -> InvokePanel:
        return self.query_one("#invoke", InvokePanel)

    @property
    def traces(self) -> TracesPanel:
        return self.query_one("#traces", TracesPanel)

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
        """One handler per kind of engine event (the view's); a test checks that it covers them all."""
        return self.view.handlers

    def _sync(self) -> None:
        self.view.sync()

    @on(RequestSent)
    def _sent(self, message: RequestSent) -> None:
        self.tracing.sent(message.request, message.request_id)

    @on(InvokePanel.Answered)
    def _answered(self, message: InvokePanel.Answered) -> None:
        exchange = message.exchange
        self.tracing.answered(exchange.request)
        if exchange.status is not None:
            self.status.record_latency(exchange.latency_ms, exchange.exec_ms)
        if exchange.failed:
            self.explainer.watch(self.logs.buffer.all, exchange.request_id, exchange.sent, exchange.at,
                                 partial(self.invoke_panel.explain, exchange))

    @on(ChatPanel.Failed)
    def _chat_failed(self, message: ChatPanel.Failed) -> None:
        turn = message.turn
        self.explainer.watch(self.logs.buffer.all, turn.request_id, turn.sent, turn.at, turn.explain)

    @on(PinWanted)
    async def _pin_wanted(self, message: PinWanted) -> None:
        await self.pinning.toggle(message)

    @on(ReplayMessage)
    def _replayed(self, message: ReplayMessage) -> None:
        self.pinning.show(message.event)

    def action_unpin(self) -> None:
        self.pinning.unpin()

    async def on_unmount(self) -> None:
        await self.pinning.close()

    @on(TracebackWanted)
    def _traceback_wanted(self, message: TracebackWanted) -> None:
        self.action_focus_logs()
        if not self.logs.reveal(message.request_id, message.since, message.until):
            self.notify(f"The log has no traceback of request {message.request_id or 'sent then'} "
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
        # The server goes away: a request sent meanwhile must not ride its kept-alive connection
        # (reset under it) but reach whatever listens now, which says why nothing serves.
        self.invoke_panel.reset_connections()
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
        # esc (and its hint in the footer) wherever the focus is, except on the log itself; m: a chat
        # flow's Chat tab, else (no_chat) why there is none.
        if action == "unpin":
            return self.pinning.pinned
        if action in ("focus_chat", "no_chat"):
            return self.chat == (action == "focus_chat")
        return action != "back_to_log" or getattr(self.focused, "id", None) != "log-lines"

    def action_no_chat(self) -> None:
        self.notify(no_chat_reason(self.engine.deployment), title="No Chat tab", severity="warning", timeout=6)

    def action_focus_invoke(self) -> None:
        self.focus.show("invoke-tab")

    def action_focus_traces(self) -> None:
        self.focus.show("traces-tab")

    def action_trace_answer(self) -> None:
        self.tracing.open_answer()

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
        available = await asyncio.to_thread(runtimes.available, context=self.engine.launch.context)
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
                self.view.debug_announced = False
                await self.engine.set_debug(settings)
            except runtimes.PortInUse as ex:
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
        ours = list(palette_commands(self))
        yield from ours
        # Textual's own, but not a second Quit (ours says what stopping waits for).
        titles = {command.title for command in ours}
        yield from (command for command in super().get_system_commands(screen) if command.title not in titles)
