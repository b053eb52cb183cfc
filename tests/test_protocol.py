"""The protocol between the scoring server and devtui: every message survives the wire, event lines
are told apart from log lines, and anything else is refused with a message that says why."""

from __future__ import annotations

import json

import pytest

from inference_server import protocol
from inference_server.protocol import (
    EVENT_PREFIX,
    BindFailed,
    Crashed,
    Debugger,
    DebuggerState,
    EventKind,
    Exited,
    Failed,
    HeldRequest,
    Listening,
    Ready,
    Spans,
    Stage,
    Starting,
    Stopped,
    WorkerDebugStop,
    WorkerDraining,
    WorkerFailed,
    WorkerLearned,
    WorkerReady,
    WorkerSpans,
)

OTLP = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "s"}, "spans": [
    {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "parentSpanId": "", "name": "POST /score",
     "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": [], "status": {"code": 0}}]}]}]}

EVENTS = [
    BindFailed(host="127.0.0.1", port=5001, reason="is already in use"),
    Listening(host="127.0.0.1", port=40123, pid=4242),
    Listening(host="127.0.0.1", port=8080, path="/api/score"),
    Debugger(state=DebuggerState.LISTENING, host="127.0.0.1", port=5678),
    Debugger(state=DebuggerState.STOPPED, host="127.0.0.1", port=5678, detail="at score.py:12 in run()"),
    Debugger(state=DebuggerState.STOPPED, host="127.0.0.1", port=5678, detail="at score.py:12 in run()",
             held=(HeldRequest(request_id="curl-1", method="POST", path="/score", started=1.7e9),)),
    Starting(revision=2, pid=4243, first=False),
    Ready(revision=2, pid=4243, duration_ms=23.5, first=False),
    Failed(revision=3, stage=Stage.INIT, traceback="Traceback ...\nZeroDivisionError", duration_ms=41.25,
           serving_revision=2, exit_code=3),
    Failed(revision=1, stage=Stage.START, traceback="worker exited with code -9 before it was ready",
           duration_ms=5.0, serving_revision=None, exit_code=-9),
    Crashed(revision=2, pid=4243, exit_code=-11),
    Stopped(exit_code=0),
    Exited(exit_code=None, expected=True),
    Spans(revision=2, otlp=json.dumps(OTLP)),
]

STATUS = [
    WorkerReady(revision=1, pid=4243, duration_ms=12.0),
    WorkerFailed(revision=1, pid=4243, duration_ms=3.0, stage=Stage.LOAD, traceback="SyntaxError"),
    WorkerLearned(revision=1, pid=4243, duration_ms=14.0, modules=("numpy", "sklearn.linear_model")),
    WorkerDebugStop(revision=1, pid=4243, duration_ms=900.0, where=None),
    WorkerDebugStop(revision=1, pid=4243, duration_ms=900.0, where="score.py:12 in run()",
                    held=(HeldRequest(request_id="curl-1", method="POST", path="/score", started=1.7e9,
                                      trace_id="0af7651916cd43dd8448eb211c80319c"),)),
    WorkerDraining(revision=1, pid=4243, duration_ms=5000.0),
    WorkerSpans(revision=1, pid=4243, duration_ms=6000.0, resource={"service.name": "score.py", "process.pid": 7},
                spans=[["0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "", "run", 1, 1, 2, {"k": [1, 2]}, 2,
                        "ValueError: no", [["exception", 2, {"exception.type": "ValueError"}]]]]),
]


def test_every_event_kind_is_covered():
    assert {event.kind for event in EVENTS} == set(EventKind)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_events_round_trip(event):
    line = protocol.encode(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line) == event
    assert protocol.decode(line.decode()) == event
    assert protocol.from_dict(protocol.to_dict(event)) == event


@pytest.mark.parametrize("message", STATUS, ids=lambda m: m.kind)
def test_worker_status_round_trips(message):
    assert protocol.decode_status(protocol.encode(message)) == message


def test_the_wire_keeps_the_keys_plain_dict_readers_know():
    ready = json.loads(protocol.encode(Ready(revision=2, pid=7, duration_ms=1.5, first=False)))
    assert ready == {"event": "ready", "revision": 2, "pid": 7, "duration_ms": 1.5, "first": False}
    failed = json.loads(protocol.encode(EVENTS[9]))
    assert failed["stage"] == "start" and failed["serving_revision"] is None  # None is said, not left out
    listening = json.loads(protocol.encode(Listening(host="0.0.0.0", port=5001, pid=1)))
    assert listening == {"event": "listening", "host": "0.0.0.0", "port": 5001, "pid": 1}  # defaults left out
    decoded = protocol.from_dict({"event": "listening", "host": "0.0.0.0", "port": 5001})
    assert decoded.path == "/score" and decoded.pid is None


def test_held_requests_travel_as_objects_and_a_wrong_one_is_said_where():
    line = protocol.encode(STATUS[4])
    assert json.loads(line)["held"] == [{"request_id": "curl-1", "method": "POST", "path": "/score",
                                         "started": 1.7e9, "trace_id": "0af7651916cd43dd8448eb211c80319c"}]
    assert "held" not in json.loads(protocol.encode(STATUS[3]))  # none held: left out, as before
    with pytest.raises(ValueError, match="HeldRequest: field 'method' should be str, not 3"):
        protocol.decode_status(line.replace(b'"method": "POST"', b'"method": 3'))
    with pytest.raises(ValueError, match="HeldRequest lacks the field 'path'"):
        protocol.decode_status(line.replace(b'"path": "/score", ', b""))


def test_enums_are_their_wire_strings():
    event = protocol.decode(protocol.encode(EVENTS[4]))
    assert event.state is DebuggerState.STOPPED and event.state == "stopped"


def test_prefixed_lines_in_a_log():
    event = Stopped(exit_code=3)
    line = protocol.encode(event, prefix=True)
    assert line.startswith(EVENT_PREFIX)
    assert protocol.is_event_line(line) and protocol.is_event_line(line.decode())
    assert not protocol.is_event_line(b"2023-11-14 22:13:20,000 I [42] azmlinfsrv - Listening")
    assert not protocol.is_event_line("")
    assert protocol.decode(line) == event
    assert protocol.decode(line.decode()) == event


def test_unknown_keys_are_ignored():
    assert protocol.from_dict({"event": "stopped", "exit_code": 0, "new_in_v2": True}) == Stopped(exit_code=0)


@pytest.mark.parametrize(("line", "says"), [
    (b"", "not a scoring-server event line"),
    (b"Listening on http://127.0.0.1:5001", "not a scoring-server event line"),
    (b"{\"event\": \"ready\"", "not a scoring-server event line"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b"{\"revision\": 1}", "no 'event' key"),
    (b"{\"event\": \"exploded\"}", "'event' is 'exploded'; expected one of"),
    (b"{\"event\": \"stopped\"}", "lacks the field 'exit_code'"),
    (b"{\"event\": \"crashed\", \"revision\": \"2\", \"pid\": 1, \"exit_code\": 1}",
     "field 'revision' should be int, not '2'"),
    (b"{\"event\": \"exited\", \"exit_code\": true, \"expected\": false}", "field 'exit_code' should be int or null"),
    (b"{\"event\": \"debugger\", \"state\": \"asleep\", \"host\": \"h\", \"port\": 1}",
     "field 'state' should be one of 'listening', 'attached', 'stopped', 'failed'"),
    (b"{\"status\": \"ready\", \"revision\": 1, \"pid\": 1, \"duration_ms\": 1.0}", "no 'event' key"),
])
def test_garbage_is_refused_with_a_reason(line, says):
    with pytest.raises(ValueError, match=None) as error:
        protocol.decode(line)
    assert says in str(error.value)


def test_a_long_garbage_line_is_quoted_short():
    with pytest.raises(ValueError) as error:
        protocol.decode(b"x" * 10_000)
    assert len(str(error.value)) < 300


def test_worker_status_is_not_an_event():
    with pytest.raises(ValueError, match="not a worker status"):
        protocol.decode_status(protocol.encode(Stopped(exit_code=0)))
