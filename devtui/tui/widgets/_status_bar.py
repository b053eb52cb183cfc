"""The status at a glance: who, where, which state and revision, how the last reload happened,
the debugger, and sparklines of the latest request latencies (the round trip, with the server's
own time in run() beside it) and reload durations.

Each line is folded to the width it has, never wrapped: the state, the revision and the serving
line always show; the engine's name, the deployment's name and the debugger give way first. The
charts fold away below ``CHARTS_FROM`` columns, so the text keeps room at 80.
"""

from __future__ import annotations

import math
import time
from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, Sparkline, Static

from ...events import CREATING, DELETING, FAILED, SUCCEEDED, UPDATING, ReloadFinished

STATE_STYLE = {CREATING: "bold yellow", UPDATING: "bold yellow", SUCCEEDED: "bold green",
               FAILED: "bold red", DELETING: "bold magenta"}
HISTORY = 40
CHART_WIDTH = 34  # as #status-charts in app.tcss
CHARTS_FROM = 100  # columns
GAP = "  "


def fold(parts: list[tuple[Text, int]], width: int) -> Text:
    """``parts`` on one line of at most ``width`` cells: those of the highest rank (0: never) are
    left out first, then what still does not fit is cut with an ellipsis."""
    kept = [part for part in parts if part[0].cell_len]
    while sum(t.cell_len for t, _ in kept) + len(GAP) * (len(kept) - 1) > width and any(r for _, r in kept):
        worst = max(rank for _, rank in kept)
        kept.remove(next(part for part in reversed(kept) if part[1] == worst))
    line = Text(GAP).join(t for t, _ in kept)
    line.truncate(max(1, width), overflow="ellipsis")
    return line


def chart_data(values: deque[float], width: int) -> list[float]:
    """What a sparkline draws: on a log scale, so one request held 12 s at a breakpoint does not
    flatten the rest, and padded on the left to the chart's width, so each value is one bar
    (a single value is one bar at the right, not the whole width)."""
    scaled = [math.log10(1 + max(0.0, v)) for v in list(values)[-width:]]
    return [0.0] * (width - len(scaled)) + scaled


def engine_name(runtime: str, engine: str, context: str | None) -> str:
    """The runtime, and briefly the engine it runs on: ``process``, ``docker: default``."""
    if not engine:
        return runtime
    family = "podman" if "podman" in engine.lower() else "docker"
    return f"{family}: {context or 'default'}"


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
        self.docker_daemon = ""  # the Docker engine in use (container runtime), once connected, for a person
        self.context: str | None = None  # its Docker context
        self.reload_at = ""  # when the last reload (or start) finished: left out first when narrow
        self.latencies: deque[float] = deque(maxlen=HISTORY)
        self.reloads: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Static(id="status-text")
        with Vertical(id="status-charts"):
            yield Label("latency", classes="chart-label", id="latency-label")
            yield Sparkline([], id="latency-chart")
            yield Label("reloads", classes="chart-label", id="reload-label")
            yield Sparkline([], id="reload-chart")

    def on_mount(self) -> None:
        self.call_after_refresh(self.refresh_text)  # is_mounted is set once on_mount has run

    def on_resize(self) -> None:
        self.query_one("#status-charts").display = self.outer_size.width >= CHARTS_FROM
        self.refresh_text()

    @property
    def text_width(self) -> int:
        charts = self.query_one("#status-charts")
        width = self.size.width - (CHART_WIDTH if charts.display else 0)
        return width if width > 0 else 200  # before the first layout: not folded yet

    def refresh_text(self) -> None:
        if not self.is_mounted:
            return
        width = self.text_width
        runtime = engine_name(self.runtime, self.docker_daemon, self.context)
        revision = self.revision if self.revision is not None else "-"
        lines = [fold([(Text(f"{self.endpoint} / {self.deployment}", style="bold"), 2),
                       (Text(f"[{runtime}]", style="dim"), 3),
                       (Text(f"● {self.state}", style=STATE_STYLE.get(self.state, "")), 0),
                       (Text(f"revision {revision}"), 0)], width)]
        uri = Text(self.scoring_uri or "no scoring URI yet", style="underline" if self.scoring_uri else "dim")
        if self.state == DELETING:
            # Stopping: what the stop waits for, and how long at most, in the place of the rest.
            lines += [fold([(uri, 0)], width), Text(self.detail, style="bold yellow")]
        elif self.debugger.startswith("stopped"):
            # The state that explains a request that hangs: it takes the place of everything below.
            lines += [fold([(uri, 0)], width),
                      Text(f"debugger {self.debugger}: requests wait until you continue in VS Code",
                           style="bold yellow")]
        else:
            lines += [fold([(uri, 0), (Text(f"debugger: {self.debugger}"), 1)], width),
                      fold([(Text(self.reload_text), 0), (Text(self.reload_at, style="dim"), 1)], width)]
            if self.detail:
                lines.append(fold([(Text(self.detail, style="dim"), 0)], width))
        self.query_one("#status-text", Static).update(Text("\n").join(lines))
        self.query_one("#status-text", Static).tooltip = f"{self.runtime}: {self.docker_daemon}" if self.docker_daemon else None

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

    def record_reload(self, event: ReloadFinished) -> None:
        """A reload finished: how it happened (patched in place, a worker swap and why) and how
        long it took. The first start is no reload: it is said, not charted."""
        self.reload_at = f"at {time.strftime('%H:%M:%S')}"
        took = f"{event.duration_ms:.0f} ms"
        what = "start" if event.first else "last reload"
        if not event.ok:
            self.reload_text = f"{what}: revision {event.revision} failed in {event.stage or 'start'}() after {took}"
        elif event.first:
            self.reload_text = f"started revision {event.revision} in {took}"
        else:
            self.reload_text = f"last reload: revision {event.revision} {event.how}, {took}"
            self.reloads.append(event.duration_ms)
            self._chart("#reload-chart", self.reloads)
            self.query_one("#reload-label", Label).update(f"reloads: last {took}")

    def record_latency(self, ms: float, exec_ms: float | None = None) -> None:
        """A round trip in ms, and the server's time in run() when it said."""
        self.latencies.append(ms)
        self._chart("#latency-chart", self.latencies)
        run = f" (run() {exec_ms:.1f})" if exec_ms is not None else ""
        self.query_one("#latency-label", Label).update(f"latency: last {ms:.1f} ms{run}")

    def _chart(self, selector: str, values: deque[float]) -> None:
        chart = self.query_one(selector, Sparkline)
        chart.data = chart_data(values, chart.size.width or CHART_WIDTH)
