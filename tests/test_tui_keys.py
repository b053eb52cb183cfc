"""The Invoke tab and the log, by keyboard (issue 20, items 5 to 10): one history cursor, a help
that scrolls and lists every key, a header that never overflows, direct keys and a visible focus,
logs that say what they hold, and keys that can be found.

Most tests need only the screen: the app's engine never starts and the test posts the events an
engine emits (helpers.QuietApp); those that need an answering endpoint run the engine on the fake
runtime (tests/fake_runtime.py).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from rich.console import Console
from textual.widgets import ListItem, Static, TabbedContent

from devtui import spec
from devtui.engine import Engine
from devtui.events import SUCCEEDED, ReloadFinished, ServerStarted, StateChanged
from devtui.tui import commands
from devtui.tui.app import DevtuiApp, EngineEvent
from devtui.tui.commands import key_name
from devtui.tui.exchange import Exchange, Request
from devtui.tui.screens import HelpScreen
from devtui.tui.widgets import HistoryList
from fake_runtime import FakeRuntime
from helpers import QuietApp, running, until

pytestmark = [pytest.mark.anyio, pytest.mark.fake]

URI = "http://127.0.0.1:5001/score"


@pytest.fixture
def make_app(sample, tmp_path) -> Callable[..., DevtuiApp]:
    """The app on a copy of samples/sklearn-regression; ``fake``: its engine runs the fake runtime,
    else it never starts (the test posts the events)."""

    def make(fake: bool = False, name: str = "sklearn-regression") -> DevtuiApp:
        folder = sample(name)
        engine = Engine(spec.load(folder), tmp_path / "work", port=0,
                        **({"runtimes_from": FakeRuntime} if fake else {"watch": False}))
        request = folder / "sample-request.json"
        return (DevtuiApp if fake else QuietApp)(
            engine, request_text=request.read_text() if request.is_file() else None, save_folder=tmp_path)

    return make


def post(app: DevtuiApp, *events) -> None:
    for event in events:
        app.post_message(EngineEvent(event))


def serving(app: DevtuiApp) -> None:
    app.engine.serving_revision = 1
    app.engine.scoring_uri = URI
    post(app, ServerStarted(URI, 5001, pid=4242), ReloadFinished(1, True, 812.0, 1, first=True, rung="start"),
         StateChanged(SUCCEEDED, f"revision 1 is serving at {URI}"))


def exchange(status: int = 200, body: str = "[1]") -> Exchange:
    return Exchange(Request(body="{}"), status, 1.0, body, (("x-devtui-revision", "1"),), 0.0)


# -- 6: the history has one cursor ---------------------------------------------------------------


async def test_the_history_has_one_cursor_on_the_newest(make_app):
    app = make_app()
    async with running(app, (120, 40)) as pilot:
        app.query_one("#tabs", TabbedContent).active = "invoke-tab"
        history = app.query_one("#history", HistoryList)
        for n in range(3):
            app.invoke_panel.record(exchange(body=f"[{n}]"))
            await until(pilot, lambda: len(history) == n + 1 and history.index == 0)
            await pilot.pause()
        highlighted = [item for item in history.query(ListItem) if item.highlighted]
        assert highlighted == [history.children[0]], "one row highlighted: the newest"
        history.focus()
        await pilot.press("down")
        await until(pilot, lambda: history.index == 1)
        highlighted = [item for item in history.query(ListItem) if item.highlighted]
        assert highlighted == [history.children[1]]


# -- 7: the help scrolls and lists every key -----------------------------------------------------


def help_text(app: DevtuiApp) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for static in app.screen.query("#help-keys Static"):
        console.print(static.content)
    return console.export_text()


@pytest.mark.parametrize("size", [(160, 45), (100, 30), (80, 24)])
async def test_the_help_scrolls_to_its_last_key(make_app, size):
    app = make_app()
    async with running(app, size) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = app.screen.query_one("#help-keys")
        await until(pilot, lambda: keys.max_scroll_y > 0, message="a help taller than the screen")
        assert app.focused is keys
        await pilot.press("pagedown")
        await until(pilot, lambda: keys.scroll_y > 0, message="pgdn to scroll the help")
        await pilot.press("end")
        await until(pilot, lambda: keys.scroll_y == keys.max_scroll_y)
        last = list(keys.query(Static))[-1]
        assert last.region.bottom <= keys.region.bottom, "the last key is on screen"


async def test_the_help_lists_every_key_textuals_own_included(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
    for binding in commands.BINDINGS + commands.LOG_BINDINGS + commands.INVOKE_BINDINGS + commands.HISTORY_BINDINGS:
        assert key_name(binding) in text
    # Textual's own: the app's and the screen's, and those of the widgets the app uses.
    for key in ("ctrl+q", "ctrl+p", "shift+tab", "ctrl+pageup", "f7", "ctrl+z", "ctrl+shift+k", "ctrl+w"):
        assert re.search(rf"(^|\s|,){re.escape(key)}(,|\s)", text, re.M), key
    assert "Previous tab" in text and "Show menu" in text and "Undo" in text
