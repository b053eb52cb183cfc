"""Request traces in a worker: the OpenTelemetry SDK's TracerProvider, set up after the fork (the
warm parent never has one), with :class:`ChannelSpans`, a span processor that batches finished
spans and sends them to the supervisor over the worker's channel as OTLP JSON.

The request path only appends a finished span to a list: encoding and sending happen on a
background thread every FLUSH_EVERY_S, or sooner once FLUSH_SPANS are waiting. The supervisor
passes each batch on to devtui (``protocol.Spans``).

:class:`RequestTracer` is what a worker's app uses: one SERVER span per scoring request
("POST /score") and a ``run`` span around run(), current while run() runs, so a span the user's
code opens with the OpenTelemetry API nests inside it. Without the SDK (an image that lacks it)
or with traces off, :data:`OFF` stands in and costs a call per request.
"""

from __future__ import annotations

import contextlib
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
ATTRIBUTE_LIMIT = 4096  # characters of one attribute's value: a trace is for reading, not for payloads
SCOPE = "devtui.inference_server"

# OTLP's enums, as its JSON mapping writes them (numbers).
_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def otlp_value(value: Any) -> dict:
    """An attribute value as OTLP JSON's AnyValue."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in OTLP JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [otlp_value(v) for v in value]}}
    return {"stringValue": str(value)}


def otlp_span(span) -> dict:
    """A finished SDK span (a ReadableSpan) as OTLP JSON."""
    context, parent = span.context, span.parent
    encoded = {
        "traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}",
        "parentSpanId": f"{parent.span_id:016x}" if parent is not None else "",
        "name": span.name, "kind": _KINDS.get(span.kind.name, 0),
        "startTimeUnixNano": str(span.start_time), "endTimeUnixNano": str(span.end_time),
        "attributes": [{"key": k, "value": otlp_value(v)} for k, v in (span.attributes or {}).items()],
        "status": {"code": _STATUS.get(span.status.status_code.name, 0)},
    }
    if span.status.description:
        encoded["status"]["message"] = span.status.description
    if span.events:
        encoded["events"] = [{"name": e.name, "timeUnixNano": str(e.timestamp),
                              "attributes": [{"key": k, "value": otlp_value(v)} for k, v in e.attributes.items()]}
                             for e in span.events]
    return encoded


def otlp_batch(spans: list[dict], resource: dict[str, Any]) -> dict:
    """An ExportTraceServiceRequest holding ``spans`` (already encoded)."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": k, "value": otlp_value(v)} for k, v in resource.items()]},
        "scopeSpans": [{"scope": {"name": SCOPE}, "spans": spans}]}]}


class ChannelSpans:
    """A SpanProcessor (the SDK's interface, duck-typed) that batches finished spans and sends
    them to the supervisor on a background thread. ``send(otlp)`` sends one batch."""

    def __init__(self, send: Callable[[dict], None], resource: dict[str, Any]):
        self.send = send
        self.resource = resource
        self._spans: list = []
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
        if not spans:
            return
        try:
            for batch in self._cut([otlp_span(span) for span in spans]):
                self.send(otlp_batch(batch, self.resource))
        except OSError:
            pass  # the supervisor is gone: this worker ends soon
        except Exception:
            logger.exception("Request spans could not be sent; they are dropped")

    def _cut(self, spans: list[dict]) -> Iterator[list[dict]]:
        """Batches whose event line stays under protocol.SPANS_LINE_LIMIT; a span too big on its own
        is dropped, said in the log."""
        import json

        batch, size, room = [], 0, protocol.SPANS_LINE_LIMIT - 2048  # the envelope's keys and resource
        for span in spans:
            length = len(json.dumps(span))
            if length > room:
                logger.warning(f"A span of {length} bytes ({span['name']}) is too big for a trace; dropped")
                continue
            if batch and size + length > room:
                yield batch
                batch, size = [], 0
            batch.append(span)
            size += length + 2
        if batch:
            yield batch


class RequestTracer:
    """The spans a scoring request makes: ``request()`` around the whole request, ``run()``
    around run() (entered where run() runs: on the loop, or on the pool's thread, which gets the
    request's context with the call)."""

    enabled = True

    def __init__(self, tracer):
        from opentelemetry import trace

        self._tracer = tracer
        self._server = trace.SpanKind.SERVER
        self._error = trace.Status(trace.StatusCode.ERROR)

    @contextlib.contextmanager
    def request(self, method: str, path: str) -> Iterator[Any]:
        with self._tracer.start_as_current_span(f"{method} {path}", kind=self._server,
                                                attributes={"http.request.method": method, "url.path": path},
                                                record_exception=False, set_status_on_exception=False) as span:
            yield span

    def answered(self, span, status: int, ids: list, started: float) -> None:
        """What every trace carries: the request's ids, its status and duration."""
        for name, value in ids:
            if name in (b"x-request-id", b"x-ms-client-request-id"):
                span.set_attribute(f"http.request.header.{name.decode()}", value.decode("latin-1"))
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("devtui.duration_ms", round((time.perf_counter() - started) * 1000, 3))
        if status >= 500:
            span.set_status(self._error)

    def run(self, call: Callable[[], Any]) -> Any:
        with self._tracer.start_as_current_span("run"):
            return call()


class _Off:
    """Tracing off: the same calls, doing nothing."""

    enabled = False

    @contextlib.contextmanager
    def request(self, method: str, path: str) -> Iterator[None]:
        yield None

    def answered(self, span, status: int, ids: list, started: float) -> None:
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


def start(enabled: bool, send: Callable[[dict], None], service: str) -> WorkerTracing:
    """Set up tracing in this worker (after the fork, before the user's code loads, so a tracer the
    script gets at import delegates to this provider). ``send`` takes a batch of OTLP JSON."""
    if not enabled:
        return WorkerTracing()
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    except ImportError:
        logger.info("Request traces are off: the OpenTelemetry SDK (opentelemetry-sdk) is not installed here")
        return WorkerTracing()
    resource = {"service.name": service, "process.pid": os.getpid()}
    processor = ChannelSpans(send, resource)
    provider = TracerProvider(resource=Resource.create(resource),
                              span_limits=SpanLimits(max_attribute_length=ATTRIBUTE_LIMIT))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return WorkerTracing(provider, processor, RequestTracer(provider.get_tracer(SCOPE)))
