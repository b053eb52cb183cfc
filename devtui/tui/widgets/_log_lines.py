"""A scrolling view of log records that renders only the lines on screen.

Appending costs a deque append and a size update; a line becomes styled text only when it is
scrolled into view (and is cached while it stays there). So a burst of thousands of lines costs
almost nothing until drawn, and drawing costs one screenful.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from rich.cells import cell_len
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
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
    """

    def __init__(self, render: Callable[[LogRecord], Text], capacity: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.render_record = render
        self.records: deque[LogRecord] = deque(maxlen=capacity)
        self.auto_scroll = True
        self._widest = 0
        self._strips: LRUCache[int, Strip] = LRUCache(512)

    @property
    def lines(self) -> "_Rendered":
        """The lines as they render (a sequence of Strips), like RichLog.lines."""
        return _Rendered(self)

    def strip(self, index: int) -> Strip:
        strip = self._strips.get(index)
        if strip is None:
            text = self.render_record(self.records[index])
            text.no_wrap = True
            text.stylize_before(self.rich_style)
            strip = Strip(text.render(self.app.console), text.cell_len)
            self._strips[index] = strip
        return strip

    def extend(self, records: Iterable[LogRecord], prefix_width: int = 0) -> None:
        was_at_end = self.is_vertical_scroll_end
        before = len(self.records)
        added = 0
        for record in records:
            self.records.append(record)
            added += 1
            width = cell_len(record.text) + prefix_width
            if width > self._widest:
                self._widest = width
        if before + added > len(self.records):
            # Cached strips are by index; lines dropped from the top shifted every index.
            self._strips.clear()
        self.virtual_size = Size(self._widest, len(self.records))
        if self.auto_scroll and (was_at_end or before == 0):
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self.records.clear()
        self._strips.clear()
        self._widest = 0
        self.virtual_size = Size(0, 0)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        style = self.rich_style
        if index >= len(self.records):
            return Strip.blank(width, style)
        return self.strip(index).crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, index)


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
