"""The requests traced, newest first: status, duration, tokens (when an LLM reported them), spans,
the revision that served it and its ``x-request-id``; a failed request is red, with its exception.
Those kept from before this session come last, dimmed, under a line that says so (their revision
is not known). Enter opens one (the panel listens for ``ListView.Selected``)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Label, ListItem, ListView

from ..commands import TRACES_BINDINGS
from ..trace_book import TracedRequest
from ._answer_view import status_style

HEADINGS = f"{'status':<6}  {'duration':>12}  {'tokens':>6}  {'spans':>5}  {'rev':<5}  request"
EARLIER = "earlier: kept from before this session"


def request_line(request: TracedRequest) -> Text:
    line = Text()
    status = request.status_code
    line.append(f"{status if status is not None else '---':<6}", style=status_style(
        500 if request.failed else status if status is not None else None))
    line.append(f"  {request.duration_ms:>9.3f} ms")
    tokens = request.tokens
    line.append(f"  {tokens if tokens is not None else '':>6}")
    line.append(f"  {len(request.trace.spans):>5}")
    line.append(f"  {'' if request.earlier else 'rev ' + str(request.revision):<5}", style="dim")
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
        self.set_class(request.earlier, "earlier")


class EarlierLine(ListItem):
    """The line between this session's requests and those kept from before it: not a request,
    so the cursor passes over it."""

    def __init__(self) -> None:
        super().__init__(Label(f"── {EARLIER} ──", classes="trace-line"), disabled=True)


class TraceList(ListView):
    BINDINGS = TRACES_BINDINGS

    def __init__(self, capacity: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.capacity = capacity

    @property
    def items(self) -> list[TraceItem]:
        return list(self.query_children(TraceItem))

    def add(self, requests: list[TracedRequest]) -> None:
        """New requests at the top (``requests`` newest first); the cursor stays on its row, or
        goes to the newest if it had none; the oldest rows go past ``capacity`` (the earlier
        ones first, and their line with the last of them)."""
        if not requests:
            return
        requests = requests[:self.capacity]
        index, items = self.index, self.items
        self.index = None  # as HistoryList: one row is ever the cursor
        self.insert(0, [TraceItem(request) for request in requests])
        extra = len(items) + len(requests) - self.capacity
        left = items[:len(items) - extra] if extra > 0 else items
        for item in items[len(left):]:
            item.remove()
        if not any(item.request.earlier for item in left):
            self.query_children(EarlierLine).remove()  # no earlier request is left under it
        self.call_after_refresh(self._restore, None if index is None else index + len(requests))

    def add_earlier(self, requests: list[TracedRequest]) -> None:
        """Requests kept from before this session (newest first) at the bottom, under their line."""
        requests = requests[:self.capacity - len(self.items)]
        if not requests:
            return
        index = self.index
        self.index = None
        self.extend([*([] if self.query_children(EarlierLine) else [EarlierLine()]),
                     *(TraceItem(request) for request in requests)])
        self.call_after_refresh(self._restore, index)

    def _restore(self, index: int | None) -> None:
        """The cursor on row ``index``, else on the newest request."""
        rows = list(self.children)
        if index is None or index >= len(rows) or rows[index].disabled:
            index = next((n for n, row in enumerate(rows) if not row.disabled), None)
        self.index = index

    def action_open_newest(self) -> None:
        self._restore(None)
        if self.index is not None:
            self.action_select_cursor()
