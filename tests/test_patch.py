"""Rung 0, patch in place: a save that changes only code init() did not produce is applied to the
running worker, and init()'s state (a loaded model) survives. Real scoring servers as child
processes (the process runtime); saves as editors make them.

The decision itself is also tested on its own (inference_server.patching), on real modules.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED, ReloadFinished
from inference_server.protocol import ReloadMode
from helpers import save, write_deployment

pytestmark = pytest.mark.anyio

SCORE = '''
import os
import helper

STATE = {}

def init():
    STATE["model"] = os.urandom(8).hex()  # what a minute-long model load leaves behind
    STATE["inits"] = STATE.get("inits", 0) + 1

def run(raw):
    return {"model": STATE["model"], "version": 1, "helper": helper.answer()}
'''

HELPER = '''
def answer():
    return "helper 1"
'''

DEPLOYMENT = '''
name: blue
endpoint_name: patching
code_configuration:
  code: ./code
  scoring_script: score.py
environment:
  image: python:3.11-slim
request_settings:
  max_concurrent_requests_per_instance: 4
'''


@pytest.fixture
def deployment(tmp_path) -> Path:
    return write_deployment(tmp_path / "deployment", DEPLOYMENT, score=SCORE, helper=HELPER)


class Running:
    def __init__(self, folder: Path, tmp: Path, **kwargs):
        self.folder = folder
        self.engine = Engine(spec.load(folder), tmp / "work", Launch(port=0, **kwargs))
        self.finished: list[ReloadFinished] = []
        self.engine.subscribe(lambda e: isinstance(e, ReloadFinished) and self.finished.append(e))

    async def answer(self) -> dict:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self.engine.scoring_uri, content="{}")
            assert response.status_code == 200, response.text
            return response.json()

    async def save(self, name: str, old: str, new: str) -> ReloadFinished:
        """Edit ``name`` as an editor saves, and wait for the revision it makes to finish."""
        path = self.folder / "code" / name
        text = path.read_text()
        assert old in text, text
        count = len(self.finished)
        save(path, text.replace(old, new))
        await until(lambda: len(self.finished) > count, 30, f"the save of {name} to be applied")
        return self.finished[-1]


async def until(condition, timeout: float, message: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {message}"
        await asyncio.sleep(0.01)


async def test_init_state_survives_twenty_patches_and_a_helper_change_applies(deployment, tmp_path):
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        model = (await running.answer())["model"]
        for version in range(1, 21):
            finished = await running.save("score.py", f'"version": {version}', f'"version": {version + 1}')
            assert finished.ok and finished.rung == "patch" and finished.detail == "run()", finished
            answer = await running.answer()
            assert answer["version"] == version + 1 and answer["model"] == model
        finished = await running.save("helper.py", '"helper 1"', '"helper 2"')
        assert finished.rung == "patch" and finished.detail == "answer()"
        answer = await running.answer()
        assert answer["helper"] == "helper 2" and answer["model"] == model
        assert running.engine.describe().last_reload.how == "patched answer() in place (model kept)"
    finally:
        await running.engine.stop()


@pytest.mark.parametrize("old, new, why", [
    ('STATE["inits"] = STATE.get("inits", 0) + 1', 'STATE["inits"] = 1', "init() changed"),
    ("def run(raw):", "def run(raw, request_headers=None):", "the signature of run() changed"),
    ("STATE = {}", "STATE = {'x': 1}", "module-level statements or imports of entry_module changed"),
    ("def run(raw):", "import functools\n\n@functools.lru_cache\ndef run(raw):",
     "module-level statements or imports of entry_module changed"),
])
async def test_what_init_or_the_server_depends_on_swaps_workers(deployment, tmp_path, old, new, why):
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        model = (await running.answer())["model"]
        finished = await running.save("score.py", old, new)
        assert finished.ok and finished.rung == "swap" and finished.detail == why, finished
        # init() ran again. (The old worker stops taking connections once the new one is ready;
        # on a loaded machine one opened at that very moment can still reach it: ask again.)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (answer := await running.answer())["model"] == model and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert answer["model"] != model
    finally:
        await running.engine.stop()


async def test_a_changed_decorator_swaps(deployment, tmp_path):
    (deployment / "code" / "score.py").write_text(SCORE.replace("def run(raw):", "@staticmethod\ndef _unused():\n"
                                                                "    pass\n\ndef run(raw):"))
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        finished = await running.save("score.py", "@staticmethod", "@classmethod")
        assert finished.rung == "swap" and finished.detail == "the decorators of _unused changed", finished
    finally:
        await running.engine.stop()


async def test_a_syntax_error_keeps_the_last_good_code_serving(deployment, tmp_path):
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        model = (await running.answer())["model"]
        finished = await running.save("score.py", '"version": 1,', '"version": 2 +,')  # a syntax error
        assert not finished.ok and finished.stage == "load" and "SyntaxError" in finished.traceback, finished
        assert finished.serving_revision == 1 and running.engine.state == SUCCEEDED
        assert await running.answer() == {"model": model, "version": 1, "helper": "helper 1"}
        finished = await running.save("score.py", '"version": 2 +,', '"version": 3,')
        assert finished.ok and finished.rung == "patch"
        assert (await running.answer())["version"] == 3
    finally:
        await running.engine.stop()


async def test_r_in_the_app_and_reload_swap_even_when_a_patch_would_do(deployment, tmp_path):
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        model = (await running.answer())["model"]
        count = len(running.finished)
        await running.engine.reload("manual", swap=True)
        await until(lambda: len(running.finished) > count, 30, "the swap")
        assert running.finished[-1].rung == "swap"
        assert (await running.answer())["model"] != model
    finally:
        await running.engine.stop()


async def test_reload_swap_mode_never_patches(deployment, tmp_path):
    running = Running(deployment, tmp_path, reload=ReloadMode.SWAP)
    try:
        assert await running.engine.start() == SUCCEEDED
        finished = await running.save("score.py", '"version": 1', '"version": 2')
        assert finished.ok and finished.rung == "swap"
    finally:
        await running.engine.stop()


async def test_patches_under_continuous_load_drop_no_request(deployment, tmp_path):
    running = Running(deployment, tmp_path)
    failures: list[str] = []
    answered = 0
    stop = asyncio.Event()

    async def client() -> None:
        nonlocal answered
        async with httpx.AsyncClient(timeout=10) as http:
            while not stop.is_set():
                try:
                    response = await http.post(running.engine.scoring_uri, content="{}")
                except httpx.HTTPError as ex:
                    failures.append(repr(ex))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                answered += 1

    try:
        assert await running.engine.start() == SUCCEEDED
        clients = [asyncio.create_task(client()) for _ in range(4)]
        for version in range(1, 11):
            finished = await running.save("score.py", f'"version": {version}', f'"version": {version + 1}')
            assert finished.rung == "patch"
        stop.set()
        await asyncio.gather(*clients)
    finally:
        await running.engine.stop()
    assert failures == [] and answered > 0


# -- the decision, on real modules -------------------------------------------------------------------


def test_methods_nested_names_and_new_functions_patch(tmp_path):
    """A method (with super()), a function added by the save, and a default argument."""
    import importlib
    import sys

    from inference_server import fresh_import, patching

    source = textwrap.dedent('''
        class Base:
            def name(self):
                return "base"

        class Model(Base):
            def name(self):
                return "model 1 " + super().name()

        def scale(x, by=2):
            return x * by
    ''')
    path = tmp_path / "patchme_mod.py"
    path.write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        patcher = patching.Patcher([str(tmp_path)])
        fresh_import.load_fresh_from([str(tmp_path)], patcher.loaded)
        module = importlib.import_module("patchme_mod")
        instance = module.Model()
        path.write_text(source.replace('"model 1 "', '"model 2 "').replace("by=2", "by=3")
                        + "\n\ndef added():\n    return scale(1)\n")
        outcome = patcher.apply()
        assert outcome.kind == "patched", outcome
        assert instance.name() == "model 2 base"  # an instance made before the patch
        assert module.scale(2) == 6 and module.added() == 3
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("patchme_mod", None)


def test_devtui_reload_swaps_and_reload_full_restarts(deployment):
    from helpers import devtui, show, wait_for

    try:
        devtui("up", str(deployment), "--detach")  # inside: a Failed up keeps running in the background
        save(deployment / "code" / "score.py",
             (deployment / "code" / "score.py").read_text().replace('"version": 1', '"version": 2'))
        wait_for(lambda: (show("patching")["deployments"][0].get("last_reload") or {}).get("revision") == 2,
                 timeout=30, message="the save to be patched in")
        assert show("patching")["deployments"][0]["last_reload"]["how"] == "patched run() in place (model kept)"
        swapped = devtui("reload", "-n", "patching")
        assert swapped.stdout.startswith("revision 3 is serving: worker swap"), swapped.stdout
        restarted = devtui("reload", "-n", "patching", "--full")
        assert restarted.stdout.startswith("restarted: revision 4 is serving"), restarted.stdout
    finally:
        devtui("down", "-n", "patching", check=None)


async def test_a_reload_with_nothing_changed_keeps_the_worker_and_a_data_file_change_swaps(deployment, tmp_path):
    """A repeated reload (two watcher batches for one save) must not reload the model; a file
    beside the code that init() may read does."""
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        model = (await running.answer())["model"]
        count = len(running.finished)
        await running.engine.reload("manual")  # a reload that is not forced, with nothing changed
        await until(lambda: len(running.finished) > count, 30, "the reload's outcome")
        assert running.finished[-1].how == "nothing to apply (no code changed)"
        assert (await running.answer())["model"] == model
        (deployment / "code" / "labels.json").write_text('{"a": 1}')
        await until(lambda: running.finished[-1].rung == "swap", 30, "a swap for the data file")
        assert "a file other than the loaded Python source changed" in running.finished[-1].detail
        assert (await running.answer())["model"] != model
    finally:
        await running.engine.stop()


# -- what serves is what the file says (issue 19) -----------------------------------------------------

LOCAL = '''
import os
import sys

STATE = {}

def init():
    STATE["model"] = os.urandom(8).hex()

def where():
    return sys._getframe().f_lineno

def helper():
    return "helper 1"

def run(raw):
    return {"model": STATE["model"], "run": 1, "helper": helper(), "line": where()}
'''


@pytest.fixture
def local(tmp_path) -> Path:
    """A score.py with its helpers in it."""
    return write_deployment(tmp_path / "deployment", DEPLOYMENT, score=LOCAL)


async def test_a_save_that_fails_changes_nothing_and_the_original_saved_back_is_nothing_to_apply(local, tmp_path):
    running = Running(local, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        before = await running.answer()
        original = (local / "code" / "score.py").read_text()
        broken = original.replace('"helper 1"', '"helper 2"').replace('"run": 1', '"run": 2') + \
            "\n@undefined_decorator\ndef extra():\n    pass\n"
        finished = await running.save("score.py", original, broken)
        assert not finished.ok and finished.stage == "load" and "NameError" in finished.traceback, finished
        assert await running.answer() == before  # neither run() nor helper() changed
        finished = await running.save("score.py", broken, original)
        assert finished.ok and finished.how == "nothing to apply (no code changed)", finished
        assert await running.answer() == before
        finished = await running.save("score.py", original, broken.replace("@undefined_decorator\n", ""))
        assert finished.ok and finished.detail == "helper(), run(), extra()", finished
        assert await running.answer() == {**before, "run": 2, "helper": "helper 2"}
    finally:
        await running.engine.stop()


FACTORY = '''
def make():
    def answer():
        return "helper 1"
    return answer

answer = make()
'''

DECORATED = '''
def deco(f):
    def wrapper():
        return "helper " + f()
    return wrapper

@deco
def answer():
    return "1"
'''

CACHED = '''
import functools

@functools.lru_cache
def answer():
    return "helper 1"
'''


@pytest.mark.parametrize("helper, old, new, rung, detail", [
    (FACTORY, '"helper 1"', '"helper 2"', "swap", "make() ran at import: what it made keeps the old code"),
    (DECORATED, '"helper " + f()', '"helper " + str(int(f()) + 1)', "swap", "deco() ran at import: what it made keeps the old code"),
    (CACHED, '"helper 1"', '"helper 2"', "patch", "answer() (cache cleared)"),
])
async def test_code_made_at_import_swaps_and_a_cache_is_cleared(tmp_path, helper, old, new, rung, detail):
    deployment = write_deployment(tmp_path / "deployment", DEPLOYMENT, score=SCORE, helper=helper)
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        assert (await running.answer())["helper"] == "helper 1"
        finished = await running.save("helper.py", old, new)
        assert finished.ok and finished.rung == rung and finished.detail == detail, finished
        # After a swap the old worker may still answer a connection opened as the new one took over.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (answer := await running.answer())["helper"] == "helper 1" and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert answer["helper"] == "helper 2"
    finally:
        await running.engine.stop()


async def test_code_moved_by_a_save_runs_on_its_new_lines(local, tmp_path):
    running = Running(local, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        before = await running.answer()
        assert before["line"] == LOCAL.splitlines().index("    return sys._getframe().f_lineno") + 1
        finished = await running.save("score.py", "def where():", "# where\n# this is\n\ndef where():")
        assert finished.ok and finished.detail == "the line numbers of where(), helper(), run()", finished
        assert await running.answer() == {**before, "line": before["line"] + 3}
    finally:
        await running.engine.stop()


async def test_a_large_score_py_swaps_rather_than_hold_up_requests(tmp_path):
    functions = "".join(f"\ndef f{i}(x):\n    return x + {i}\n" for i in range(20000))
    assert len(SCORE + functions) > 512 * 1024
    deployment = write_deployment(tmp_path / "deployment", DEPLOYMENT, score=SCORE + functions, helper=HELPER)
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        finished = await running.save("score.py", '"version": 1', '"version": 2')
        size = len((deployment / "code" / "score.py").read_text()) // 1024
        assert finished.ok and finished.rung == "swap", finished
        assert finished.detail == f"score.py is {size} KB, over the 512 KB a patch compares without holding up requests"
    finally:
        await running.engine.stop()


async def test_run_made_async_is_said_so(deployment, tmp_path):
    running = Running(deployment, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        finished = await running.save("score.py", "def run(raw):", "async def run(raw):")
        assert finished.rung == "swap" and finished.detail == "run changed from a function to an async function"
    finally:
        await running.engine.stop()


def test_a_breakpoint_on_a_moved_line_hits_after_a_comment_is_added_above(local, tmp_path):
    """A real DAP client (as VS Code): a save that only adds comments above where() is patched in
    with the new line numbers, and the breakpoint the editor moved with the line hits."""
    import threading

    from dap import DebugClient, stopped_frame
    from devtui.debug import strip_jsonc
    from helpers import devtui, free_port, show, wait_for

    cwd = tmp_path / "workspace"
    (cwd / ".vscode").mkdir(parents=True)
    score = local / "code" / "score.py"
    line = score.read_text().splitlines().index("    return sys._getframe().f_lineno") + 1
    client = None
    try:
        devtui("up", str(local), "--debug", "--debug-port", str(free_port()), "--detach", cwd=cwd)
        launch = json.loads(strip_jsonc((cwd / ".vscode" / "launch.json").read_text()))
        client = DebugClient(next(c for c in launch["configurations"] if c["name"] == "devtui: attach to patching"))
        client.set_breakpoints(str(score), [line])
        child = client.next_child()
        wait_for(lambda: show("patching", cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)

        save(score, score.read_text().replace("def where():", "# where\n# this is\n\ndef where():"))
        reload = wait_for(lambda: show("patching", cwd=cwd)["deployments"][0].get("last_reload"), timeout=30)
        assert reload["how"] == "patched the line numbers of where(), helper(), run() in place (model kept)", reload
        client.set_breakpoints(str(score), [line + 3])  # the editor moves the breakpoint with its line

        result: dict = {}
        request = threading.Thread(target=lambda: result.update(
            answer=httpx.post(show("patching", cwd=cwd)["scoring_uri"], content="{}", timeout=60)), daemon=True)
        request.start()
        thread_id, frame = stopped_frame(child)
        assert Path(frame["source"]["path"]) == score and frame["line"] == line + 3 and frame["name"] == "where"
        child.request("continue", {"threadId": thread_id})
        request.join(60)
        assert result["answer"].json()["line"] == line + 3
    finally:
        if client is not None:
            client.close()
        devtui("down", "-n", "patching", check=None, cwd=cwd)
