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
from rich.cells import cell_len
from rich.console import Console
from textual.widget import Widget
from textual.widgets._footer import FooterKey
from textual.widgets import Button, Input, Label, ListItem, Select, Sparkline, Static, TabbedContent, Tabs

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import (DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER, SUCCEEDED, LogRecord, Placement, ReloadFinished,
                           ServerStarted, StateChanged)
from devtui.logs import LogFiles
from devtui.tui import commands
from devtui.tui.app import DevtuiApp, EngineEvent
from devtui.tui.commands import key_name
from devtui.tui.exchange import BodyKind, Exchange, Request
from devtui.tui.screens import HelpScreen
from devtui.tui.widgets import DeploymentPanel, HistoryList
from devtui.tui.widgets._deployment_panel import LABEL_WIDTH
from devtui.tui.widgets._log_view import level_style
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
        engine = (Engine(spec.load(folder), tmp_path / "work", Launch(port=0), runtimes_from=FakeRuntime) if fake
                  else Engine(spec.load(folder), tmp_path / "work", Launch(port=0, watch=False)))
        request = folder / "sample-request.json"
        return (DevtuiApp if fake else QuietApp)(
            engine, request_text=request.read_text() if request.is_file() else None, save_folder=tmp_path)

    return make


def post(app: DevtuiApp, *events) -> None:
    for event in events:
        app.post_message(EngineEvent(event))


def serving(app: DevtuiApp) -> None:
    app.engine.revisions.serving_revision = 1
    app.engine.revisions.scoring_uri = URI
    post(app, ServerStarted(URI, 5001, Placement(pid=4242)), ReloadFinished(1, True, 812.0, 1, first=True, rung="start"),
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


# -- 8: the header -------------------------------------------------------------------------------

LONG_ENGINE = "context default at unix:///var/run/docker.sock (Docker Engine 27.3.1 on Ubuntu 24.04.1 LTS, 16 CPUs)"


def header_lines(app: DevtuiApp) -> list[str]:
    return str(app.query_one("#status-text", Static).content).splitlines()


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 45)])
async def test_the_header_never_overflows_and_keeps_the_state_and_the_serving_line(make_app, size):
    app = make_app()
    async with running(app, size) as pilot:
        app.status.runtime = "container"
        serving(app)
        post(app, ServerStarted(URI, 5001, Placement(docker_daemon=LONG_ENGINE)))
        post(app, ReloadFinished(2, True, 1751.0, 2, rung="swap", detail="init() changed"))
        app.status.debugger = "listening on 127.0.0.1:5678"
        await until(pilot, lambda: app.status.revision == 2 and "worker swap" in "".join(header_lines(app)))
        await pilot.pause()
        text = app.query_one("#status-text", Static)
        lines = header_lines(app)
        assert all(cell_len(line) <= text.size.width for line in lines), (text.size.width, lines)
        assert len(lines) <= text.size.height, lines
        assert "● Succeeded" in lines[0] and "revision 2" in lines[0]
        assert lines[1].startswith(URI)
        assert "worker swap (init() changed)" in lines[2] or size[0] < 100
        assert "last reload: revision 2" in lines[2]
        if size[0] >= 160:
            assert "[docker: default]" in lines[0] and "debugger: listening" in lines[1]
        assert LONG_ENGINE not in "".join(lines)


async def test_the_header_says_how_the_last_reload_happened_and_the_first_start_is_no_reload(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        serving(app)
        await until(pilot, lambda: app.status.revision == 1)
        assert "started revision 1 in 812 ms" in header_lines(app)[2]
        assert not app.status.reloads and str(app.query_one("#reload-label", Static).content) == "reloads"
        post(app, ReloadFinished(2, True, 9.0, 2, rung="patch", detail="run()"))
        await until(pilot, lambda: app.status.revision == 2)
        assert "last reload: revision 2 patched run() in place (model kept), 9 ms" in header_lines(app)[2]
        assert list(app.status.reloads) == [9.0]


def drawn(chart: Sparkline) -> str:
    console = Console(width=chart.size.width, record=True, file=io.StringIO(), color_system=None)
    console.print(chart.render())
    return console.export_text().strip("\n")


async def test_the_latency_chart_keeps_its_scale_after_a_held_request_and_one_value_is_one_bar(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        chart = app.query_one("#latency-chart", Sparkline)
        app.status.record_latency(10.0)
        await pilot.pause()
        bars = drawn(chart)
        assert bars.count("█") == 1 and bars.endswith("█"), bars
        for ms in (12.0, 11.0, 12_000.0, 10.0, 60.0):
            app.status.record_latency(ms)
        await pilot.pause()
        bars = drawn(chart)[-6:]
        assert bars[3] == "█"
        # The requests of 10 ms to 60 ms still differ from each other and from no request at all.
        assert bars[5] > bars[4] > "▁" and bars[0] > "▁", bars


# -- 5: direct keys, a visible focus, tab in screen order ----------------------------------------


def focused_id(app: DevtuiApp) -> str | None:
    return getattr(app.focused, "id", None)


async def test_direct_keys_reach_the_method_the_body_kind_the_headers_and_the_answers_tabs(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        await pilot.press("i")
        panel = app.invoke_panel
        panel.answer.query_one("#response-body").focus()
        await until(pilot, lambda: focused_id(app) == "response-body")
        await pilot.press("1")
        method = panel.query_one("#method", Select)
        await until(pilot, lambda: method.has_focus_within and method.expanded, message="the method's list")
        await pilot.press("down", "enter")  # POST -> the next method
        await until(pilot, lambda: method.value != "POST" and not method.expanded)
        await pilot.press("3")
        kind = panel.query_one("#body-kind", Select)
        await until(pilot, lambda: kind.has_focus_within and kind.expanded)
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: kind.value == BodyKind.FILE)
        await pilot.press("4")
        await until(pilot, lambda: focused_id(app) == "request-file", message="the file's name, the body shown")
        await pilot.press("ctrl+t")  # while typing: Posting's method key
        await until(pilot, lambda: method.has_focus_within and method.expanded)
        await pilot.press("escape")
        await until(pilot, lambda: not method.expanded and focused_id(app) == "method")
        await pilot.press("5")
        await until(pilot, lambda: focused_id(app) == "request-headers")
        assert panel.query_one("#request-tabs", TabbedContent).active == "request-headers-tab"
        await pilot.press("escape", "i")  # out of the headers (typing) and back to the tab
        panel.answer.query_one("#response-body").focus()
        await until(pilot, lambda: focused_id(app) == "response-body")
        await pilot.press("7")
        answer_tabs = panel.query_one("#answer-tabs", TabbedContent)
        await until(pilot, lambda: focused_id(app) == "response-headers-box"
                    and answer_tabs.active == "answer-headers-tab")
        await pilot.press("6")
        await until(pilot, lambda: focused_id(app) == "response-body" and answer_tabs.active == "answer-body-tab")


def look(widget: Widget) -> tuple:
    """What shows a widget's focus: its colours and borders, and those of a Select's current value."""
    shown = [widget, *widget.query("SelectCurrent")]
    return tuple((w.styles.background, w.styles.border, w.styles.text_style, w.styles.background_tint)
                 for w in shown)


@pytest.mark.parametrize("tab", ["logs-tab", "invoke-tab"])
async def test_every_focusable_widget_shows_its_focus(make_app, tab):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        serving(app)
        app.query_one("#tabs", TabbedContent).active = tab
        app.invoke_panel.record(exchange())
        await pilot.pause()
        chain = [w for w in app.screen.focus_chain if w.id != "tabs" and not isinstance(w, Tabs)]
        assert len(chain) >= 4
        for widget in chain:
            widget.blur()
            app.screen.set_focus(None)
            await pilot.pause()
            before = look(widget)
            widget.focus()
            await until(pilot, lambda: app.focused is widget)
            await pilot.pause()
            assert look(widget) != before, f"{widget!r} looks the same focused"


async def test_tab_follows_the_screen_order_of_the_invoke_tab(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        await pilot.press("i")
        app.query_one("#method").focus()
        await until(pilot, lambda: focused_id(app) == "method")
        seen = []
        for _ in range(9):
            seen.append(focused_id(app) or type(app.focused).__name__)
            await pilot.press("tab")
        assert seen == ["method", "query", "body-kind", "send", "copy-curl", "ContentTabs", "request-editor",
                        "ContentTabs", "response-body"]


async def test_ctrl_j_from_the_log_puts_the_focus_on_the_answer(make_app):
    app = make_app(fake=True)
    async with running(app, (160, 45)) as pilot:
        await until(pilot, lambda: app.engine.state == SUCCEEDED and app.invoke_panel.scoring_uri)
        await until(pilot, lambda: focused_id(app) == "log-lines")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: app.invoke_panel.history, message="an answer")
        await until(pilot, lambda: focused_id(app) == "response-body")
        await pilot.press("y")  # at once: the answer's keys work
        await until(pilot, lambda: app.invoke_panel.last_curl)


# -- 9: logs -------------------------------------------------------------------------------------


def log_screen(app: DevtuiApp) -> list[str]:
    lines = app.logs.lines
    return [lines.render_line(y).text for y in range(lines.size.height)]


async def test_the_devtui_source_shows_the_provisioning_and_an_empty_source_says_so(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        app.query_one("#log-source", Select).value = DEVTUI
        await until(pilot, lambda: app.logs.source == DEVTUI)
        await until(pilot, lambda: "No lines from devtui yet" in log_screen(app)[0])
        serving(app)
        await until(pilot, lambda: any("provisioning_state: Succeeded (revision 1 is serving" in line
                                       for line in log_screen(app)), message="the provisioning line")
        app.query_one("#log-source", Select).value = STORAGE_INITIALIZER
        await until(pilot, lambda: "No lines from storage-initializer yet" in log_screen(app)[0])


async def test_new_lines_under_a_filter_count_matches_and_end_follows_again(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        logs = app.logs
        logs.add([LogRecord(INFERENCE_SERVER, f"line {n}", 0.0) for n in range(100)])
        await until(pilot, lambda: len(logs.lines.records) == 100)
        logs.lines.focus()
        await pilot.press("f")  # paused
        await until(pilot, lambda: not logs.follow)
        logs.add([LogRecord(INFERENCE_SERVER, "other", 0.0) for _ in range(5)])
        marker = app.query_one("#log-new-lines", Button)
        await until(pilot, lambda: marker.display and str(marker.label) == "+5 new lines")
        logs.query_one("#log-filter", Input).value = "keep"
        await until(pilot, lambda: not logs.lines.records)
        assert not marker.display  # everything that matches is drawn: nothing new yet
        logs.add([LogRecord(INFERENCE_SERVER, text, 0.0) for text in ("keep 1", "drop", "keep 2", "drop")])
        await until(pilot, lambda: marker.display)
        assert str(marker.label) == "+2 new lines"
        assert str(app.query_one("#log-matches", Label).content) == "2 matches"
        logs.lines.focus()
        await pilot.press("end")
        await until(pilot, lambda: logs.follow and not marker.display, message="End to follow again")
        assert str(app.query_one("#log-follow", Button).label) == "Following"


async def test_matches_are_highlighted_and_a_bad_regex_says_why(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        logs = app.logs
        logs.add([LogRecord(INFERENCE_SERVER, "a keep b KEEP", 0.0), LogRecord(INFERENCE_SERVER, "no", 0.0)])
        logs.query_one("#log-filter", Input).value = "keep"
        await until(pilot, lambda: len(logs.lines.records) == 1)
        text = logs.render_record(logs.lines.records[0])
        marked = [text.plain[span.start:span.end] for span in text.spans if "on yellow" in str(span.style)]
        assert marked == ["keep", "KEEP"]
        matches = app.query_one("#log-matches", Label)
        assert str(matches.content) == "1 match"
        logs.query_one("#log-filter", Input).value = "/(unclosed/"
        await until(pilot, lambda: "not a valid regex" in str(matches.content))
        assert "missing )" in str(matches.content) and matches.display


async def test_prompt_flows_own_time_is_left_out_and_library_warnings_are_not_errors(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        logs = app.logs
        flow = LogRecord(INFERENCE_SERVER, "[2026-12-07 12:00:00 +0000][pfserving-app][INFO] - Flow started", 0.0)
        executor = LogRecord(INFERENCE_SERVER, "2026-12-07 12:00:00 +0000   4242 execution.flow  INFO  Start", 0.0)
        assert logs.text_of(flow) == "[pfserving-app][INFO] - Flow started"
        assert logs.text_of(executor).startswith("4242 execution.flow")
        assert level_style("/site-packages/pydantic/_config.py:341: UserWarning: Valid config keys have changed") \
            == "yellow"
        assert level_style("[2026-12-07 12:00:00 +0000][promptflow][WARNING] - ValueError: will raise in 2.0") \
            == "yellow"
        assert level_style("Traceback (most recent call last):") == "red"
        assert level_style("2026-12-07 12:00:00,000 E [4243] azmlinfsrv - boom") == "red"
        await pilot.press("t")
        await until(pilot, lambda: not logs.timestamps)
        assert logs.text_of(flow) == flow.text


def test_the_devtui_log_file_holds_no_terminal_codes(tmp_path):
    files = LogFiles(tmp_path)
    files.write([LogRecord(DEVTUI, "\x1b[1;31mERROR\x1b[0m pip \x1b]0;title\x07done \x1b(B\x1b[K", 0.0)])
    files.close()
    assert (tmp_path / "devtui.log").read_text() == "ERROR pip done \n"


# -- 10: keys that can be found, a layout that fits ----------------------------------------------


def footer(app: DevtuiApp) -> str:
    return " ".join(f"{key.key_display} {key.description}" for key in app.query(FooterKey))


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 45)])
async def test_the_footer_has_the_runtime_key_and_below_120_columns_the_panels(make_app, size):
    app = make_app()
    async with running(app, size) as pilot:
        await until(pilot, lambda: "? Help" in footer(app) and "f Follow" in footer(app))
        assert "x Runtime" in footer(app)
        assert ("b Panel" in footer(app)) or size[0] >= 120


async def test_m_on_a_deployment_without_chat_says_why(make_app):
    app = make_app()
    seen = []
    notify = app.notify
    app.notify = lambda message, *args, **kwargs: (seen.append(str(message)), notify(message, *args, **kwargs))
    async with running(app, (160, 45)) as pilot:
        await pilot.press("m")
        await until(pilot, lambda: seen, message="a word on m")
        assert "No Chat tab" in seen[0] and "scoring script" in seen[0]
        assert app.query_one("#tabs", TabbedContent).active == "logs-tab"


async def test_the_palette_has_one_quit_and_shows_each_commands_key(make_app):
    app = make_app()
    async with running(app, (160, 45)):
        commands_ = list(app.get_system_commands(app.screen))
        assert [c.title for c in commands_].count("Quit") == 1
        ours = {c.title: c.help for c in commands_}
        assert ours["Quit"].startswith("q · ") and ours["Invoke endpoint"].startswith("ctrl+j · ")
        assert ours["Choose the method"].startswith("1 · ") and ours["Filter logs"].startswith("/ · ")


def panel_lines(panel: DeploymentPanel) -> list[str]:
    console = Console(width=panel.size.width, record=True, file=io.StringIO(), color_system=None)
    console.print(panel.content)
    return [line.rstrip() for line in console.export_text().splitlines()]


@pytest.mark.parametrize("size", [(120, 30), (160, 45), (220, 60)])
async def test_the_deployment_panel_widens_with_the_terminal_and_breaks_paths_after_a_slash(make_app, size):
    app = make_app()
    async with running(app, size) as pilot:
        panel = app.query_one("#deployment", DeploymentPanel)
        await until(pilot, lambda: panel.size.width and panel.content)
        assert panel.outer_size.width >= min(80, max(42, size[0] * 30 // 100))
        await pilot.pause()
        text = "\n".join(panel_lines(panel))
        # A name wider than the value column alone is folded: there is no slash to break it after.
        names = [part for part in app.engine.deployment.code_dir.parts if part != "/"
                 and len(part) < panel.size.width - LABEL_WIDTH]
        for name in names:
            assert re.search(rf"(^|/|\s){re.escape(name)}(/|\s|$)", text, re.M), (name, text)


async def test_the_history_is_as_tall_as_its_rows(make_app):
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        await pilot.press("i")
        history = app.query_one("#history", HistoryList)
        for count, limit in ((1, 1), (3, 3), (12, 8)):
            while len(app.invoke_panel.history) < count:
                app.invoke_panel.record(exchange())
            await until(pilot, lambda: len(history) == count)
            await until(pilot, lambda: history.size.height == limit,
                        message=f"{limit} rows for {count} (not {history.size.height})")
