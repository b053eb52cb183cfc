"""Request traces in a worker: the OpenTelemetry SDK's TracerProvider, set up after the fork (the
warm parent never has one), with :class:`ChannelSpans`, a span processor that batches finished
spans and sends them to the supervisor over the worker's channel.

The request path only appends a finished span to a list: the rest happens on a background thread
every FLUSH_EVERY_S, or sooner once FLUSH_SPANS are waiting, and makes as little as it can there:
compact rows of plain values (``protocol.WorkerSpans``). The supervisor, in its own process, makes
OTLP JSON of them and passes each batch on to devtui (``protocol.Spans``, :func:`spans_events`).

:class:`RequestTracer` is what a worker's app uses: one SERVER span per scoring request
("POST /score") and a ``run`` span around run(), current while run() runs, so a span the user's
code opens with the OpenTelemetry API nests inside it. Without the SDK (an image that lacks it)
or with traces off, :data:`OFF` stands in and costs a call per request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import protocol

logger = logging.getLogger("azmlinfsrv")

FLUSH_EVERY_S = 0.1
FLUSH_SPANS = 256
BATCH_SPANS = 64  # spans a line: about 40 KiB of small ones
MAX_PENDING = 20_000  # finished spans waiting for the flush; beyond, new ones are dropped
YIELD_EVERY = 32  # rows made (about 100 us) between two chances for the serving thread to run
ATTRIBUTE_LIMIT = 4096  # characters of one attribute's value: a trace is for reading, not for payloads
SCOPE = "devtui.inference_server"

# OTLP's enums, as its JSON mapping writes them (numbers).
_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def otlp_value(value: Any) -> dict:
    """An attribute value as OTLP JSON's AnyValue; a string cut at ATTRIBUTE_LIMIT (here, off the
    request path, rather than by the SDK's span limits as each attribute is set)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in OTLP JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [otlp_value(v) for v in value]}}
    text = str(value)
    return {"stringValue": text if len(text) <= ATTRIBUTE_LIMIT else text[:ATTRIBUTE_LIMIT] + "...(cut)"}


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


def otlp_span(row: list) -> dict:
    """A span row (:func:`span_row`, as it came over the channel) as OTLP JSON."""
    trace_id, span_id, parent_id, name, kind, start, end, attributes, code, message, events = row
    encoded = {
        "traceId": trace_id, "spanId": span_id, "parentSpanId": parent_id, "name": name, "kind": kind,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(end), "attributes": otlp_attributes(attributes),
        "status": {"code": code, "message": message} if message else {"code": code},
    }
    if events:
        encoded["events"] = [{"name": event, "timeUnixNano": str(at), "attributes": otlp_attributes(values)}
                             for event, at, values in events]
    return encoded


def otlp_attributes(attributes: dict[str, Any]) -> list[dict]:
    return [{"key": k, "value": otlp_value(v)} for k, v in attributes.items()]


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


def otlp_batch(spans: list[dict], resource: dict[str, Any]) -> dict:
    """An ExportTraceServiceRequest holding ``spans`` (already encoded)."""
    return {"resourceSpans": [{
        "resource": {"attributes": otlp_attributes(resource)},
        "scopeSpans": [{"scope": {"name": SCOPE}, "spans": spans}]}]}


class ChannelSpans:
    """A SpanProcessor (the SDK's interface, duck-typed) that batches finished spans and sends
    them to the supervisor on a background thread: ``send(rows)`` sends a batch of span rows."""

    def __init__(self, send: Callable[[list[list]], None]):
        self.send = send
        self._spans: list = []
        self.dropped = 0  # spans that found MAX_PENDING waiting, said in the log at the next flush
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="trace-spans")
        self._thread.is_pydev_daemon_thread = True  # debugpy neither traces nor suspends it
        self._thread.start()

    # -- the SDK's SpanProcessor ----------------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span) -> None:
        with self._lock:
            if len(self._spans) >= MAX_PENDING:  # the flush cannot keep up: memory must not grow without end
                self.dropped += 1
                return
            self._spans.append(span)
            full = len(self._spans) >= FLUSH_SPANS
        if full:
            self._wake.set()

    def shutdown(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=2)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._flush()
        return True

    # -- the background thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_EVERY_S)
            self._wake.clear()
            self._flush()
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            spans, self._spans = self._spans, []
            dropped, self.dropped = self.dropped, 0
        if dropped:
            logger.warning(f"{dropped} request spans were dropped: more finished than could be sent")
        try:
            for start in range(0, len(spans), BATCH_SPANS):
                rows = []
                for n, span in enumerate(spans[start:start + BATCH_SPANS]):
                    rows.append(span_row(span))
                    if n % YIELD_EVERY == YIELD_EVERY - 1:
                        # Let a request's thread have the interpreter: holding it to the switch
                        # interval (5 ms) would show in the requests' 99th percentile.
                        time.sleep(0)
                self.send(rows)
                time.sleep(0)
        except OSError:
            pass  # the supervisor is gone: this worker ends soon
        except Exception:
            logger.exception("Request spans could not be sent; they are dropped")


class RequestTracer:
    """The spans a scoring request makes: ``begin()``/``end()`` around the whole request (its span
    is the current one meanwhile), ``run()`` around run(), entered where run() runs: on the loop,
    or on the pool's thread, which gets the request's context with the call. Spans are started and
    made current by hand rather than through ``start_as_current_span``'s generators: a third less
    per request."""

    enabled = True

    def __init__(self, tracer):
        from opentelemetry import context, trace

        self._tracer = tracer
        self._attach, self._detach = context.attach, context.detach
        self._in_context = trace.set_span_in_context
        self._server = trace.SpanKind.SERVER
        self._error = trace.StatusCode.ERROR

    def begin(self, method: str, path: str) -> tuple[Any, object]:
        """The request's span, current until ``end()``."""
        span = self._tracer.start_span(f"{method} {path}", kind=self._server)
        return span, self._attach(self._in_context(span))

    def end(self, begun: tuple[Any, object], status: int | None, ids: list, started: float) -> None:
        """What every trace carries: the request's ids, its status (None: the client went away
        before its answer) and duration."""
        span, token = begun
        self._detach(token)
        # Set once, at the end: each attribute set on a live span takes its lock.
        method, _, path = span.name.partition(" ")
        attributes = {"http.request.method": method, "url.path": path}
        for name, value in ids:
            if name in _ID_HEADERS:
                attributes[f"http.request.header.{name.decode()}"] = value.decode("latin-1")
        if status is not None:
            attributes[STATUS_CODE] = status
        attributes[DURATION] = round((time.perf_counter() - started) * 1000, 3)
        span.set_attributes(attributes)
        if status is None or status >= 500:
            span.set_status(self._error)
        span.end()

    def run(self, call: Callable[[], Any]) -> Any:
        span = self._tracer.start_span("run")
        token = self._attach(self._in_context(span))
        try:
            return call()
        except BaseException as ex:  # the span that raised says so, with the exception
            span.record_exception(ex)
            span.set_status(self._error, f"{type(ex).__name__}: {ex}")
            raise
        finally:
            self._detach(token)
            span.end()


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
    return WorkerTracing(provider, processor, RequestTracer(provider.get_tracer(SCOPE)))
