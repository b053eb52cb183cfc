"""The terminal app driven by a Pilot: deploy, invoke, every key and palette entry, hot reload,
and the app as a daily tool (issue 11): a log that stays pinned, invoke that never hangs, honest
latency, narrow terminals, focus that never traps, failures headline first, YAML problems on
screen, a history to open again, every kind of request.

Some tests run the real scoring server as a child process (as `devtui PATH` does); the tests that
need an answering endpoint but not a real server run the engine on the fake runtime
(tests/fake_runtime.py); the tests of the screen alone use an app whose engine never starts, fed
with the events an engine emits. Every wait polls the app (``pilot.pause()`` in a loop) until a
condition holds or a deadline passes.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
from rich.console import Console
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, Static, TabbedContent, TextArea
from textual.widgets._footer import FooterKey

from devtui import runtimes, spec
from devtui.engine import DebugSettings, Engine, Launch
from devtui.events import (DEVTUI, FAILED, INFERENCE_SERVER, STORAGE_INITIALIZER, SUCCEEDED, LogRecord, Logs,
                           ReloadFinished, ReloadReason, ServerStarted)
from devtui.tui import commands
from devtui.tui.app import DevtuiApp, EngineEvent
from devtui.tui.commands import key_name
from devtui.tui.screens import HelpScreen
from devtui.tui.widgets import DeploymentPanel, FailurePanel, HistoryList, LogLines
from fake_runtime import ANSWER, EXEC_MS, RUN_FAILED, FakeRuntime
from helpers import (ROOT, QuietApp, children_of, devtui, free_port, pid_alive, run_async, running, save, until,
                     wait_for)
from inference_server import protocol

pytestmark = pytest.mark.anyio  # async def tests run on asyncio (conftest's anyio_backend)

PALETTE_TITLES = ["Invoke endpoint", "Reload now", "Restart deployment", "Focus logs", "Toggle follow",
                  "Filter logs", "Toggle wrap", "Toggle timestamps", "Clear logs", "Save logs", "Switch runtime",
                  "Toggle deployment panel", "Help", "Copy as curl", "Show the answer's traceback", "Quit",
                  # Textual's own
                  "Keys", "Screenshot", "Theme"]
NARROW, WIDE = (100, 30), (160, 45)
# The sample model's prediction for the first row of sample-request.json.
FIRST_PREDICTION = "199.85"


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    wait_for(lambda: children_of(os.getpid()) == [], timeout=15, message="every child process to end")


@pytest.fixture
def make_app(sample, tmp_path) -> Callable[..., DevtuiApp]:
    """An app on a fresh copy of samples/sklearn-regression, saving logs into tmp_path/saved."""

    def make(app_class: type[DevtuiApp] = DevtuiApp, log_capacity: int = 1000, fake: bool = False) -> DevtuiApp:
        """``fake``: the engine runs a fake runtime (tests/fake_runtime.py), for keys that need an
        answering endpoint but not a real scoring server."""
        folder = sample("sklearn-regression")
        engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0),
                        **({"runtimes_from": FakeRuntime} if fake else {}))
        saved = tmp_path / "saved"
        saved.mkdir()
        return app_class(engine, request_text=(folder / "sample-request.json").read_text(),
                         log_capacity=log_capacity, save_folder=saved)

    return make


def status_text(app: DevtuiApp) -> str:
    return str(app.query_one("#status-text", Static).content)


def revision_shown(app: DevtuiApp) -> str:
    """The revision on the status's first line ("... Succeeded  revision 2"), not in its detail."""
    return re.search(r"revision (\S+)", status_text(app).splitlines()[0]).group(1)


def answer_text(app: DevtuiApp) -> str:
    return app.query_one("#response-body", TextArea).text


def spy_notifications(app: DevtuiApp) -> list[tuple[str, str]]:
    """Record (severity, message) of every notification; widgets notify through the app."""
    seen: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message, *args, **kwargs):
        seen.append((kwargs.get("severity", "information"), str(message)))
        return notify(message, *args, **kwargs)

    app.notify = recording
    return seen


async def ready(pilot: Pilot) -> DevtuiApp:
    app = pilot.app
    await until(pilot, lambda: app.engine.state == SUCCEEDED and app.status.revision == 1,
                message="the deployment to be Succeeded")
    return app


async def invoked(pilot: Pilot, count: int) -> DevtuiApp:
    """Wait for the history to hold ``count`` exchanges."""
    app = pilot.app
    await until(pilot, lambda: len(app.invoke_panel.history) >= count, message=f"{count} answers")
    return app


def records(count: int, source: str = INFERENCE_SERVER, prefix: str = "line") -> tuple[LogRecord, ...]:
    return tuple(LogRecord(source, f"{prefix} {n}", 1_700_000_000 + n) for n in range(count))


async def shown(pilot: Pilot, count: int) -> LogLines:
    """Wait for the log view to hold ``count`` lines (it is flushed on a timer)."""
    lines = pilot.app.query_one("#log-lines", LogLines)
    await until(pilot, lambda: not pilot.app.logs.pending and len(lines.lines) == count,
                message=f"{count} lines on screen")
    return lines


def screen_lines(app: DevtuiApp) -> list[str]:
    """The screen as the terminal would show it, one string per row."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def log_rows(lines: LogLines) -> list[str]:
    """The rows the log view draws now, top to bottom."""
    return ["".join(segment.text for segment in lines.render_line(y))
            for y in range(lines.scrollable_content_region.height)]


def at_end(lines: LogLines) -> bool:
    """The view shows its last record (and is scrolled as far down as it goes)."""
    last = lines.row_of(len(lines.records) - 1)
    return (lines.scroll_y == lines.max_scroll_y
            and lines.scroll_y <= last < lines.scroll_y + lines.scrollable_content_region.height)


def fake(app: DevtuiApp) -> FakeRuntime:
    runtime = app.engine.runtime
    assert isinstance(runtime, FakeRuntime)
    return runtime


def response_status(app: DevtuiApp) -> str:
    return str(app.query_one("#response-status", Static).content)


async def send(pilot: Pilot) -> DevtuiApp:
    """ctrl+j, and wait for its answer in the history."""
    app = pilot.app
    count = len(app.invoke_panel.history)
    await pilot.press("ctrl+j")
    return await invoked(pilot, count + 1)


def failed_reload(revision: int = 2, serving: int | None = 1, traceback: str = "") -> ReloadFinished:
    return ReloadFinished(revision, False, 35.0, serving, first=serving is None, stage="load", traceback=traceback)


# -- deploy and invoke ------------------------------------------------------------------------------


async def test_deploys_to_succeeded_and_ctrl_j_invokes(make_app):
    app = make_app()

    async with running(app) as pilot:
        assert "Creating" in status_text(app)  # the sample's init() alone takes most of a second
        await ready(pilot)
        await until(pilot, lambda: "Succeeded" in status_text(app) and revision_shown(app) == "1")
        assert "http://127.0.0.1:" in status_text(app)
        await pilot.press("ctrl+j")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200
        assert FIRST_PREDICTION in app.invoke_panel.history[0].answer
        await until(pilot, lambda: FIRST_PREDICTION in answer_text(app))
        assert app.query_one("#tabs", TabbedContent).active == "invoke-tab"
        assert str(app.query_one("#response-status", Static).content).startswith("200")


async def test_invalid_json_is_flagged_and_not_sent(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        notes = spy_notifications(app)
        await ready(pilot)
        editor = app.invoke_panel.editor
        problem = app.query_one("#request-problem")
        assert not editor.has_class("invalid")
        await pilot.press("i")
        assert app.focused is editor
        await pilot.press("x")  # at the start of the document: x{"data": ...
        await until(pilot, lambda: editor.has_class("invalid"))
        assert "invalid JSON at line 1, column 1" in str(problem.content)
        await pilot.press("ctrl+j")
        await until(pilot, lambda: any(severity == "error" and message.startswith("Not sent")
                                       for severity, message in notes))
        assert app.invoke_panel.history == []
        assert str(app.query_one("#response-status", Static).content) == "Nothing sent yet."

        await pilot.press("backspace")
        await until(pilot, lambda: not editor.has_class("invalid"))
        assert str(problem.content) == "valid JSON"
        await pilot.press("ctrl+j")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200


# -- the command palette ----------------------------------------------------------------------------


async def test_palette_has_the_entries_and_invoke_endpoint_runs(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in PALETTE_TITLES:
            assert title in titles
        await ready(pilot)
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), message="the palette")
        await pilot.press(*"Invoke endpoint")
        found = app.screen.query_one(CommandList)
        await until(pilot, lambda: found.highlighted is not None and str(
            found.get_option_at_index(found.highlighted).prompt).startswith("Invoke endpoint"),
            message="Invoke endpoint highlighted in the palette")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, CommandPalette), message="the palette to close")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200
        assert FIRST_PREDICTION in app.invoke_panel.history[0].answer


# -- the keys that talk to the engine ---------------------------------------------------------------


async def test_r_reloads_a_new_revision_in_the_same_server(make_app):
    app = make_app()

    async with running(app) as pilot:
        await ready(pilot)
        server = app.engine.runtime.process.pid
        await pilot.press("r")
        await until(pilot, lambda: app.status.revision == 2, message="revision 2")
        await until(pilot, lambda: revision_shown(app) == "2")
        assert app.engine.serving_revision == 2
        assert app.engine.runtime.process.pid == server  # a worker swap, not a restart
        await pilot.press("ctrl+j")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200


async def test_ctrl_r_restarts_the_server_with_a_new_revision(make_app):
    app = make_app()

    async with running(app) as pilot:
        await ready(pilot)
        old_server = app.engine.runtime.process.pid
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.status.revision == 2 and app.engine.state == SUCCEEDED,
                    message="revision 2 after the restart")
        assert app.engine.runtime.process.pid != old_server
        await until(pilot, lambda: not pid_alive(old_server), message="the old server to end")
        await pilot.press("ctrl+j")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200


async def test_r_just_after_the_server_listens_does_not_kill_it(make_app):
    app = make_app()
    # The key goes in the moment the engine says the server listens: a user's r can land there
    # too, but a Pilot's press waits for the app to be idle and may come later.
    app.engine.subscribe(lambda event: isinstance(event, ServerStarted) and app.simulate_key("r"))

    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.state in (SUCCEEDED, FAILED), message="an outcome")
        assert app.engine.state == SUCCEEDED, app.status.detail
        await pilot.press("ctrl+j")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200


def test_q_quits_and_the_server_is_gone(make_app):
    app = make_app()

    async def scenario():
        async with running(app) as pilot:
            await ready(pilot)
            server = app.engine.runtime.process.pid
            assert pid_alive(server)
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, message="the app to exit")
        return server

    server = run_async(scenario())
    assert app.engine.stopped
    assert not pid_alive(server)


def test_q_typed_in_the_filter_does_not_quit_but_ctrl_c_does(make_app):
    app = make_app(fake=True)  # what quitting does to a real server: test_q_quits_and_the_server_is_gone

    async def scenario():
        async with running(app) as pilot:
            await ready(pilot)
            await pilot.press("slash")
            filter_input = app.query_one("#log-filter", Input)
            assert app.focused is filter_input
            await pilot.press("q")
            await pilot.pause()
            assert filter_input.value == "q"
            assert app.is_running and not app.engine.stopped and "stop" not in fake(app).calls
            await pilot.press("ctrl+c")
            await until(pilot, lambda: app.return_code is not None, message="the app to exit")

    run_async(scenario())
    assert app.engine.stopped
    assert fake(app).calls[-1] == "stop"


# -- hot reload from the editor ---------------------------------------------------------------------


async def test_saving_score_py_serves_a_new_revision(make_app):
    app = make_app()

    async with running(app) as pilot:
        await ready(pilot)
        score = app.engine.deployment.code_dir / "score.py"
        save(score, score.read_text().replace("return [round(", "return ['edited'] + [round("))
        await until(pilot, lambda: revision_shown(app) == "2", message="revision 2 in the status")
        await pilot.press("ctrl+j")
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].answer.startswith('["edited"')


async def test_a_broken_save_shows_the_traceback_until_a_fix(make_app):
    app = make_app()

    async with running(app, size=NARROW) as pilot:
        await ready(pilot)
        notes = spy_notifications(app)
        panel = app.query_one("#failure", FailurePanel)
        lines = app.logs.lines
        assert not panel.display
        score = app.engine.deployment.code_dir / "score.py"
        good = score.read_text()
        save(score, "def init(:\n")
        await until(pilot, lambda: panel.display, message="the failure panel")
        text = str(panel.content)
        # The headline first: the exception and where in the user's script, then what it means.
        assert text.splitlines()[0].startswith("SyntaxError: invalid syntax  at score.py:1")
        assert "Revision 2 failed in load: revision 1 is still serving" in text.splitlines()[1]
        assert 'score.py", line 1' in text
        assert app.status.revision == 1 and revision_shown(app) == "1"
        assert not [message for _, message in notes if "failed" in message]  # nothing covers the panel
        # The log kept following: the server's own last word on the failure is on screen.
        await until(pilot, lambda: any("Revision 2 failed (load)" in row for row in log_rows(lines))
                    and at_end(lines), message="the failure's last log line on screen")
        assert app.logs.follow

        await pilot.press("ctrl+j")  # the old revision still answers
        await invoked(pilot, 1)
        assert app.invoke_panel.history[0].status == 200
        assert FIRST_PREDICTION in app.invoke_panel.history[0].answer

        save(score, good.replace("return [round(", "return ['fixed'] + [round("))
        await until(pilot, lambda: app.status.revision == 3, message="revision 3")
        await until(pilot, lambda: not panel.display, message="the traceback panel to go")
        await pilot.press("ctrl+j")
        await invoked(pilot, 2)
        assert app.invoke_panel.history[1].answer.startswith('["fixed"')


# -- the keys of the log view (no server needed) -------------------------------------------------------


async def test_l_and_i_switch_tabs_and_focus(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        tabs = app.query_one("#tabs", TabbedContent)
        await pilot.press("i")
        assert tabs.active == "invoke-tab"
        assert app.focused is app.invoke_panel.editor
        await pilot.press("l")  # typed into the editor, as it should be
        assert tabs.active == "invoke-tab" and app.invoke_panel.editor.text.startswith("l")
        await pilot.press("backspace", "escape")  # escape leaves the editor for the log
        assert tabs.active == "logs-tab"
        assert app.focused is app.query_one("#log-lines", LogLines)
        await pilot.press("i", "tab")  # tab moves on instead of indenting
        assert app.focused is not app.invoke_panel.editor
        await pilot.press("l")
        assert tabs.active == "logs-tab"
        assert app.focused is app.query_one("#log-lines", LogLines)
        await pilot.press("i")
        assert tabs.active == "invoke-tab"
        assert app.focused is app.invoke_panel.editor


async def test_f_toggles_follow_and_new_lines_button_resumes(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        logs = app.logs
        lines = app.query_one("#log-lines", LogLines)
        marker = app.query_one("#log-new-lines", Button)
        follow = app.query_one("#log-follow", Button)
        app.post_message(EngineEvent(Logs(records(100))))
        await shown(pilot, 100)
        await until(pilot, lambda: lines.max_scroll_y > 0 and lines.scroll_y == lines.max_scroll_y,
                    message="the view at the end")
        assert logs.follow and not marker.display
        await pilot.press("f")
        assert not logs.follow
        assert str(follow.label) == "Paused"
        lines.scroll_to(y=10, animate=False)
        app.post_message(EngineEvent(Logs(records(7, prefix="later"))))
        await until(pilot, lambda: marker.display, message="the new lines button")
        await shown(pilot, 107)
        assert str(marker.label) == "+7 new lines"
        assert lines.scroll_y == 10  # paused: the view stays where the reader is
        # Clicked where it is drawn: shown, it takes its place a layout later.
        await until(pilot, lambda: marker.region.width > 0, message="the new lines button laid out")
        await pilot.click("#log-new-lines")
        await until(pilot, lambda: logs.follow and not marker.display)
        assert str(follow.label) == "Following"
        await until(pilot, lambda: lines.scroll_y == lines.max_scroll_y, message="the view back at the end")
        await pilot.press("f")
        assert not logs.follow
        await pilot.press("f")
        assert logs.follow


async def test_t_toggles_timestamps(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        app.logs.add([LogRecord(INFERENCE_SERVER, "hello", 1_700_000_000.25)])
        lines = await shown(pilot, 1)
        stamp = time.strftime("%H:%M:%S", time.localtime(1_700_000_000.25)) + ".250"
        assert app.logs.timestamps
        assert lines.lines[0].text.startswith(f"{stamp} server  hello")
        await pilot.press("t")
        assert not app.logs.timestamps
        await until(pilot, lambda: lines.lines and lines.lines[0].text.startswith("server  hello"))
        await pilot.press("t")
        assert app.logs.timestamps
        await until(pilot, lambda: lines.lines and lines.lines[0].text.startswith(stamp))


async def test_slash_focuses_the_filter_and_typing_narrows(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        logs = app.logs
        logs.add([LogRecord(INFERENCE_SERVER, "GET /score 200"),
                  LogRecord(INFERENCE_SERVER, "ERROR boom"),
                  LogRecord(STORAGE_INITIALIZER, "model copied"),
                  LogRecord(DEVTUI, "error: a lower-case error")])
        await shown(pilot, 4)
        await pilot.press("i", "escape")  # start from the other tab: / brings the logs back
        await pilot.press("slash")
        filter_input = app.query_one("#log-filter", Input)
        assert app.query_one("#tabs", TabbedContent).active == "logs-tab"
        assert app.focused is filter_input

        await pilot.press(*"err")
        await until(pilot, lambda: filter_input.value == "err")
        assert [r.text for r in logs.visible_records()] == ["ERROR boom", "error: a lower-case error"]
        await shown(pilot, 2)

        filter_input.value = ""
        await pilot.press(*"/^(get|mo)/")
        await until(pilot, lambda: filter_input.value == "/^(get|mo)/")
        assert [r.text for r in logs.visible_records()] == ["GET /score 200", "model copied"]
        assert not filter_input.has_class("invalid")

        filter_input.value = ""
        await pilot.press(*"/([a-z/")
        await until(pilot, lambda: filter_input.has_class("invalid"), message="the invalid class")
        assert "not a valid regex" in logs.filter_error

        filter_input.value = ""
        await until(pilot, lambda: not filter_input.has_class("invalid") and len(logs.visible_records()) == 4)


async def test_c_clears_the_logs(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        app.post_message(EngineEvent(Logs(records(30))))
        await shown(pilot, 30)
        await pilot.press("c")
        assert len(app.logs.buffer.all) == 0
        assert all(len(d) == 0 for d in app.logs.buffer.by_source.values())
        assert app.logs.visible_records() == []
        await shown(pilot, 0)


async def test_s_saves_the_visible_lines(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        notes = spy_notifications(app)
        app.logs.add([*records(5, prefix="keep"), *records(3, source=DEVTUI, prefix="drop")])
        await shown(pilot, 8)
        app.logs.set_filter("keep")
        await shown(pilot, 5)
        await pilot.press("s")
        await until(pilot, lambda: list(app.save_folder.iterdir()), message="a saved file")
        [saved] = list(app.save_folder.iterdir())
        assert saved.name.startswith("devtui-my-endpoint-") and saved.suffix == ".log"
        lines = saved.read_text().splitlines()
        assert len(lines) == 5
        assert [line.split(INFERENCE_SERVER)[1].strip() for line in lines] == [f"keep {n}" for n in range(5)]
        assert any("Saved 5 lines" in message for _, message in notes)


async def test_x_warns_when_only_the_process_runtime_is_available(make_app, monkeypatch):
    monkeypatch.setattr(runtimes, "available", lambda **_: ["process"])  # no container engine answers
    app = make_app(QuietApp)

    async with running(app) as pilot:
        notes = spy_notifications(app)
        await pilot.press("x")
        await until(pilot, lambda: notes, message="a notification")
        assert notes == [("warning", "Only the process runtime is available here.")]
        assert app.engine.runtime_name == "process"


async def test_x_switches_to_the_next_runtime_when_there_is_one(make_app, monkeypatch):
    # The switch itself is the engine's (tested there); here: x asks for it and the status follows.
    monkeypatch.setattr(runtimes, "available", lambda **_: ["process", "container"])
    app = make_app(QuietApp)
    asked = []

    async def switch_runtime(name: str) -> str:
        asked.append(name)
        return SUCCEEDED

    app.engine.switch_runtime = switch_runtime

    async with running(app) as pilot:
        notes = spy_notifications(app)
        await pilot.press("x")
        await until(pilot, lambda: app.status.runtime == "container", message="the status to follow")
        assert asked == ["container"]
        assert ("information", "Switching to the container runtime...") in notes
        assert "[container]" in status_text(app)


async def test_d_starts_and_stops_the_debugger(make_app, monkeypatch):
    port = free_port()
    monkeypatch.setattr("devtui.tui.app.DebugSettings", lambda p: DebugSettings(port))
    app = make_app()

    async with running(app) as pilot:
        await ready(pilot)
        await pilot.press("d")
        await until(pilot, lambda: app.status.debugger == f"listening on 127.0.0.1:{port}",
                    message="the debugger to listen")
        assert "debugger: listening" in status_text(app)
        await until(pilot, lambda: app.engine.state == "Succeeded")
        # A debugpy client can connect to the port the header shows.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        await pilot.press("d")
        await until(pilot, lambda: app.status.debugger == "off" and app.engine.state == "Succeeded")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- 1. a followed log stays on its last line ---------------------------------------------------------


async def test_a_followed_log_stays_pinned_through_the_failure_panel_a_resize_and_wrapping(make_app):
    app = make_app(QuietApp)

    async with running(app, size=NARROW) as pilot:
        lines = app.logs.lines
        app.post_message(EngineEvent(Logs(records(200))))
        await shown(pilot, 200)
        await until(pilot, lambda: at_end(lines), message="the view at the end")
        app.post_message(EngineEvent(Logs(records(3, prefix="Revision 2 failed (load)"))))
        app.post_message(EngineEvent(failed_reload(traceback="Traceback (most recent call last):\n" + "\n".join(
            f'  File "x.py", line {n}, in f' for n in range(30)) + "\nValueError: boom")))
        await until(pilot, lambda: app.failure.display and app.failure.region.height > 3, message="the panel")
        await until(pilot, lambda: at_end(lines) and "Revision 2 failed (load) 2" in log_rows(lines)[-1],
                    message="the newest line on screen above the panel")
        assert str(app.query_one("#log-follow", Button).label) == "Following"

        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: at_end(lines), message="the view at the end after shrinking")
        await pilot.resize_terminal(*NARROW)
        await until(pilot, lambda: at_end(lines), message="the view at the end after growing")

        app.post_message(EngineEvent(Logs((LogRecord(INFERENCE_SERVER, "long " + "x" * 400 + " END"),))))
        await pilot.press("w")
        await until(pilot, lambda: lines.wrap and len(lines.records) == 204)
        await until(pilot, lambda: at_end(lines) and log_rows(lines)[-1].rstrip().endswith("END"),
                    message="the end of the wrapped line on screen")
        assert app.logs.follow


async def test_scrolling_up_pauses_following_and_the_end_resumes_it(make_app):
    app = make_app(QuietApp)

    async with running(app, size=NARROW) as pilot:
        lines = app.logs.lines
        follow = app.query_one("#log-follow", Button)
        app.post_message(EngineEvent(Logs(records(100))))
        await shown(pilot, 100)
        await until(pilot, lambda: at_end(lines))
        await pilot.press("pageup")
        await until(pilot, lambda: not app.logs.follow and str(follow.label) == "Paused", message="paused")
        top = lines.scroll_y
        app.post_message(EngineEvent(Logs(records(5, prefix="later"))))
        await until(pilot, lambda: app.query_one("#log-new-lines").display, message="the new lines button")
        assert lines.scroll_y == top  # the reader's place is kept
        await pilot.press("end")
        await until(pilot, lambda: app.logs.follow and str(follow.label) == "Following", message="following again")
        app.post_message(EngineEvent(Logs(records(5, prefix="latest"))))
        await until(pilot, lambda: "latest 4" in log_rows(lines)[-1] and at_end(lines))


# -- 2. invoke never hangs ------------------------------------------------------------------------------


async def test_invoke_while_failed_answers_at_once_with_why(make_app):
    app = make_app(fake=True)
    fake(app).fail_next(protocol.Stage.INIT)

    async with running(app, size=NARROW) as pilot:
        await until(pilot, lambda: app.engine.state == FAILED and app.status.state == FAILED, message="Failed")
        assert app.invoke_panel.not_serving == "revision 1 failed in init(); nothing is serving"
        exchange = (await send(pilot)).invoke_panel.history[0]
        assert exchange.status == 503 and "revision 1 failed in init" in exchange.message
        shown_status = response_status(app)
        assert shown_status.startswith("503 Service Unavailable") and "nothing is serving" in shown_status
        assert not app.query_one("#goto-traceback", Button).display  # nothing ran: no traceback to show


async def test_a_request_the_app_gives_up_on_holds_no_slot(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        runtime = fake(app)
        runtime.hold, runtime.max_in_flight = True, 1
        app.invoke_panel.timeout_s = 0.5
        exchange = (await send(pilot)).invoke_panel.history[0]
        assert exchange.status is None and exchange.why.startswith("no answer within 0.5 s")
        assert "no answer" in response_status(app) and "connection closed" in response_status(app)
        await until(pilot, lambda: runtime.in_flight == 0, message="the server to see the request given up")
        runtime.hold = False
        assert (await send(pilot)).invoke_panel.history[1].status == 200  # not 429


# -- 3. honest latency -------------------------------------------------------------------------------


async def test_requests_share_one_connection_and_show_the_servers_own_time(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        runtime = fake(app)
        for _ in range(4):
            await send(pilot)
        history = app.invoke_panel.history
        assert runtime.connections == 1  # one client, one kept-alive connection
        assert all(exchange.exec_ms == float(EXEC_MS) for exchange in history)
        assert f"run() {float(EXEC_MS):.1f} ms" in response_status(app)
        assert list(app.status.latencies) == [exchange.latency_ms for exchange in history]
        label = str(app.query_one("#latency-label", Static).content)
        assert label == f"latency: last {history[-1].latency_ms:.1f} ms (run() {float(EXEC_MS):.1f})"

        await pilot.press("r")  # a new worker: its connections are new ones
        await until(pilot, lambda: app.status.revision == 2, message="revision 2")
        await send(pilot)
        assert runtime.connections == 2
        await app.engine.reload(ReloadReason.CODE)  # patched in place: the same worker, the same connection
        await until(pilot, lambda: app.status.revision == 3, message="revision 3")
        assert app.engine.last_reload.rung == "patch"
        await send(pilot)
        assert runtime.connections == 2


async def test_every_header_of_the_answer_is_readable_at_100x30(make_app):
    app = make_app(fake=True)

    async with running(app, size=NARROW) as pilot:
        await ready(pilot)
        exchange = (await send(pilot)).invoke_panel.history[0]
        assert len(exchange.headers) == 7
        assert "Headers (7)" in str(app.query_one("#answer-tabs", TabbedContent).get_tab("answer-headers-tab").label)
        app.query_one("#answer-tabs", TabbedContent).active = "answer-headers-tab"
        await pilot.pause()
        screen = "\n".join(screen_lines(app))
        for name, value in exchange.headers:
            assert name in screen and value[:24] in screen, f"{name}: {value}"  # long values fold


# -- 4. small terminals --------------------------------------------------------------------------------


@pytest.mark.parametrize("size, shown_first", [(NARROW, False), (WIDE, True)])
async def test_the_deployment_panel_folds_away_when_narrow_and_b_toggles_it(make_app, size, shown_first):
    app = make_app(QuietApp)

    async with running(app, size=size) as pilot:
        panel = app.query_one("#deployment", DeploymentPanel)
        await pilot.pause()
        assert panel.display is shown_first
        await pilot.press("b")
        await until(pilot, lambda: panel.display is not shown_first)
        await pilot.press("b")
        await until(pilot, lambda: panel.display is shown_first)


async def test_all_sources_shows_a_short_tag_and_one_timestamp(make_app):
    app = make_app(QuietApp)
    text = "2023-11-14 22:13:20,400 I [4243] azmlinfsrv - Users's init has completed successfully"

    async with running(app, size=NARROW) as pilot:
        error = "2023-11-14 22:13:21,000 E [4243] azmlinfsrv - User's init function failed"
        app.logs.add([LogRecord(INFERENCE_SERVER, text, 1_700_000_000.0), LogRecord(DEVTUI, "hello", 1_700_000_000.0),
                      LogRecord(INFERENCE_SERVER, error, 1_700_000_000.0)])
        lines = await shown(pilot, 3)
        stamp = time.strftime("%H:%M:%S", time.localtime(1_700_000_000.0)) + ".000"
        assert lines.lines[0].text == f"{stamp} server  I [4243] azmlinfsrv - Users's init has completed successfully"
        assert lines.lines[1].text == f"{stamp} devtui  hello"
        tag = next(segment for segment in lines.lines[0] if segment.text.startswith("server"))
        assert tag.style.color is not None and tag.style.bold
        # An error stays red without the server's time in front of its level letter.
        message = next(segment for segment in lines.lines[2] if "init function failed" in segment.text)
        assert message.style.color.name == "red"
        await pilot.press("t")  # without the app's time, the server's own is shown again
        await until(pilot, lambda: lines.lines[0].text == f"server  {text}")


async def test_w_folds_long_lines_at_the_width_of_the_view(make_app):
    app = make_app(QuietApp)

    async with running(app, size=NARROW) as pilot:
        lines = app.logs.lines
        app.logs.add([LogRecord(INFERENCE_SERVER, "start " + "y" * 250 + " finish", 1_700_000_000.0)])
        await shown(pilot, 1)
        assert "finish" not in "".join(log_rows(lines))
        await pilot.press("w")
        await until(pilot, lambda: lines.wrap and "finish" in "".join(log_rows(lines)), message="the line folded")
        width = lines.scrollable_content_region.width
        assert lines.virtual_size.width == width and lines.virtual_size.height == -(-lines.widths[0] // width)
        await pilot.press("w")
        await until(pilot, lambda: not lines.wrap and lines.virtual_size.height == 1)


@pytest.mark.parametrize("size", [NARROW, WIDE])
async def test_the_footer_keeps_quit_and_help_at_any_width_and_shows_the_focused_widgets_keys(make_app, size):
    app = make_app(QuietApp)

    def footer() -> str:
        return screen_lines(app)[-1]

    async with running(app, size=size) as pilot:
        await pilot.pause()
        assert app.focused is app.logs.lines
        await until(pilot, lambda: "? Help" in footer() and "q Quit" in footer() and "f Follow" in footer(),
                    message="the log's keys, Help and Quit in the footer")
        await pilot.press("slash")
        await until(pilot, lambda: "esc Back to log" in footer() and "^c Quit" in footer(),
                    message="the filter's keys and ctrl+c in the footer")
        await pilot.press("i")  # typed into the filter
        await pilot.press("escape")
        await until(pilot, lambda: "q Quit" in footer())
        assert "escape" not in {key.key for key in app.query(FooterKey)}  # the log itself needs no esc
        app.query_one("#log-source", Select).focus()  # any other field shows it
        await until(pilot, lambda: "esc Log" in footer(), message="the esc hint")


# -- 5. focus never traps -----------------------------------------------------------------------------


async def test_esc_and_enter_leave_the_filter_for_the_log_and_keep_the_filter(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        filter_input = app.query_one("#log-filter", Input)
        lines = app.logs.lines
        await pilot.press("slash", "q")
        assert app.focused is filter_input and filter_input.value == "q" and app.is_running
        await pilot.press("escape")
        assert app.focused is lines and filter_input.value == "q"
        await pilot.press("slash", "backspace", "enter")
        assert app.focused is lines and filter_input.value == ""
        await pilot.press("i", "escape")  # from the editor too
        assert app.focused is lines
        await pilot.press("i", "tab", "tab", "escape")  # and from wherever tab led
        assert app.focused is lines


async def test_question_mark_lists_every_binding(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), message="the help screen")
        console = Console(width=200, record=True, file=io.StringIO())
        for part in app.screen.query_one("#help-keys").query(Static):  # all of it, also what is scrolled away
            console.print(part.content)
        text = console.export_text()
        for where, bindings in commands.SCOPES:
            assert where.capitalize() in text
            for binding in bindings:
                assert (binding.tooltip or binding.description)[:40] in text, binding
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_a_log_command_from_the_palette_works_from_the_invoke_tab(make_app):
    app = make_app(QuietApp)

    async with running(app) as pilot:
        await pilot.press("i")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), message="the palette")
        await pilot.press(*"Toggle wrap")
        found = app.screen.query_one(CommandList)
        await until(pilot, lambda: found.highlighted is not None and str(
            found.get_option_at_index(found.highlighted).prompt).startswith("Toggle wrap"))
        await pilot.press("enter")
        await until(pilot, lambda: app.logs.wrap, message="wrap on")
        assert app.query_one("#tabs", TabbedContent).active == "logs-tab"


def test_the_readme_lists_every_key():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The terminal app"):readme.index("## Commands")]
    for _, bindings in commands.SCOPES:
        for binding in bindings:
            assert f"`{key_name(binding)}`" in section, f"{key_name(binding)} ({binding.description})"


# -- 6. the failure panel's headline ----------------------------------------------------------------


async def test_the_failure_panel_puts_the_exception_first_and_leaves_the_log_half_the_screen(make_app):
    app = make_app(QuietApp)
    code = app.engine.deployment.code_dir
    traceback = ("Traceback (most recent call last):\n"
                 + "".join(f'  File "/usr/lib/python3.11/lib{n}.py", line {n}, in helper\n' for n in range(20))
                 + f'  File "{code}/score.py", line 23, in init\n    model = joblib.load(path)\n'
                 + '  File "/usr/lib/python3.11/joblib.py", line 650, in load\n'
                 + "FileNotFoundError: [Errno 2] No such file or directory: 'model.pkl'")

    async with running(app, size=NARROW) as pilot:
        notes = spy_notifications(app)
        app.post_message(EngineEvent(failed_reload(2, None, traceback)))
        panel = app.query_one("#failure", FailurePanel)
        await until(pilot, lambda: panel.display and panel.region.height, message="the panel")
        first, second = str(panel.content).splitlines()[:2]
        assert first == "FileNotFoundError: [Errno 2] No such file or directory: 'model.pkl'  at score.py:23"
        assert second == "Revision 2 failed in load: nothing is serving until a good save."
        await pilot.pause()
        assert screen_lines(app)[panel.region.y + 1].strip("│╭╮ ").startswith("FileNotFoundError")
        assert panel.region.height <= NARROW[1] // 4 + 1
        assert app.logs.lines.region.height >= NARROW[1] // 2
        assert notes == []

        app.post_message(EngineEvent(ReloadFinished(3, True, 20.0, 3)))
        await until(pilot, lambda: not panel.display, message="the panel to go")


# -- 7. YAML problems on screen, the side panel current ----------------------------------------------------


async def test_a_bad_yaml_shows_in_the_failure_panel_and_a_good_one_refreshes_the_side_panel(make_app):
    app = make_app(fake=True)
    yaml = app.engine.deployment.deployment_file
    good = yaml.read_text()

    async with running(app, size=WIDE) as pilot:
        await ready(pilot)
        panel = app.query_one("#failure", FailurePanel)
        save(yaml, good.replace("request_timeout_ms: 5000", "request_timeout_ms: soon"))
        await until(pilot, lambda: panel.display, message="the YAML's problem in the panel")
        text = str(panel.content)
        line = next(n for n, row in enumerate(good.splitlines(), 1) if "request_timeout_ms" in row)
        assert text.splitlines()[0].startswith("The changed YAML has problems; it is not applied")
        assert f"deployment.yml:{line}: request_settings.request_timeout_ms" in text
        assert app.engine.serving_revision == 1

        save(yaml, good.replace("request_timeout_ms: 5000", "request_timeout_ms: 7000"))
        await until(pilot, lambda: not panel.display, message="the panel to go")
        await until(pilot, lambda: any("timeout 7000 ms" in row for row in screen_lines(app)),
                    message="the new timeout in the deployment panel")
        assert app.invoke_panel.timeout_s == 17


def test_starting_on_a_yaml_syntax_error_reports_only_that_error(sample):
    folder = sample("sklearn-regression")
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text() + "request_settings: [\n")
    stderr = devtui(str(folder), check=2).stderr  # the app's own command line: it never opens
    assert stderr.startswith(f"error: {deployment}:") and "YAML syntax error" in stderr, stderr
    assert "no deployment YAML" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


# -- 8. history ---------------------------------------------------------------------------------------


async def test_history_shows_the_newest_first_opens_an_old_answer_and_colours_failures(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        runtime = fake(app)
        await send(pilot)
        app.invoke_panel.set_request('{"fail": true}')
        await send(pilot)
        app.invoke_panel.set_request('{"third": 3}')
        await send(pilot)
        history = app.query_one("#history", HistoryList)
        shown_order = [item.exchange for item in history.children]
        assert shown_order == list(reversed(app.invoke_panel.history))
        assert [item.has_class("failed") for item in history.children] == [False, True, False]

        sent = runtime.requests
        history.focus()
        await pilot.press("down", "down", "enter")  # the oldest
        await until(pilot, lambda: app.invoke_panel.shown is app.invoke_panel.history[0])
        assert json.loads(answer_text(app)) == ANSWER and response_status(app).startswith("200 OK")
        assert runtime.requests == sent  # opened, not sent again

        await pilot.press("up", "e")  # the failed one, back in the editor
        await until(pilot, lambda: app.invoke_panel.editor.text == '{"fail": true}')
        assert app.focused is app.invoke_panel.editor


# -- 9. every kind of request ---------------------------------------------------------------------------


async def test_get_with_a_query_and_post_with_headers_and_a_text_body(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        panel = app.invoke_panel
        panel.query_one("#method", Select).value = "GET"
        panel.query_one("#query", Input).value = "greeting=hi&n=1"
        await until(pilot, lambda: "no body is sent" in str(panel.query_one("#request-problem").content))
        exchange = (await send(pilot)).invoke_panel.history[-1]
        assert json.loads(exchange.answer) == {"method": "GET", "args": {"greeting": "hi", "n": "1"}}

        panel.query_one("#method", Select).value = "POST"
        panel.query_one("#body-kind", Select).value = "text"
        panel.query_one("#request-headers", TextArea).load_text("x-custom: yes\n# a comment\n")
        panel.set_request("plain words, not JSON")
        await until(pilot, lambda: str(panel.query_one("#request-problem").content) == "text body")
        answer = json.loads((await send(pilot)).invoke_panel.history[-1].answer)
        assert answer["content_type"] == "text/plain" and answer["text"] == "plain words, not JSON"
        assert answer["x-custom"] == "yes" and answer["query"] == "greeting=hi&n=1"

        panel.query_one("#request-headers", TextArea).load_text("not a header")
        await until(pilot, lambda: "headers line 1" in str(panel.query_one("#request-problem").content))


async def test_a_file_upload_goes_as_multipart(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        panel = app.invoke_panel
        panel.query_one("#body-kind", Select).value = "file"
        await until(pilot, lambda: panel.query_one("#request-file", Input).display)
        panel.query_one("#request-file", Input).value = "sample-request.json"  # relative to the YAML's folder
        await until(pilot, lambda: str(panel.query_one("#request-problem").content) == "file ready")
        answer = json.loads((await send(pilot)).invoke_panel.history[-1].answer)
        assert answer["content_type"].startswith("multipart/form-data; boundary=")
        assert 'name="file"; filename="sample-request.json"' in answer["text"] and '"data"' in answer["text"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_y_copies_the_request_as_a_curl_command_that_works(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        await pilot.press("i")
        app.query_one("#send", Button).focus()
        await pilot.press("y")
        await until(pilot, lambda: app.clipboard.startswith("curl "), message="a curl command on the clipboard")
        words = shlex.split(app.clipboard)
        assert words[:6] == ["curl", "-sS", "-i", "-X", "POST", app.engine.scoring_uri]
        assert ["-H", "content-type: application/json"] == words[6:8]
        # The fake endpoint is served by this event loop: curl runs beside it.
        result = await asyncio.to_thread(subprocess.run, words, capture_output=True, text=True, timeout=20)
        assert result.stdout.startswith("HTTP/1.1 200") and FIRST_PREDICTION in result.stdout


async def test_a_500_links_to_its_traceback_in_the_log(make_app):
    app = make_app(fake=True)

    async with running(app) as pilot:
        await ready(pilot)
        app.invoke_panel.set_request('{"fail": true}')
        exchange = (await send(pilot)).invoke_panel.history[-1]
        assert exchange.status == 500 and exchange.message == RUN_FAILED and exchange.request_id
        link = app.query_one("#goto-traceback", Button)
        await until(pilot, lambda: link.display, message="the link to the traceback")
        link.focus()
        await pilot.press("g")
        await until(pilot, lambda: app.logs.marked is not None, message="the traceback found")
        assert "Encountered Exception" in app.logs.marked.text
        assert app.query_one("#tabs", TabbedContent).active == "logs-tab" and not app.logs.follow
        await until(pilot, lambda: any("Encountered Exception" in row for row in log_rows(app.logs.lines)),
                    message="the traceback on screen")
