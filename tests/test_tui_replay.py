"""Replay on save in the app (issue 20, item 11): p pins a request, and every save that brings a
new revision sends it again; the Replay tab shows the new answer beside the previous one, each
stamped with its revision and how it came to be, and the diff. A real engine on the process
runtime, a real score.py, real saves."""

from __future__ import annotations

import json
import os

import pytest
from textual.widgets import Static

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.tui.app import DevtuiApp
from helpers import QuietApp, children_of, running, save, until, wait_for

pytestmark = pytest.mark.anyio

EDIT = "    return [round(float(p), digits) for p in predictions]"


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    wait_for(lambda: children_of(os.getpid()) == [], timeout=15, message="every child process to end")


@pytest.fixture
def deployment(sample, tmp_path):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0)),
                    request_text=(folder / "sample-request.json").read_text(), save_folder=tmp_path)
    return app, score


def shown(app: DevtuiApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def replayed(app: DevtuiApp):
    return app.pinning.replay.last


async def serving(pilot, revision: int) -> None:
    await until(pilot, lambda: pilot.app.engine.serving_revision == revision, timeout=60,
                message=f"revision {revision} serving")


async def test_pinned_the_save_shows_the_new_revision_patched_and_the_diff_then_the_exception(deployment):
    app, score = deployment
    async with running(app) as pilot:
        await serving(pilot, 1)
        await pilot.press("i")  # the Invoke tab
        app.query_one("#send").focus()  # not typing: p is not typed into the editor
        await pilot.pause()
        await pilot.press("p")
        await until(pilot, lambda: app.pinning.pinned and app.query("#replay"), message="the request pinned")
        await until(pilot, lambda: app.query_one("#tabs").active == "replay-tab", message="the Replay tab shown")
        await until(pilot, lambda: "baseline" in shown(app, "#replay-diff"), message="the baseline")
        assert "rev 1" in shown(app, "#replay-current")

        save(score, score.read_text().replace(EDIT, "    return {'edited': [round(float(p), digits) for p in "
                                                    "predictions]}"))
        await serving(pilot, 2)
        await until(pilot, lambda: "rev 2" in shown(app, "#replay-current"), message="revision 2's replay")
        current = shown(app, "#replay-current")
        assert "patch" in current, current
        assert "rev 1" in shown(app, "#replay-previous")
        diff = shown(app, "#replay-diff")
        assert '+  "edited": [' in diff, diff
        assert "--- revision 1" in diff and "+++ revision 2" in diff

        save(score, score.read_text().replace("    data = np.array", "    raise ValueError('replayed and broken')\n"
                                                                         "    data = np.array"))
        await serving(pilot, 3)
        await until(pilot, lambda: "ValueError: replayed and broken" in shown(app, "#replay-current"),
                    message="the exception line")
        assert "rev 3" in shown(app, "#replay-current") and "500" in shown(app, "#replay-current")


async def test_a_history_row_pins_its_request_with_its_answer_as_the_previous_one(deployment):
    app, score = deployment
    async with running(app) as pilot:
        await serving(pilot, 1)
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 1, message="an answer")
        history = app.query_one("#history")
        history.focus()
        history.index = 0
        await pilot.press("p")
        await until(pilot, lambda: app.pinning.pinned and app.query("#replay"), message="pinned")
        assert app.pinning.replay.last is not None  # the row's answer: no baseline is sent
        save(score, score.read_text().replace(EDIT, "    return [0.5 for p in predictions]"))
        await serving(pilot, 2)
        await until(pilot, lambda: "rev 2" in shown(app, "#replay-current"), message="revision 2's replay")
        assert "rev 1" in shown(app, "#replay-previous") and "+  0.5" in shown(app, "#replay-diff")

        await pilot.press("p")  # p again unpins
        await until(pilot, lambda: not app.pinning.pinned, message="unpinned")


async def test_unpinned_nothing_is_sent(deployment):
    app, score = deployment
    async with running(app) as pilot:
        await serving(pilot, 1)
        sent = []
        app.pinning.replay._send = lambda *args: sent.append(args)  # noqa: SLF001
        save(score, score.read_text().replace(EDIT, "    return [1.0 for p in predictions]"))
        await serving(pilot, 2)
        await pilot.pause()
        assert sent == [] and replayed(app) is None and not app.query("#replay")
        assert app.pinning.replay._task is None  # noqa: SLF001: no replay ever started


def test_the_last_chat_turn_pins_the_body_it_sent_asked_for_json():
    from devtui.tui.pinning import from_chat

    assert from_chat(None).request is None and "no chat turn yet" in from_chat(None).problem
    body = {"question": "hi", "chat_history": [{"inputs": {"question": "a"}, "outputs": {"answer": "b"}}]}
    request = from_chat(body).request
    assert json.loads(request.body) == body and ("accept", "application/json") in request.headers


async def test_while_the_debugger_holds_a_request_the_view_says_the_replay_waits(tmp_path, sample):
    from devtui.replay import PinnedRequest, ReplayWaiting
    from devtui.tui.pinning import PinWanted, ReplayMessage

    app = QuietApp(Engine(spec.load(sample("sklearn-regression")), tmp_path / "work", Launch(port=0, watch=False)),
                   request_text="{}", save_folder=tmp_path)
    async with app.run_test() as pilot:
        app.post_message(PinWanted(PinnedRequest(body=b"{}"), "the Invoke request"))
        await until(pilot, lambda: app.pinning.pinned and app.query("#replay"), message="pinned")
        app.post_message(ReplayMessage(ReplayWaiting(2, "at score.py:30 in run()")))
        await until(pilot, lambda: "waits" in shown(app, "#replay-state"), message="the replay waiting")
        assert ("the debugger holds a request (at score.py:30 in run()); revision 2's replay is sent once it lets go"
                in shown(app, "#replay-state"))
        await pilot.press("p")  # the app's p unpins (the focus is on the Replay tab)
        await until(pilot, lambda: not app.pinning.pinned, message="unpinned")
        assert "Nothing is pinned" in shown(app, "#replay-state")
