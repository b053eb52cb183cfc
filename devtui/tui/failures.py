"""A failed request explained from the log: which line starts its traceback, and the user's
exception line (the last line of that traceback: ``RuntimeError: reply node exploded on purpose``).

The server's lines reach the app through a pipe, so the log may hold a failure a moment after its
answer (or its broken stream) arrived: :class:`Explainer` keeps each failure that has no
exception line yet and fills it in from the log batches that follow, for a few seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from textual.message import Message

from ..events import INFERENCE_SERVER, LogRecord

# What the server logs when run() raises or the request fails; prompt flow logs a node's error
# on one line, as a dict.
FAILURE = re.compile(r"Encountered Exception|Traceback \(most recent call last\)|Flow run failed with error")
# A traceback's frames and its chain's headings, which are not its exception line.
_NOT_EXCEPTION = re.compile(r"^(\s|Traceback \(|During handling of|The above exception|$)")
# A log line of its own (a timestamp first): the traceback ended before it.
_NEW_LINE = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")
# prompt flow: "Flow run failed with error: {... 'debugInfo': {'type': 'RuntimeError', 'message': '...'"
_FLOW_ERROR = re.compile(r"'debugInfo': \{'type': '([^']+)', 'message': ['\"](.*?)['\"], '")
# How long after its answer a failure's lines may still arrive.
LATE_S = 2.0
EXPLAIN_FOR_S = 5.0


class TracebackWanted(Message):
    """Show the log lines of the request sent at ``since`` and answered (or broken off) at
    ``until``, found by ``request_id`` where it has one."""

    def __init__(self, request_id: str, since: float, until: float) -> None:
        super().__init__()
        self.request_id, self.since, self.until = request_id, since, until


def failure_of(records: Iterable[LogRecord], request_id: str, since: float, until: float) -> LogRecord | None:
    """The line that starts the failure of request ``request_id``: one that names its id, else the
    first failure the server logged while it was in flight (or just after)."""
    first = None
    for record in records:
        if record.source != INFERENCE_SERVER:
            continue
        if request_id and request_id in record.text:
            return record
        if first is None and since - 0.05 <= record.time <= until + LATE_S and FAILURE.search(record.text):
            first = record
    return first


def exception_line(records: Sequence[LogRecord], request_id: str, since: float, until: float) -> str:
    """The user's exception line of the failure of that request, or "" (not in the log yet)."""
    records = [r for r in records if r.source == INFERENCE_SERVER and r.time >= since - 0.05]
    start = failure_of(records, request_id, since, until)
    if start is None:
        return ""
    flow = _FLOW_ERROR.search(start.text)
    if flow:
        return f"{flow[1]}: {flow[2]}"
    found = ""
    for record in records[records.index(start) + 1:]:
        text = record.text.rstrip()
        if _NEW_LINE.match(text):
            break
        if not _NOT_EXCEPTION.match(text) and _EXCEPTION.match(text):
            found = text  # the last one: a chained exception's own comes after its cause's
    return found


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
