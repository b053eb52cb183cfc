"""Request traces (issue 23, first slice): a score.py's spans captured in the worker, passed on by
the supervisor, kept per endpoint with the deployment's secrets hidden, and read back by
`devtui traces`."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess

import httpx
import pytest

from devtui import registry, spec, traces
from devtui.cli import Recorder
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED
from devtui.masking import MASK
from helpers import async_wait_for, devtui, devtui_command, write_deployment

DEPLOYMENT = """
name: blue
endpoint_name: {name}
code_configuration:
  code: ./code
  scoring_script: score.py
environment:
  image: python:3.11-slim
environment_variables:
  SERVICE_API_KEY: "{key}"
"""

# run() opens a span of its own, and puts both secrets (the environment's and the connection's)
# in its attributes: neither may reach a stored trace.
SCORE = '''
import os

import yaml
from opentelemetry import trace

tracer = trace.get_tracer("user-code")
KEY = os.environ["SERVICE_API_KEY"]


def init():
    global API_KEY
    with open(os.environ["CONNECTIONS_FILE"]) as f:
        API_KEY = yaml.safe_load(f)["api_key"]


def run(raw):
    with tracer.start_as_current_span("featurize") as span:
        span.set_attribute("service.key", KEY)
        span.set_attribute("connection.key", API_KEY)
        features = len(raw)
    return {"features": features}
'''


def _batch(*spans: dict) -> str:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": list(spans)}]}]})


def _span(name: str, span_id: str, parent: str = "", start: int = 0, end: int = 1_000_000, trace_id: str = "t1",
          request_id: str | None = None, status: int | None = None, pad: str = "") -> dict:
    attributes = {traces.REQUEST_ID: request_id, traces.STATUS_CODE: status, "pad": pad}
    return {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": 2 if not parent else 1,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end), "status": {"code": 0},
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                           for k, v in attributes.items() if v]}


@pytest.mark.e2e
@pytest.mark.parametrize("worker_count", ["1", "2"], ids=["run-on-the-loop", "run-on-threads"])
def test_a_user_span_nests_in_run_and_the_trace_keeps_the_request_id_without_secrets(tmp_path, worker_count):
    """With WORKER_COUNT 2, run() is called on a pool thread: the request's context goes with it."""
    name = f"traces-{secrets.token_hex(3)}"
    key, api_key = f"sk-{secrets.token_hex(16)}", f"ak-{secrets.token_hex(16)}"
    connections = tmp_path / "connections.yaml"
    connections.write_text(f"name: my_conn\ntype: azure_open_ai\napi_key: {api_key}\napi_base: https://x\n")
    folder = write_deployment(tmp_path / "d", DEPLOYMENT.format(name=name, key=key) +
                              f"  CONNECTIONS_FILE: {connections}\n  WORKER_COUNT: \"{worker_count}\"\n", score=SCORE)
    claim = registry.claim(name)
    engine = Engine(spec.load(folder), claim.folder / "staging",
                    Launch(port=0, connections=(connections,), traces=True))
    engine.subscribe(Recorder(engine, claim))
    request_id = f"req-{secrets.token_hex(6)}"

    def json_traces() -> list[dict] | None:
        found = json.loads(devtui("traces", "-n", name, "-o", "json").stdout)
        return found if len(found) == 2 else None  # both requests' (they may come in two batches)

    async def scenario():
        try:
            assert await engine.start() == SUCCEEDED
            follower = subprocess.Popen([*devtui_command(), "traces", "-n", name, "-f", "-o", "json"],
                                        stdout=subprocess.PIPE, text=True)
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(engine.scoring_uri, content='{"a": 1}', headers={"x-request-id": request_id})
                assert answer.status_code == 200, answer.text
                await client.post(engine.scoring_uri, content="{}")  # a second request, newer
            found = await async_wait_for(json_traces, timeout=30, message="both requests' traces")
            return found, devtui("traces", "-n", name).stdout, follower
        finally:
            await engine.stop()
            claim.release(remove=False)

    found, tree, follower = asyncio.run(asyncio.wait_for(scenario(), 120))
    followed = [json.loads(line) for line in follower.communicate(timeout=30)[0].splitlines()]  # ends with the endpoint
    assert [t["request_id"] for t in followed][:1] == [request_id] and len(followed) == 2
    assert len(found) == 2 and found[1]["request_id"] == request_id  # newest first
    trace = found[1]
    assert trace["status_code"] == 200 and trace["duration_ms"] > 0
    spans = {s["name"]: s for s in trace["spans"]}
    assert set(spans) == {"POST /score", "run", "featurize"}
    root = spans["POST /score"]
    assert root["parent_span_id"] is None and root["kind"] == "server"
    assert root["attributes"]["http.request.header.x-request-id"] == request_id
    assert root["attributes"]["http.response.status_code"] == 200
    assert spans["run"]["parent_span_id"] == root["span_id"]
    assert spans["featurize"]["parent_span_id"] == spans["run"]["span_id"]
    assert spans["featurize"]["attributes"] == {"service.key": MASK, "connection.key": MASK}

    lines = tree.splitlines()
    heading = next(i for i, line in enumerate(lines) if request_id in line)
    assert " 200 " in lines[heading] and lines[heading].endswith(" ms")
    assert lines[heading + 1].startswith("  POST /score  ") and lines[heading + 2].startswith("    run  ")
    assert lines[heading + 3].startswith("      featurize  ")  # under run, under the request

    stored = traces.path(claim.folder)
    assert request_id in stored.read_text()
    for path in claim.folder.rglob("*"):
        if path.is_file() and path.name != "lock":
            text = path.read_text(errors="replace")
            assert key not in text and api_key not in text, path


def test_the_tree_puts_each_span_under_its_parent_newest_request_first(tmp_path):
    file = tmp_path / "traces.jsonl"
    out = traces.TraceFile(file)
    # The children of a request may come in a batch before their root's.
    out.write(_batch(_span("run", "b", "a", 1_000_000, 3_000_000), _span("featurize", "c", "b", 1_500_000, 2_000_000)))
    out.write(_batch(_span("POST /score", "a", "", 0, 4_000_000, request_id="r-1", status=200)))
    out.write(_batch(_span("POST /score", "x", "", 9_000_000, 10_500_000, trace_id="t2",
                           request_id="r-2", status=500)))
    out.close()
    first, second = traces.read(file)
    assert (first.request_id, second.request_id) == ("r-2", "r-1")
    assert traces.render_tree(second)[1:] == ["  POST /score  4.000 ms", "    run  2.000 ms",
                                              "      featurize  0.500 ms"]
    assert traces.render_tree(second)[0].endswith("  r-1  200  4.000 ms")
    assert [s["name"] for s in second.to_json()["spans"]] == ["POST /score", "run", "featurize"]
    assert traces.read(file, last=1) == [first]


def test_the_trace_file_rotates_and_stays_under_its_limit(tmp_path):
    file = tmp_path / "traces.jsonl"
    out = traces.TraceFile(file, max_bytes=20_000)
    for n in range(100):
        out.write(_batch(_span("POST /score", f"s{n}", "", n, n + 1, trace_id=f"t{n}", pad="x" * 200)))
    out.close()
    older = file.with_name("traces.jsonl.1")
    assert older.exists()
    assert file.stat().st_size + older.stat().st_size <= 20_000
    assert file.stat().st_size <= 10_000 and older.stat().st_size <= 10_000
    kept = traces.read(file)
    assert kept[0].trace_id == "t99" and 10 < len(kept) < 100  # the oldest went with the rotation


def test_traces_of_an_unknown_endpoint_is_exit_2():
    result = devtui("traces", "-n", "no-such-endpoint", check=2)
    assert result.stderr.startswith("error: ") and "no-such-endpoint" in result.stderr


def test_a_workers_span_rows_become_otlp_event_lines_under_the_limit():
    """The events pipe reads a line of at most 64 KiB: a batch too long is cut in lines that fit,
    and a span too big on its own is dropped rather than sent."""
    from inference_server import protocol, tracing

    def row(n: int, size: int, **more) -> list:
        return [f"{n:032x}", f"{n:016x}", "", "run", 1, n, n + 1_000_000, {"input": "x" * size, **more}, 2,
                "ValueError: no", [["exception", n, {"exception.type": "ValueError"}]]]

    # A value is cut at ATTRIBUTE_LIMIT; a span with many long values is too big all the same.
    huge = {f"more{i}": "y" * 4000 for i in range(20)}
    rows = [row(n, 3000) for n in range(1, 40)] + [row(50, 200_000), row(99, 10, **huge)]
    lines = list(tracing.spans_events(4, rows, {"service.name": "score.py"}, protocol.encode))
    assert len(lines) > 1 and all(len(line) <= protocol.SPANS_LINE_LIMIT for line in lines)
    spans = [span for line in lines for span in json.loads(protocol.decode(line).otlp)["resourceSpans"][0]["scopeSpans"][0]["spans"]]
    assert len(spans) == 40  # the one with 80 KB of attributes is dropped
    assert spans[-1]["attributes"][0]["value"]["stringValue"] == "x" * tracing.ATTRIBUTE_LIMIT + "...(cut)"
    assert spans[0]["status"] == {"code": 2, "message": "ValueError: no"}
    assert spans[0]["events"][0]["name"] == "exception" and spans[0]["startTimeUnixNano"] == "1"
    assert spans[0]["attributes"] == [{"key": "input", "value": {"stringValue": "x" * 3000}}]
    trace = traces.TraceReader().feed(protocol.decode(lines[0]).otlp)[0]
    assert traces.render_tree(trace)[1].endswith("ERROR")


def test_no_traces_unless_asked(tmp_path, monkeypatch):
    """Traces cost the request path (the README has the price): off unless `--traces`, which the
    launch hands to the server (and to up --detach's child), where they go on with the events."""
    from inference_server.options import options_from, parse

    assert "--traces" not in Launch().server_argv("127.0.0.1", 1) and "--traces" not in Launch().to_argv()
    traced = Launch(traces=True)
    assert "--traces" in traced.server_argv("127.0.0.1", 1) and "--traces" in traced.to_argv()
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    base = ["--entry_script", str(script), "--events-stdout"]
    assert not options_from(parse(base)).traces and options_from(parse([*base, "--traces"])).traces
    assert not options_from(parse(["--entry_script", str(script), "--traces"])).traces  # no events: no one to tell


def test_span_rows_are_written_as_otlp_json_whatever_their_values():
    """The supervisor writes OTLP JSON as text (not dicts for json.dumps): every kind of value an
    attribute holds comes out as OTLP's AnyValue, escaped, and the whole parses."""
    from enum import IntEnum

    from inference_server import tracing

    class Level(IntEnum):
        HIGH = 3

    values = {"text": 'quote " newline \n é', "int": 5, "bool": True, "false": False, "float": 1.5,
              "nan": float("nan"), "enum": Level.HIGH, "list": [1, "a", [2.5, False]], "other": None,
              "long": "y" * (tracing.ATTRIBUTE_LIMIT + 1)}
    row = ["a" * 32, "b" * 16, "", 'POST /"score"', 2, 10, 20, values, 2, 'KeyError: "q"',
           [["exception", 15, {"exception.type": "KeyError"}]]]
    batch = json.loads(tracing.otlp_batch([tracing.otlp_span(row)], {"service.name": "score.py", "devtui.revision": 3}))
    resource = batch["resourceSpans"][0]
    assert resource["resource"]["attributes"] == [{"key": "service.name", "value": {"stringValue": "score.py"}},
                                                  {"key": "devtui.revision", "value": {"intValue": "3"}}]
    span = resource["scopeSpans"][0]["spans"][0]
    got = {a["key"]: a["value"] for a in span["attributes"]}
    assert got["text"] == {"stringValue": 'quote " newline \n é'} and got["int"] == {"intValue": "5"}
    assert got["bool"] == {"boolValue": True} and got["false"] == {"boolValue": False}
    assert got["float"] == {"doubleValue": 1.5} and got["nan"]["doubleValue"] != got["nan"]["doubleValue"]
    assert got["enum"] == {"intValue": "3"} and got["other"] == {"stringValue": "None"}
    assert got["list"] == {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "a"}, {"arrayValue": {
        "values": [{"doubleValue": 2.5}, {"boolValue": False}]}}]}}
    assert got["long"] == {"stringValue": "y" * tracing.ATTRIBUTE_LIMIT + "...(cut)"}
    assert {k: span[k] for k in ("name", "kind", "startTimeUnixNano", "endTimeUnixNano", "parentSpanId", "status")} == {
        "name": 'POST /"score"', "kind": 2, "startTimeUnixNano": "10", "endTimeUnixNano": "20", "parentSpanId": "",
        "status": {"code": 2, "message": 'KeyError: "q"'}}
    assert span["events"] == [{"name": "exception", "timeUnixNano": "15",
                               "attributes": [{"key": "exception.type", "value": {"stringValue": "KeyError"}}]}]


def _request(n: int, split: bool = False) -> list[str]:
    """Request ``n`` as the server sends it: run then the request's span, in one batch or (``split``)
    run in the batch before; each 10 ms long, 100 ms after the previous."""
    start, trace_id = n * 100_000_000, f"t{n:03}"
    run = _span("run", f"r{n}", f"a{n}", start + 1_000_000, start + 9_000_000, trace_id=trace_id, pad="x" * 300)
    root = _span("POST /score", f"a{n}", "", start, start + 10_000_000, trace_id=trace_id, request_id=f"req-{n}",
                 status=200)
    return [_batch(run), _batch(root)] if split else [_batch(run, root)]


def test_the_newest_traces_are_read_from_the_end_across_the_rotation_skipping_a_bad_line(tmp_path):
    """The app lists the newest traces kept (at most its capacity) without reading the whole
    file: from the end of the current file back into the older one, as far as they need."""
    file = tmp_path / "traces.jsonl"
    out = traces.TraceFile(file, max_bytes=80_000)  # about 40 requests a file
    for n in range(60):
        for line in _request(n, split=n % 3 == 0):
            out.write(line)
        if n == 57:
            out.write('{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "cut sh')  # bad lines
            out.write('{"resourceSpans": [1, {"scopeSpans": "x"}, {"scopeSpans": [{"spans": [[]]}]}]}')
    out.close()
    older = file.with_name("traces.jsonl.1")
    assert older.exists() and file.read_text().count("POST /score") < 30  # the newest 30 span both files
    with open(file, "a") as cut:
        cut.write('{"resourceSpans": [')  # a batch being written: no newline yet

    kept = traces.EarlierTraces(file)
    with open(file, "a") as later:  # appended once opened: not earlier
        later.write(_request(99)[0] + "\n")
    lines, ids = kept.batches(30)
    reader = traces.TraceReader()
    found = sorted((t for line in lines for t in reader.feed(line) if t.trace_id in ids),
                   key=lambda t: t.root.start_ns, reverse=True)[:30]
    assert [t.request_id for t in found] == [f"req-{n}" for n in range(59, 29, -1)]
    assert all(len(t.spans) == 2 for t in found)  # a split request's run came from the batch before
    assert len(lines) <= 45  # not the whole file: 80 batches
    assert traces.EarlierTraces(file).batches(0) == ([], set())
    assert traces.EarlierTraces(tmp_path / "none.jsonl").batches(5) == ([], set())
