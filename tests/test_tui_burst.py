"""A log burst: 50,000 lines in batches must neither stall input nor outgrow the ring buffer.

No server runs: the batches are posted as the engine posts them (``EngineEvent(Logs(...))``).
Promptness is asserted as a count of ``pilot.pause()`` calls, not as wall time.
"""

from __future__ import annotations

import asyncio


from devtui.tui.widgets._log_lines import LogLines
from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER, LogRecord, Logs
from devtui.tui.app import EngineEvent
from helpers import QuietApp

CAPACITY = 2_000
BATCHES = 50
BATCH = 1_000
SOURCES = (INFERENCE_SERVER, INFERENCE_SERVER, INFERENCE_SERVER, STORAGE_INITIALIZER, DEVTUI)


def batch(number: int) -> Logs:
    first = number * BATCH
    return Logs(tuple(LogRecord(SOURCES[n % len(SOURCES)], f"line {n} of the burst", 1_700_000_000 + n / 1000)
                      for n in range(first, first + BATCH)))


def test_a_burst_of_50000_lines_keeps_keys_prompt_and_memory_bounded(sample, tmp_path):
    folder = sample("sklearn-regression")
    app = QuietApp(Engine(spec.load(folder), tmp_path / "work", Launch(watch=False)), request_text="{}",
                   log_capacity=CAPACITY, save_folder=tmp_path)

    async def scenario():
        async with app.run_test(size=(140, 40)) as pilot:
            logs = app.logs
            lines = app.query_one("#log-lines", LogLines)
            buffer = logs.buffer

            async def burst(numbers: range) -> None:
                for number in numbers:
                    app.post_message(EngineEvent(batch(number)))
                    await asyncio.sleep(0)  # the batches keep arriving while the key is pressed

            async def toggle_timestamps_mid_burst(numbers: range) -> None:
                before = logs.timestamps
                producer = asyncio.create_task(burst(numbers))
                await asyncio.sleep(0)
                await pilot.press("t")
                pauses = 0
                while logs.timestamps == before and pauses < 5:
                    await pilot.pause()
                    pauses += 1
                assert logs.timestamps != before, f"t was not handled after {pauses} pauses"
                await producer
                pauses = 0
                while (logs.pending or len(lines.lines) < min(len(buffer.all), CAPACITY)) and pauses < 50:
                    await pilot.pause()
                    pauses += 1
                assert not logs.pending, f"{len(logs.pending)} records still pending after {pauses} pauses"

            def bounded(last: int) -> None:
                assert buffer.capacity == CAPACITY
                assert len(buffer.all) == CAPACITY
                assert buffer.all[-1].text == f"line {last} of the burst"
                assert all(len(records) <= CAPACITY for records in buffer.by_source.values())
                assert len(buffer.by_source[INFERENCE_SERVER]) == CAPACITY
                assert len(lines.lines) <= CAPACITY
                assert lines.lines[-1].text.endswith(f"line {last} of the burst")
                assert len(logs.visible_records()) == CAPACITY

            shown_at_first = logs.timestamps
            await toggle_timestamps_mid_burst(range(BATCHES))
            assert logs.timestamps is not shown_at_first
            bounded(BATCHES * BATCH - 1)
            # And again with the screen already full: still prompt, still bounded.
            await toggle_timestamps_mid_burst(range(BATCHES, BATCHES + 10))
            assert logs.timestamps is shown_at_first
            bounded((BATCHES + 10) * BATCH - 1)

    asyncio.run(asyncio.wait_for(scenario(), 120))
