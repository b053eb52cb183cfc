"""The logs of every source, live: one source or all with a source column, a filter, follow.

Records arrive in batches from the engine and are kept in a bounded :class:`LogBuffer`. The
view is updated on a timer, at most every ``FLUSH_S``, and draws only the lines on screen, so
a script logging thousands of lines a second never stalls input.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, Input, Select

from ...events import DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER, LogRecord
from ...logs import LogBuffer
from ._log_lines import LogLines

FLUSH_S = 0.05
ALL = "all"
SOURCE_STYLE = {INFERENCE_SERVER: "cyan", STORAGE_INITIALIZER: "magenta", DEVTUI: "green"}
# The reference server's format puts the level letter after the time: "... 12:00:00,123 E [42] ..."
_LEVEL = re.compile(r"\s([EWC])\s\[\d+\]|\b(ERROR|CRITICAL|WARNING|Traceback|Error:)")


def level_style(text: str) -> str:
    match = _LEVEL.search(text)
    if not match:
        return ""
    word = match.group(1) or match.group(2)
    return "yellow" if word in ("W", "WARNING") else "red"


class LogView(Vertical):
    """Logs with a source selector, a filter box, follow and timestamps toggles."""

    follow: reactive[bool] = reactive(True)
    timestamps: reactive[bool] = reactive(False)
    source: reactive[str] = reactive(ALL)

    def __init__(self, capacity: int = 10_000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.buffer = LogBuffer(capacity)
        self.pending: list[LogRecord] = []
        self.unseen = 0
        self.pattern: re.Pattern | None = None
        self.filter_text = ""
        self.filter_error = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-toolbar"):
            yield Select([("All sources", ALL), (INFERENCE_SERVER, INFERENCE_SERVER),
                          (STORAGE_INITIALIZER, STORAGE_INITIALIZER), (DEVTUI, DEVTUI)],
                         value=ALL, allow_blank=False, id="log-source")
            yield Input(placeholder="Filter: text, or /regex/", id="log-filter")
            yield Button("Following", id="log-follow", variant="primary")
            yield Button("", id="log-new-lines", variant="warning")
        yield LogLines(self.render_record, self.buffer.capacity, id="log-lines")

    def on_mount(self) -> None:
        self.query_one("#log-new-lines").display = False
        self.set_interval(FLUSH_S, self.flush)

    @property
    def lines(self) -> LogLines:
        return self.query_one("#log-lines", LogLines)

    # -- data in ------------------------------------------------------------------------------

    def add(self, records: Iterable[LogRecord]) -> None:
        """Queue records; the screen catches up on the next flush."""
        records = list(records)
        self.buffer.extend(records)
        self.pending.extend(records)
        if len(self.pending) > self.buffer.capacity:
            del self.pending[: len(self.pending) - self.buffer.capacity]

    def flush(self) -> None:
        if not self.pending:
            return
        visible = [r for r in self.pending if self.matches(r)]
        self.pending.clear()
        if not visible:
            return
        if not self.follow:
            self.unseen += len(visible)
            marker = self.query_one("#log-new-lines", Button)
            marker.label = f"+{self.unseen} new lines"
            marker.display = True
        self._write(visible)

    def _write(self, records: list[LogRecord]) -> None:
        """Hand the records to the view, which renders only what is on screen."""
        lines = self.lines
        lines.auto_scroll = self.follow
        prefix = (13 if self.timestamps else 0) + (20 if self.source == ALL else 0)
        lines.extend(records[-self.buffer.capacity:], prefix)

    def render_record(self, record: LogRecord) -> Text:
        text = Text(no_wrap=True)
        if self.timestamps:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.time)) + f".{int(record.time * 1000) % 1000:03d}"
            text.append(stamp + " ", style="dim")
        if self.source == ALL:
            text.append(f"{record.source:<19} ", style=SOURCE_STYLE.get(record.source, ""))
        text.append(record.text, style=level_style(record.text))
        return text

    def matches(self, record: LogRecord) -> bool:
        if self.source != ALL and record.source != self.source:
            return False
        if self.pattern is not None:
            return self.pattern.search(record.text) is not None
        return not self.filter_text or self.filter_text in record.text.lower()

    def visible_records(self) -> list[LogRecord]:
        return [r for r in self.buffer.all if self.matches(r)]

    # -- view changes -------------------------------------------------------------------------

    def refilter(self) -> None:
        """Draw the view again from the buffer (filter, source or timestamps changed)."""
        self.pending.clear()
        self.lines.clear()
        self._write(self.visible_records())

    def set_filter(self, value: str) -> None:
        self.filter_error = ""
        self.pattern = None
        self.filter_text = ""
        if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
            try:
                self.pattern = re.compile(value[1:-1], re.IGNORECASE)
            except re.error as ex:
                self.filter_error = f"not a valid regex: {ex}"
        else:
            self.filter_text = value.lower()
        filter_input = self.query_one("#log-filter", Input)
        filter_input.set_class(bool(self.filter_error), "invalid")
        filter_input.tooltip = self.filter_error or None
        self.refilter()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.set_filter(event.value)

    @on(Select.Changed, "#log-source")
    def _source_changed(self, event: Select.Changed) -> None:
        self.source = str(event.value)

    def watch_source(self) -> None:
        if self.is_mounted:
            self.refilter()

    def watch_timestamps(self) -> None:
        if self.is_mounted:
            self.refilter()

    def watch_follow(self, follow: bool) -> None:
        if not self.is_mounted:
            return
        button = self.query_one("#log-follow", Button)
        button.label = "Following" if follow else "Paused"
        button.variant = "primary" if follow else "default"
        if follow:
            self.unseen = 0
            self.query_one("#log-new-lines").display = False
            self.lines.auto_scroll = True
            self.lines.scroll_end(animate=False)

    @on(Button.Pressed, "#log-follow")
    def _toggle_follow(self) -> None:
        self.follow = not self.follow

    @on(Button.Pressed, "#log-new-lines")
    def _resume(self) -> None:
        self.follow = True

    def clear(self) -> None:
        self.buffer.clear()
        self.pending.clear()
        self.lines.clear()
        self.unseen = 0
        self.query_one("#log-new-lines").display = False

    def save(self, path: Path) -> Path:
        """Write what the view shows (all of the buffer that matches) to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            for record in self.visible_records():
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.time))
                f.write(f"{stamp} {record.source:<19} {record.text}\n")
        return path
