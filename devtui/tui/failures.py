"""A failed request explained in the app: the user's exception line (``devtui.failures`` reads it
from the log) filled in where the answer is shown, and the message that asks for its traceback.

The server's lines reach the app through a pipe, so the log may hold a failure a moment after its
answer (or its broken stream) arrived: :class:`Explainer` keeps each failure that has no
exception line yet and fills it in from the log batches that follow, for a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.message import Message

from ..events import LogRecord
from ..failures import exception_line, failure_of

__all__ = ["EXPLAIN_FOR_S", "Explainer", "TracebackWanted", "exception_line", "failure_of"]

# How long after its answer the app keeps looking for a failure's exception line.
EXPLAIN_FOR_S = 10.0


class TracebackWanted(Message):
    """Show the log lines of the request sent at ``since`` and answered (or broken off) at
    ``until``, found by ``request_id`` where it has one."""

    def __init__(self, request_id: str, since: float, until: float) -> None:
        super().__init__()
        self.request_id, self.since, self.until = request_id, since, until


@dataclass
class _Pending:
    request_id: str
    since: float
    until: float
    apply: Callable[[str], None]


class Explainer:
    """Failures waiting for their exception line."""

    def __init__(self) -> None:
        self.pending: list[_Pending] = []

    def watch(self, records: Sequence[LogRecord], request_id: str, since: float, until: float,
              apply: Callable[[str], None]) -> None:
        """Call ``apply(line)`` with the failure's exception line, now or once the log has it."""
        self.pending.append(_Pending(request_id, since, until, apply))
        self.check(records)

    def check(self, records: Sequence[LogRecord]) -> None:
        now = time.time()
        for pending in list(self.pending):
            line = exception_line(records, pending.request_id, pending.since, pending.until)
            if line or now > pending.until + EXPLAIN_FOR_S:
                self.pending.remove(pending)
            if line:
                pending.apply(line)
