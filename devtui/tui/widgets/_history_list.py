"""This session's requests, newest first: enter opens an answer again without sending anything,
``e`` puts its request back in the editor; non-2xx answers are coloured."""

from __future__ import annotations

import time

from rich.text import Text
from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from ..commands import HISTORY_BINDINGS
from ..exchange import Exchange
from ._answer_view import status_style


class HistoryItem(ListItem):
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        line = Text(time.strftime("%H:%M:%S", time.localtime(exchange.at)) + "  ")
        line.append(f"{exchange.request.method:<4} ")
        line.append(f"{exchange.status or '---'}", style=status_style(exchange.status))
        line.append(f" {exchange.latency_ms:8.1f} ms  ")
        if exchange.revision is not None:
            line.append(f"rev {exchange.revision:<3} ", style="dim")
        line.append(" ".join(exchange.request.preview().split())[:200], style="dim")
        super().__init__(Label(line, classes="history-line"))
        self.set_class(not exchange.ok, "failed")


class HistoryList(ListView):
    BINDINGS = HISTORY_BINDINGS

    class Edit(Message):
        def __init__(self, exchange: Exchange) -> None:
            super().__init__()
            self.exchange = exchange

    def add(self, exchange: Exchange) -> None:
        # The row highlighted now moves down a place, and ListView clears the highlight only at
        # the index it had (the new row's): clear it first, so one row is ever the cursor.
        self.index = None
        self.insert(0, [HistoryItem(exchange)])
        self.call_after_refresh(self._highlight_newest)

    def replace(self, old: Exchange, new: Exchange) -> None:
        """``old`` is now known better (why it failed): its row opens ``new``."""
        for item in self.query(HistoryItem):
            if item.exchange is old:
                item.exchange = new

    def _highlight_newest(self) -> None:
        self.index = 0

    def action_pin(self) -> None:
        from ..pinning import answer_of, from_invoke

        item = self.highlighted_child
        if isinstance(item, HistoryItem):
            exchange = item.exchange
            self.post_message(from_invoke(exchange.request, "a history row's request", answer_of(exchange)))

    def action_edit(self) -> None:
        item = self.highlighted_child
        if isinstance(item, HistoryItem):
            self.post_message(self.Edit(item.exchange))
