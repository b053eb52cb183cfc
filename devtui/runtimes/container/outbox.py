"""What the container runtime's threads report, handed to the event loop in order and in batches.

Docker's log stream yields a chunk per write the server made: under load, a line per request.
Handed over one at a time, each line cost devtui's event loop a wake-up, an event and a file
write, on the cores the server needed (output_pipe.py is the process runtime's side of this).
The outbox queues what the threads report and wakes the loop once for everything that gathers
before the loop gets to it: a line a minute is delivered as soon as before; a flood, in a batch
per loop turn. Log lines, progress and server events share one queue, so a line the server
logged before an event still reaches devtui before it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class Outbox:
    def __init__(self, loop: asyncio.AbstractEventLoop, log: Callable[[str, list[str]], None]):
        self.loop = loop
        self._log = log  # consecutive log batches of one source are delivered as one
        self._lock = threading.Lock()
        self._queue: list[tuple[Callable, tuple]] = []
        self._woken = False  # a delivery is scheduled on the loop and has not run yet

    def log(self, source: str, lines: list[str]) -> None:
        self.put(self._log, source, lines)

    def put(self, deliver: Callable, *args) -> None:
        """``deliver(*args)`` on the loop, after everything put before it; from any thread."""
        with self._lock:
            self._queue.append((deliver, args))
            if self._woken:
                return
            self._woken = True
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: devtui is exiting, nothing will read this
            with self._lock:
                self._woken = False
            raise

    def _deliver(self) -> None:
        with self._lock:
            queue, self._queue, self._woken = self._queue, [], False
        batch: tuple[str, list[str]] | None = None
        for deliver, args in queue:
            if deliver is self._log:
                source, lines = args
                if batch is not None and batch[0] == source:
                    batch[1].extend(lines)
                    continue
                self._call(self._log, batch)
                batch = (source, list(lines))
                continue
            self._call(self._log, batch)
            batch = None
            self._call(deliver, args)
        self._call(self._log, batch)

    def _call(self, deliver: Callable, args: tuple | None) -> None:
        """One delivery; one that raises is reported as the loop reports a failed callback, and
        the rest of the batch is still delivered."""
        if args is None:
            return
        try:
            deliver(*args)
        except Exception as ex:
            self.loop.call_exception_handler({"message": "a runtime's report failed", "exception": ex})
