"""The terminal app driven by a Pilot: deploy, invoke, every key and palette entry, hot reload.

Most tests run the real scoring server as a child process (as `devtui PATH` does); the tests of
the log view's keys use an app whose engine never starts, fed with synthetic log records. Every
wait polls the app (``pilot.pause()`` in a loop) until a condition holds or a deadline passes.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static, TabbedContent, TextArea

from devtui.tui.widgets._log_lines import LogLines
from devtui import runtimes, spec
from devtui.engine import DebugSettings, Engine
from devtui.events import (DEVTUI, FAILED, INFERENCE_SERVER, STORAGE_INITIALIZER, SUCCEEDED, LogRecord, Logs,
                           ServerStarted)
from devtui.tui.app import DevtuiApp, EngineEvent
from fake_runtime import FakeRuntime
from helpers import QuietApp, children_of, free_port, pid_alive, run_async, save, wait_for

pytestmark = pytest.mark.anyio  # async def tests run on asyncio (conftest's anyio_backend)

PALETTE_TITLES = ["Invoke endpoint", "Reload now", "Restart deployment", "Focus logs", "Toggle follow",
                  "Filter logs", "Clear logs", "Save logs", "Switch runtime", "Quit"]
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
        engine = Engine(spec.load(folder), tmp_path / "work", port=0,
                        **({"runtimes_from": FakeRuntime} if fake else {}))
        saved = tmp_path / "saved"
        saved.mkdir()
        return app_class(engine, request_text=(folder / "sample-request.json").read_text(),
                         log_capacity=log_capacity, save_folder=saved)

    return make


@contextlib.asynccontextmanager
async def running(app: DevtuiApp):
    """``app.run_test()``, and the engine stopped afterwards even when the test fails midway."""
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            yield pilot
    finally:
        if not app.engine.stopped:
            await app.engine.stop()


async def until(pilot: Pilot, condition: Callable[[], object], timeout: float = 30, message: str = ""):
    """Let the app run until ``condition()`` is truthy; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause()
    raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")


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
    app = make_app()

    async def scenario():
        async with running(app) as pilot:
            await ready(pilot)
            server = app.engine.runtime.process.pid
            await pilot.press("slash")
            filter_input = app.query_one("#log-filter", Input)
            assert app.focused is filter_input
            await pilot.press("q")
            await pilot.pause()
            assert filter_input.value == "q"
            assert app.is_running and not app.engine.stopped and pid_alive(server)
            await pilot.press("ctrl+c")
            await until(pilot, lambda: app.return_code is not None, message="the app to exit")
        return server

    server = run_async(scenario())
    assert app.engine.stopped
    assert not pid_alive(server)


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

    async with running(app) as pilot:
        await ready(pilot)
        panel = app.query_one("#traceback", Static)
        assert not panel.display
        score = app.engine.deployment.code_dir / "score.py"
        good = score.read_text()
        save(score, "def init(:\n")
        await until(pilot, lambda: panel.display, message="the traceback panel")
        text = str(panel.content)
        assert "Revision 2 failed" in text and "revision 1 is still serving" in text
        assert "SyntaxError" in text and 'score.py", line 1' in text
        assert app.status.revision == 1 and revision_shown(app) == "1"

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
        await pilot.press("backspace", "escape")  # escape leaves the editor for the Send button
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
        assert not app.logs.timestamps
        assert lines.lines[0].text.startswith(INFERENCE_SERVER)
        stamp = time.strftime("%H:%M:%S", time.localtime(1_700_000_000.25)) + ".250"
        await pilot.press("t")
        assert app.logs.timestamps
        await until(pilot, lambda: lines.lines and lines.lines[0].text.startswith(stamp))
        await pilot.press("t")
        assert not app.logs.timestamps
        await until(pilot, lambda: lines.lines and lines.lines[0].text.startswith(INFERENCE_SERVER))


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
    monkeypatch.setattr(runtimes, "available", lambda: ["process"])  # no container engine answers
    app = make_app(QuietApp)

    async with running(app) as pilot:
        notes = spy_notifications(app)
        await pilot.press("x")
        await until(pilot, lambda: notes, message="a notification")
        assert notes == [("warning", "Only the process runtime is available here.")]
        assert app.engine.runtime_name == "process"


async def test_x_switches_to_the_next_runtime_when_there_is_one(make_app, monkeypatch):
    # The switch itself is the engine's (tested there); here: x asks for it and the status follows.
    monkeypatch.setattr(runtimes, "available", lambda: ["process", "container"])
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
