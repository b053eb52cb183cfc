"""Snapshots of the app in each state (starting, serving, failed reload, Failed deploy, debugger
stopped, container build in progress, an answer, YAML problems, the help, a chat flow's Chat tab),
each at 100x30 and at 160x45, with pytest-textual-snapshot; those of issue 20 (quitting, a failure
explained, an older answer) at 80x24 too.

No server runs: the app's engine never starts and the test posts the events a real deployment
would, with fixed values (port, times, durations), from a copy of the sample at a fixed path, so
every run draws the same screen. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs under tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from textual.widgets import TabbedContent

from devtui.tui.widgets import LogLines
from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import (CREATING, DELETING, DEVTUI, FAILED, INFERENCE_SERVER, STORAGE_INITIALIZER, SUCCEEDED,
                           DebuggerChanged, LogRecord, Logs, Placement, Progress, ReloadFinished, ReloadReason, ReloadStarted,
                           ServerStarted, StateChanged)
from devtui.tui import engine_view
from devtui.tui.app import DevtuiApp, EngineEvent
from devtui.tui.exchange import BodyKind, Exchange, Request
from devtui.tui.screens import HelpScreen
from devtui.tui.widgets import ChatPanel, _history_list, _log_view, _status_bar
from fake_runtime import FakeRuntime
from helpers import SAMPLES, QuietApp

SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((160, 45), id="160x45")]
THREE_SIZES = [pytest.param((80, 24), id="80x24"), *SIZES]
FOLDER = Path("/tmp/devtui-snapshot-sample")
FLOW_FOLDER = Path("/tmp/devtui-snapshot-flow-chat")
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
    for module in (_status_bar, _log_view, _history_list, engine_view):
        monkeypatch.setattr(module, "time", clock)


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
    engine = Engine(spec.load(FOLDER), tmp_path / "work", Launch(port=5001, watch=False))
    return lasting_toasts(QuietApp(engine, request_text=(FOLDER / "sample-request.json").read_text(),
                                   log_capacity=500, save_folder=tmp_path))


def lasting_toasts(app: QuietApp) -> QuietApp:
    """A toast stays until the snapshot: on a loaded machine, drawing the scene can take longer
    than a toast's few seconds, and the snapshot would depend on the machine's speed."""
    notify = app.notify
    app.notify = lambda *args, **options: notify(*args, **{**options, "timeout": 600})
    return app


@pytest.fixture
def container_app(tmp_path) -> QuietApp:
    """The same on the container runtime (a fake one: nothing runs)."""
    mirror(SAMPLES / "sklearn-regression", FOLDER)
    engine = Engine(spec.load(FOLDER), tmp_path / "work", Launch(runtime="container", port=5001, watch=False),
                    runtimes_from=FakeRuntime)
    return lasting_toasts(QuietApp(engine, request_text="{}", log_capacity=500, save_folder=tmp_path))


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
    app.engine.revisions.serving_revision = 1
    app.engine.revisions.scoring_uri = URI
    post(app,
         Progress("Staging model", 633, 633),
         logs(STORAGE_INITIALIZER, "  sklearn_regression_model.pkl (633 B, linked)",
              "Model ready: 1 files, 633 B in AZUREML_MODEL_DIR=/tmp/work/azureml-models/blue-model/1 (4 ms)"),
         ServerStarted(URI, 5001, Placement(pid=4242)),
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


def server(*lines: str, level: str = "I", pid: int = 4242) -> Logs:
    return logs(INFERENCE_SERVER, *(f"2023-11-14 22:13:20,000 {level} [{pid}] azmlinfsrv - {line}" for line in lines))


@pytest.mark.parametrize("size", SIZES)
def test_starting(app, snap_compare, size):
    async def run_before(pilot):
        starting(app)
        await settle(pilot, lambda: app.query_one("#progress").display and len(app.logs.buffer.all) == 2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", THREE_SIZES)
def test_serving(app, snap_compare, size):
    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_reload_failed(app, snap_compare, size):
    """The panel leads with the exception and where; the log, still following, shows its end."""

    async def run_before(pilot):
        ready(app)
        post(app,
             ReloadStarted(2, "code", (str(SCORE),)),
             server(*TRACEBACK.splitlines(), level="E", pid=4250),
             server("Revision 2 failed (load); revision 1 keeps serving", level="E"),
             ReloadFinished(2, False, 35.0, 1, first=False, stage="load", traceback=TRACEBACK))
        await settle(pilot, lambda: app.failure.display)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


INIT_TRACEBACK = f'''Traceback (most recent call last):
  File "{SCORE}", line 23, in init
    model = joblib.load(model_path)
  File "/usr/lib/python3/site-packages/joblib/numpy_pickle.py", line 650, in load
    with open(filename, "rb") as f:
FileNotFoundError: [Errno 2] No such file or directory: '/tmp/work/azureml-models/blue-model/1/model/sklearn_model.pkl'
'''.rstrip()


@pytest.mark.parametrize("size", SIZES)
def test_failed_deploy(app, snap_compare, size):
    """The first revision fails in init(): Failed, nothing serves, the model folder's tree in the log."""

    async def run_before(pilot):
        starting(app)
        app.engine.revisions.state = FAILED
        app.engine.revisions.scoring_uri = URI
        post(app,
             Progress("Staging model", 633, 633),
             ServerStarted(URI, 5001, Placement(pid=4242)),
             server("User's init function failed", level="E", pid=4243),
             server(*("Encountered Exception " + INIT_TRACEBACK).splitlines(), level="E", pid=4243),
             server("Model folder tree:", "  1/", "      model/", "          sklearn_regression_model.pkl", level="E",
                    pid=4243),
             server("Revision 1 failed (init); nothing is serving", level="E"),
             ReloadFinished(1, False, 812.0, None, first=True, stage="init", traceback=INIT_TRACEBACK),
             StateChanged(FAILED, "revision 1 failed in init(); save a fix to try again"))
        await settle(pilot, lambda: app.status.state == FAILED and app.failure.display)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_debugger_stopped(app, snap_compare, size):
    async def run_before(pilot):
        ready(app)
        post(app,
             DebuggerChanged("attached", "127.0.0.1", 5678),
             server("Debugger attached from 127.0.0.1"),
             DebuggerChanged("stopped", "127.0.0.1", 5678, "at score.py:30 in run()"))
        await settle(pilot, lambda: app.status.debugger.startswith("stopped"))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_container_build(container_app, snap_compare, size):
    app = container_app

    async def run_before(pilot):
        post(app,
             StateChanged(CREATING, "deployment blue of endpoint my-endpoint"),
             logs(DEVTUI, "Building image devtui-env:3f2a9c1d from environment/conda.yaml"),
             logs(DEVTUI, "  Step 1/9 : FROM python:3.11-slim", "  Step 2/9 : COPY conda.yaml /tmp/",
                  "  Step 3/9 : RUN pip install -r /tmp/requirements.txt", "  Step 4/9 : RUN conda env create"),
             Progress("Building image devtui-env:3f2a9c1d", 4, 9))
        await settle(pilot, lambda: app.query_one("#progress").display and len(app.logs.buffer.all) == 6)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_invoke_answered(app, snap_compare, size):
    """The latest answer with the round trip beside run()'s own time; the history newest first,
    failures coloured."""

    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        body = app.invoke_panel.editor.text
        ids = (("x-request-id", "5f0c6d1e-8d2b-4f53-9a51-0c1e2d3f4a5b"),
               ("x-ms-request-id", "5f0c6d1e-8d2b-4f53-9a51-0c1e2d3f4a5b"), ("x-ms-run-function-failed", "False"),
               ("x-ms-server-version", "azmlinfsrv/1.5.1"))
        exchanges = [
            Exchange(Request(body=body), 503, 0.9, '{"message": "revision 1 is starting (init() is running); '
                     'nothing is serving yet"}', (("content-type", "application/json"),) + ids, AT),
            Exchange(Request(body='{"fail": true}'), 500, 3.1, '{"message": "An unexpected error occurred in '
                     'scoring script. Check the logs for more info."}',
                     (("content-type", "application/json"), ("x-ms-run-fn-exec-ms", "1.9")) + ids, AT),
            Exchange(Request("GET", "greeting=hi", kind=BodyKind.JSON), 200, 1.3,
                     '{"method": "GET", "args": {"greeting": "hi"}}', (("content-type", "application/json"),) + ids,
                     AT),
            Exchange(Request(body=body), 200, 1.4, "[199.85, 74.01]",
                     (("content-type", "application/json"), ("content-length", "15"), ("x-ms-run-fn-exec-ms", "1.0"))
                     + ids, AT),
        ]
        app.query_one("#tabs", TabbedContent).active = "invoke-tab"
        for exchange in exchanges:
            app.invoke_panel.record(exchange)
        # The tab switch hid the log, which had the focus: it moves to the answer (issue 20).
        await settle(pilot, lambda: len(app.status.latencies) == 4 and getattr(app.focused, "id", None)
                     == "response-body")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_yaml_problem(app, snap_compare, size):
    async def run_before(pilot):
        ready(app)
        yaml = FOLDER / "deployment.yml"
        app.engine.spec_error = spec.SpecError([spec.Problem(
            yaml, 23, "request_settings.request_timeout_ms", "expected a whole number of milliseconds, got 'soon'")])
        post(app, logs(DEVTUI, "The changed YAML has problems; it is not applied and the running revision keeps "
                               "serving:", f"  {yaml}:23: request_settings.request_timeout_ms: expected a whole "
                               "number of milliseconds, got 'soon'"))
        await settle(pilot, lambda: app.failure.display)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", THREE_SIZES)
def test_help(app, snap_compare, size):
    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        await pilot.press("question_mark")
        for _ in range(100):
            if isinstance(app.screen, HelpScreen):
                break
            await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.fixture
def chat_app(tmp_path) -> QuietApp:
    """The app on samples/flow-chat (nothing runs: the chat's answers come from a mock transport)."""
    mirror(SAMPLES / "flow-chat", FLOW_FOLDER)
    engine = Engine(spec.load(FLOW_FOLDER), tmp_path / "work", Launch(port=5001, watch=False))
    return QuietApp(engine, log_capacity=500, save_folder=tmp_path)


def chat_answer(request: httpx.Request) -> httpx.Response:
    """What samples/flow-chat answers, as server-sent events one word each; "Still there?" gets the
    503 of a deployment whose reload failed."""
    body = json.loads(request.content)
    question, earlier = body["question"], [turn["inputs"]["question"] for turn in body["chat_history"]]
    if question == "Still there?":
        return httpx.Response(503, json={"message": "revision 2 failed in init(); nothing is serving"})
    text = (f'Question {len(earlier) + 1}: "{question}". Before that you asked "{earlier[-1]}".' if earlier
            else f'Question 1: "{question}". Nothing asked before.')
    words = [word if n == 0 else " " + word for n, word in enumerate(text.split(" "))]
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          content="".join(f"data: {json.dumps({'answer': word})}\n\n" for word in words).encode())


@pytest.mark.parametrize("size", SIZES)
def test_chat(chat_app, snap_compare, size):
    """Two turns, the second answered from the history, and a message that got a 503 (shown in
    the transcript, not kept in the history)."""
    app = chat_app

    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        panel = app.query_one("#chat", ChatPanel)
        panel.transport = httpx.MockTransport(chat_answer)
        await pilot.press("m")
        panel.message.cursor_blink = False
        for message in ("What is devtui?", "And how does it stream?", "Still there?"):
            panel.send(message)
            await settle(pilot, lambda: panel.turns[-1].finished)
        await settle(pilot, lambda: panel.query_one("#chat-transcript").scroll_y
                     == panel.query_one("#chat-transcript").max_scroll_y)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# -- issue 20: quitting says what it waits for; failures explained; answers name their revision ----

IDS = (("x-request-id", "5f0c6d1e-8d2b-4f53-9a51-0c1e2d3f4a5b"), ("content-type", "application/json"))


def revision_1_then_2(app: DevtuiApp) -> None:
    """Revision 1 answered; a save made revision 2, which serves now."""
    app.query_one("#tabs", TabbedContent).active = "invoke-tab"
    app.invoke_panel.record(Exchange(Request(body=app.invoke_panel.editor.text), 200, 1.4, "[199.85, 74.01]",
                                     IDS + (("x-ms-run-fn-exec-ms", "1.0"), ("x-devtui-revision", "1")), AT, AT))
    app.engine.revisions.serving_revision = 2
    post(app, ReloadStarted(2, ReloadReason.CODE, ("score.py",)),
         ReloadFinished(2, True, 9.0, 2, rung="patch", detail="run()"))


@pytest.mark.parametrize("size", THREE_SIZES)
def test_quitting_with_a_request_held(app, snap_compare, size):
    """ctrl+c while the debugger holds a request: what the stop waits for, how long at most, and
    that a second press stops at once."""

    async def run_before(pilot):
        ready(app)
        app.engine.revisions.debugger = DebuggerChanged("stopped", "127.0.0.1", 5678, "at score.py:30 in run()")
        post(app, app.engine.debugger)
        await settle(pilot, lambda: app.status.debugger.startswith("stopped"))
        app.invoke_panel.in_flight = 1  # the request the debugger holds
        app.engine.stop = asyncio.Event().wait  # as long as the request is held
        await pilot.press("ctrl+c")
        post(app, StateChanged(DELETING, "stopping"))
        await settle(pilot, lambda: app.status.state == DELETING)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", THREE_SIZES)
def test_a_failure_explained(app, snap_compare, size):
    """A 500 of revision 2: the user's exception line from the log, the server's reason whole,
    the revision; the history names each row's revision."""

    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        revision_1_then_2(app)
        post(app, server("Encountered Exception: Traceback (most recent call last):", level="E"),
             logs(INFERENCE_SERVER, f'  File "{SCORE}", line 29, in run',
                  "ValueError: could not convert string to float: 'x'"))
        await settle(pilot, lambda: app.status.revision == 2 and "ValueError" in app.logs.buffer.all[-1].text)
        app.invoke_panel.record(Exchange(
            Request(body='{"data": "x"}'), 500, 3.1, '{"message": "An unexpected error occurred in scoring script. '
            'Check the logs for more info."}', IDS + (("x-ms-run-function-failed", "True"),
                                                   ("x-devtui-revision", "2")), AT, AT))
        await settle(pilot, lambda: app.invoke_panel.shown.exception and getattr(app.focused, "id", None) == "response-body")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", THREE_SIZES)
def test_an_older_answer_reopened(app, snap_compare, size):
    """Revision 1's answer on screen once revision 2 serves: marked as older."""

    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        revision_1_then_2(app)
        await settle(pilot, lambda: app.status.revision == 2 and getattr(app.focused, "id", None) == "response-body")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# -- issue 20, items 5 to 10: the header, the keys, the logs --------------------------------------


@pytest.mark.parametrize("size", THREE_SIZES)
def test_reloaded_by_a_worker_swap_in_a_container(container_app, snap_compare, size):
    """The engine named briefly, the state and the serving line whole, how the last reload
    happened; the latencies of a request held 12 s among quick ones, each still drawn."""
    app = container_app
    async def run_before(pilot):
        ready(app)
        app.engine.revisions.serving_revision = 2
        post(app, ServerStarted(URI, 5001, Placement(
            docker_daemon="context default at unix:///var/run/docker.sock (Docker Engine 27.3.1)")),
             ReloadStarted(2, ReloadReason.CODE, ("score.py",)),
             ReloadFinished(2, True, 1751.0, 2, rung="swap", detail="init() changed"),
             StateChanged(SUCCEEDED, f"revision 2 is serving at {URI}"))
        for ms in (12.0, 14.0, 11.0, 12_000.0, 13.0, 40.0):
            app.status.record_latency(ms)
        await settle(pilot, lambda: app.status.revision == 2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", THREE_SIZES)
def test_the_log_filtered(app, snap_compare, size):
    """A filter: the matches highlighted and counted beside the box; the devtui source's
    provisioning lines among the rest."""

    async def run_before(pilot):
        ready(app)
        post(app, server("POST /score 200 1.4 ms", "GET /swagger.json 200 0.3 ms", "POST /score 500 3.1 ms"))
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        app.query_one("#log-filter").value = "score"
        await settle(pilot, lambda: len(app.logs.lines.records) == 3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
