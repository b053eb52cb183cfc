"""The app on prompt flow deployments (issue 10, the app): the Invoke tab prefilled from the
flow's inputs, the deployment panel's nodes, and the chat panel of a chat flow, which sends each
message with the history and draws the answer as it streams.

The chat is tested three ways: against the real scoring server on samples/flow-chat (two
messages, the second answered from the history), on the fake runtime for errors, and through
httpx's mock transport where the test sets the stream's pace. Streaming is shown without timing:
a transport that holds the answer after its first event until the test has seen that event drawn.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static, TabbedContent

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED
from devtui.tui.app import DevtuiApp
from devtui.tui.chat import ACCEPT, Conversation, EventStream, chunk_of
from devtui.tui.exchange import sample_request
from devtui.tui.widgets import ChatPanel, ChatTurn, DeploymentPanel
from fake_runtime import RUN_FAILED, FakeRuntime
from helpers import QuietApp, children_of, free_port, running, until, wait_for

pytestmark = pytest.mark.anyio

URI = "http://127.0.0.1:5001/score"


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    wait_for(lambda: children_of(os.getpid()) == [], timeout=15, message="every child process to end")


def screen_text(app: DevtuiApp) -> str:
    return "\n".join("".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips())


def footer(app: DevtuiApp) -> str:
    return screen_text(app).splitlines()[-1]


def chat(app: DevtuiApp) -> ChatPanel:
    return app.query_one("#chat", ChatPanel)


async def say(pilot: Pilot, message: str) -> ChatTurn:
    """Type ``message`` in the chat's box and press enter; the turn it started."""
    panel = chat(pilot.app)
    count = len(panel.turns)
    if pilot.app.focused is not panel.message:
        await pilot.press("m")
    await pilot.press(*message, "enter")
    return await until(pilot, lambda: len(panel.turns) > count and panel.turns[-1], message=f"{message!r} sent")


async def answered(pilot: Pilot, turn: ChatTurn) -> ChatTurn:
    await until(pilot, lambda: turn.finished, message=f"the answer to {turn.message!r}")
    return turn


class Held(httpx.AsyncByteStream):
    """A response body passed on as it comes, except that after its first event (up to the first
    blank line) nothing more is passed on until ``gate`` is set."""

    def __init__(self, stream: httpx.AsyncByteStream, gate: asyncio.Event) -> None:
        self.stream = stream
        self.gate = gate

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held = b""
        async for data in self.stream:
            if self.gate.is_set():
                yield data
                continue
            held += data
            first, blank, rest = held.partition(b"\n\n")
            if blank:
                yield first + blank
                await self.gate.wait()
                if rest:
                    yield rest
        if held and not self.gate.is_set():
            yield held

    async def aclose(self) -> None:
        await self.stream.aclose()


class GatedTransport(httpx.AsyncBaseTransport):
    """httpx's own transport to the real server, with each answer held after its first event
    until the test opens the gate."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.gate = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        response.stream = Held(response.stream, self.gate)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- without a screen -------------------------------------------------------------------------------


def test_events_are_read_across_reads_and_keyed_by_output():
    events = EventStream()
    assert events.feed('data: {"answer": "Quest') == []
    assert events.feed('ion"}\n\ndata: {"answer": " 1"}\n') == ['{"answer": "Question"}']
    assert events.feed("\n") == ['{"answer": " 1"}']
    assert events.feed('data: {"other": 2}\r\n\r\ndata: x\ndata: y') == ['{"other": 2}']
    assert events.end() == ["x\ny"]
    assert [chunk_of(data, "answer") for data in ('{"answer": "a"}', '{"other": 1}', '{"answer": [1]}', "raw")] == [
        "a", "", "[1]", "raw"]


def test_the_conversation_sends_the_history_in_prompt_flows_shape(sample):
    flow = spec.load(sample("flow-chat")).flow
    conversation = Conversation.of(flow)
    assert conversation.body("hi") == {"question": "hi", "chat_history": []}
    conversation.remember("hi", "Question 1")
    assert conversation.body("again") == {
        "question": "again", "chat_history": [{"inputs": {"question": "hi"}, "outputs": {"answer": "Question 1"}}]}
    conversation.clear()
    assert conversation.history == []


def test_the_request_is_the_sample_file_else_the_flows_sample(sample):
    folder = sample("flow-basic")
    deployment = spec.load(folder)
    assert sample_request(deployment) == (folder / "sample-request.json").read_text()
    (folder / "sample-request.json").unlink()
    assert json.loads(sample_request(deployment)) == deployment.flow.sample
    assert sample_request(deployment) == json.dumps(deployment.flow.sample, indent=2)
    sklearn = sample("sklearn-regression")
    (sklearn / "sample-request.json").unlink()
    assert sample_request(spec.load(sklearn)) is None  # then the swagger's example, once it serves


# -- the Invoke tab and the deployment panel --------------------------------------------------------


async def test_the_invoke_tab_is_prefilled_from_the_flows_inputs(sample, tmp_path):
    folder = sample("flow-basic")
    (folder / "sample-request.json").unlink()
    deployment = spec.load(folder)
    app = QuietApp(Engine(deployment, tmp_path / "work", Launch(port=0)), save_folder=tmp_path)

    async with running(app) as pilot:
        await pilot.press("i")
        assert json.loads(app.invoke_panel.editor.text) == deployment.flow.sample
        assert str(app.query_one("#request-problem", Static).content) == "valid JSON"


async def test_the_deployment_panel_shows_the_flow_and_its_nodes(sample, tmp_path):
    deployment = spec.load(sample("flow-basic"))
    app = QuietApp(Engine(deployment, tmp_path / "work", Launch(port=0)), save_folder=tmp_path)

    async with running(app, size=(160, 45)) as pilot:
        panel = app.query_one("#deployment", DeploymentPanel)
        await until(pilot, lambda: "nodes" in screen_text(app), message="the panel drawn")
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(panel.content)
        text = console.export_text()
        assert "flow.dag.yaml (dag)" in text
        for node in deployment.flow.nodes:
            assert f"{node.name} ({node.kind})" in text
        for name in deployment.flow.outputs:
            assert name in text
        assert "script" not in text  # a flow has no scoring script


async def test_the_deployment_panel_lists_each_include_and_where_it_comes_from(tmp_path):
    """Issue 24: a flow's additional_includes, each with its source."""
    from test_flow_includes import two_flows

    root = two_flows(tmp_path / "repo")
    app = QuietApp(Engine(spec.load(root / "deployment.yml"), tmp_path / "work", Launch(port=0)), save_folder=tmp_path)

    async with running(app, size=(160, 45)) as pilot:
        panel = app.query_one("#deployment", DeploymentPanel)
        await until(pilot, lambda: "includes" in screen_text(app), message="the panel drawn")
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(panel.content)
        text = "".join(console.export_text().split())  # paths wrap after a slash
        shared = root / "web-classification"
        assert f"includesconvert_to_dict.py<-{shared / 'convert_to_dict.py'}labels<-{shared / 'labels'}" in text, text
        assert f"{shared / 'convert_to_dict.py'}(shared){shared / 'labels'}(shared)" in text, text


# -- the chat panel -----------------------------------------------------------------------------------


async def test_the_chat_tab_and_its_keys_are_there_only_for_a_chat_flow(sample, tmp_path):
    plain = QuietApp(Engine(spec.load(sample("flow-basic")), tmp_path / "plain", Launch(port=0)), save_folder=tmp_path)
    async with running(plain) as pilot:
        assert not plain.query("#chat") and not plain.query("#chat-tab")
        titles = [command.title for command in plain.get_system_commands(plain.screen)]
        assert "Focus chat" not in titles and "Clear chat history" not in titles
        await pilot.press("m")  # nothing happens, nothing breaks
        assert plain.query_one("#tabs", TabbedContent).active == "logs-tab"
        await until(pilot, lambda: "Invoke tab" in footer(plain), message="the footer")
        assert "Chat" not in footer(plain)

    app = QuietApp(Engine(spec.load(sample("flow-chat")), tmp_path / "chat", Launch(port=0)), save_folder=tmp_path)
    async with running(app) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Focus chat" in titles and "Clear chat history" in titles
        await until(pilot, lambda: "m Chat" in footer(app), message="the chat's key in the footer")
        await pilot.press("m")
        assert app.query_one("#tabs", TabbedContent).active == "chat-tab"
        assert app.focused is chat(app).message
        await until(pilot, lambda: "^l Clear chat" in footer(app), message="the chat's own key, while it has focus")
        await pilot.press("escape")
        assert app.query_one("#tabs", TabbedContent).active == "logs-tab"


async def test_a_chat_flow_streams_answers_that_follow_the_history(sample, tmp_path):
    """The real scoring server on samples/flow-chat: the first answer is drawn while its stream is
    still open; the second message carries the first turn, and the flow's answer says so."""
    folder = sample("flow-chat")
    (folder / "sample-request.json").unlink()  # the Invoke tab then starts from the flow's sample
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0))
    app = DevtuiApp(engine, log_capacity=1000, save_folder=tmp_path)

    async with running(app) as pilot:
        await until(pilot, lambda: engine.state == SUCCEEDED and engine.serving_revision, message="serving")
        assert json.loads(app.invoke_panel.editor.text) == engine.deployment.flow.sample
        transport = GatedTransport()
        chat(app).transport = transport

        first = await say(pilot, "What is devtui?")
        # The server has sent its first chunk and the rest is held: the panel must draw "Question"
        # with the stream open.
        await until(pilot, lambda: "Question▍" in screen_text(app), message="the first chunk on screen")
        assert not first.finished and first.answer == "Question"
        assert chat(app).busy
        transport.gate.set()
        await answered(pilot, first)
        assert first.answer == 'Question 1: "What is devtui?". Nothing asked before.' and not first.why

        second = await answered(pilot, await say(pilot, "And how does it stream?"))
        assert second.answer == 'Question 2: "And how does it stream?". Before that you asked "What is devtui?".'
        await until(pilot, lambda: second.answer in screen_text(app).replace("\n", " ") or
                    "Before that you asked" in screen_text(app), message="the second answer on screen")
        assert chat(app).conversation.history == [
            {"inputs": {"question": "What is devtui?"}, "outputs": {"answer": first.answer}},
            {"inputs": {"question": "And how does it stream?"}, "outputs": {"answer": second.answer}}]

        await pilot.press("ctrl+l")
        assert chat(app).conversation.history == [] and chat(app).turns == []
        again = await answered(pilot, await say(pilot, "Anyone there?"))
        assert again.answer == 'Question 1: "Anyone there?". Nothing asked before.'


def fake_chat_app(sample, tmp_path) -> DevtuiApp:
    engine = Engine(spec.load(sample("flow-chat")), tmp_path / "work", Launch(port=0), runtimes_from=FakeRuntime)
    return DevtuiApp(engine, log_capacity=1000, save_folder=tmp_path)


async def test_chat_errors_are_shown_in_the_panel_and_leave_the_history_alone(sample, tmp_path):
    app = fake_chat_app(sample, tmp_path)

    async with running(app) as pilot:
        await until(pilot, lambda: app.engine.state == SUCCEEDED and app.engine.serving_revision, message="serving")
        runtime = app.engine.runtime
        assert isinstance(runtime, FakeRuntime)
        panel = chat(app)

        failed = await answered(pilot, await say(pilot, "fail please"))  # the fake's run() raises: 500
        assert failed.why == f"500 Internal Server Error: {RUN_FAILED}"
        assert "500 Internal Server Error" in screen_text(app)
        assert runtime.seen[-1]["headers"]["accept"] == ACCEPT
        assert json.loads(runtime.seen[-1]["body"]) == {"question": "fail please", "chat_history": []}

        runtime.serving, runtime.why = None, "revision 2 failed in init(); nothing is serving"
        unavailable = await answered(pilot, await say(pilot, "hello"))
        assert unavailable.why == "503 Service Unavailable: revision 2 failed in init(); nothing is serving"

        panel.scoring_uri = lambda: f"http://127.0.0.1:{free_port()}/score"  # nothing listens: a restart
        refused = await answered(pilot, await say(pilot, "hello?"))
        assert refused.why.startswith("cannot connect to ") and "send again once it serves" in refused.why

        assert panel.conversation.history == []
        assert "0 turns in the history" in str(app.query_one("#chat-state", Static).content)
        assert app.is_running and not app.engine.stopped

        # ctrl+j sends from anywhere; typing in the chat, it sends the message, not the Invoke tab's request.
        panel.scoring_uri = lambda: app.engine.scoring_uri
        runtime.serving, runtime.why = app.engine.serving_revision, ""
        assert app.focused is panel.message
        await pilot.press(*"via ctrl+j", "ctrl+j")
        await answered(pilot, await until(pilot, lambda: panel.turns[-1].message == "via ctrl+j" and
                                          panel.turns[-1], message="the message sent by ctrl+j"))
        assert app.query_one("#tabs", TabbedContent).active == "chat-tab"
        assert json.loads(runtime.seen[-1]["body"]) == {"question": "via ctrl+j", "chat_history": []}


async def test_one_message_at_a_time_and_each_read_drawn_at_once(sample, tmp_path):
    """Through httpx's mock transport, with the stream paced by the test: every read is drawn
    before the next arrives; a message sent while an answer streams is refused (the next one
    carries that answer); a JSON (not streamed) answer is shown whole."""
    app = QuietApp(Engine(spec.load(sample("flow-chat")), tmp_path / "work", Launch(port=0)), save_folder=tmp_path)
    reads: asyncio.Queue[bytes | None] = asyncio.Queue()
    bodies = []

    async def events() -> AsyncIterator[bytes]:
        while (data := await reads.get()) is not None:
            yield data

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if len(bodies) == 2:
            return httpx.Response(200, json={"answer": "whole"})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events())

    async with running(app) as pilot:
        app.engine.revisions.scoring_uri = URI
        panel = chat(app)
        panel.transport = httpx.MockTransport(answer)
        notes = []
        app.notify = lambda message, *args, **kwargs: notes.append(str(message))
        turn = await say(pilot, "one")
        for read, shown in ((b'data: {"answer": "He', "▍"), (b'llo"}\n\ndata: {"answer": ",', "Hello▍"),
                            (b' world"}\n\n', "Hello, world▍")):
            await reads.put(read)
            await until(pilot, lambda: str(turn.query_one(".chat-answer", Static).content) == shown,
                        message=f"{shown!r} drawn")
        assert not panel.send("two")  # refused while "one" is answered
        assert notes and notes[-1].startswith("Wait for the answer")
        await reads.put(None)
        await answered(pilot, turn)
        assert turn.answer == "Hello, world" and str(turn.query_one(".chat-answer", Static).content) == "Hello, world"

        whole = await answered(pilot, await say(pilot, "two"))
        assert whole.answer == "whole"
        assert bodies[1] == {"question": "two", "chat_history": [
            {"inputs": {"question": "one"}, "outputs": {"answer": "Hello, world"}}]}


async def test_an_answer_that_breaks_off_keeps_what_came_and_stays_out_of_the_history(sample, tmp_path):
    app = QuietApp(Engine(spec.load(sample("flow-chat")), tmp_path / "work", Launch(port=0)), save_folder=tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b'data: {"answer": "Half an"}\n\n'
        raise httpx.ReadError("connection reset by peer")

    async with running(app) as pilot:
        app.engine.revisions.scoring_uri = URI
        panel = chat(app)
        panel.transport = httpx.MockTransport(lambda request: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=broken()))
        turn = await answered(pilot, await say(pilot, "hello"))
        assert turn.answer == "Half an"
        # In words, not the HTTP client's exception (issue 20, item 4).
        assert turn.why.startswith("the answer broke off: the server closed the connection") and "Error" not in turn.why
        await until(pilot, lambda: "Half an" in screen_text(app) and "the answer broke off" in screen_text(app),
                    message="the partial answer and why it ended, on screen")
        assert panel.conversation.history == []
