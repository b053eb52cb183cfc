"""One request's spans as a waterfall: each span under its parent (indented), a bar placed and
scaled on the request's duration, and its duration in ms. The span that raised is marked ``✗``
and its bar is red, as is every span whose status is ERROR. Moving the cursor over a span shows
its inputs, output and attributes (the panel beside it listens for :class:`Waterfall.SpanHighlighted`).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..trace_book import TracedRequest, WaterfallRow

MS_WIDTH = 12  # "12345.678 ms"
MIN_BAR = 10
RAISED_MARK = "✗ "


def waterfall_line(row: WaterfallRow, name_width: int, bar_width: int) -> Text:
    """A span's line: its name indented under its parent, its bar, its duration."""
    name = Text("  " * row.depth)
    if row.raised:
        name.append(RAISED_MARK, style="bold red")
    name.append(row.span.name, style="bold red" if row.error else "")
    name.truncate(name_width, overflow="ellipsis", pad=True)
    first, last = row.bar(bar_width)
    line = name + Text(" ")
    line.append("·" * first, style="dim")
    line.append("█" * (last - first), style="red" if row.error else "cyan")
    line.append("·" * (bar_width - last), style="dim")
    line.append(f" {row.span.duration_ms:>{MS_WIDTH - 3}.3f} ms")
    return line


def name_width_for(rows: list[WaterfallRow], width: int) -> int:
    """The names' column: as wide as the widest indented name, up to 40 % of the line."""
    widest = max((2 * r.depth + cell_len(r.span.name) + (len(RAISED_MARK) if r.raised else 0) for r in rows),
                 default=8)
    return max(8, min(widest, int(width * 0.4)))


class Waterfall(OptionList):
    """The spans of the request opened; up and down move over them."""

    class SpanHighlighted(Message):
        def __init__(self, row: WaterfallRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.request: TracedRequest | None = None
        self.rows: list[WaterfallRow] = []
        self._drawn_width = 0

    def show(self, request: TracedRequest) -> None:
        """``request``'s spans, the cursor on the span that raised (else the request's own)."""
        self.request = request
        self.rows = request.rows()
        self._draw()
        raised = next((n for n, row in enumerate(self.rows) if row.raised), 0)
        self.highlighted = raised if self.rows else None

    def _draw(self) -> None:
        width = self.scrollable_content_region.width or self.size.width or 60
        self._drawn_width = width
        name_width = name_width_for(self.rows, width)
        bar_width = max(MIN_BAR, width - name_width - 1 - MS_WIDTH - 1)
        highlighted = self.highlighted
        self.clear_options()
        self.add_options([Option(waterfall_line(row, name_width, bar_width), id=row.span.span_id)
                          for row in self.rows])
        if highlighted is not None and highlighted < len(self.rows):
            self.highlighted = highlighted

    def on_resize(self) -> None:
        if self.rows and self.scrollable_content_region.width != self._drawn_width:
            self._draw()

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self.rows):
            event.stop()
            self.post_message(self.SpanHighlighted(self.rows[event.option_index]))

