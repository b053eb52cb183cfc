"""Request traces sent on to an OpenTelemetry collector (Jaeger, the Aspire dashboard, Phoenix, an
OpenTelemetry Collector): the same batches devtui keeps (``traces.py``), secrets already hidden,
posted over OTLP/HTTP where OpenTelemetry's own variables say, as its exporters read them:

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, used as it is, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` with
  ``/v1/traces`` after it;
- ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``: ``http/protobuf`` (the default) or ``http/json``;
- ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`` (``key=value,...``) and ``..._TIMEOUT`` (milliseconds).

They are read from the deployment's ``environment_variables`` over devtui's own environment (what
the server sees), again for each batch, so an edit of the YAML takes effect with its restart.

The batches are already OTLP JSON: ``http/json`` posts them as they are; ``http/protobuf`` parses
them into the protocol's own message (``opentelemetry-proto``), trace and span ids turned from
JSON's hex to bytes. The SDK's exporter (``opentelemetry-exporter-otlp-proto-http``) would want
the SDK's span objects back, which devtui's side never has.

The engine's loop only puts a batch on a bounded queue; a thread posts them. A collector that is
down or refuses them costs one warning in the devtui log, and another line once it takes them
again: never one per batch. Batches that find the queue full are dropped, said once.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import os
import queue
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .events import DEVTUI, ServerStarted, Traces

QUEUE_BATCHES = 256  # about 10 MiB of the largest batches
CLOSE_WAIT_S = 2.0  # what an ending devtui gives the batches still queued
PROBLEM_TEXT = 200  # characters of a collector's refusal quoted in the warning

TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


class Protocol(enum.StrEnum):
    PROTOBUF = "http/protobuf"
    JSON = "http/json"


CONTENT_TYPES = {Protocol.PROTOBUF: "application/x-protobuf", Protocol.JSON: "application/json"}


class CollectorError(ValueError):
    """The variables name a collector devtui cannot send to; the message says why."""


@dataclass(frozen=True)
class Collector:
    url: str
    protocol: Protocol = Protocol.PROTOBUF
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 10.0

    @classmethod
    def from_environment(cls, variables: Mapping[str, str]) -> Collector | None:
        """The collector ``variables`` name (None: none); CollectorError when they name one badly."""
        traces_url, base = _variable(variables, TRACES_ENDPOINT), _variable(variables, ENDPOINT)
        if not traces_url and not base:
            return None
        url = traces_url or base.rstrip("/") + "/v1/traces"
        named = TRACES_ENDPOINT if traces_url else ENDPOINT
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CollectorError(f"{named}={url!r} is not an http:// or https:// URL")
        wanted = _signal_variable(variables, "PROTOCOL") or Protocol.PROTOBUF
        if wanted not in set(Protocol):
            raise CollectorError(f"OTEL_EXPORTER_OTLP_PROTOCOL={wanted!r}: devtui sends traces over OTLP/HTTP, "
                                 "as http/protobuf (the default) or http/json; for a gRPC collector use its HTTP "
                                 "port (4318) instead")
        timeout = _signal_variable(variables, "TIMEOUT")
        try:
            timeout_s = int(timeout) / 1000 if timeout else 10.0
        except ValueError:
            raise CollectorError(f"OTEL_EXPORTER_OTLP_TIMEOUT={timeout!r} is not a number of milliseconds") from None
        return cls(url, Protocol(wanted), _headers(_signal_variable(variables, "HEADERS")), timeout_s)

    def body(self, otlp: str) -> bytes:
        """One batch (OTLP JSON) as this collector's protocol has it."""
        return otlp.encode() if self.protocol is Protocol.JSON else protobuf(otlp)


def _variable(variables: Mapping[str, str], name: str) -> str:
    return (variables.get(name) or "").strip()


def _signal_variable(variables: Mapping[str, str], what: str) -> str:
    """The traces' own variable, else the one for every signal (OpenTelemetry's precedence)."""
    return _variable(variables, f"OTEL_EXPORTER_OTLP_TRACES_{what}") or _variable(variables, f"OTEL_EXPORTER_OTLP_{what}")


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key2=value2``, each part URL-encoded (OpenTelemetry's format for the variable)."""
    pairs = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            pairs.append((urllib.parse.unquote(key.strip()), urllib.parse.unquote(value.strip())))
    return tuple(pairs)


def protobuf(otlp: str) -> bytes:
    """An OTLP JSON ExportTraceServiceRequest as protobuf: the same message, its ids from hex (OTLP
    JSON's) to bytes (base64 in protobuf's own JSON mapping, which the parser reads)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    document = json.loads(otlp)
    for resource in document.get("resourceSpans") or ():
        for scope in resource.get("scopeSpans") or ():
            for span in scope.get("spans") or ():
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True).SerializeToString()


class TraceExport:
    """An engine listener: each batch of traces goes on a bounded queue, and a thread (started with
    the first) posts it to the collector the variables name. ``close()`` gives what is queued
    CLOSE_WAIT_S to go out. ``say(lines)`` writes the devtui log; from the thread it is called on
    the engine's loop."""

    def __init__(self, variables: Callable[[], Mapping[str, str]], say: Callable[[list[str]], None],
                 traces_on: bool = True):
        self.variables, self.say, self.traces_on = variables, say, traces_on
        self.queue: queue.Queue = queue.Queue(QUEUE_BATCHES)
        self.dropped = 0
        self.tried = 0  # batches the thread has posted (or tried to)
        self.failing: str | None = None  # the collector's URL while it fails, said once
        self._said: set[str] = set()  # problems already said (bad variables, a full queue)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def of(cls, engine) -> TraceExport:
        """For an engine: its deployment's variables over devtui's environment, its devtui log."""
        return cls(lambda: {**os.environ, **engine.deployment.environment_variables},
                   lambda lines: engine.log(DEVTUI, lines), engine.launch.traces)

    def __call__(self, event) -> None:
        if isinstance(event, Traces):
            self._queued(event.otlp)
        elif isinstance(event, ServerStarted) and not self.traces_on:
            collector = self._collector()
            if collector is not None:
                self._say_once("off", f"note: {collector.url} would receive the request traces: they are off, "
                                      "turn them on with --traces")

    def _queued(self, otlp: str) -> None:
        collector = self._collector()
        if collector is None:
            return
        if self._thread is None:
            self._loop = _running_loop()
            self._thread = threading.Thread(target=self._run, daemon=True, name="trace-export")
            self._thread.start()
        try:
            self.queue.put_nowait((collector, otlp))
        except queue.Full:
            self.dropped += 1
            self._say_once("full", f"warning: traces for {collector.url} are dropped: more come than it takes "
                                   "(they are kept here all the same: devtui traces)")

    def _collector(self) -> Collector | None:
        try:
            return Collector.from_environment(self.variables())
        except CollectorError as ex:
            self._say_once(str(ex), f"warning: request traces are not sent to a collector: {ex}")
            return None

    def _say_once(self, key: str, line: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say([line])

    def close(self) -> None:
        if self._thread is None:
            return
        try:
            self.queue.put(None, timeout=CLOSE_WAIT_S)
        except queue.Full:
            return
        self._thread.join(CLOSE_WAIT_S)

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        import httpx

        with httpx.Client() as client:
            while (item := self.queue.get()) is not None:
                collector, otlp = item
                self._post(client, collector, otlp)
                self.tried += 1

    def _post(self, client, collector: Collector, otlp: str) -> None:
        import httpx

        try:
            answer = client.post(collector.url, content=collector.body(otlp), timeout=collector.timeout_s,
                                 headers={**dict(collector.headers), "content-type": CONTENT_TYPES[collector.protocol]})
            problem = None if answer.is_success else f"it answered {answer.status_code} {answer.text[:PROBLEM_TEXT]}"
        except httpx.HTTPError as ex:
            problem = f"{type(ex).__name__}: {ex}" if str(ex) else type(ex).__name__
        except Exception as ex:  # a batch the protocol's message cannot hold: that batch only
            problem = f"a batch could not be encoded ({type(ex).__name__}: {ex})"
        if problem is not None and self.failing != collector.url:
            self.failing = collector.url
            self._from_thread([f"warning: request traces could not be sent to {collector.url}: {problem}. They are "
                               "kept here all the same (devtui traces); devtui goes on sending and says when it "
                               "can again"])
        elif problem is None and self.failing == collector.url:
            self.failing = None
            self._from_thread([f"request traces reach {collector.url} again"])

    def _from_thread(self, lines: list[str]) -> None:
        if self._loop is None:
            self.say(lines)
            return
        try:
            self._loop.call_soon_threadsafe(self.say, lines)
        except RuntimeError:
            pass  # the loop has ended: devtui is ending too


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
