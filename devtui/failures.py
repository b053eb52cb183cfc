"""A failed request explained from the log, without a screen: which server line starts its
failure, and the user's exception line (the last line of that traceback: ``RuntimeError: reply
node exploded on purpose``). The server's 500 says only "An unexpected error occurred in scoring
script"; what went wrong is in the inference-server's log.

Used by the replay (``devtui.replay``); the app's ``tui/failures.py`` reads the log the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from .events import INFERENCE_SERVER, LogRecord

# What the server logs when run() raises or the request fails; prompt flow logs a node's error
# on one line, as a dict.
FAILURE = re.compile(r"Encountered Exception|Traceback \(most recent call last\)|Flow run failed with error")
# A traceback's frames and its chain's headings, which are not its exception line.
_NOT_EXCEPTION = re.compile(r"^(\s|Traceback \(|During handling of|The above exception|$)")
# A log line of its own (a timestamp first): the traceback ended before it.
_NEW_LINE = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")
# prompt flow logs a failed run on one line, as a dict: a node's own exception under
# "ToolExecutionErrorDetails" ({'type': 'RuntimeError', 'message': '...'}), the flow's in "debugInfo".
FLOW_FAILED = "Flow run failed with error"


def _flow_error(key: str) -> re.Pattern:
    """prompt flow's ``KEY{'type': 'RuntimeError', 'message': '...', ...``."""
    return re.compile(rf"{key}\{{'type': '([^']+)', 'message': ['\"](.*?)['\"], '")


_FLOW_ERRORS = (_flow_error("'ToolExecutionErrorDetails', 'info': "), _flow_error("'debugInfo': "))

# How long after its answer a failure's lines may still arrive: they come through a pipe, and a
# record's time is when devtui read it, which on a loaded machine can be seconds later.
LATE_S = 4.0


def failure_of(records: Iterable[LogRecord], request_id: str, since: float, until: float) -> LogRecord | None:
    """The line that starts the failure of request ``request_id``: a failure that names its id,
    else the one the server logged while it was in flight (or just after): prompt flow's summary
    of a failed run where there is one (a node's traceback comes wrapped in prompt flow's own),
    else the first."""
    first = flow = None
    for record in records:
        if record.source != INFERENCE_SERVER or not FAILURE.search(record.text):
            continue
        if request_id and request_id in record.text:
            return record
        if since - 0.05 <= record.time <= until + LATE_S:
            first = first or record
            if flow is None and FLOW_FAILED in record.text:
                flow = record
    return flow or first


def exception_line(records: Sequence[LogRecord], request_id: str, since: float, until: float) -> str:
    """The user's exception line of the failure of that request, or "" (not in the log yet)."""
    records = [r for r in records if r.source == INFERENCE_SERVER and r.time >= since - 0.05]
    start = failure_of(records, request_id, since, until)
    if start is None:
        return ""
    for pattern in _FLOW_ERRORS:
        flow = pattern.search(start.text)
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


def server_message(text: str) -> str:
    """The reason in an error answer's JSON body (``{"message": ...}``, or prompt flow's
    ``{"error": {"message": ...}}``), or ""."""
    try:
        body = json.loads(text)
        message = body.get("message") or (body.get("error") or {}).get("message")
    except (ValueError, AttributeError):
        return ""
    return message if isinstance(message, str) else ""
