"""The run gate (issue 19, item 3): a patch applies only while no run() is executing.

First the gate on its own (inference_server/run_gate.py), on a real event loop; then through a
real ScoringApp, with run() on its pool threads (WORKER_COUNT 3) and inline (WORKER_COUNT 1):
requests go through the app's ASGI interface, as uvicorn hands them over.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading

import httpx
import pytest

from helpers import HangingUpClient, async_wait_for
from inference_server.run_gate import RunGate

pytestmark = pytest.mark.anyio


def _never():
    raise AssertionError("the hold timed out")


# -- the gate on its own -----------------------------------------------------------------------


async def test_a_hold_waits_for_the_calls_executing_and_new_calls_wait_for_it():
    gate, events = RunGate(), []
    await gate.enter()  # a call executing when the hold comes
    gate.hold(lambda: events.append("then"), 30, _never)
    assert gate.held and events == []

    async def later_call():
        async with gate.running():
            events.append("later call")

    later = asyncio.ensure_future(later_call())
    await async_wait_for(lambda: gate.waiting == 1, message="the later call to wait at the gate")
    assert events == []
    gate.leave()  # the executing call is back on the loop
    await later
    assert events == ["then", "later call"] and not gate.held


async def test_an_idle_gate_applies_at_once():
    gate, events = RunGate(), []
    gate.hold(lambda: events.append("then"), 30, _never)
    assert events == ["then"] and not gate.held  # inside hold(): nothing was executing
    async with gate.running():
        assert gate.executing == 1
    assert gate.executing == 0


async def test_calls_that_outlast_the_timeout_give_the_hold_up_and_open_the_gate():
    gate, events = RunGate(), []
    await gate.enter()
    gate.hold(lambda: events.append("then"), 0.05, lambda: events.append("timed out"))
    async with gate.running():  # waits until the hold is given up, however long that takes
        events.append("later call")
    assert events == ["timed out", "later call"]
    gate.leave()
    await asyncio.sleep(0)  # a then() left over would be called on this turn of the loop
    assert events == ["timed out", "later call"]


async def test_holds_queue_up_and_an_awaitable_then_keeps_the_gate_held_until_done():
    gate, events = RunGate(), []
    done = asyncio.Event()

    async def patch():
        events.append("first starts")
        await done.wait()
        events.append("first ends")

    await gate.enter()
    gate.hold(patch, 30, _never)
    gate.hold(lambda: events.append("second"), 30, _never)
    gate.leave()
    await async_wait_for(lambda: events == ["first starts"], message="the first patch to start")
    waiting = asyncio.ensure_future(gate.enter())
    await async_wait_for(lambda: gate.waiting == 1, message="a new call to wait for the patch")
    done.set()
    await waiting
    assert events == ["first starts", "first ends", "second"]
    gate.leave()


async def test_a_failing_callback_is_reported_to_the_loop_and_the_gate_opens():
    gate, reported = RunGate(), []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context["exception"]))
    try:
        await gate.enter()
        gate.hold(lambda: 1 / 0, 30, _never)
        gate.leave()
        async with gate.running():
            pass
        assert [type(ex) for ex in reported] == [ZeroDivisionError]
    finally:
        loop.set_exception_handler(None)


# -- through a real ScoringApp -------------------------------------------------------------------


class Script:
    """A run() that records when each call starts and returns, and holds until released."""

    def __init__(self):
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.release = {name: threading.Event() for name in ("a", "b", "c")}

    def run(self, raw):
        name = json.loads(raw)["name"]
        with self.lock:
            self.events.append(f"{name} starts")
        self.release[name].wait(30)
        with self.lock:
            self.events.append(f"{name} returns")
        return {"name": name}


def _app(script: Script, max_concurrent: int):
    from inference_server.app import Limits, create_app
    from inference_server.swagger import Swagger
    from inference_server.user_script import STRING, UserScript

    parameters = list(inspect.signature(script.run).parameters.values())
    loaded = UserScript("score.py", None, lambda: None, script.run, STRING, parameters, False)
    app = create_app(loaded, Swagger(script.run, []), Limits(max_concurrent))
    return app, app.state.run_gate


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring", timeout=30)


async def test_a_held_gate_lets_pooled_runs_finish_before_the_patch_and_holds_new_ones():
    script = Script()
    app, gate = _app(script, max_concurrent=3)
    async with _client(app) as client:
        def score(name: str):
            return asyncio.ensure_future(client.post("/score", content=json.dumps({"name": name})))

        first, second = score("a"), score("b")
        await async_wait_for(lambda: len(script.events) == 2, message="two run() calls to start")
        gate.hold(lambda: script.events.append("patch"), 30, _never)
        third = score("c")
        await async_wait_for(lambda: gate.waiting == 1 or "c starts" in script.events,
                             message="the third request to reach run() or wait at the gate")
        assert "c starts" not in script.events, "a run() started while a patch was pending"
        assert "patch" not in script.events, "the patch applied while run() calls were executing"
        script.release["a"].set()
        script.release["b"].set()
        script.release["c"].set()
        answers = [await first, await second, await third]
    assert [answer.json() for answer in answers] == [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert script.events.index("patch") > max(script.events.index("a returns"), script.events.index("b returns"))
    assert script.events.index("c starts") > script.events.index("patch")


async def test_an_inline_run_waits_at_a_held_gate_too():
    script = Script()
    app, gate = _app(script, max_concurrent=1)
    patched = asyncio.Event()

    async def patch():
        await patched.wait()

    script.release["c"].set()
    async with _client(app) as client:
        gate.hold(patch, 30, _never)
        answer = asyncio.ensure_future(client.post("/score", content=json.dumps({"name": "c"})))
        await async_wait_for(lambda: gate.waiting == 1 or script.events,
                             message="the request to reach run() or wait at the gate")
        assert script.events == [], "an inline run() started while a patch was being applied"
        patched.set()
        assert (await answer).json() == {"name": "c"}


async def test_a_streamed_answer_counts_as_executing_until_its_client_leaves():
    """run() returned a Response whose body is a generator: the generator is the script's code
    too, so a patch waits until the stream ends (here: its client hangs up, which closes it)."""
    from werkzeug.wrappers import Response as WerkzeugResponse

    from inference_server.app import serving

    events: list[str] = []

    def words():
        try:
            index = 0
            while True:
                index += 1
                yield f"word {index} "
        finally:
            events.append("generator closed")

    class Streaming(Script):
        def run(self, raw):
            return WerkzeugResponse(words(), 200, mimetype="text/plain")

    app, gate = _app(Streaming(), max_concurrent=1)
    client = HangingUpClient("POST", b"{}", [(b"content-type", b"application/json")])
    sent = client.sent
    answer = client.request(serving(app))
    await async_wait_for(lambda: len(sent) > 3, message="the stream to start")
    gate.hold(lambda: events.append("patch"), 30, _never)
    streamed = len(sent)
    await async_wait_for(lambda: len(sent) > streamed + 3, message="the stream to go on")
    assert events == [], "the patch applied while a streamed answer's generator was running"
    client.hang_up()
    await answer
    await async_wait_for(lambda: "patch" in events, message="the patch once the stream ended")
    assert events == ["generator closed", "patch"]
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"word 1 "
