"""Rung 0 with run() on threads (WORKER_COUNT > 1): a patch applies only while no run() is
executing, so a request runs the old code or the new, never some of each. A real scoring server in
the process runtime; run() calls that stay in the middle of their work until the test lets them go.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED, Logs, ReloadFinished
from helpers import async_wait_for, save, write_deployment

pytestmark = pytest.mark.anyio

SCORE = '''
import os
import threading
import time

import helper

SIGNALS = os.environ["SIGNALS"]

def init():
    pass

def run(raw):
    first = helper.first()
    open(os.path.join(SIGNALS, f"in-{threading.get_ident()}"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(SIGNALS, "go")) and time.monotonic() < deadline:
        time.sleep(0.005)  # in the middle of its work, until the test lets it go
    return [first, helper.second()]
'''

HELPER = '''
def first():
    return "old"

def second():
    return "old"
'''

DEPLOYMENT = '''
name: blue
endpoint_name: patch-threads
code_configuration:
  code: ./code
  scoring_script: score.py
environment:
  image: python:3.11-slim
environment_variables:
  WORKER_COUNT: "3"
  SIGNALS: {signals}
request_settings:
  max_concurrent_requests_per_instance: 3
  request_timeout_ms: 90000
'''


async def test_requests_in_flight_across_a_patch_run_old_code_or_new_never_both(tmp_path):
    signals = tmp_path / "signals"
    signals.mkdir()
    folder = write_deployment(tmp_path / "deployment", DEPLOYMENT.format(signals=signals), score=SCORE,
                              helper=HELPER)
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0))
    finished: list[ReloadFinished] = []
    lines: list[str] = []
    engine.subscribe(lambda e: isinstance(e, ReloadFinished) and finished.append(e))
    engine.subscribe(lambda e: isinstance(e, Logs) and lines.extend(r.text for r in e.records))

    async def ask() -> list[str]:
        async with httpx.AsyncClient(timeout=90) as client:
            response = await client.post(engine.scoring_uri, content="{}")
            assert response.status_code == 200, response.text
            return response.json()

    try:
        assert await engine.start() == SUCCEEDED
        requests = [asyncio.ensure_future(ask()) for _ in range(3)]
        await async_wait_for(lambda: len(list(signals.glob("in-*"))) == 3, 30,
                             message="three run() calls in the middle of their work")
        helper = Path(folder / "code" / "helper.py")
        count = len(finished)
        save(helper, HELPER.replace('"old"', '"new"'))
        # Either the patch says it waits for the calls, or (the fault) it was applied under them.
        await async_wait_for(lambda: len(finished) > count or any("The patch waits for 3 run() call" in t for t in lines),
                             30, message="the save to reach the worker")
        (signals / "go").touch()
        answers = await asyncio.gather(*requests)
        assert all(answer in (["old", "old"], ["new", "new"]) for answer in answers), answers
        await async_wait_for(lambda: len(finished) > count, 30, message="the patch to apply")
        assert finished[-1].ok and finished[-1].rung == "patch", finished[-1]
        assert await ask() == ["new", "new"]
    finally:
        (signals / "go").touch()
        await engine.stop()
