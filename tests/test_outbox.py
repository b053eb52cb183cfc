"""The container runtime's outbox: what its threads report reaches the event loop in order, and a
flood of log lines in batches, one wake-up of the loop for all that gathered (devtui/runtimes/container/outbox.py)."""

from __future__ import annotations

import asyncio
import threading

from devtui.runtimes.container.outbox import Outbox


def test_a_flood_from_a_thread_arrives_in_order_in_a_batch_per_loop_turn():
    delivered: list[tuple] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        outbox = Outbox(loop, lambda source, lines: delivered.append(("log", source, list(lines))))
        woken = 0
        original = loop.call_soon_threadsafe

        def counting(*args, **kwargs):
            nonlocal woken
            woken += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting

        def flood() -> None:  # like the log thread: the loop is busy meanwhile (it waits for this thread)
            for n in range(500):
                outbox.log("inference-server", [f"line {n}"])
            outbox.put(lambda event: delivered.append(("event", event)), "ready")
            outbox.log("inference-server", ["after the event"])
            outbox.log("storage-initializer", ["another source"])

        thread = threading.Thread(target=flood)
        thread.start()
        thread.join()  # blocks the loop: nothing is delivered until this turn ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert woken == 1, woken
        assert delivered == [("log", "inference-server", [f"line {n}" for n in range(500)]), ("event", "ready"),
                             ("log", "inference-server", ["after the event"]),
                             ("log", "storage-initializer", ["another source"])]

        delivered.clear()  # once delivered, the next line wakes the loop again, at once
        outbox.log("inference-server", ["one more"])
        await asyncio.sleep(0)
        assert delivered == [("log", "inference-server", ["one more"])] and woken == 2

    asyncio.run(scenario())


def test_a_delivery_that_raises_loses_nothing_after_it():
    delivered: list[str] = []
    reported: list[str] = []

    def fails(_event) -> None:
        raise ValueError("a bug in a handler")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(repr(context["exception"])))
        outbox = Outbox(loop, lambda source, lines: delivered.extend(lines))
        outbox.log("inference-server", ["before"])
        outbox.put(fails, "event")
        outbox.log("inference-server", ["after"])
        outbox.put(delivered.append, "ready")
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert delivered == ["before", "after", "ready"]
    assert reported == ["ValueError('a bug in a handler')"]
