"""The requests traced, as the Traces tab shows them: newest first, each with its status, duration
and tokens, which span raised and with what exception, and the layout of its waterfall. Fed with
the engine's :class:`~devtui.events.Traces` batches (OTLP JSON lines), read with
:class:`devtui.traces.TraceReader`, so the app and ``devtui traces`` see the same requests; below
this session's, the newest of those kept from before it (:func:`read_earlier`), marked ``earlier``.

Nothing here draws: the widgets (``widgets/_traces_panel.py``, ``widgets/_waterfall.py``) render
what this module says, and its tests need no terminal.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..traces import EarlierTraces, Span, Trace, TraceReader, raw_spans

# The Traces tab keeps this many requests (the file keeps them all, for `devtui traces`).
CAPACITY = 500
TOTAL_TOKENS = "llm.usage.total_tokens"
# prompt flow's attributes for what a span received and returned, shown apart from the others.
INPUTS, OUTPUT = "inputs", "output"


@dataclass
class TracedRequest:
    """One request's trace, and what the Traces tab says of it."""

    trace: Trace
    revision: int  # 0 for a request kept from before this session: its revision is not known
    # span id -> the exception it raised ("ValueError: ..."), or its error status's message.
    errors: dict[str, str] = field(default_factory=dict)
    earlier: bool = False  # kept from before this session, read from the traces file

    @property
    def root(self) -> Span:
        return self.trace.root

    @property
    def request_id(self) -> str:
        return self.trace.request_id or ""

    @property
    def status_code(self) -> int | None:
        return self.trace.status_code

    @property
    def duration_ms(self) -> float:
        return self.root.duration_ms

    @property
    def failed(self) -> bool:
        return self.root.status == "error" or (self.status_code or 0) >= 500 or bool(self.errors)

    @property
    def tokens(self) -> int | None:
        """``llm.usage.total_tokens`` summed over the spans that report it; None when none does."""
        counts = [s.attributes[TOTAL_TOKENS] for s in self.trace.spans
                  if isinstance(s.attributes.get(TOTAL_TOKENS), (int, float))]
        return int(sum(counts)) if counts else None

    def raised(self) -> Span | None:
        """The span that raised: of those that recorded an exception (it propagates through each
        span it leaves, and each records it), the deepest, where it started."""
        deepest: tuple[int, Span] | None = None
        for depth, span in self.trace.tree():
            if span.span_id in self.errors and (deepest is None or depth > deepest[0]):
                deepest = (depth, span)
        return deepest[1] if deepest else None

    def exception(self) -> str:
        """The exception of the span that raised, or ""."""
        span = self.raised()
        return self.errors[span.span_id] if span is not None else ""

    def rows(self) -> list[WaterfallRow]:
        """The waterfall: each span under its parent, placed on the request's time line (0..1)."""
        start, total = self.root.start_ns, max(self.root.end_ns - self.root.start_ns, 1)
        raised = self.raised()
        return [WaterfallRow(span, depth, (span.start_ns - start) / total, (span.end_ns - start) / total,
                             span.status == "error" or span.span_id in self.errors, span is raised,
                             self.errors.get(span.span_id, ""))
                for depth, span in self.trace.tree()]


@dataclass(frozen=True)
class WaterfallRow:
    span: Span
    depth: int
    begin: float  # where the span starts and ends on the request's time line, 0..1
    end: float
    error: bool  # its status is ERROR, or it recorded an exception
    raised: bool  # the span the exception started in
    exception: str = ""

    def bar(self, width: int) -> tuple[int, int]:
        """The cells ``[first, last)`` the span's bar takes of ``width``: at least one."""
        first = min(max(round(self.begin * width), 0), max(width - 1, 0))
        last = max(first + 1, min(round(self.end * width), width))
        return first, last


def span_details(span: Span) -> tuple[Any, Any, dict[str, Any]]:
    """A span's inputs and output (prompt flow's attributes, read as JSON where they are), and its
    other attributes; None where it has no inputs or output."""
    rest = dict(span.attributes)
    return _json(rest.pop(INPUTS, None)), _json(rest.pop(OUTPUT, None)), rest


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class TraceBook:
    """The traced requests, newest first (the last ``capacity``): this session's, then those kept
    from before it."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.requests: deque[TracedRequest] = deque(maxlen=capacity)
        self._reader = TraceReader()
        self._errors: dict[str, dict[str, str]] = {}  # trace id -> span id -> exception, until whole

    def feed(self, revision: int, otlp: str) -> list[TracedRequest]:
        """The requests a batch completes, newest first (also added to :attr:`requests`; past
        ``capacity`` the oldest go, the earlier ones first)."""
        done = self.complete(revision, otlp)
        for request in reversed(done):
            self.requests.appendleft(request)
        return done

    def complete(self, revision: int, otlp: str, earlier: bool = False) -> list[TracedRequest]:
        """The requests a batch completes, newest first, not added."""
        for trace_id, span_id, message in _errors(otlp):
            self._errors.setdefault(trace_id, {})[span_id] = message
        done = [TracedRequest(trace, revision, self._errors.pop(trace.trace_id, {}), earlier)
                for trace in self._reader.feed(otlp)]
        done.sort(key=lambda request: request.root.start_ns, reverse=True)
        return done

    def add_earlier(self, requests: list[TracedRequest]) -> list[TracedRequest]:
        """Requests kept from before this session (newest first) go below this session's: those
        not listed already (by trace id), as many as there is room for. Returns those added."""
        known = {request.trace.trace_id for request in self.requests}
        added: list[TracedRequest] = []
        for request in requests:
            if len(self.requests) + len(added) >= (self.requests.maxlen or 0):
                break
            if request.trace.trace_id not in known:
                known.add(request.trace.trace_id)
                added.append(request)
        self.requests.extend(added)
        return added

    def find(self, request_id: str) -> TracedRequest | None:
        """The newest request traced with this ``x-request-id``."""
        if not request_id:
            return None
        return next((r for r in self.requests if r.request_id == request_id), None)


def read_earlier(earlier: EarlierTraces, count: int = CAPACITY) -> list[TracedRequest]:
    """The ``count`` newest requests kept in the traces file before this session, newest first.
    Reads the file: call it off the app's thread."""
    batches, ids = earlier.batches(count)
    book = TraceBook()
    found = [request for otlp in batches for request in book.complete(0, otlp, earlier=True)
             if request.trace.trace_id in ids]
    found.sort(key=lambda request: request.root.start_ns, reverse=True)
    return found[:count]


def _errors(otlp: str) -> Iterator[tuple[str, str, str]]:
    """(trace id, span id, message) for each span of a batch that failed: the exception it
    recorded (its ``exception`` event), else its ERROR status's message. devtui.traces does not
    read events; the Traces tab needs them."""
    try:
        batch = json.loads(otlp)
    except ValueError:
        return
    for raw in raw_spans(batch):
        try:
            message = _exception(raw)
        except (AttributeError, TypeError):
            continue  # its events or status not shaped as OTLP: no exception to show
        if message and "traceId" in raw and "spanId" in raw:
            yield raw["traceId"], raw["spanId"], message


def _exception(raw: dict) -> str:
    for event in raw.get("events") or ():
        if event.get("name") == "exception":
            values = {pair.get("key"): (pair.get("value") or {}).get("stringValue", "")
                      for pair in event.get("attributes") or ()}
            kind, message = values.get("exception.type", ""), values.get("exception.message", "")
            if kind or message:
                return f"{kind.rsplit('.', 1)[-1]}: {message}" if kind and message else kind or message
    status = raw.get("status") or {}
    return str(status.get("message") or "") if status.get("code") == 2 else ""
