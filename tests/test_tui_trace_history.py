"""The Traces tab lists the traces kept from before this session (issue 23): the newest of the
endpoint's traces file, read off the app's thread when it starts, below this session's requests,
dimmed under a line that says "earlier"; one opens as a new one does; a request kept and also
listed is listed once; with traces off, nothing is read.

The file is written before the app starts with the real writer (devtui.traces.TraceFile), in
batches as the scoring server sends them; the session's request is answered by the fake runtime,
whose spans follow its answer (tests/fake_runtime.py).
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Label

from devtui import registry, spec, traces
from devtui.tui.trace_book import TraceBook
from devtui.tui.widgets import Waterfall
from devtui.tui.widgets._trace_list import EARLIER, EarlierLine, TraceItem, TraceList
from helpers import SAMPLES, running, until
from test_tui_traces import batch, failing, make_app, scoring, span, title, waterfall_lines  # noqa: F401

pytestmark = pytest.mark.anyio


def keep(*lines: str) -> None:
    """Write ``lines`` (batches) to the traces file of the sample's endpoint, as `devtui up` does."""
    name = spec.load(SAMPLES / "sklearn-regression").endpoint_name
    out = traces.TraceFile(traces.path(registry.folder(name)))
    for line in lines:
        out.write(line)
    out.close()


def split(otlp: str) -> list[str]:
    """A request's batch cut in two, its children in the batch before its own span's, as the server
    may send them (a batch every 100 ms)."""
    spans = json.loads(otlp)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return [batch(*spans[:-1]), batch(spans[-1])]


def rows(app) -> list[str]:
    """The list as shown: each request's line, and the earlier line as "--"."""
    return ["--" if isinstance(item, EarlierLine) else str(item.query_one(Label).content)
            for item in app.query_one("#trace-list", TraceList).children]


# A span of old-3 whose events are not OTLP's: the span is listed, without an exception.
BROKEN = batch(span("t3", "t3-x", "cleanup", 200 + 5, 200 + 6, "t3-a") | {"events": [1, {"attributes": 2}]})


@pytest.fixture
def kept() -> None:
    """Three requests kept by an earlier session, the oldest a failure, one in two batches."""
    keep(failing("t1", "old-1"), *split(scoring("t2", "old-2", 100)),
         "not a batch {", BROKEN, scoring("t3", "old-3", 200))


async def test_the_traces_kept_before_are_listed_below_this_sessions_as_earlier(make_app, kept):
    app = make_app(fake=True)
    async with running(app) as pilot:
        await pilot.press("T")
        await until(pilot, lambda: len(rows(app)) == 4, message="the earlier requests listed")
        listed = rows(app)
        assert listed[0] == "--", listed
        assert ["old-3" in listed[1], "old-2" in listed[2], "old-1" in listed[3]] == [True] * 3, listed
        assert "rev" not in listed[1]  # the revision of an earlier session is not known
        assert listed[1].split()[3] == "4"  # old-3's spans, its broken one among them
        items = app.query_one("#trace-list", TraceList).items
        assert all(item.has_class("earlier") for item in items)
        assert str(app.query_one(EarlierLine).query_one(Label).content) == f"── {EARLIER} ──"
        assert app.query_one("#trace-list", TraceList).index == 1  # the cursor on a request, not the line

        await until(pilot, lambda: app.engine.serving_revision == 1, message="serving")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(rows(app)) == 5, message="this session's request listed")
        listed = rows(app)
        assert "rev 1" in listed[0] and listed[1] == "--", listed  # newest first, above the earlier
        assert not app.query_one("#trace-list", TraceList).items[0].has_class("earlier")
        assert [r.earlier for r in app.traces.book.requests] == [False, True, True, True]

        app.action_focus_traces()  # (T in the Invoke tab, where ctrl+j left us, opens the answer's trace)
        trace_list = app.query_one("#trace-list", TraceList)
        await until(pilot, lambda: app.focused is trace_list, message="the list")
        assert trace_list.index == 2  # the cursor stayed on its row, old-3
        await pilot.press("down", "down", "enter")  # the oldest: it failed, and opens as a new one would
        waterfall = app.query_one("#waterfall", Waterfall)
        await until(pilot, lambda: waterfall.option_count == 3 and app.focused is waterfall, message="its waterfall")
        assert "old-1" in title(app) and "raised in featurize" in title(app)
        assert "✗ featurize" in waterfall_lines(app)[2] and waterfall.highlighted == 2


async def test_with_traces_off_the_kept_traces_are_not_read(make_app, kept):
    app = make_app(traces=False)
    async with running(app) as pilot:
        await pilot.press("T")
        await until(pilot, lambda: app.focused is app.query_one("#traces-off"), message="the message")
        assert app.traces.earlier is None and not app.traces.book.requests


@pytest.mark.unit
def test_a_request_already_listed_is_not_listed_again_and_the_earlier_go_first():
    book = TraceBook(capacity=3)
    book.feed(1, scoring("t3", "new-3", 300))  # arrived while the file was read
    earlier = TraceBook().complete(0, scoring("t3", "new-3", 300), earlier=True) + \
        TraceBook().complete(0, scoring("t2", "old-2", 200), earlier=True) + \
        TraceBook().complete(0, scoring("t1", "old-1", 100), earlier=True)
    added = book.add_earlier(earlier)
    assert [r.request_id for r in added] == ["old-2", "old-1"]
    assert [(r.request_id, r.earlier) for r in book.requests] == [("new-3", False), ("old-2", True), ("old-1", True)]
    book.feed(1, scoring("t4", "new-4", 400))  # full: the oldest earlier one goes
    assert [r.request_id for r in book.requests] == ["new-4", "new-3", "old-2"]
    assert book.add_earlier(TraceBook().complete(0, scoring("t0", "old-0"), earlier=True)) == []  # no room
