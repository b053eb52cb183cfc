"""A stand-in OpenTelemetry collector on 127.0.0.1: an OTLP/HTTP receiver that takes ``POST
/v1/traces`` (or any path: it records the path) in protobuf or JSON, keeps what it got, and answers
200 with an empty ExportTraceServiceResponse. ``spans()`` decodes what arrived, whichever encoding.
Started and stopped by the test (a context manager); ``stop()`` leaves its port closed, a collector
that is down, and another on the same ``port`` is the collector back."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from dataclasses import dataclass


@dataclass
class Received:
    path: str
    content_type: str
    headers: dict[str, str]
    body: bytes

    def document(self) -> dict:
        """The request as OTLP JSON, ids in hex, whichever encoding it came in."""
        if self.content_type == "application/json":
            return json.loads(self.body)
        from google.protobuf import json_format
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        message = ExportTraceServiceRequest()
        message.ParseFromString(self.body)
        document = json_format.MessageToDict(message)
        for span in _spans(document):
            for key in ("traceId", "spanId", "parentSpanId"):
                if span.get(key):
                    span[key] = base64.b64decode(span[key]).hex()
        return document


def _spans(document: dict):
    for resource in document.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            yield from scope.get("spans", ())


class OTLPReceiver:
    def __init__(self, status: int = 200, port: int = 0):
        self.status = status
        self.received: list[Received] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(Received(self.path, self.headers.get("content-type", ""),
                                                  {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-type", self.headers.get("content-type", "application/json"))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[dict]:
        """Every span received so far, as OTLP JSON."""
        return [span for request in list(self.received) for span in _spans(request.document())]

    def __enter__(self) -> OTLPReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __exit__(self, *_) -> None:
        if self.thread.is_alive():
            self.stop()
