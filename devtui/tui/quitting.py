"""Leaving the app: `q` or `ctrl+c` stops the endpoint and exits, and never waits unseen.

The first press stops the engine in a worker, so the keys keep working meanwhile, and says what
the stop waits for (the app's requests in flight, one held at a breakpoint) and for how long at
most; a second press ends the runtime's processes at once (``Engine.kill``) and exits.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..events import DebuggerChanged, DebuggerState
from ..runtimes import STOP_GRACE_S

if TYPE_CHECKING:
    from .app import DevtuiApp

AGAIN = "ctrl+c again to stop now"


def waits_for(requests: int, debugger: DebuggerChanged | None) -> str:
    """What a graceful stop waits for, in words ("1 request held at score.py:30 in run()"), or ""
    when nothing. A stopped debugger holds a request even when this app did not send it."""
    held = debugger is not None and debugger.state == DebuggerState.STOPPED
    if not requests and not held:
        return ""
    what = f"{requests} request{'s' if requests != 1 else ''}" if requests else "a request"
    if held:
        where = debugger.detail.strip()
        return f"{what} held {where}" if where.startswith("at ") else f"{what} held at a breakpoint"
    return f"{what} in flight"


class Quitter:
    """The quit sequence of one app: graceful first, at once on the second press."""

    def __init__(self, app: DevtuiApp) -> None:
        self.app = app
        self.stopping = False
        self.said = ""  # what the status says while stopping

    def press(self) -> None:
        if self.stopping:
            self.app.run_worker(self._now(), group="quit-now", exclusive=True)
            return
        self.stopping = True
        app = self.app
        waiting = waits_for(app.requests_in_flight(), app.engine.debugger)
        if waiting:
            self.said = f"stopping: waiting up to {STOP_GRACE_S} s for {waiting} ({AGAIN})"
            app.notify(f"{waiting} — {AGAIN}", title="Quitting", severity="warning", timeout=STOP_GRACE_S)
        else:
            self.said = f"stopping the endpoint (at most {STOP_GRACE_S} s; {AGAIN})"
        app.status.detail = self.said
        app.run_worker(self._stop(), group="quit", exclusive=True)

    async def _stop(self) -> None:
        app = self.app
        app.workers.cancel_group(app, "engine")
        app.workers.cancel_group(app, "engine-action")
        await app.engine.stop()
        app.exit()

    async def _now(self) -> None:
        self.app.status.detail = "stopping now: ending the endpoint's processes"
        # A container runtime's kill talks to Docker: off the event loop.
        await asyncio.to_thread(self.app.engine.kill)
        self.app.exit()
