"""The engine with the process runtime: start, hot reload by the update ladder, stop.

Each test runs a real scoring server as a child process and edits real files; waits poll the
engine's state or the endpoint's answers with a deadline.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import FAILED, INFERENCE_SERVER, SUCCEEDED, Logs, ReloadFinished, ReloadStarted
from helpers import ONE_ROW_REQUEST, async_wait_for, children_of, run_async, save, wait_for

pytestmark = pytest.mark.anyio  # async def tests run on asyncio (conftest's anyio_backend)


class Run:
    """An engine plus everything it emitted."""

    def __init__(self, folder: Path, tmp: Path, **kwargs):
        self.deployment = spec.load(folder)
        self.engine = Engine(self.deployment, tmp / "work", Launch(port=0, **kwargs))
        self.events: list = []
        self.engine.subscribe(self.events.append)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def log_text(self, source: str | None = None) -> str:
        return "\n".join(r.text for e in self.of(Logs) for r in e.records if source in (None, r.source))

    async def post(self, body: str = ONE_ROW_REQUEST) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(self.engine.scoring_uri, content=body, timeout=10)

    async def answers(self, predicate, timeout: float = 30) -> httpx.Response:
        """Poll the endpoint until an answer satisfies ``predicate``."""
        last = None

        async def check():
            nonlocal last
            try:
                last = await self.post()
            except httpx.TransportError:  # a restart (rung 3) has a moment with no server
                return False
            if last.status_code == 503:  # and a moment where it says that nothing serves
                return False
            return predicate(last)

        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if await check():
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching answer within {timeout}s; last: {last and last.text}\n{self.log_text()}")


SCORE = '''
import json, os
def init():
    global model_file
    model_file = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl")
def run(raw):
    return {"marker": THE_MARKER, "model_bytes": os.path.getsize(model_file), "env": os.environ.get("MARKER_ENV"), "pid": os.getpid(), "ppid": os.getppid()}
'''


def script(marker: str) -> str:
    return SCORE.replace("THE_MARKER", repr(marker))


def test_start_invoke_and_stop_leaves_nothing(sample, tmp_path):
    folder = sample("sklearn-regression")

    async def scenario():
        r = Run(folder, tmp_path, watch=False)
        assert await r.engine.start() == SUCCEEDED
        answer = await r.post()
        assert answer.status_code == 200
        assert len(answer.json()) == 1 and isinstance(answer.json()[0], float)
        staged = Path(r.engine.runtime.model_dir) / "model" / "sklearn_regression_model.pkl"
        assert staged.read_bytes() == (folder / "model" / "sklearn_regression_model.pkl").read_bytes()
        assert "sklearn_regression_model.pkl" in r.log_text("storage-initializer")
        assert "Users's init has completed successfully" in r.log_text("inference-server")
        server = r.engine.runtime.process.pid
        await r.engine.stop()
        assert r.engine.runtime.process.returncode is not None
        assert children_of(os.getpid()) == [] or server not in children_of(os.getpid())

    run_async(scenario())
    assert children_of(os.getpid()) == []


async def test_code_save_swaps_workers_and_a_broken_save_keeps_the_old_revision(sample, tmp_path):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    save(score, script("one"))

    r = Run(folder, tmp_path)
    try:
        assert await r.engine.start() == SUCCEEDED
        assert (await r.post()).json()["marker"] == "one"

        save(score, script("two"))
        await r.answers(lambda a: a.json()["marker"] == "two")
        finished = await async_wait_for(lambda: [e for e in r.of(ReloadFinished) if e.revision == 2])
        assert finished[0].ok and finished[0].duration_ms > 0
        assert [e.reason for e in r.of(ReloadStarted)] == ["code"]

        save(score, "def init(:\n")  # a syntax error
        failed = await async_wait_for(lambda: [e for e in r.of(ReloadFinished) if not e.ok])
        assert failed[0].serving_revision == 2 and "SyntaxError" in failed[0].traceback
        assert (await r.post()).json()["marker"] == "two"
        assert r.engine.state == SUCCEEDED

        save(score, script("three").replace("def init():", "def init():\n    raise RuntimeError('no model')"))
        failed = await async_wait_for(lambda: [e for e in r.of(ReloadFinished) if not e.ok][1:])
        assert failed[0].stage == "init" and "RuntimeError: no model" in failed[0].traceback
        assert (await r.post()).json()["marker"] == "two"

        save(score, script("four"))
        await r.answers(lambda a: a.json()["marker"] == "four")
        # The new worker can answer before the engine has read the server's event that says so.
        await async_wait_for(lambda: r.engine.serving_revision == 5, message="revision 5 serving")
    finally:
        await r.engine.stop()


async def test_what_the_server_logged_before_an_event_reaches_the_log_before_it(sample, tmp_path):
    """The server's output is read in batches (runtimes/output_pipe.py), its events through a pipe
    of their own: a failed reload's traceback is still in the log when its event arrives, which
    is how the app and `up` show them (and what a reader of the log expects)."""
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    save(score, script("one"))
    r = Run(folder, tmp_path)
    assert await r.engine.start() == SUCCEEDED
    for attempt in range(3):
        save(score, script("broken").replace("def init():", f"def init():\n    raise RuntimeError('no model {attempt}')"))
        failed = await async_wait_for(lambda: [e for e in r.of(ReloadFinished) if not e.ok][attempt:],
                                      message=f"failed reload {attempt}")
        before = r.events[:r.events.index(failed[0])]
        logged = "\n".join(record.text for e in before if isinstance(e, Logs) for record in e.records
                           if record.source == INFERENCE_SERVER)
        assert f"RuntimeError: no model {attempt}" in logged, f"attempt {attempt}: the traceback came after its event"
    await r.engine.stop()


async def test_model_change_restages_then_swaps(sample, tmp_path):
    folder = sample("sklearn-regression")
    save(folder / "onlinescoring" / "score.py", script("m"))
    model = folder / "model" / "sklearn_regression_model.pkl"

    r = Run(folder, tmp_path)
    assert await r.engine.start() == SUCCEEDED
    before = (await r.post()).json()["model_bytes"]
    save(model, "x" * (before + 100))
    answer = await r.answers(lambda a: a.json()["model_bytes"] == before + 100)
    assert answer.status_code == 200
    # The answer may change as soon as the model is staged again; the swap follows.
    started = await async_wait_for(lambda: r.of(ReloadStarted))
    assert [e.reason for e in started] == ["model"]
    await async_wait_for(lambda: [e for e in r.of(ReloadFinished) if e.ok and not e.first])
    await r.engine.stop()


async def test_yaml_change_restarts_and_a_broken_yaml_is_not_applied(sample, tmp_path):
    folder = sample("sklearn-regression")
    save(folder / "onlinescoring" / "score.py", script("y"))
    deployment = folder / "deployment.yml"
    original = deployment.read_text()

    r = Run(folder, tmp_path)
    assert await r.engine.start() == SUCCEEDED
    assert (await r.post()).json()["env"] is None

    save(deployment, original.replace("environment_variables:", "environment_variables:\n  MARKER_ENV: hello"))
    await r.answers(lambda a: a.json()["env"] == "hello")
    assert r.engine.state == SUCCEEDED

    save(deployment, original.replace("instance_count: 1", "instance_count: many"))
    await async_wait_for(lambda: "is not applied" in r.log_text("devtui"))
    assert "instance_count" in r.log_text("devtui")
    assert (await r.post()).json()["env"] == "hello"
    await r.engine.stop()


async def test_init_failure_on_first_start_is_failed_then_recovers_on_save(sample, tmp_path):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    save(score, script("bad").replace("def init():", "def init():\n    raise ValueError('broken init')"))

    r = Run(folder, tmp_path)
    assert await r.engine.start() == FAILED
    assert "ValueError: broken init" in r.log_text("inference-server")
    assert "Model Directory Contents:" in r.log_text("inference-server")
    save(score, script("good"))
    await async_wait_for(lambda: r.engine.state == SUCCEEDED, timeout=30)
    assert (await r.post()).json()["marker"] == "good"
    await r.engine.stop()


@pytest.mark.parametrize("body, expected", [("def init(:\n", "SyntaxError"),
                                            ("raise ImportError('missing dependency')\n", "Traceback")])
async def test_script_that_cannot_load_is_failed_with_traceback(sample, tmp_path, body, expected):
    folder = sample("sklearn-regression")
    save(folder / "onlinescoring" / "score.py", body)

    r = Run(folder, tmp_path, watch=False)
    assert await r.engine.start() == FAILED
    log = r.log_text("inference-server")
    assert expected in log and 'score.py", line 1' in log
    await r.engine.stop()


async def test_request_settings_are_emulated(sample, tmp_path):
    folder = sample("sklearn-regression")
    save(folder / "onlinescoring" / "score.py",
         "import time\ndef init():\n    pass\ndef run(raw):\n    time.sleep(float(raw))\n    return 'done'\n")
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text().replace("request_timeout_ms: 5000", "request_timeout_ms: 300"))

    r = Run(folder, tmp_path, watch=False)
    assert await r.engine.start() == SUCCEEDED
    slow = await r.post("1.0")
    assert slow.status_code == 408 and "request_timeout_ms" in slow.json()["message"]
    # The worker stays usable: the next request is answered.
    fast = await r.post("0")
    assert fast.status_code == 200 and fast.json() == "done"
    # max_concurrent_requests_per_instance: 1 -> at most 2 in flight; the rest get 429.
    answers = await asyncio.gather(*(r.post("0.2") for _ in range(6)))
    codes = sorted(a.status_code for a in answers)
    assert 429 in codes and 200 in codes
    assert all(a.json().get("message") for a in answers if a.status_code == 429)
    await r.engine.stop()


async def test_a_crash_with_a_broken_script_on_disk_is_failed_not_succeeded(sample, tmp_path):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    crashing = ("import os\ndef init():\n    pass\ndef run(raw):\n"
                "    if 'crash' in raw:\n        os._exit(1)\n    return {'marker': 'ok'}\n")
    save(score, crashing)

    r = Run(folder, tmp_path)
    assert await r.engine.start() == SUCCEEDED
    save(score, crashing + "def broken(:\n")
    await async_wait_for(lambda: [e for e in r.of(ReloadFinished) if not e.ok])
    assert (await r.post("{}")).json() == {"marker": "ok"}  # the old revision still serves
    with pytest.raises(httpx.HTTPError):
        await r.post("crash")
    # The worker died and its restart loads the broken script: nothing serves.
    await async_wait_for(lambda: r.engine.state == FAILED, timeout=30)
    assert r.engine.serving_revision is None
    save(score, crashing)  # a good save recovers it
    await async_wait_for(lambda: r.engine.state == SUCCEEDED, timeout=30)
    assert (await r.post("{}")).json() == {"marker": "ok"}
    await r.engine.stop()


def test_stop_during_a_restart_leaves_nothing_running(sample, tmp_path):
    folder = sample("sklearn-regression")

    async def scenario():
        r = Run(folder, tmp_path, watch=False)
        assert await r.engine.start() == SUCCEEDED
        restarting = asyncio.create_task(r.engine.restart("test"))
        await asyncio.sleep(0)  # the restart has begun (it holds the engine's lock)
        await r.engine.stop()
        await asyncio.gather(restarting, return_exceptions=True)
        assert r.engine.state == "Deleting"
        assert not [e for e in r.of(ReloadFinished) if not e.ok]

    run_async(scenario())
    wait_for(lambda: children_of(os.getpid()) == [], timeout=15, message="every server process to end")
