"""The app you can trust (issue 20): quitting always quits and says what it waits for, focus never
lands on a hidden field, errors are the server's reason and the user's exception line, and every
answer names the revision that served it.

The engine runs on the fake runtime (tests/fake_runtime.py) where the engine is not the thing
under test, extended here where a test needs a server that behaves otherwise (a stop that waits
for the requests in flight, as the real one does); real servers where the answer is.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import httpx
import pytest
from textual.widgets import Static

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED
from devtui.tui.app import DevtuiApp
from fake_runtime import RUN_FAILED, FakeRuntime
from helpers import children_of, run_async, running, save, until, wait_for
from inference_server import protocol

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    wait_for(lambda: children_of(os.getpid()) == [], timeout=15, message="every child process to end")


class StopWaitsRuntime(FakeRuntime):
    """The fake server, with a stop that waits for the requests in flight, as the real server's
    graceful stop does; requests are held (a breakpoint, a slow run()) until ``kill`` ends them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.killed = asyncio.Event()

    async def stop(self) -> None:
        self.calls.append("stop asked")
        if self.in_flight:
            await self.killed.wait()
        await super().stop()

    def kill(self) -> None:
        self.calls.append("kill")
        self.killed.set()
        for writer in list(self._writers):
            writer.close()


@pytest.fixture
def make_app(sample, tmp_path) -> Callable[..., DevtuiApp]:
    def make(runtime: type[FakeRuntime] = FakeRuntime, name: str = "sklearn-regression") -> DevtuiApp:
        folder = sample(name)
        engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0), runtimes_from=runtime)
        saved = tmp_path / "saved"
        saved.mkdir(exist_ok=True)
        request = folder / "sample-request.json"
        return DevtuiApp(engine, request_text=request.read_text() if request.is_file() else None,
                         save_folder=saved)

    return make


def spy_notifications(app: DevtuiApp) -> list[str]:
    seen: list[str] = []
    notify = app.notify

    def recording(message, *args, **kwargs):
        seen.append(str(message))
        return notify(message, *args, **kwargs)

    app.notify = recording
    return seen


def status_text(app: DevtuiApp) -> str:
    return str(app.query_one("#status-text", Static).content)


async def ready(pilot) -> DevtuiApp:
    app = pilot.app
    await until(pilot, lambda: app.engine.state == SUCCEEDED and app.status.revision == 1,
                message="the deployment to be Succeeded")
    return app


# -- item 2: quit always quits ---------------------------------------------------------------------


def test_ctrl_c_with_a_request_held_at_a_breakpoint_says_so_and_a_second_stops_at_once(make_app):
    app = make_app(StopWaitsRuntime)
    runtime: list[StopWaitsRuntime] = []

    async def scenario():
        async with running(app) as pilot:
            await ready(pilot)
            notes = spy_notifications(app)
            fake = app.engine.runtime
            runtime.append(fake)
            fake.hold = True
            await pilot.press("ctrl+j")
            await until(pilot, lambda: fake.in_flight == 1 and app.requests_in_flight() == 1,
                        message="the request in flight")
            # The debugger's stop reaches the app as an engine event, as with a real debugpy.
            app.engine.revisions.server_event(protocol.Debugger(
                state=protocol.DebuggerState.STOPPED, host="127.0.0.1", port=5678, detail="at score.py:30 in run()"))
            await until(pilot, lambda: "stopped at score.py:30" in status_text(app), message="the stop shown")

            await pilot.press("ctrl+c")
            await until(pilot, lambda: any("1 request held at score.py:30 in run() — ctrl+c again to stop now" in n
                                           for n in notes), message="what quitting waits for")
            await until(pilot, lambda: "waiting up to 10 s for 1 request held at score.py:30" in status_text(app),
                        message="the wait and its limit in the status")
            assert app.is_running and app.return_code is None and "kill" not in fake.calls

            await pilot.press("ctrl+c")
            await until(pilot, lambda: app.return_code is not None, timeout=10, message="the app to exit at once")

    run_async(scenario(), timeout=60)
    assert "kill" in runtime[0].calls


def test_q_with_a_slow_request_in_flight_says_what_it_waits_for_and_keys_still_work(make_app):
    app = make_app(StopWaitsRuntime)

    async def scenario():
        async with running(app) as pilot:
            await ready(pilot)
            fake = app.engine.runtime
            fake.hold = True
            await pilot.press("ctrl+j")
            await until(pilot, lambda: fake.in_flight == 1, message="the request in flight")
            await pilot.press("escape", "q")
            await until(pilot, lambda: "waiting up to 10 s for 1 request in flight" in status_text(app),
                        message="what the stop waits for, and how long at most")
            await pilot.press("q")  # the app still takes keys while it stops: a second press stops at once
            await until(pilot, lambda: app.return_code is not None, timeout=10, message="the app to exit")

    run_async(scenario(), timeout=60)
    assert app.engine.stopped


# -- item 3: focus never lands on a hidden widget --------------------------------------------------


def shown(widget) -> bool:
    """Displayed, with every ancestor: what the user can see (and so knows takes the keys)."""
    return all(node.display and node.visible for node in widget.ancestors_with_self if hasattr(node, "display"))


async def test_i_with_a_file_upload_focuses_the_file_field_and_tab_stays_on_visible_widgets(make_app):
    app = make_app()

    async with running(app) as pilot:
        await ready(pilot)
        panel = app.invoke_panel
        await pilot.press("i")
        panel.query_one("#body-kind").value = "file"
        await pilot.press("escape")
        await until(pilot, lambda: not panel.editor.display or not shown(panel.editor), message="the editor hidden")
        await pilot.press("i")
        await until(pilot, lambda: app.focused is not None and app.focused.id == "request-file",
                    message="the file field focused")
        await pilot.press(*"data.csv")
        assert panel.query_one("#request-file").value == "data.csv"
        assert "x" not in panel.editor.text[:1]
        reloads = list(app.engine.runtime.calls)
        for _ in range(12):  # round the whole focus chain: never a hidden widget, never the Logs tab's
            await pilot.press("tab")
            await pilot.pause()
            assert shown(app.focused), f"{app.focused!r} has the focus and cannot be seen"
        await pilot.press("shift+tab")
        assert shown(app.focused)
        assert app.engine.runtime.calls == reloads and app.is_running


async def test_a_tab_switch_while_typing_moves_the_focus_to_a_field_that_can_be_seen(make_app):
    app = make_app()

    async with running(app) as pilot:
        await ready(pilot)
        await pilot.press("slash", "x")  # typing in the log's filter
        assert app.focused.id == "log-filter"
        await pilot.press("ctrl+j")  # shows the Invoke tab: the filter is hidden now
        await until(pilot, lambda: len(app.invoke_panel.history) == 1, message="the answer")
        await until(pilot, lambda: app.focused is not None and shown(app.focused), message="a visible focus")
        calls = list(app.engine.runtime.calls)
        await pilot.press("r", "q")  # typed on: letters, never the reload and quit keys
        await pilot.pause()
        assert app.is_running and app.engine.runtime.calls == calls


# -- item 4: errors are the server's reason and the user's exception line ----------------------------


def screen_text(app: DevtuiApp) -> str:
    return "\n".join("".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips())


def drawn(app: DevtuiApp, widget) -> str:
    """What the screen shows of ``widget``, its rows joined by spaces."""
    region = widget.region
    rows = screen_text(app).splitlines()[region.y:region.y + region.height]
    return " ".join(" ".join(row[region.x:region.x + region.width].split()) for row in rows)


def response_status(app: DevtuiApp) -> str:
    return str(app.query_one("#response-status", Static).content)


async def test_a_500_shows_the_exception_line_and_the_whole_reason_at_80x24(make_app):
    app = make_app()

    async with running(app, size=(80, 24)) as pilot:
        await ready(pilot)
        app.invoke_panel.set_request('{"fail": true}')
        await pilot.press("ctrl+j")
        await until(pilot, lambda: "ValueError: fake failure in run()" in response_status(app),
                    message="the user's exception line in the answer")
        assert f"server: {RUN_FAILED}" in response_status(app)
        await pilot.pause()
        shown = drawn(app, app.query_one("#response-status"))
        assert "ValueError: fake failure in run()" in shown
        assert f"server: {RUN_FAILED}" in shown, shown  # the reason whole, not cut
        assert app.invoke_panel.history[-1].exception == "ValueError: fake failure in run()"


def test_a_connection_closed_before_any_answer_is_sent_again_only_when_safe():
    from devtui.tui.exchange import Request, Sender

    tries: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        tries.append(request.method)
        if len(tries) == 1:
            raise failure(request)
        return httpx.Response(200, json={"ok": True}, headers={"x-devtui-revision": "2"})

    def send(request: Request):
        tries.clear()
        sender = Sender()
        sender.client = httpx.Client(transport=httpx.MockTransport(server))
        try:
            return run_async(sender.send("http://127.0.0.1:1/score", request, 5))
        finally:
            sender.close()

    failure = lambda request: httpx.ReadError("[Errno 104] Connection reset by peer", request=request)  # noqa: E731
    answered = send(Request("GET", query="a=1"))  # idempotent: once more, on a new connection
    assert answered.status == 200 and tries == ["GET", "GET"]
    lost = send(Request("POST", body="{}"))  # it was sent and may have run: not again, and said plainly
    assert lost.status is None and tries == ["POST"]
    assert "closed the connection before answering" in lost.why and "may have run" in lost.why
    assert "ReadError" not in lost.why and "Errno" not in lost.why

    failure = lambda request: httpx.ConnectError("[Errno 111] Connection refused", request=request)  # noqa: E731
    answered = send(Request("POST", body="{}"))  # never sent: safe to send
    assert answered.status == 200 and tries == ["POST", "POST"]


REPLY_RAISES = '        yield word if index == 0 else " " + word\n        if index == 2:\n' \
               '            raise RuntimeError("reply node exploded on purpose")'


async def test_a_flow_node_that_raises_shows_its_exception_in_the_chat_and_the_invoke_answer(sample, tmp_path):
    folder = sample("flow-chat")
    reply = folder / "flow" / "reply.py"
    reply.write_text(reply.read_text().replace('        yield word if index == 0 else " " + word', REPLY_RAISES))
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0)), save_folder=tmp_path)
    line = "RuntimeError: reply node exploded on purpose"

    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.state == SUCCEEDED, timeout=90, message="serving")
        await pilot.press("m", *"hi", "enter")
        panel = app.query_one("#chat")
        turn = await until(pilot, lambda: panel.turns and panel.turns[-1].finished and panel.turns[-1],
                           message="the answer")
        await until(pilot, lambda: turn.exception == line, message="the node's exception from the log")
        await pilot.pause()
        assert line in screen_text(app) and "the answer broke off" in turn.why
        assert "RemoteProtocolError" not in screen_text(app) and "peer closed" not in screen_text(app)

        # g from the Chat tab: the traceback in the log.
        panel.query_one("#chat-send").focus()
        await pilot.press("g")
        await until(pilot, lambda: app.logs.marked is not None, message="the traceback found")
        assert app.query_one("#tabs").active == "logs-tab" and "Traceback" in app.logs.marked.text

        # The Invoke tab: the flow's 500 with its reason and the exception line.
        await pilot.press("ctrl+j")
        await until(pilot, lambda: line in response_status(app), message="the exception line in the answer")
        assert "500 Internal Server Error" in response_status(app)
        assert "server: reply node exploded on purpose" in response_status(app)


# -- item 1: every answer names the revision that served it ---------------------------------------


async def test_answers_and_history_rows_name_their_revision_and_an_old_one_says_it_is_older(make_app, sample,
                                                                                            tmp_path):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0)),
                    request_text=(folder / "sample-request.json").read_text(), save_folder=tmp_path)

    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, timeout=60, message="revision 1 serving")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 1, message="the first answer")
        assert app.invoke_panel.history[0].revision == 1
        assert "· rev 1" in response_status(app) and "older" not in response_status(app)

        save(score, score.read_text().replace("def run(raw_data):", "def run(raw_data):\n    logger.info('edited')"))
        await until(pilot, lambda: app.engine.serving_revision == 2, timeout=60, message="revision 2 serving")
        await until(pilot, lambda: "rev 1 · older than serving rev 2" in response_status(app),
                    message="the answer on screen marked as older")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 2, message="the second answer")
        assert app.invoke_panel.history[1].revision == 2
        assert "· rev 2" in response_status(app) and "older" not in response_status(app)
        rows = drawn(app, app.query_one("#history"))
        assert "rev 2" in rows and "rev 1" in rows

        # The old answer, opened again from the history.
        history = app.query_one("#history")
        history.focus()
        history.index = 1
        await pilot.press("enter")
        await until(pilot, lambda: app.invoke_panel.shown is app.invoke_panel.history[0], message="the old answer")
        assert "rev 1 · older than serving rev 2" in drawn(app, app.query_one("#response-status"))


async def test_a_chat_turn_names_the_revision_that_answered_it_after_a_flow_save(sample, tmp_path):
    folder = sample("flow-chat")
    reply = folder / "flow" / "reply.py"
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0)), save_folder=tmp_path)

    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, timeout=90, message="revision 1 serving")
        panel = app.query_one("#chat")
        await pilot.press("m", *"hi", "enter")
        first = await until(pilot, lambda: panel.turns and panel.turns[-1].finished and panel.turns[-1],
                            message="the first answer")
        assert first.revision == 1 and not first.why

        save(reply, reply.read_text().replace("Nothing asked before.", "Nothing asked before, says rev 2."))
        await until(pilot, lambda: app.engine.serving_revision == 2, timeout=60, message="revision 2 serving")
        await pilot.press(*"again", "enter")
        second = await until(pilot, lambda: len(panel.turns) == 2 and panel.turns[-1].finished and panel.turns[-1],
                             message="the second answer")
        assert second.revision == 2 and not second.why
        transcript = drawn(app, app.query_one("#chat-transcript"))
        assert "rev 1" in transcript and "rev 2" in transcript


async def test_ctrl_j_right_after_ctrl_r_is_answered_or_explained_never_a_client_internal(sample, tmp_path):
    """The restart's server goes away under a kept-alive connection: the request goes on a new
    one (to whatever listens, which says why nothing serves) or, refused, is said in words. Where
    the old server closes the connection just as the request arrives on it, that is said too: the
    request may have run, so it is not sent again."""
    folder = sample("sklearn-regression")
    app = DevtuiApp(Engine(spec.load(folder), tmp_path / "work", Launch(port=0)),
                    request_text=(folder / "sample-request.json").read_text(), save_folder=tmp_path)

    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, timeout=60, message="revision 1 serving")
        await pilot.press("ctrl+j")
        await until(pilot, lambda: len(app.invoke_panel.history) == 1, message="a kept-alive connection")
        await pilot.press("ctrl+r", "ctrl+j")
        answer = await until(pilot, lambda: len(app.invoke_panel.history) == 2 and app.invoke_panel.history[-1],
                             message="the answer sent during the restart")
        shown = response_status(app)
        for internal in ("ReadError", "RemoteProtocolError", "ConnectError", "Errno", "peer closed"):
            assert internal not in shown, shown
        assert answer.status in (200, 503) or "cannot connect" in answer.why \
            or "closed the connection before answering" in answer.why, shown
        if answer.status == 503:
            assert "server: " in shown, shown  # why nothing serves


def test_ctrl_c_quits_from_the_help_screen_too(make_app):
    app = make_app()

    async def scenario():
        async with running(app) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")
            await until(pilot, lambda: app.screen.id != "_default", message="the help")
            await pilot.press("ctrl+c")
            await until(pilot, lambda: app.return_code is not None, timeout=10, message="the app to exit")

    run_async(scenario(), timeout=60)
    assert app.engine.stopped
