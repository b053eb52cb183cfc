"""Once a revision is announced as serving, no request that starts after that reaches an older one,
even on a connection the client kept alive from before the save. Every answer says which
revision served it (``x-devtui-revision``), written by the worker that ran the request.

Real scoring servers in the process runtime (the supervisor is the same code in a container),
a kept-alive httpx client, and a machine kept busy by burners, as the review found it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED, ReloadFinished
from helpers import async_wait_for, save, write_deployment

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent

SCORE = '''
import helper

VERSION = 0

def init():
    pass

def run(raw):
    return {"module": VERSION, "helper": helper.answer(), "body": 0}
'''

HELPER = '''
def answer():
    return 0
'''

DEPLOYMENT = '''
name: blue
endpoint_name: keepalive
code_configuration:
  code: ./code
  scoring_script: score.py
environment:
  image: python:3.11-slim
'''


@pytest.fixture
def busy_machine():
    """Both cores kept busy, so that a retiring worker is slow to run, as on a loaded laptop."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


class Reloads:
    def __init__(self, engine: Engine):
        self.finished: list[ReloadFinished] = []
        engine.subscribe(lambda e: isinstance(e, ReloadFinished) and self.finished.append(e))

    async def after(self, edit) -> ReloadFinished:
        count = len(self.finished)
        edit()
        await async_wait_for(lambda: len(self.finished) > count, 60, message="the save to be served")
        finished = self.finished[-1]
        assert finished.ok, finished
        return finished


def edit(path: Path, old: str, new: str):
    def apply() -> None:
        text = path.read_text()
        assert old in text, text
        save(path, text.replace(old, new))
    return apply


async def test_a_kept_alive_client_gets_the_announced_revision_after_every_save(tmp_path, busy_machine):
    folder = write_deployment(tmp_path / "deployment", DEPLOYMENT, score=SCORE, helper=HELPER)
    code = folder / "code"
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0))
    reloads = Reloads(engine)
    try:
        assert await engine.start() == SUCCEEDED
        # One connection, kept alive across every save, as the app, requests.Session and load tools do.
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=1)) as client:
            first = await client.post(engine.scoring_uri, content="{}")
            assert first.json() == {"module": 0, "helper": 0, "body": 0}
            assert first.headers["x-devtui-revision"] == "1"
            for version in range(1, 7):
                # Swaps (a module-level change: a new worker) and patches (a function's body) in turn.
                if version % 2:
                    finished = await reloads.after(edit(code / "score.py", f"VERSION = {max(version - 2, 0)}",
                                                        f"VERSION = {version}"))
                    assert finished.rung == "swap", finished
                else:
                    finished = await reloads.after(edit(code / "helper.py", f"return {version - 2}",
                                                        f"return {version}"))
                    assert finished.rung == "patch", finished
                response = await client.post(engine.scoring_uri, content="{}")
                assert response.status_code == 200, response.text
                odd = version % 2
                expected = {"module": version if odd else version - 1, "helper": version - 1 if odd else version,
                            "body": 0}
                assert response.json() == expected, version
                assert response.headers["x-devtui-revision"] == str(finished.revision), (version, finished)
    finally:
        await engine.stop()


async def test_a_kept_alive_client_gets_the_flow_saved_before_it_asked(tmp_path, busy_machine):
    folder = tmp_path / "flow-chat"
    shutil.copytree(ROOT / "samples" / "flow-chat", folder)
    reply = folder / "flow" / "reply.py"
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0))
    reloads = Reloads(engine)
    body = {"question": "which code answers?", "chat_history": []}
    try:
        assert await engine.start() == SUCCEEDED
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1)) as client:
            response = await client.post(engine.scoring_uri, json=body)
            assert response.json()["answer"].startswith("Question 1")
            for version in range(1, 5):
                marker = "Question" if version == 1 else f"Saved {version - 1}"
                finished = await reloads.after(edit(reply, f'f\'{marker} 1: ', f'f\'Saved {version} 1: '))
                response = await client.post(engine.scoring_uri, json=body)
                assert response.status_code == 200, response.text
                assert response.json()["answer"].startswith(f"Saved {version} 1"), (version, response.json())
                assert response.headers["x-devtui-revision"] == str(finished.revision), (version, finished)
    finally:
        await engine.stop()


CONTAINER_SCORE = '''
VERSION = {version}

def init():
    pass

def run(raw):
    return {{"version": VERSION}}
'''


def test_a_kept_alive_client_gets_the_announced_revision_in_containers(sample, endpoint, docker_client):
    from helpers import devtui, show, wait_for

    name = endpoint("ct-keepalive")
    folder = sample("sklearn-regression")
    script = folder / "onlinescoring" / "score.py"
    script.write_text(CONTAINER_SCORE.format(version=0))
    devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name)
    uri = show(name)["scoring_uri"]
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1)) as client:
        assert client.post(uri, content="{}").json() == {"version": 0}
        for version in range(1, 4):
            before = show(name)["deployments"][0]["revision"]
            save(script, CONTAINER_SCORE.format(version=version))  # module level: a new worker
            revision = wait_for(lambda: (lambda r: r if r > before else None)(show(name)["deployments"][0]["revision"]),
                                timeout=60, interval=0.1, message="the save to be served")
            response = client.post(uri, content="{}")
            assert response.json() == {"version": version}
            assert response.headers["x-devtui-revision"] == str(revision)
