"""The requests traced this session, newest first: status, duration, tokens (when an LLM
reported them), spans, the revision that served it and its ``x-request-id``; a failed request is
red, with its exception. Enter opens one (the panel listens for ``ListView.Selected``)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Label, ListItem, ListView

from ..commands import TRACES_BINDINGS
from ..trace_book import TracedRequest
from ._answer_view import status_style

HEADINGS = f"{'status':<6}  {'duration':>12}  {'tokens':>6}  {'spans':>5}  {'rev':<5}  request"


def request_line(request: TracedRequest) -> Text:
    line = Text()
    status = request.status_code
    line.append(f"{status if status is not None else '---':<6}", style=status_style(
        500 if request.failed else status if status is not None else None))
    line.append(f"  {request.duration_ms:>9.3f} ms")
    tokens = request.tokens
    line.append(f"  {tokens if tokens is not None else '':>6}")
    line.append(f"  {len(request.trace.spans):>5}")
    line.append(f"  {'rev ' + str(request.revision):<5}", style="dim")
    line.append(f"  {request.root.name}")
    if request.request_id:
        line.append(f"  {request.request_id}", style="dim")
    if exception := request.exception():
        line.append(f"  {exception}", style="red")
    return line


class TraceItem(ListItem):
    def __init__(self, request: TracedRequest) -> None:
        self.request = request
        super().__init__(Label(request_line(request), classes="trace-line"))
        self.set_class(request.failed, "failed")


class TraceList(ListView):
    BINDINGS = TRACES_BINDINGS

    def __init__(self, capacity: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.capacity = capacity

    def add(self, requests: list[TracedRequest]) -> None:
        """New requests at the top (``requests`` newest first); the cursor stays on its row, or
        goes to the newest if it had none; the oldest rows go past ``capacity``."""
        if not requests:
            return
        requests = requests[:self.capacity]
        index, rows = self.index, list(self.children)
        self.index = None  # as HistoryList: one row is ever the cursor
        self.insert(0, [TraceItem(request) for request in requests])
        extra = len(rows) + len(requests) - self.capacity
        for item in rows[len(rows) - extra:] if extra > 0 else ():
            item.remove()
        self.call_after_refresh(self._restore, None if index is None else index + len(requests))

    def _restore(self, index: int | None) -> None:
        self.index = 0 if index is None or index >= len(self) else index

    def action_open_newest(self) -> None:
        if len(self):
            self.index = 0
            self.action_select_cursor()
