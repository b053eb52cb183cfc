"""The app's Traces tab (issue 23, Show): `T` lists the requests traced, newest first, with status,
duration and tokens, updated as their spans arrive; enter opens a request's waterfall and a span
shows its inputs, output and attributes; `T` in the Invoke tab opens the trace of the answer on
screen; a failed request's trace marks the span that raised with its exception; the Invoke tab's
requests show as in flight until answered; with traces off the tab says how to turn them on.

Most tests post the engine's Traces events with fixed spans (helpers.QuietApp: the engine never
starts); those that need an answering endpoint run the engine on the fake runtime, whose spans
follow each answer as the scoring server's do (tests/fake_runtime.py); one runs the real scoring
server (e2e). The module is "fake" in conftest's KINDS; its unit and e2e tests say so themselves.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable

import pytest
from textual.widgets import Label, Static, TabbedContent, TextArea

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import DebuggerChanged, DebuggerState, Traces
from devtui.tui.app import DevtuiApp, EngineEvent
from devtui.tui.exchange import Exchange, Request
from devtui.tui.trace_book import TraceBook
from devtui.tui.widgets import TracesPanel, Waterfall
from devtui.tui.widgets._trace_list import TraceItem, TraceList
from devtui.tui.widgets._traces_panel import in_flight_line
from fake_runtime import FakeRuntime
from inference_server.protocol import HeldRequest
from helpers import QuietApp, running, until

pytestmark = pytest.mark.anyio

MS = 1_000_000  # nanoseconds
REQUEST_ID = "http.request.header.x-request-id"
STATUS_CODE = "http.response.status_code"


# -- fixed spans, as the scoring server sends them (children first, the request's span last) -------

def attributes(values: dict) -> list[dict]:
    def value(v):
        if isinstance(v, bool):
            return {"boolValue": v}
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}

    return [{"key": k, "value": value(v)} for k, v in values.items()]


def span(trace: str, span_id: str, name: str, start_ms: float, end_ms: float, parent: str = "", *,
         error: str = "", **values) -> dict:
    raw = {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": 1 if parent else 2,
           "startTimeUnixNano": str(int(1_700_000_000_000 * MS + start_ms * MS)),
           "endTimeUnixNano": str(int(1_700_000_000_000 * MS + end_ms * MS)),
           "attributes": attributes(values), "status": {"code": 0}}
    if error:
        kind, _, message = error.partition(": ")
        raw["status"] = {"code": 2, "message": error}
        raw["events"] = [{"name": "exception", "timeUnixNano": raw["endTimeUnixNano"],
                          "attributes": attributes({"exception.type": kind, "exception.message": message})}]
    return raw


def batch(*spans: dict) -> str:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": list(spans)}]}]})


def scoring(trace: str, request_id: str, start_ms: float = 0.0) -> str:
    """A score.py request: featurize inside run inside the request's span."""
    return batch(span(trace, f"{trace}-f", "featurize", start_ms + 2, start_ms + 4, f"{trace}-r",
                      inputs=json.dumps({"data": [[1, 2, 3]]}), output=json.dumps([0.5])),
                 span(trace, f"{trace}-r", "run", start_ms + 1, start_ms + 9, f"{trace}-a"),
                 span(trace, f"{trace}-a", "POST /score", start_ms, start_ms + 10,
                      **{REQUEST_ID: request_id, STATUS_CODE: 200}))


def flow(trace: str, request_id: str, start_ms: float = 0.0) -> str:
    """A flow request: two LLM calls reporting their tokens."""
    return batch(span(trace, f"{trace}-l1", "openai.chat", start_ms + 5, start_ms + 40, f"{trace}-n",
                      **{"llm.usage.total_tokens": 120, "llm.usage.prompt_tokens": 100}),
                 span(trace, f"{trace}-l2", "openai.chat", start_ms + 45, start_ms + 90, f"{trace}-n",
                      **{"llm.usage.total_tokens": 80}),
                 span(trace, f"{trace}-n", "chat", start_ms + 2, start_ms + 95, f"{trace}-a", node_name="chat",
                      inputs=json.dumps({"question": "What is devtui?"}), output=json.dumps("A terminal app.")),
                 span(trace, f"{trace}-a", "POST /score", start_ms, start_ms + 100,
                      **{REQUEST_ID: request_id, STATUS_CODE: 200}))


def failing(trace: str, request_id: str, start_ms: float = 0.0) -> str:
    """A request whose user span raised: the exception propagates through run (which records it
    too) to a 500."""
    return batch(span(trace, f"{trace}-f", "featurize", start_ms + 2, start_ms + 3, f"{trace}-r",
                      error="ValueError: could not convert string to float: 'x'"),
                 span(trace, f"{trace}-r", "run", start_ms + 1, start_ms + 4, f"{trace}-a",
                      error="ValueError: could not convert string to float: 'x'"),
                 span(trace, f"{trace}-a", "POST /score", start_ms, start_ms + 5,
                      **{REQUEST_ID: request_id, STATUS_CODE: 500}) | {"status": {"code": 2}})


# -- the book: what the tab says of each request ----------------------------------------------------

@pytest.mark.unit
def test_the_book_sums_tokens_finds_the_span_that_raised_and_keeps_the_newest_first():
    book = TraceBook(capacity=3)
    # A request's spans may come in two batches: it is listed once its own span arrives.
    children = json.loads(scoring("t1", "r-1"))["resourceSpans"][0]["scopeSpans"][0]["spans"][:2]
    assert book.feed(1, batch(*children)) == []
    done = book.feed(1, batch(span("t1", "t1-a", "POST /score", 0, 10, **{REQUEST_ID: "r-1", STATUS_CODE: 200})))
    assert [len(r.trace.spans) for r in done] == [3]
    book.feed(1, flow("t2", "r-2", 20))
    book.feed(2, failing("t3", "r-3", 200))

    assert [r.request_id for r in book.requests] == ["r-3", "r-2", "r-1"]
    scored, chat, failed = book.find("r-1"), book.find("r-2"), book.find("r-3")
    assert (scored.tokens, chat.tokens) == (None, 200)
    assert (scored.failed, failed.failed, failed.revision) == (False, True, 2)
    assert failed.raised().name == "featurize"  # the deepest of the spans that recorded it
    assert failed.exception() == "ValueError: could not convert string to float: 'x'"
    rows = {row.span.name: row for row in failed.rows()}
    assert rows["featurize"].raised and not rows["run"].raised and rows["run"].error and rows["POST /score"].error

    book.feed(2, scoring("t4", "r-4", 300))
    assert [r.request_id for r in book.requests] == ["r-4", "r-3", "r-2"]  # the oldest went
    assert book.find("r-1") is None and book.find("") is None


@pytest.mark.unit
def test_a_span_bar_is_placed_and_scaled_on_the_request_duration():
    book = TraceBook()
    (request,) = book.feed(1, scoring("t1", "r-1"))
    rows = {row.span.name: row for row in request.rows()}
    assert [(row.depth, row.span.name) for row in request.rows()] == [(0, "POST /score"), (1, "run"), (2, "featurize")]
    assert rows["POST /score"].bar(50) == (0, 50)
    assert rows["run"].bar(50) == (5, 45)  # 1 ms to 9 ms of 10
    assert rows["featurize"].bar(50) == (10, 20)
    assert rows["featurize"].bar(3)[1] - rows["featurize"].bar(3)[0] == 1  # never narrower than a cell


# -- the app ---------------------------------------------------------------------------------------

@pytest.fixture
def make_app(sample, tmp_path) -> Callable[..., DevtuiApp]:
    """The app on a copy of samples/sklearn-regression, traces on unless asked; ``fake``: its
    engine runs the fake runtime, else it never starts (the test posts the events)."""

    def make(fake: bool = False, traces: bool = True) -> DevtuiApp:
        folder = sample("sklearn-regression")
        launch = Launch(port=0, watch=fake, traces=traces)
        engine = (Engine(spec.load(folder), tmp_path / "work", launch, runtimes_from=FakeRuntime) if fake
                  else Engine(spec.load(folder), tmp_path / "work", launch))
        return (DevtuiApp if fake else QuietApp)(engine, request_text=(folder / "sample-request.json").read_text(),
                                                 save_folder=tmp_path)

    return make


def post(app: DevtuiApp, *batches: str, revision: int = 1) -> None:
    for otlp in batches:
        app.post_message(EngineEvent(Traces(revision, otlp)))


def listed(app: DevtuiApp) -> list[str]:
    return [str(item.query_one(Label).content) for item in app.query_one("#trace-list", TraceList).query(TraceItem)]


def waterfall_lines(app: DevtuiApp) -> list[str]:
    waterfall = app.query_one("#waterfall", Waterfall)
    return [str(waterfall.get_option_at_index(n).prompt) for n in range(waterfall.option_count)]


def on_screen(app: DevtuiApp, selector: str) -> str:
    """What the widget ``selector`` shows now, as the terminal would, its lines stripped."""
    region = app.query_one(selector).content_region
    rows = ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]
    return "\n".join(row[region.x:region.right].strip() for row in rows[region.y:region.bottom])


def details(app: DevtuiApp) -> str:
    return on_screen(app, "#span-details")


def title(app: DevtuiApp) -> str:
    return str(app.query_one("#trace-title", Label).content)


async def test_T_lists_the_requests_newest_first_with_status_duration_and_tokens_as_they_arrive(make_app):
    app = make_app()
    async with running(app) as pilot:
        post(app, scoring("t1", "req-1"), flow("t2", "req-2", 20))
        await pilot.press("T")
        assert app.query_one("#tabs", TabbedContent).active == "traces-tab"
        assert app.focused is app.query_one("#trace-list")
        rows = await until(pilot, lambda: len(listed(app)) == 2 and listed(app), message="two requests listed")
        assert rows[0].split()[:6] == ["200", "100.000", "ms", "200", "4", "rev"], rows[0]  # tokens: 120 + 80
        assert "req-2" in rows[0] and "req-1" in rows[1]
        assert rows[1].split()[:5] == ["200", "10.000", "ms", "3", "rev"], rows[1]  # no tokens: blank

        post(app, failing("t3", "req-3", 200), revision=2)  # live: on top, red, with its exception
        await until(pilot, lambda: len(listed(app)) == 3, message="the new request listed")
        newest = app.query_one("#trace-list", TraceList).query(TraceItem).first()
        assert listed(app)[0].startswith("500") and "rev 2" in listed(app)[0]
        assert "ValueError: could not convert string to float: 'x'" in listed(app)[0]
        assert newest.has_class("failed")


async def test_enter_opens_the_waterfall_and_a_span_shows_its_inputs_output_and_attributes(make_app):
    app = make_app()
    async with running(app, size=(120, 40)) as pilot:
        post(app, scoring("t1", "req-1"), flow("t2", "req-2", 20))
        await pilot.press("T")
        await until(pilot, lambda: len(listed(app)) == 2, message="two requests listed")
        await pilot.press("down", "enter")  # the older: the score.py request
        waterfall = app.query_one("#waterfall", Waterfall)
        await until(pilot, lambda: waterfall.option_count == 3 and app.focused is waterfall, message="its waterfall")
        assert "req-1" in title(app)
        lines = waterfall_lines(app)
        assert [line.split("█")[0].rstrip("· ") for line in lines] == ["POST /score", "  run", "    featurize"], lines
        assert [line.split()[-2] for line in lines] == ["10.000", "8.000", "2.000"]
        bars = [line.count("█") for line in lines]
        # Scaled on the request's 10 ms, to the cell.
        assert bars[0] > bars[1] > bars[2] > 0 and abs(bars[1] - 0.8 * bars[0]) <= 1.5 >= abs(bars[2] - 0.2 * bars[0]), bars
        assert lines[2].index("█") > lines[1].index("█") > lines[0].index("█")  # placed where each started

        await pilot.press("down", "down")
        await until(pilot, lambda: details(app).startswith("featurize"), message="featurize's details")
        shown = details(app)
        assert "Inputs" in shown and "Output" in shown and "0.5" in shown
        await pilot.press("up", "up")
        await until(pilot, lambda: details(app).startswith("POST /score"), message="the request's details")
        assert f"{REQUEST_ID} req-1" in details(app).replace("\n", "")  # folded at the panel's width


async def test_a_failed_request_opens_on_the_span_that_raised_with_its_exception(make_app):
    app = make_app()
    async with running(app, size=(120, 40)) as pilot:
        post(app, scoring("t1", "req-1"), failing("t2", "req-2", 20))
        await pilot.press("T")
        await until(pilot, lambda: len(listed(app)) == 2, message="two requests listed")
        await pilot.press("enter")
        waterfall = app.query_one("#waterfall", Waterfall)
        await until(pilot, lambda: waterfall.option_count == 3, message="its waterfall")
        lines = waterfall_lines(app)
        assert "✗ featurize" in lines[2] and "✗" not in lines[1]  # run only passed it on
        assert waterfall.highlighted == 2
        assert "ValueError: could not convert string to float: 'x'" in title(app)
        assert "raised in featurize" in title(app)
        await until(pilot, lambda: "✗ raised ValueError" in details(app), message="the exception in its details")


async def test_T_in_the_invoke_tab_opens_the_trace_of_the_answer_on_screen(make_app):
    """Through the whole path: the fake server answers and sends the request's spans, the engine
    passes them on, the answer's x-request-id finds them."""
    app = make_app(fake=True)
    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, message="serving")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 1, message="the first answer")
        app.invoke_panel.set_request('{"fail": true}')
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 2, message="the second answer")
        failed = app.invoke_panel.history[1]
        assert failed.status == 500 and failed.request_id
        # The app sent the id (a server may answer without one); the user's own wins.
        runtime = FakeRuntime.instances[-1]
        assert runtime.seen[-1]["headers"]["x-request-id"] == failed.sent_id == failed.request_id
        app.query_one("#request-headers", TextArea).load_text("X-Request-Id: mine-1")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 3, message="the third answer")
        assert runtime.seen[-1]["headers"]["x-request-id"] == "mine-1" == app.invoke_panel.history[2].request_id
        await until(pilot, lambda: len(app.traces.book.requests) == 3, message="the three traces")

        # The older answer, reopened from the history, then T on the answer's body.
        app.invoke_panel.open(app.invoke_panel.history[0])
        app.query_one("#response-body").focus()
        await pilot.press("T")
        await until(pilot, lambda: app.traces.opened is not None, message="a trace opened")
        assert app.query_one("#tabs", TabbedContent).active == "traces-tab"
        assert app.traces.opened.request_id == app.invoke_panel.history[0].request_id
        assert app.focused is app.query_one("#waterfall")

        await pilot.press("i")
        app.invoke_panel.open(failed)
        app.query_one("#response-body").focus()
        await pilot.press("T")
        await until(pilot, lambda: app.traces.opened.request_id == failed.request_id, message="the failed one")
        assert "ValueError: fake failure in run()" in title(app)
        assert "✗ run" in waterfall_lines(app)[1]


async def test_T_before_the_trace_arrives_opens_it_when_it_does(make_app):
    app = make_app()
    async with running(app) as pilot:
        app.query_one("#tabs", TabbedContent).active = "invoke-tab"
        app.invoke_panel.record(Exchange(Request(body="{}"), 200, 1.0, "[1]", (("x-request-id", "late-1"),), 0.0))
        app.query_one("#response-body").focus()
        await until(pilot, lambda: app.focused is app.query_one("#response-body"), message="the answer")
        await pilot.press("T")
        await until(pilot, lambda: "Waiting for the trace of request late-1" in title(app), message="waiting")
        post(app, scoring("t1", "other"), scoring("t2", "late-1", 20))
        await until(pilot, lambda: app.traces.opened is not None, message="the trace opened on arrival")
        assert app.traces.opened.request_id == "late-1"


async def test_a_request_held_by_the_debugger_shows_in_flight_until_its_answer(make_app):
    app = make_app(fake=True)
    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, message="serving")
        runtime = FakeRuntime.instances[-1]
        runtime.hold = True  # as a breakpoint in run() holds it
        await pilot.press("ctrl+j", "T")
        in_flight = app.query_one("#traces-in-flight", Label)
        await until(pilot, lambda: in_flight.display and "1 request" in str(in_flight.content), message="in flight")
        app.post_message(EngineEvent(DebuggerChanged(DebuggerState.STOPPED, "127.0.0.1", 5678,
                                                     "at score.py:30 in run()")))
        await until(pilot, lambda: "held by the debugger at score.py:30 in run()" in str(in_flight.content),
                    message="where the debugger holds it")
        runtime.release()  # the debugger lets it go on: its answer comes
        await until(pilot, lambda: app.invoke_panel.history and app.invoke_panel.history[-1].status == 200,
                    message="the answer")
        await until(pilot, lambda: not in_flight.display, message="no longer in flight")


HELD_AT = "at score.py:12 in run()"


def stopped(*held: HeldRequest) -> EngineEvent:
    return EngineEvent(DebuggerChanged(DebuggerState.STOPPED, "127.0.0.1", 5678, HELD_AT, held))


def held(request_id: str, trace_id: str = "") -> HeldRequest:
    return HeldRequest(request_id=request_id, method="POST", path="/score", started=1.7e9, trace_id=trace_id)


@pytest.mark.unit
def test_the_in_flight_line_names_other_clients_held_requests_and_counts_invokes_once():
    invoked = ((object(), 'POST {"data": 1}', "inv-1"),)
    assert in_flight_line((), (), "") == in_flight_line((), (), HELD_AT) == ""
    assert in_flight_line((), (held("curl-1", "5f3a" * 8),), HELD_AT) == (
        f"In flight: 1 request, held by the debugger {HELD_AT}; spans come when a request ends. "
        "POST /score (x-request-id curl-1, trace 5f3a5f3a...)")
    # Invoke's own request, which the server reports held too, counts once, as Invoke's.
    assert in_flight_line(invoked, (held("inv-1"),), HELD_AT) == (
        f'In flight: 1 request sent from Invoke, held by the debugger {HELD_AT}; spans come when a request '
        'ends. POST {"data": 1}')
    assert in_flight_line(invoked, (held("inv-1"), held("curl-1")), HELD_AT) == (
        f'In flight: 2 requests (1 sent from Invoke), held by the debugger {HELD_AT}; spans come when a request '
        'ends. POST {"data": 1}; POST /score (x-request-id curl-1)')


async def test_a_request_of_another_client_held_by_the_debugger_shows_in_flight_until_let_go(make_app):
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("T")
        in_flight = app.query_one("#traces-in-flight", Label)
        assert not in_flight.display
        app.post_message(stopped(held("curl-1", "ab" * 16)))
        await until(pilot, lambda: in_flight.display, message="in flight")
        assert str(in_flight.content).startswith(f"In flight: 1 request, held by the debugger {HELD_AT}")
        assert "POST /score (x-request-id curl-1, trace abababab...)" in str(in_flight.content)
        app.post_message(EngineEvent(DebuggerChanged(DebuggerState.ATTACHED, "127.0.0.1", 5678)))
        await until(pilot, lambda: not in_flight.display, message="let go")


async def test_an_invoke_request_the_debugger_holds_is_shown_once_by_its_request_id(make_app):
    app = make_app(fake=True)
    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, message="serving")
        FakeRuntime.instances[-1].hold = True  # as a breakpoint in run() holds it
        app.invoke_panel.timeout_s = 2
        await pilot.press("ctrl+j", "T")
        await until(pilot, lambda: app.traces.in_flight, message="sent")
        (_, _, sent_id), = app.traces.in_flight
        assert re.fullmatch(r"[0-9a-f-]{36}", sent_id)  # the UUID Invoke sends as its x-request-id
        app.post_message(stopped(held(sent_id), held("curl-1")))
        in_flight = app.query_one("#traces-in-flight", Label)
        await until(pilot, lambda: "2 requests (1 sent from Invoke)" in str(in_flight.content), message="held")
        assert sent_id not in str(in_flight.content) and "x-request-id curl-1" in str(in_flight.content)
        await until(pilot, lambda: app.invoke_panel.history, timeout=15, message="given up")
        # Invoke gave up on it, but the worker still holds it: now it is shown as the server names it.
        await until(pilot, lambda: f"x-request-id {sent_id}" in str(in_flight.content), message="still held")
        assert str(in_flight.content).startswith("In flight: 2 requests, held")


async def test_with_traces_off_the_tab_says_how_to_turn_them_on(make_app):
    app = make_app(traces=False)
    async with running(app) as pilot:
        post(app, scoring("t1", "req-1"))
        await pilot.press("T")
        off = app.query_one("#traces-off")
        await until(pilot, lambda: app.focused is off, message="the message")
        assert "--traces" in str(off.query_one(Static).content)
        assert not app.query("#trace-list") and isinstance(app.traces, TracesPanel)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Focus traces" in titles and "Open the newest trace" not in titles


async def test_T_is_in_the_footer_the_help_and_the_palette_and_n_opens_the_newest(make_app):
    app = make_app()
    async with running(app, size=(160, 40)) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Focus traces", "Show the answer's trace", "Open the newest trace"} <= set(titles)
        await until(pilot, lambda: "T Traces" in on_screen(app, "Footer"), message="T in the footer")
        post(app, scoring("t1", "req-1"), scoring("t2", "req-2", 20))
        await pilot.press("T")
        await until(pilot, lambda: len(listed(app)) == 2, message="two requests listed")
        await until(pilot, lambda: "Open n Newest" in on_screen(app, "Footer"), message="the list's keys in the footer")
        await pilot.press("down", "n")
        await until(pilot, lambda: app.traces.opened is not None, message="the newest opened")
        assert app.traces.opened.request_id == "req-2"


@pytest.mark.e2e
async def test_with_the_real_server_T_on_an_answer_opens_its_run_span(sample, tmp_path):
    """The scoring server's own spans, through the engine, found by the answer's x-request-id; a
    run() that raised is the span marked, with its exception."""
    folder = sample("sklearn-regression")
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0, watch=False, traces=True)),
                    request_text=(folder / "sample-request.json").read_text(), save_folder=tmp_path)
    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, timeout=60, message="serving")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: app.invoke_panel.history, timeout=30, message="the answer")
        answer = app.invoke_panel.history[0]
        assert answer.status == 200 and answer.request_id
        app.query_one("#response-body").focus()
        await pilot.press("T")
        await until(pilot, lambda: app.traces.opened is not None, timeout=15, message="its trace")
        assert app.traces.opened.request_id == answer.request_id
        assert [line.split()[0] for line in waterfall_lines(app)] == ["POST", "run"]

        await pilot.press("i")
        app.invoke_panel.set_request('{"data": "x"}')  # run() raises
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 2, timeout=30, message="the failed answer")
        assert app.invoke_panel.history[1].status == 500
        app.query_one("#response-body").focus()
        await pilot.press("T")
        await until(pilot, lambda: app.traces.opened.request_id == app.invoke_panel.history[1].request_id,
                    timeout=15, message="the failed request's trace")
        assert "✗ run" in waterfall_lines(app)[1]
        assert "ValueError" in title(app) and "raised in run" in title(app)


@pytest.mark.e2e
@pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None, reason="promptflow-core is not installed")
async def test_a_real_flows_nodes_in_the_waterfall_with_their_inputs_and_output(sample, tmp_path):
    """prompt flow's own spans (the flow, a span per node) under the request's, from the flow worker."""
    folder = sample("flow-basic")
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0, watch=False, traces=True)),
                    save_folder=tmp_path)
    async with running(app, size=(160, 45)) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, timeout=120, message="serving")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: app.invoke_panel.history, timeout=60, message="the answer")
        assert app.invoke_panel.history[0].status == 200, app.invoke_panel.history[0].answer
        app.query_one("#response-body").focus()
        await pilot.press("T")
        # prompt flow's app answers without an x-request-id: the trace is found by the one sent.
        assert app.invoke_panel.history[0].header("x-request-id") is None
        await until(pilot, lambda: app.traces.opened is not None, timeout=15, message="its trace")
        names = [row.span.name for row in app.query_one("#waterfall", Waterfall).rows]
        assert names[0] == "POST /score" and "flow" in names, names
        nodes = [n for n, row in enumerate(app.query_one("#waterfall", Waterfall).rows)
                 if row.span.attributes.get("node_name")]
        assert nodes, names
        app.query_one("#waterfall", Waterfall).highlighted = nodes[0]
        await until(pilot, lambda: "Inputs" in details(app) and "Output" in details(app), message="a node's details")
