"""Request traces in a worker: the OpenTelemetry SDK's TracerProvider, set up after the fork (the
warm parent never has one), with :class:`ChannelSpans`, a span processor that batches finished
spans and sends them to the supervisor over the worker's channel.

The request path only appends a finished span to a list: the rest happens on the event loop
between requests, FLUSH_EVERY_S later, a batch at a time, and makes as little as it can there:
compact rows of plain values (``protocol.WorkerSpans``). The supervisor, in its own process, makes
OTLP JSON of them and passes each batch on to devtui (``protocol.Spans``, :func:`spans_events`).

:class:`RequestTracer` is what a worker's app uses: one SERVER span per scoring request
("POST /score") and a ``run`` span around run(), current while run() runs, so a span the user's
code opens with the OpenTelemetry API nests inside it. Those two are made by hand, not by the SDK,
at a twentieth of the cost. Without the SDK (an image that lacks it)
or with traces off, :data:`OFF` stands in and costs a call per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from random import getrandbits
from typing import Any

from . import protocol

logger = logging.getLogger("azmlinfsrv")

FLUSH_EVERY_S = 0.1
BATCH_SPANS = 64  # spans a line: about 40 KiB of small ones
MAX_PENDING = 20_000  # finished spans waiting for the flush; beyond, new ones are dropped
ATTRIBUTE_LIMIT = 4096  # characters of one attribute's value: a trace is for reading, not for payloads
SCOPE = "devtui.inference_server"

# OTLP's enums, as its JSON mapping writes them (numbers).
_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def otlp_value(value: Any) -> str:
    """An attribute value as OTLP JSON's AnyValue, as JSON text; a string cut at ATTRIBUTE_LIMIT
    (here, off the request path, rather than by the SDK's span limits as each attribute is set)."""
    if type(value) is str:
        text = value
    elif isinstance(value, bool):
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    elif isinstance(value, int):
        return '{"intValue":' + _string(str(value)) + "}"  # int64 is a string in OTLP JSON
    elif isinstance(value, float):
        return '{"doubleValue":' + _json(value) + "}"
    elif isinstance(value, list | tuple):
        return '{"arrayValue":{"values":[' + ",".join(map(otlp_value, value)) + "]}}"
    else:
        text = str(value)
    if len(text) > ATTRIBUTE_LIMIT:
        text = text[:ATTRIBUTE_LIMIT] + "...(cut)"
    return '{"stringValue":' + _string(text) + "}"


def span_row(span) -> list:
    """A finished SDK span (a ReadableSpan) as the worker sends it: a compact row of plain values,
    cheap to make on the worker's interpreter; the supervisor makes OTLP JSON of it
    (:func:`otlp_span`), in its own process."""
    context, parent = span.context, span.parent
    status = span.status
    return [f"{context.trace_id:032x}", f"{context.span_id:016x}",
            f"{parent.span_id:016x}" if parent is not None else "", span.name, _KINDS.get(span.kind.name, 0),
            span.start_time, span.end_time, _plain_attributes(span.attributes),
            _STATUS.get(status.status_code.name, 0), status.description or "",
            [[e.name, e.timestamp, _plain_attributes(e.attributes)] for e in span.events]]


def _plain_attributes(attributes) -> dict:
    # The SDK keeps sequences as tuples; JSON writes them as lists all the same.
    return dict(attributes) if attributes else {}


def otlp_span(row: list) -> str:
    """A span row (:func:`span_row`, as it came over the channel) as OTLP JSON text: written
    with string formatting rather than made as dicts for json.dumps, at a third of the cost (the
    supervisor does this for every span of every request)."""
    trace_id, span_id, parent_id, name, kind, start, end, attributes, code, message, events = row
    status = f'{{"code":{code:d},"message":{_string(message)}}}' if message else f'{{"code":{code:d}}}'
    text = (f'{{"traceId":{_string(trace_id)},"spanId":{_string(span_id)},"parentSpanId":{_string(parent_id)},'
            f'"name":{_string(name)},"kind":{kind:d},"startTimeUnixNano":"{start:d}","endTimeUnixNano":"{end:d}",'
            f'"attributes":{otlp_attributes(attributes)},"status":{status}')
    if events:
        text += ',"events":[' + ",".join(
            f'{{"name":{_string(event)},"timeUnixNano":"{at:d}","attributes":{otlp_attributes(values)}}}'
            for event, at, values in events) + "]"
    return text + "}"


def otlp_attributes(attributes: dict[str, Any]) -> str:
    """OTLP JSON's list of KeyValues, as JSON text."""
    return "[" + ",".join(f'{{"key":{_string(k)},"value":{otlp_value(v)}}}' for k, v in attributes.items()) + "]"


def spans_events(revision: int, rows: list[list], resource: dict[str, Any],
                 encode: Callable[[protocol.Spans], bytes]) -> Iterator[bytes]:
    """The event lines of a worker's batch of span rows, as OTLP JSON: one line while it stays
    under protocol.SPANS_LINE_LIMIT, else the batch halved; a span too big on its own is dropped,
    said in the log."""
    line = encode(protocol.Spans(revision=revision, otlp=otlp_batch([otlp_span(r) for r in rows], resource)))
    if len(line) <= protocol.SPANS_LINE_LIMIT:
        yield line
    elif len(rows) > 1:
        yield from spans_events(revision, rows[:len(rows) // 2], resource, encode)
        yield from spans_events(revision, rows[len(rows) // 2:], resource, encode)
    else:
        logger.warning(f"A span of {len(line)} bytes ({rows[0][3]}) is too big for a trace; dropped")


def otlp_batch(spans: list[str], resource: dict[str, Any]) -> str:
    """An ExportTraceServiceRequest holding ``spans`` (already JSON text), as JSON text."""
    return (f'{{"resourceSpans":[{{"resource":{{"attributes":{otlp_attributes(resource)}}},'
            f'"scopeSpans":[{{"scope":{{"name":{_string(SCOPE)}}},"spans":[{",".join(spans)}]}}]}}]}}')


# JSON text of a str and of any value, as json.dumps writes them (the str's encoder without its
# Python-level wrapper: most of what a span holds is strings).
_string = json.encoder.encode_basestring_ascii
_json = json.JSONEncoder().encode


class ChannelSpans:
    """A SpanProcessor (the SDK's interface, duck-typed) that batches finished spans and sends
    them to the supervisor: ``send(rows)`` sends a batch of span rows.

    The sending happens on the worker's event loop, between requests, a batch of BATCH_SPANS at a
    time (about 0.2 ms), FLUSH_EVERY_S after the first span that found none due. Not on a thread of
    its own: two threads that both want the interpreter hand it over at every blocking call, and
    that costs the serving thread more than the sending does (a trivial request's CPU doubled)."""

    def __init__(self, send: Callable[[list[list]], None]):
        self.send = send
        self._spans: list = []
        self.dropped = 0  # spans that found MAX_PENDING waiting, said in the log at the next batch
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = False  # a batch is scheduled on the loop
        self._closed = False

    # -- the SDK's SpanProcessor ----------------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span) -> None:
        with self._lock:
            if len(self._spans) >= MAX_PENDING:  # sending cannot keep up: memory must not grow without end
                self.dropped += 1
                return
            self._spans.append(span)
            if self._due or self._closed:
                return
            self._due = True
        self._schedule()

    def add(self, span: _Light) -> None:
        """A span of the request's own (RequestTracer), finished: as on_end."""
        self.on_end(span)

    def shutdown(self) -> None:
        """The worker ends: what is left goes now, on the caller's thread."""
        self._closed = True
        self.force_flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        while self._send_batch():
            pass
        return True

    # -- on the loop ----------------------------------------------------------------------------

    def _schedule(self) -> None:
        """A batch FLUSH_EVERY_S from now, on the loop: this is its thread, or the loop it learnt
        before. A span that ends before any loop runs (in init()) waits for the first request's."""
        try:
            self._loop = asyncio.get_running_loop()
            self._loop.call_later(FLUSH_EVERY_S, self._batch)
        except RuntimeError:  # a thread of the pool, of the WSGI bridge, or no loop yet
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.call_later, FLUSH_EVERY_S, self._batch)
            else:
                with self._lock:
                    self._due = False

    def _batch(self) -> None:
        """Send one batch; the next, if any, after the requests waiting meanwhile."""
        if self._send_batch():
            self._loop.call_soon(self._batch)
        else:
            with self._lock:
                if self._spans and not self._closed:
                    self._loop.call_later(FLUSH_EVERY_S, self._batch)
                else:
                    self._due = False

    def _send_batch(self) -> bool:
        """Send up to BATCH_SPANS of the finished spans; whether more are waiting."""
        with self._lock:
            spans, self._spans = self._spans[:BATCH_SPANS], self._spans[BATCH_SPANS:]
            dropped, self.dropped = self.dropped, 0
            more = bool(self._spans)
        if dropped:
            logger.warning(f"{dropped} request spans were dropped: more finished than could be sent")
        if not spans:
            return False
        try:
            self.send([span.row() if type(span) is _Light else span_row(span) for span in spans])
        except OSError:
            return False  # the supervisor is gone: this worker ends soon
        except Exception:
            logger.exception("Request spans could not be sent; they are dropped")
        return more


class RequestTracer:
    """The spans a scoring request makes: ``begin()``/``end()`` around the whole request (its span
    is the current one meanwhile), ``run()`` around run(), entered where run() runs: on the loop,
    or on the pool's thread, which gets the request's context with the call.

    These two are not the SDK's spans: one costs about 20 us to start and end here, a third of a
    trivial request. Each is made current as a bare SpanContext (about 1 us), so what the user's
    code or prompt flow opens with the SDK nests inside it, and is handed to the processor at its
    end as a :class:`_Light` of plain values, made into a row as its batch is sent."""

    enabled = True

    def __init__(self, processor: ChannelSpans):
        from opentelemetry import context, trace

        self._processor = processor
        self._attach, self._detach = context.attach, context.detach
        self._in_context, self._current = trace.set_span_in_context, trace.get_current_span
        self._bare, self._span_context = trace.NonRecordingSpan, trace.SpanContext
        self._sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)

    def _enter(self, trace_id: int, span_id: int) -> object:
        return self._attach(self._in_context(self._bare(self._span_context(trace_id, span_id, False, self._sampled))))

    def begin(self, method: str, path: str) -> _Light:
        """The request's span, current until ``end()``."""
        span = _Light(getrandbits(128) or 1, getrandbits(64) or 1, 0, f"{method} {path}", _KINDS["SERVER"])
        span.token = self._enter(span.trace_id, span.span_id)
        return span

    def end(self, span: _Light, status: int | None, ids: list, started: float) -> None:
        """What every trace carries: the request's ids, its status (None: the client went away
        before its answer) and duration."""
        self._detach(span.token)
        span.end = time.time_ns()
        method, _, path = span.name.partition(" ")
        attributes = {"http.request.method": method, "url.path": path}
        for name, value in ids:
            if name in _ID_HEADERS:
                attributes[f"http.request.header.{name.decode()}"] = value.decode("latin-1")
        if status is not None:
            attributes[STATUS_CODE] = status
        attributes[DURATION] = round((time.perf_counter() - started) * 1000, 3)
        span.attributes = attributes
        if status is None or status >= 500:
            span.status = _STATUS["ERROR"]
        self._processor.add(span)

    def run(self, call: Callable[[], Any]) -> Any:
        parent = self._current().get_span_context()
        span = _Light(parent.trace_id if parent.is_valid else getrandbits(128) or 1, getrandbits(64) or 1,
                      parent.span_id if parent.is_valid else 0, "run", _KINDS["INTERNAL"])
        token = self._enter(span.trace_id, span.span_id)
        try:
            return call()
        except BaseException as ex:  # the span that raised says so, with the exception
            span.failed(ex)
            raise
        finally:
            self._detach(token)
            span.end = time.time_ns()
            self._processor.add(span)


class _Light:
    """A span of the request's own (:class:`RequestTracer`): plain values, and the same row as an
    SDK span's once finished (:meth:`row`, on the flush thread)."""

    __slots__ = ("trace_id", "span_id", "parent_id", "name", "kind", "start", "end", "attributes", "status",
                 "message", "events", "token")

    def __init__(self, trace_id: int, span_id: int, parent_id: int, name: str, kind: int):
        self.trace_id, self.span_id, self.parent_id, self.name, self.kind = trace_id, span_id, parent_id, name, kind
        self.start, self.end = time.time_ns(), 0
        self.attributes: dict = {}
        self.status, self.message, self.events = _STATUS["UNSET"], "", []

    def failed(self, ex: BaseException) -> None:
        """As the SDK's record_exception and set_status(ERROR, ...) say it."""
        kind = type(ex)
        self.status, self.message = _STATUS["ERROR"], f"{kind.__name__}: {ex}"
        named = kind.__qualname__ if kind.__module__ in (None, "builtins") else f"{kind.__module__}.{kind.__qualname__}"
        self.events.append(["exception", time.time_ns(), {
            "exception.type": named, "exception.message": str(ex),
            "exception.stacktrace": "".join(traceback.format_exception(kind, ex, ex.__traceback__)),
            "exception.escaped": "False"}])

    def row(self) -> list:
        return [f"{self.trace_id:032x}", f"{self.span_id:016x}", f"{self.parent_id:016x}" if self.parent_id else "",
                self.name, self.kind, self.start, self.end, self.attributes, self.status, self.message, self.events]


_ID_HEADERS = (b"x-request-id", b"x-ms-client-request-id")
STATUS_CODE = "http.response.status_code"
DURATION = "devtui.duration_ms"


class _Off:
    """Tracing off: the same calls, doing nothing."""

    enabled = False

    def begin(self, method: str, path: str) -> None:
        return None

    def end(self, begun, status: int | None, ids: list, started: float) -> None:
        pass

    def run(self, call: Callable[[], Any]) -> Any:
        return call()


OFF = _Off()


class WorkerTracing:
    """Tracing as one worker has it: the provider it set up, the processor that sends its spans,
    and the tracer its app uses. ``close()`` sends what is left."""

    def __init__(self, provider=None, processor: ChannelSpans | None = None, tracer: RequestTracer | _Off = OFF):
        self.provider, self.processor, self.tracer = provider, processor, tracer

    def close(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def start(enabled: bool, send: Callable[[list[list], dict[str, Any]], None], service: str) -> WorkerTracing:
    """Set up tracing in this worker (after the fork, before the user's code loads, so a tracer the
    script gets at import delegates to this provider). ``send(rows, resource)`` sends a batch."""
    if not enabled:
        return WorkerTracing()
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    except ImportError:
        logger.info("Request traces are off: the OpenTelemetry SDK (opentelemetry-sdk) is not installed here")
        return WorkerTracing()
    resource = {"service.name": service, "process.pid": os.getpid()}
    processor = ChannelSpans(lambda rows: send(rows, resource))
    # Every span is sampled (a request's root has no remote parent: nothing to ask the parent about).
    provider = TracerProvider(resource=Resource.create(resource), sampler=ALWAYS_ON)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return WorkerTracing(provider, processor, RequestTracer(processor))
