"""The engine's events, to every subscriber, in order.

A subscriber may say something while it handles an event (the recorder reports a full disk, the
launch.json writer a file it cannot merge): what it says is queued and reaches every subscriber
after the event being delivered, so no subscriber sees a later event before an earlier one. A
subscriber that raises is dropped and the engine says so, once: it never takes the engine down.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..events import DEVTUI, Event, LogRecord, Logs

Listener = Callable[[Event], None]


class Emitter:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self._queue: deque[Event] = deque()
        self._delivering = False

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def emit(self, event: Event) -> None:
        self._queue.append(event)
        if self._delivering:
            return  # said from inside a subscriber: delivered once this event has reached all
        self._delivering = True
        try:
            while self._queue:
                self._deliver(self._queue.popleft())
        finally:
            self._delivering = False

    def say(self, *lines: str) -> None:
        """devtui's own log lines."""
        self.emit(Logs(tuple(LogRecord(DEVTUI, line) for line in lines)))

    def log(self, source: str, lines: list[str]) -> None:
        now = time.time()
        self.emit(Logs(tuple(LogRecord(source, line, now) for line in lines)))

    def _deliver(self, event: Event) -> None:
        # The exception would end whichever task emitted (the log pump, the server's events), and
        # a server whose output nobody reads blocks on its next print().
        for listener in tuple(self.listeners):
            try:
                listener(event)
            except Exception as ex:
                self._drop(listener, ex)

    def _drop(self, listener: Listener, ex: Exception) -> None:
        if listener not in self.listeners:
            return
        self.listeners.remove(listener)
        name = getattr(listener, "__qualname__", type(listener).__qualname__)
        self.say(f"error: {name} failed ({type(ex).__name__}: {ex}) and gets no more events; "
                 "the endpoint keeps serving")
