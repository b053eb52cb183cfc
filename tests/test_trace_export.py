"""Request traces sent on to an OpenTelemetry collector (issue 23, export): which collector
OpenTelemetry's variables name, the batches as it receives them (protobuf or JSON) at a receiver
started here on 127.0.0.1, and a collector that is down: one warning, never one per batch."""

from __future__ import annotations

import json

import pytest

from devtui.events import ServerStarted, Traces
from devtui.trace_export import Collector, CollectorError, Protocol, TraceExport
from helpers import wait_for
from otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.unit

TRACE_ID, SPAN_ID, PARENT_ID = "5b8aa5a2d2c872e8321cf37308d69df2", "051581bf3cb55c13", "ab1581bf3cb55c99"


def batch(name: str = "flow", key: str = "********") -> str:
    span = {"traceId": TRACE_ID, "spanId": SPAN_ID, "parentSpanId": PARENT_ID, "name": name, "kind": 1,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
            "attributes": [{"key": "inputs", "value": {"stringValue": json.dumps({"api_key": key})}},
                           {"key": "llm.usage.total_tokens", "value": {"intValue": "2"}}],
            "status": {"code": 1}}
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "flow"}}]},
        "scopeSpans": [{"scope": {"name": "promptflow"}, "spans": [span]}]}]})


@pytest.mark.parametrize("variables, url", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "http://127.0.0.1:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/base/"}, "http://collector:4318/base/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://phoenix:6006/v1/traces"}, "https://phoenix:6006/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://a:1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:2"},
     "http://a:1/traces"),  # the traces' own variable wins, used as it is
])
def test_the_collector_is_where_opentelemetrys_variables_say(variables, url):
    collector = Collector.from_environment(variables)
    assert collector.url == url and collector.protocol is Protocol.PROTOBUF and collector.timeout_s == 10


def test_protocol_headers_and_timeout_follow_opentelemetrys_variables():
    collector = Collector.from_environment({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%3Db, x-team = ml",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500"})
    assert collector.protocol is Protocol.JSON and collector.timeout_s == 2.5
    assert collector.headers == (("api-key", "a=b"), ("x-team", "ml"))
    assert Collector.from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}) is None
    assert Collector.from_environment({}) is None


@pytest.mark.parametrize("variables, says", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "HTTP port (4318)"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"}, "not an http:// or https:// URL"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "milliseconds"),
])
def test_a_collector_named_badly_is_said_once_and_nothing_is_sent(variables, says):
    with pytest.raises(CollectorError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Collector.from_environment(variables)
    said: list[str] = []
    export = TraceExport(lambda: variables, said.extend)
    for _ in range(3):
        export(Traces(1, batch()))
    assert len(said) == 1 and said[0].startswith("warning: request traces are not sent to a collector: ")
    assert export.queue.empty()


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_the_receiver_gets_the_batches_as_sent_in_either_encoding(protocol):
    with OTLPReceiver() as receiver:
        variables = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                     "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t0ken"}
        said: list[str] = []
        export = TraceExport(lambda: variables, said.extend)
        export(Traces(1, batch("flow")))
        export(Traces(1, batch("openai_chat")))
        export.close()
        spans = wait_for(lambda: len(receiver.spans()) == 2 and receiver.spans(), message="both batches")
    assert said == []
    request = receiver.received[0]
    assert request.path == "/v1/traces" and request.headers["authorization"] == "Bearer t0ken"
    assert request.content_type == {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}[protocol]
    assert [s["name"] for s in spans] == ["flow", "openai_chat"]
    span = spans[0]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert span["startTimeUnixNano"] == "1700000000000000000"
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["llm.usage.total_tokens"] == {"intValue": "2"}
    assert json.loads(attributes["inputs"]["stringValue"]) == {"api_key": "********"}
    resource = request.document()["resourceSpans"][0]["resource"]["attributes"]
    assert resource == [{"key": "service.name", "value": {"stringValue": "flow"}}]


def test_a_collector_that_is_down_costs_one_warning_and_one_line_when_it_is_back():
    with OTLPReceiver() as down:
        down.stop()  # its port, now closed: a collector that is down
    url = f"{down.url}/v1/traces"
    variables = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url}
    said: list[str] = []
    export = TraceExport(lambda: variables, said.extend)
    for n in range(5):
        export(Traces(1, batch(f"down-{n}")))
    wait_for(lambda: export.tried == 5, message="the batches to be tried")
    with OTLPReceiver(port=down.server.server_address[1]) as back:
        export(Traces(1, batch("back")))
        wait_for(lambda: back.spans(), message="the batch sent once the collector is back")
        with OTLPReceiver(status=503) as refusing:
            variables["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{refusing.url}/v1/traces"
            for n in range(3):
                export(Traces(1, batch(f"refused-{n}")))
            export.close()
    assert [s["name"] for s in back.spans()] == ["back"]
    assert len(refusing.received) == 3
    assert len(said) == 3, said  # one warning while it was down, one line once back, one for the refusing one
    assert said[0].startswith(f"warning: request traces could not be sent to {url}: ")
    assert "kept here all the same" in said[0]
    assert said[1] == f"request traces reach {url} again"
    assert said[2].startswith(f"warning: request traces could not be sent to {refusing.url}/v1/traces: it answered 503")


def test_a_full_queue_drops_batches_and_says_so_once(monkeypatch):
    import devtui.trace_export as trace_export

    monkeypatch.setattr(trace_export, "QUEUE_BATCHES", 2)
    said: list[str] = []
    export = TraceExport(lambda: {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, said.extend)
    export._thread = object()  # no thread takes them: the queue fills
    for _ in range(5):
        export(Traces(1, batch()))
    assert export.dropped == 3 and len(said) == 1 and "dropped" in said[0]


def test_with_traces_off_a_named_collector_gets_a_note_once():
    said: list[str] = []
    export = TraceExport(lambda: {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, said.extend,
                         traces_on=False)
    for _ in range(2):
        export(ServerStarted("http://127.0.0.1:1/score", 1, None))
    assert said == ["note: http://127.0.0.1:4318/v1/traces would receive the request traces: they are off, turn "
                    "them on with --traces"]
