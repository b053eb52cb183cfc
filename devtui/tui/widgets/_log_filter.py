"""The log's filter box: Esc and Enter hand the focus back to the log (the filter stays)."""

from __future__ import annotations

from textual.widgets import Input

from ..commands import FILTER_BINDINGS


class LogFilter(Input):
    BINDINGS = FILTER_BINDINGS
