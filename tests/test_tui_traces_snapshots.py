"""Snapshots of the Traces tab (issue 23) at 100x30 and 160x45: the requests newest first, a
failed one opened on the span that raised; a flow's request with its tokens, an LLM node's inputs
and output beside the waterfall; an Invoke request held at a breakpoint, in flight; and the tab
with traces off. No server runs: the test posts the
engine's Traces events with fixed spans (tests/test_tui_traces.py), so every run draws the same
screen (see tests/test_tui_snapshots.py; update with --snapshot-update and look at the SVGs)."""

from __future__ import annotations

import pytest
from textual.widgets import TabbedContent

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import DebuggerChanged, DebuggerState
from devtui.tui.app import EngineEvent
from devtui.tui.exchange import Request
from devtui.tui.tracing import RequestSent
from devtui.tui.widgets import Waterfall
from devtui.tui.widgets._span_details import SpanDetails
from helpers import SAMPLES, QuietApp
from test_tui_snapshots import (FOLDER, SIZES, SUCCEEDED, app, frozen_clock, lasting_toasts, mirror,  # noqa: F401
                                ready, settle)
from test_tui_traces import failing, flow, post, scoring


@pytest.fixture
def traced_app(tmp_path) -> QuietApp:
    mirror(SAMPLES / "sklearn-regression", FOLDER)
    engine = Engine(spec.load(FOLDER), tmp_path / "work", Launch(port=5001, watch=False, traces=True))
    return lasting_toasts(QuietApp(engine, request_text=(FOLDER / "sample-request.json").read_text(),
                                   log_capacity=500, save_folder=tmp_path))


async def traced(pilot, *batches: str) -> None:
    app = pilot.app
    ready(app)
    await settle(pilot, lambda: app.status.state == SUCCEEDED)
    post(app, *batches)
    await pilot.press("T")
    await settle(pilot, lambda: len(app.traces.book.requests) == len(batches)
                 and len(app.query("#trace-list > ListItem")) == len(batches)
                 and app.query_one("#trace-list").index == 0)


def details_of(app, row: int) -> bool:
    """The span details show the waterfall's ``row``."""
    return app.query_one(SpanDetails).row is app.query_one("#waterfall", Waterfall).rows[row]


@pytest.mark.parametrize("size", SIZES)
def test_a_failed_request_opened(traced_app, snap_compare, size):
    app = traced_app

    async def run_before(pilot):
        await traced(pilot, scoring("t1", "5f0c6d1e-0001"), flow("t2", "5f0c6d1e-0002", 20),
                     failing("t3", "5f0c6d1e-0003", 200))
        await pilot.press("enter")
        waterfall = app.query_one("#waterfall", Waterfall)
        await settle(pilot, lambda: waterfall.option_count == 3 and waterfall.highlighted == 2
                     and app.focused is waterfall and details_of(app, 2))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_a_flows_node_with_its_inputs_and_output(traced_app, snap_compare, size):
    app = traced_app

    async def run_before(pilot):
        await traced(pilot, scoring("t1", "5f0c6d1e-0001"), flow("t2", "5f0c6d1e-0002", 20))
        await pilot.press("enter", "down")  # the newest: the flow's; its node
        waterfall = app.query_one("#waterfall", Waterfall)
        await settle(pilot, lambda: waterfall.option_count == 4 and waterfall.highlighted == 1 and details_of(app, 1))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_a_request_held_at_a_breakpoint(traced_app, snap_compare, size):
    app = traced_app

    async def run_before(pilot):
        app.post_message(RequestSent(Request(body='{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}')))  # as Invoke does
        app.post_message(EngineEvent(DebuggerChanged(DebuggerState.STOPPED, "127.0.0.1", 5678,
                                                     "at score.py:30 in run()")))
        await traced(pilot, scoring("t1", "5f0c6d1e-0001"))
        await settle(pilot, lambda: "held by the debugger" in str(app.query_one("#traces-in-flight").content))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_traces_off(app, snap_compare, size):
    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        await pilot.press("T")
        await settle(pilot, lambda: app.query_one("#tabs", TabbedContent).active == "traces-tab"
                     and app.focused is app.query_one("#traces-off"))

    assert snap_compare(app, terminal_size=size, run_before=run_before)
