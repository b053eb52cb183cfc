"""The status at a glance: who, where, which state and revision, the last reload, the debugger,
and sparklines of the latest request latencies (the round trip, with the server's own time in
run() beside it) and reload durations."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, Sparkline, Static

from ...events import CREATING, DELETING, FAILED, SUCCEEDED, UPDATING

STATE_STYLE = {CREATING: "bold yellow", UPDATING: "bold yellow", SUCCEEDED: "bold green",
               FAILED: "bold red", DELETING: "bold magenta"}
HISTORY = 40


class StatusBar(Horizontal):
    state: reactive[str] = reactive(CREATING)
    revision: reactive[int | None] = reactive(None)
    scoring_uri: reactive[str] = reactive("")
    reload_text: reactive[str] = reactive("no reload yet")
    debugger: reactive[str] = reactive("off")
    detail: reactive[str] = reactive("")

    def __init__(self, endpoint: str, deployment: str, runtime: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.endpoint, self.deployment, self.runtime = endpoint, deployment, runtime
        self.engine = ""  # the Docker engine in use (container runtime), once connected
        self.latencies: deque[float] = deque(maxlen=HISTORY)
        self.reloads: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Static(id="status-text")
        with Vertical(id="status-charts"):
            yield Label("latency", classes="chart-label", id="latency-label")
            yield Sparkline(list(self.latencies), id="latency-chart")
            yield Label("reloads", classes="chart-label", id="reload-label")
            yield Sparkline(list(self.reloads), id="reload-chart")

    def on_mount(self) -> None:
        self.call_after_refresh(self.refresh_text)  # is_mounted is set once on_mount has run

    def refresh_text(self) -> None:
        if not self.is_mounted:
            return
        text = Text()
        text.append(f"{self.endpoint}", style="bold")
        text.append(f" / {self.deployment}  ", style="bold")
        text.append(f"[{self.runtime}{' on ' + self.engine if self.engine else ''}]  ", style="dim")
        text.append(f"● {self.state}", style=STATE_STYLE.get(self.state, ""))
        text.append(f"  revision {self.revision if self.revision is not None else '-'}\n")
        text.append(self.scoring_uri or "no scoring URI yet", style="underline" if self.scoring_uri else "dim")
        if self.state == DELETING:
            # Stopping: what the stop waits for, and how long at most, in the place of the rest.
            text.append(f"\n{self.detail}", style="bold yellow")
        elif self.debugger.startswith("stopped"):
            # The state that explains a request that hangs: it takes the place of everything below.
            text.append(f"\ndebugger {self.debugger}: requests wait until you continue in VS Code",
                        style="bold yellow")
        else:
            text.append(f"   debugger: {self.debugger}\nlast reload: {self.reload_text}")
            if self.detail:
                text.append(f"\n{self.detail}", style="dim")
        self.query_one("#status-text", Static).update(text)

    def watch_state(self) -> None:
        self.set_class(self.state == FAILED, "failed")
        self.refresh_text()

    def watch_revision(self) -> None:
        self.refresh_text()

    def watch_scoring_uri(self) -> None:
        self.refresh_text()

    def watch_reload_text(self) -> None:
        self.refresh_text()

    def watch_debugger(self) -> None:
        self.refresh_text()

    def watch_detail(self) -> None:
        self.refresh_text()

    def record_reload(self, revision: int, ok: bool, duration_ms: float) -> None:
        clock = time.strftime("%H:%M:%S")
        outcome = f"{duration_ms:.0f} ms" if ok else f"failed after {duration_ms:.0f} ms"
        self.reload_text = f"revision {revision} at {clock} ({outcome})"
        if ok:
            self.reloads.append(duration_ms)
            self.query_one("#reload-chart", Sparkline).data = list(self.reloads)
            self.query_one("#reload-label", Label).update(f"reloads: last {duration_ms:.0f} ms")

    def record_latency(self, ms: float, exec_ms: float | None = None) -> None:
        """A round trip in ms, and the server's time in run() when it said."""
        self.latencies.append(ms)
        self.query_one("#latency-chart", Sparkline).data = list(self.latencies)
        run = f" (run() {exec_ms:.1f})" if exec_ms is not None else ""
        self.query_one("#latency-label", Label).update(f"latency: last {ms:.1f} ms{run}")
