"""What a debugger holds in a worker: where it stopped, and the requests in progress then, whoever
sent them (curl, VS Code's REST client, the app), so devtui can show them in flight.

Only a worker with a debugger listener (``--debug-host``) has any of this: its app is wrapped once,
at start-up, by :class:`InFlight`, which keeps a small registry of the requests in progress; a
worker without one serves the app as it is, at no cost per request. :func:`watch_debug_stops`, on a
thread debugpy does not suspend, reports each stop with the requests registered at that moment.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import os
import sys
import threading
import time

from . import protocol
from .ids import REQUEST_ID, ensure_request_id

POLL_S = 0.2


@dataclasses.dataclass(slots=True)
class _Entry:
    """A request in progress, as the registry keeps it: its trace id is noted once its span begins."""

    request_id: str
    method: str
    path: str
    started: float
    trace_id: str = ""


# The registry entry of the request this task serves: the tracer notes its trace id there.
_CURRENT: contextvars.ContextVar[_Entry] = contextvars.ContextVar("devtui_held_request")


class InFlight:
    """ASGI middleware: each HTTP request is registered while the app serves it, with its
    ``x-request-id``. A request sent without one gets one here, as the scoring server would make
    it, which the app then answers with (prompt flow's app answers none: it is added to the answer)."""

    def __init__(self, app):
        self.app = app
        self.requests: dict[int, _Entry] = {}  # by a number of its own
        self._numbers = itertools.count()

    def held(self) -> tuple[protocol.HeldRequest, ...]:
        """The requests in progress now (called off the loop: a copy of the registry, taken whole)."""
        return tuple(protocol.HeldRequest(**dataclasses.asdict(entry)) for entry in self.requests.copy().values())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, send, _ = ensure_request_id(scope, send)
        request_id = next(value for name, value in scope["headers"] if name == REQUEST_ID)
        number = next(self._numbers)
        entry = _Entry(request_id.decode("latin-1"), scope["method"], scope["path"], time.time())
        token = _CURRENT.set(entry)
        self.requests[number] = entry
        try:
            await self.app(scope, receive, send)
        finally:
            del self.requests[number]
            _CURRENT.reset(token)


class NotingTraceIds:
    """A worker's tracer (``tracing.RequestTracer``) that also notes each request's trace id in its
    registry entry, so a held request can be matched with its trace. Only with a debugger listener."""

    def __init__(self, tracer):
        self.tracer = tracer
        self.enabled, self.end, self.run = tracer.enabled, tracer.end, tracer.run

    def begin(self, method: str, path: str):
        span = self.tracer.begin(method, path)
        entry = _CURRENT.get(None)
        if entry is not None and span is not None:
            entry.trace_id = f"{span.trace_id:032x}"
        return span


def noting_trace_ids(tracer, debugging: bool):
    """The tracer a worker's app uses: TRACER, noting trace ids when ``debugging`` and tracing."""
    return NotingTraceIds(tracer) if debugging and tracer.enabled else tracer


def watch_debug_stops(report, roots: tuple[str, ...], in_flight: InFlight) -> None:
    """While a debugger holds this worker at a breakpoint, tell the supervisor where, and which
    requests it holds (polled: debugpy has no public hook for it). debugpy marks suspended threads'
    additional_info with pydev_state 2, and suspends them all, so every request in progress is held;
    the stop is the innermost frame in the user's code."""
    last = None
    while True:
        time.sleep(POLL_S)
        where = stopped_at(roots)
        held = in_flight.held() if where is not None else ()
        # A request let go and the next one stopped at the same line: a new report all the same.
        if (where, held) != last:
            last = where, held
            report(protocol.WorkerDebugStop, where=where, held=held)


def stopped_at(roots: tuple[str, ...]) -> str | None:
    """Where a debugger holds a thread ("score.py:12 in run()"), or None."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        info = getattr(thread, "additional_info", None)
        if getattr(info, "pydev_state", None) != 2:
            continue
        frame = frames.get(thread.ident)
        while frame is not None and not frame.f_code.co_filename.startswith(roots):
            frame = frame.f_back
        if frame is not None:
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}()"
    return None


def start_watching(report, roots: tuple[str, ...], in_flight: InFlight) -> None:
    watcher = threading.Thread(target=watch_debug_stops, args=(report, roots, in_flight), daemon=True,
                               name="debug-stops")
    # debugpy suspends every thread at a breakpoint, except its own: this one must keep watching.
    watcher.is_pydev_daemon_thread = True
    watcher.start()
