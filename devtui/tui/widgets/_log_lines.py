"""A scrolling view of log records that renders only the lines on screen.

Appending costs a deque append and a size update; a line becomes styled text only when it is
scrolled into view (and is cached while it stays there). So a burst of thousands of lines costs
almost nothing until drawn, and drawing costs one screenful.

Following is Textual's own anchor: an anchored view stays on its last line through every resize
and layout change (a panel opening below it, the terminal shrinking), and scrolling up by hand
releases it; scrolling back to the end takes it again. Wrapping folds each line at the view's
width; a record's height comes from its measured width, so no line is rendered to count it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from itertools import accumulate

from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...events import LogRecord


class LogLines(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogLines {
        background: $surface;
        color: $foreground;
        overflow: scroll;
    }
    LogLines.-wrap {
        overflow-x: hidden;
    }
    """

    class Followed(Message):
        """The reader moved the view: ``following`` says whether it is back at the end."""

        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    def __init__(self, render: Callable[[LogRecord], Text], measure: Callable[[LogRecord], int], capacity: int,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.render_record = render
        self.measure = measure
        self.records: deque[LogRecord] = deque(maxlen=capacity)
        self.widths: deque[int] = deque(maxlen=capacity)  # each record's line, in cells
        self._ends: list[int] | None = None  # wrapped: the row after each record's last row
        self._widest = 0
        self._strips: LRUCache[int, Strip] = LRUCache(512)
        self._released = False
        self.wrap = False
        self.empty_text = ""  # said on the first row while there is no line (set by the log view)

    @property
    def lines(self) -> "_Rendered":
        """The lines as they render (a sequence of Strips, one per record), like RichLog.lines."""
        return _Rendered(self)

    # -- following ---------------------------------------------------------------------------------

    def follow(self, follow: bool) -> None:
        self._released = False
        self.anchor(follow)
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def action_scroll_end(self) -> None:
        """End: to the last line, and follow again, as the reader expects (paused by `f` too)."""
        super().action_scroll_end()
        was = self.following
        self.follow(True)
        if not was:
            self.post_message(self.Followed(True))

    @property
    def following(self) -> bool:
        return self.is_anchored and not self._released

    def release_anchor(self) -> None:
        # Called by every scroll the reader makes (keys, wheel, scrollbar), never by scroll_end.
        super().release_anchor()
        if self.is_anchored and not self._released:
            self._released = True
            self.post_message(self.Followed(False))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.is_anchored and self._released and new_value >= self.max_scroll_y and new_value > old_value:
            # Back at the end by hand: follow again. scroll_end takes Textual's anchor back too,
            # once the scroll (maybe an animation, ending here) is over.
            self._released = False
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)
            self.post_message(self.Followed(True))

    # -- content -----------------------------------------------------------------------------------

    def strip(self, index: int) -> Strip:
        strip = self._strips.get(index)
        if strip is None:
            text = self.render_record(self.records[index])
            text.no_wrap = True
            text.stylize_before(self.rich_style)
            strip = Strip(text.render(self.app.console), text.cell_len)
            self._strips[index] = strip
        return strip

    def extend(self, records: Iterable[LogRecord]) -> None:
        before = len(self.records)
        added = 0
        for record in records:
            width = self.measure(record)
            self.records.append(record)
            self.widths.append(width)
            added += 1
            if width > self._widest:
                self._widest = width
        if before + added > len(self.records):
            # Cached strips are by index; lines dropped from the top shifted every index.
            self._strips.clear()
        self._resized()
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self.records.clear()
        self.widths.clear()
        self._strips.clear()
        self._widest = 0
        self._resized()
        self.refresh()

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self.set_class(wrap, "-wrap")
        self._resized()
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        if self.wrap:
            self._resized()

    # -- rows --------------------------------------------------------------------------------------

    @property
    def _row_width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _resized(self) -> None:
        self._ends = None
        if self.wrap:
            self.virtual_size = Size(self._row_width, self._row_ends()[-1] if self.records else 0)
        else:
            self.virtual_size = Size(self._widest, len(self.records))

    def _row_ends(self) -> list[int]:
        if self._ends is None:
            width = self._row_width
            self._ends = list(accumulate(max(1, -(-w // width)) for w in self.widths))
        return self._ends

    def row_of(self, index: int) -> int:
        """The first row of record ``index`` on screen (rows differ from records when wrapping)."""
        if not self.wrap or index <= 0:
            return index
        return self._row_ends()[index - 1]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        style = self.rich_style
        if not self.records:
            if y or not self.empty_text:
                return Strip.blank(width, style)
            text = Text(self.empty_text, style="italic", no_wrap=True)
            text.stylize_before(style + Style(dim=True))
            return Strip(text.render(self.app.console), text.cell_len).crop_extend(0, width, style)
        if not self.wrap:
            if row >= len(self.records):
                return Strip.blank(width, style)
            return self.strip(row).crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, row)
        ends = self._row_ends()
        if not ends or row >= ends[-1]:
            return Strip.blank(width, style)
        index = bisect_right(ends, row)
        part = row - (ends[index - 1] if index else 0)
        row_width = self._row_width
        return self.strip(index).crop_extend(part * row_width, (part + 1) * row_width, style).apply_offsets(0, row)


class _Rendered:
    def __init__(self, view: LogLines):
        self.view = view

    def __len__(self) -> int:
        return len(self.view.records)

    def __bool__(self) -> bool:
        return bool(self.view.records)

    def __getitem__(self, index: int) -> Strip:
        if index < 0:
            index += len(self.view.records)
        if not 0 <= index < len(self.view.records):
            raise IndexError(index)
        return self.view.strip(index)
