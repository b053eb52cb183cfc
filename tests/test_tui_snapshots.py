"""Snapshots of the main screen in each state, at a fixed size, with pytest-textual-snapshot.

No server runs: the app's engine never starts and the test posts the events a real deployment
would, with fixed values (port, times, durations), from a copy of the sample at a fixed path, so
every run draws the same screen. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs under tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.widgets import TabbedContent

from devtui.tui.widgets._log_lines import LogLines
from devtui import spec
from devtui.engine import Engine
from devtui.events import (CREATING, INFERENCE_SERVER, STORAGE_INITIALIZER, SUCCEEDED, LogRecord, Logs,
                           Progress, ReloadFinished, ReloadStarted, ServerStarted, StateChanged)
from devtui.tui.app import DevtuiApp, EngineEvent
from devtui.tui.widgets import Exchange, InvokePanel, _invoke_panel, _status_bar
from helpers import SAMPLES, QuietApp

SIZE = (120, 36)
FOLDER = Path("/tmp/devtui-snapshot-sample")
URI = "http://127.0.0.1:5001/score"
AT = 1_700_000_000.0
SCORE = FOLDER / "onlinescoring" / "score.py"
TRACEBACK = f'''Traceback (most recent call last):
  File "{SCORE}", line 16
    def init(:
             ^
SyntaxError: invalid syntax'''


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """The widgets that print clock times see 12:34:56."""
    clock = SimpleNamespace(strftime=lambda fmt, t=None: "12:34:56", localtime=time.localtime,
                            time=lambda: AT, perf_counter=time.perf_counter)
    monkeypatch.setattr(_status_bar, "time", clock)
    monkeypatch.setattr(_invoke_panel, "time", clock)


def mirror(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source``'s files, never deleting it: a run started together with
    this one may be reading them. A file that differs is replaced whole (copied beside it, then
    renamed over), so a reader sees the old file or the new one, never half of one."""
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        copy = target / path.relative_to(source)
        if copy.is_file() and copy.read_bytes() == path.read_bytes():
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        temporary = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        shutil.copy2(path, temporary)
        os.replace(temporary, copy)


@pytest.fixture
def app(tmp_path) -> QuietApp:
    # The same path every run, so the deployment panel shows the same paths.
    mirror(SAMPLES / "sklearn-regression", FOLDER)
    engine = Engine(spec.load(FOLDER), tmp_path / "work", port=5001, watch=False)
    return QuietApp(engine, request_text=(FOLDER / "sample-request.json").read_text(), log_capacity=500,
                    save_folder=tmp_path)


def post(app: DevtuiApp, *events) -> None:
    for event in events:
        app.post_message(EngineEvent(event))


def logs(source: str, *lines: str) -> Logs:
    return Logs(tuple(LogRecord(source, line, AT) for line in lines))


def starting(app: DevtuiApp) -> None:
    post(app,
         StateChanged(CREATING, "deployment blue of endpoint my-endpoint"),
         logs(STORAGE_INITIALIZER, f"Model blue-model:1 from {FOLDER}/model"),
         Progress("Staging model", 316, 633))


def ready(app: DevtuiApp) -> None:
    starting(app)
    app.engine.serving_revision = 1
    app.engine.scoring_uri = URI
    post(app,
         Progress("Staging model", 633, 633),
         logs(STORAGE_INITIALIZER, "  sklearn_regression_model.pkl (633 B, linked)",
              "Model ready: 1 files, 633 B in AZUREML_MODEL_DIR=/tmp/work/azureml-models/blue-model/1 (4 ms)"),
         ServerStarted(URI, 5001, pid=4242),
         logs(INFERENCE_SERVER, "2023-11-14 22:13:20,000 I [4242] azmlinfsrv.supervisor - Listening on "
                                "http://127.0.0.1:5001",
              "2023-11-14 22:13:20,400 I [4243] azmlinfsrv - Users's init has completed successfully",
              "2023-11-14 22:13:20,401 I [4242] azmlinfsrv.supervisor - Revision 1 ready in 812.0 ms"),
         ReloadFinished(1, True, 812.0, 1, first=True),
         StateChanged(SUCCEEDED, f"revision 1 is serving at {URI}"))


async def settle(pilot, condition) -> None:
    """Let the app process the posted events until ``condition()`` holds and the log is drawn."""
    app = pilot.app
    lines = app.query_one("#log-lines", LogLines)
    for _ in range(500):
        if condition() and not app.logs.pending and len(lines.lines) == len(app.logs.visible_records()):
            return
        await pilot.pause()
    raise AssertionError(f"the app did not reach the state to draw: {condition}")


def test_starting(app, snap_compare):
    async def run_before(pilot):
        starting(app)
        await settle(pilot, lambda: app.query_one("#progress").display and len(app.logs.buffer.all) == 1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_ready(app, snap_compare):
    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_reload_failed(app, snap_compare):
    async def run_before(pilot):
        ready(app)
        post(app,
             ReloadStarted(2, "code", (str(SCORE),)),
             logs(INFERENCE_SERVER, *("2023-11-14 22:13:30,000 E [4250] azmlinfsrv - " + line
                                      for line in TRACEBACK.splitlines())),
             ReloadFinished(2, False, 35.0, 1, first=False, stage="load", traceback=TRACEBACK))
        await settle(pilot, lambda: app.query_one("#traceback").display)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_invoke_answered(app, snap_compare):
    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        exchange = Exchange(app.invoke_panel.editor.text, 200, 12.3, "[199.85, 74.01]",
                            (("content-type", "application/json"), ("x-ms-run-fn-exec-ms", "1.2")), AT)
        # What ctrl+j leaves on screen: the Invoke tab, the answer, the latency in the status.
        app.query_one("#tabs", TabbedContent).active = "invoke-tab"
        app.invoke_panel.show(exchange)
        app.invoke_panel.post_message(InvokePanel.Answered(exchange))
        await settle(pilot, lambda: len(app.status.latencies) == 1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
