"""Hot reload under load: 100 saves, good and broken in turn, while clients keep sending.

Zero requests may fail or be dropped, every good revision must be served and every broken one
reported, with the last good revision answering throughout.
"""

from __future__ import annotations

import asyncio

import httpx

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED, ReloadFinished
from helpers import ONE_ROW_REQUEST, async_wait_for, run_async, save

GOOD = '''
import os
def init():
    global marker
    marker = MARKER
def run(raw):
    return {"marker": marker, "pid": os.getpid()}
'''
SYNTAX_ERROR = "def init(:\n    pass\n"
INIT_RAISES = GOOD.replace("    global marker", "    raise RuntimeError('init failed on purpose')")
SAVES = 100


def good(marker: int) -> str:
    return GOOD.replace("MARKER", str(marker))


def test_100_reloads_alternating_good_and_broken_under_continuous_load(sample, tmp_path):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    save(score, good(0))

    async def scenario():
        engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0))
        finished: list[ReloadFinished] = []
        engine.subscribe(lambda e: finished.append(e) if isinstance(e, ReloadFinished) and not e.first else None)
        assert await engine.start() == SUCCEEDED

        stop = asyncio.Event()
        served: set[int] = set()
        answered = 0
        failures: list[str] = []

        async def client(keep_alive: bool) -> None:
            nonlocal answered
            limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
            async with httpx.AsyncClient(timeout=10, limits=limits) as http:
                while not stop.is_set():
                    try:
                        answer = await http.post(engine.scoring_uri, content=ONE_ROW_REQUEST)
                    except httpx.HTTPError as ex:
                        failures.append(f"{type(ex).__name__}: {ex}")
                        continue
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code}: {answer.text}")
                    else:
                        served.add(answer.json()["marker"])
                        answered += 1

        # Two clients: the deployment allows 2 in flight (max_concurrent_requests_per_instance 1).
        clients = [asyncio.create_task(client(True)), asyncio.create_task(client(False))]
        last_good = 0
        for number in range(1, SAVES + 1):
            before = len(finished)
            if number % 2:
                save(score, good(number))
                await async_wait_for(lambda: number in served, timeout=30, message=f"marker {number} served")
                last_good = number
                outcome = await async_wait_for(lambda: finished[before:], timeout=30)
                assert outcome[0].ok
            else:
                save(score, SYNTAX_ERROR if number % 4 == 2 else INIT_RAISES)
                outcome = await async_wait_for(lambda: finished[before:], timeout=30,
                                               message=f"save {number} reported")
                assert not outcome[0].ok and outcome[0].traceback
                assert outcome[0].stage == ("load" if number % 4 == 2 else "init")
                assert outcome[0].serving_revision == engine.serving_revision
                # The previous good revision still answers.
                answers_before = answered
                await async_wait_for(lambda: answered > answers_before + 2, timeout=30)
                assert served >= {last_good}
        stop.set()
        await asyncio.gather(*clients)
        await engine.stop()

        assert failures == []
        assert set(range(1, SAVES + 1, 2)) <= served
        failed = [e for e in finished if not e.ok]
        assert len(failed) == SAVES // 2
        assert answered > SAVES

    run_async(scenario(), timeout=240)
