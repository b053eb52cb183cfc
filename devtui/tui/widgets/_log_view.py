"""The logs of every source, live: one source or all with a coloured source tag, a filter,
follow, wrap and timestamps, and the keys for them (they work while the log has focus).

Records arrive in batches from the engine and are kept in a bounded :class:`LogBuffer`. The
view is updated on a timer, at most every ``FLUSH_S``, and draws only the lines on screen, so
a script logging thousands of lines a second never stalls input.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, Select

from ...events import DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER, LogRecord
from ...logs import LogBuffer
from ..commands import LOG_BINDINGS
from ..failures import failure_of
from ._log_filter import LogFilter
from ._log_match import LogMatch
from ._log_lines import LogLines

FLUSH_S = 0.05
ALL = "all"
# In "All sources", each line starts with a short tag in its source's colour.
SOURCE_TAG = {INFERENCE_SERVER: ("server", "cyan"), STORAGE_INITIALIZER: ("storage", "magenta"),
              DEVTUI: ("devtui", "green")}
TAG_WIDTH = 8
STAMP_WIDTH = 13
# The reference server's format puts the level letter after the time: "... 12:00:00,123 E [42] ...";
# prompt flow's in brackets: "[...][pfserving-app][WARNING] - ...".
_ERROR = re.compile(r"\s[EC]\s\[\d+\]|\b(ERROR|CRITICAL|Traceback)\b|\bError:")
# A warning, a library's included ("FutureWarning: ..."): yellow, even when its text names an
# error ("WARNING ... ValueError: will raise in 2.0"), which it is not.
_WARNING = re.compile(r"\s W \[\d+\]|\bWARNING\b|\b[A-Z]\w*Warning:")
# The server's own time at the start of its lines, left out while the app shows its own: the
# reference server's ("2026-12-07 12:00:00,123 "), prompt flow's ("[2026-12-07 12:00:00 +0000]",
# or unbracketed with its zone).
_SERVER_STAMP = re.compile(r"^(?:\[\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?(?: ?[+-]\d{4}|Z)?\] ?"
                           r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?(?: ?[+-]\d{4}|Z)? +)")


def level_style(text: str) -> str:
    match = _WARNING.search(text)
    error = _ERROR.search(text)
    if match and (error is None or match.start() <= error.start()):
        return "yellow"
    return "red" if error else ""


def empty_text(source: str, match: LogMatch) -> str:
    """What the view says while it has no line to show."""
    if match.active:
        return f"No line matches {match.value!r}" + ("" if source == ALL else f" in {source}")
    return "No log lines yet" if source == ALL else f"No lines from {source} yet"


class LogView(Vertical):
    """Logs with a source selector, a filter box, follow, wrap and timestamps toggles."""

    BINDINGS = LOG_BINDINGS

    follow: reactive[bool] = reactive(True)
    timestamps: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)
    source: reactive[str] = reactive(ALL)

    def __init__(self, capacity: int = 10_000, save_folder: Path | None = None, name_for_files: str = "devtui",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.buffer = LogBuffer(capacity)
        self.pending: list[LogRecord] = []
        self.unseen = 0
        self.match = LogMatch()
        self.save_folder = save_folder or Path.cwd()
        self.name_for_files = name_for_files
        self.marked: LogRecord | None = None  # the line a jump landed on, highlighted

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-toolbar"):
            yield Select([("All sources", ALL), (INFERENCE_SERVER, INFERENCE_SERVER),
                          (STORAGE_INITIALIZER, STORAGE_INITIALIZER), (DEVTUI, DEVTUI)],
                         value=ALL, allow_blank=False, id="log-source", compact=True)
            yield LogFilter(placeholder="/ filter: text, or /regex/", id="log-filter", compact=True)
            yield Label("", id="log-matches")
            yield Button("Following", id="log-follow", variant="primary", compact=True)
            yield Button("", id="log-new-lines", variant="warning", compact=True)
        yield LogLines(self.render_record, self.measure, self.buffer.capacity, id="log-lines")

    def on_mount(self) -> None:
        self.query_one("#log-new-lines").display = False
        self.query_one("#log-matches").display = False
        self.lines.empty_text = empty_text(self.source, self.match)
        self.lines.follow(self.follow)
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
        self.lines.extend(visible[-self.buffer.capacity:])
        self._count()

    # -- one line -----------------------------------------------------------------------------

    def text_of(self, record: LogRecord) -> str:
        """The record's text as shown: without the server's time while the app shows its own."""
        if self.timestamps and record.source == INFERENCE_SERVER:
            return _SERVER_STAMP.sub("", record.text, count=1)
        return record.text

    def measure(self, record: LogRecord) -> int:
        prefix = (STAMP_WIDTH if self.timestamps else 0) + (TAG_WIDTH if self.source == ALL else 0)
        return prefix + cell_len(self.text_of(record))

    def render_record(self, record: LogRecord) -> Text:
        text = Text(no_wrap=True)
        if self.timestamps:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.time)) + f".{int(record.time * 1000) % 1000:03d}"
            text.append(stamp + " ", style="dim")
        if self.source == ALL:
            tag, colour = SOURCE_TAG.get(record.source, (record.source[:TAG_WIDTH - 1], ""))
            text.append(f"{tag:<{TAG_WIDTH - 1}} ", style=f"bold {colour}".strip())
        # The level is read from the whole line: it follows the server's time, which may be left out.
        offset = text.cell_len
        shown = self.text_of(record)
        text.append(shown, style=level_style(record.text))
        self.match.highlight(text, shown, offset)
        if record is self.marked:
            text.stylize("reverse")
        return text

    def matches(self, record: LogRecord) -> bool:
        if self.source != ALL and record.source != self.source:
            return False
        return self.match.matches(record.text)

    def visible_records(self) -> list[LogRecord]:
        return [r for r in self.buffer.all if self.matches(r)]

    # -- view changes -------------------------------------------------------------------------

    def refilter(self) -> None:
        """Draw the view again from the buffer (filter, source or timestamps changed)."""
        self.pending.clear()
        self.lines.clear()
        self.lines.empty_text = empty_text(self.source, self.match)
        self.lines.extend(self.visible_records())
        # Every line that matches is drawn now: "+N new" counts from here, and only matching lines.
        self.unseen = 0
        self.query_one("#log-new-lines").display = False
        self._count()

    @property
    def filter_error(self) -> str:
        return self.match.error

    def _count(self) -> None:
        """The matches, counted beside the filter box; or why the regex is not one."""
        label = self.query_one("#log-matches", Label)
        label.display = bool(self.match.error) or self.match.active
        label.set_class(bool(self.match.error), "invalid")
        if self.match.error:
            label.update(self.match.error)
        elif self.match.active:
            count = len(self.lines.records)
            label.update(f"{count} match{'es' if count != 1 else ''}")

    def set_filter(self, value: str) -> None:
        self.match = LogMatch(value)
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

    def watch_wrap(self, wrap: bool) -> None:
        if self.is_mounted:
            self.lines.set_wrap(wrap)

    def watch_follow(self, follow: bool) -> None:
        if self.is_mounted:
            self.lines.follow(follow)
            self._show_follow(follow)

    def _show_follow(self, follow: bool) -> None:
        button = self.query_one("#log-follow", Button)
        button.label = "Following" if follow else "Paused"
        button.variant = "primary" if follow else "default"
        if follow:
            self.unseen = 0
            self.query_one("#log-new-lines").display = False

    @on(LogLines.Followed)
    def _followed(self, event: LogLines.Followed) -> None:
        """The reader scrolled away from the end (or back to it): the view stays anchored."""
        self.set_reactive(LogView.follow, event.following)
        self._show_follow(event.following)

    @on(Button.Pressed, "#log-follow")
    def _toggle_follow(self) -> None:
        self.follow = not self.follow

    @on(Button.Pressed, "#log-new-lines")
    def _resume(self) -> None:
        self.follow = True

    def reveal(self, request_id: str, since: float, until: float) -> bool:
        """Show the line that starts the failure of request ``request_id`` (sent at ``since``,
        answered at ``until``): one that names its id, else the first failure the server logged
        while it was in flight. False when the log has none."""
        found = failure_of(self.buffer.all, request_id, since, until)
        if found is None:
            return False
        if found not in self.visible_records():
            self.query_one("#log-source", Select).value = ALL
            self.query_one("#log-filter", Input).value = ""
            self.set_filter("")
        self.marked = found
        self.follow = False
        self.refilter()
        index = next(n for n, record in enumerate(self.lines.records) if record is found)
        self.lines.scroll_to(y=self.lines.row_of(index), animate=False, immediate=True)
        return True

    # -- keys ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # In the filter box "/" is text: not a key to show in the footer.
        return not (action == "filter" and self.query_one("#log-filter", Input).has_focus)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def action_toggle_timestamps(self) -> None:
        self.timestamps = not self.timestamps

    def action_filter(self) -> None:
        self.query_one("#log-filter", Input).focus()

    def action_clear(self) -> None:
        self.buffer.clear()
        self.pending.clear()
        self.lines.clear()
        self.unseen = 0
        self.marked = None
        self.query_one("#log-new-lines").display = False
        self._count()

    def action_save(self) -> None:
        name = f"devtui-{self.name_for_files}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path = self.save(self.save_folder / name)
        self.notify(f"Saved {len(self.visible_records())} lines to {path}", title="Logs saved")

    def save(self, path: Path) -> Path:
        """Write what the view shows (all of the buffer that matches) to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            for record in self.visible_records():
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.time))
                f.write(f"{stamp} {record.source:<19} {record.text}\n")
        return path
