"""When a swap is announced: only once the old worker no longer accepts connections.

The supervisor tells the old worker to stop the moment the new one is ready, but the old worker
stops accepting only when it next runs. A client that acts on the Ready event (devtui's invoke,
a test, a script that waits for the new revision) could otherwise connect in between and be
answered by the old code. So Ready waits for the old worker's ``WorkerDraining`` (or its exit),
and at most ``Options.handover_timeout_s`` (0.25 s): a worker held at a breakpoint, or too busy
to answer, accepts nothing meanwhile either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol


@dataclass(frozen=True)
class _Pending:
    event: protocol.Ready
    old_pid: int
    deadline: float


class Handover:
    """Holds a swap's Ready until the old worker has let go of the socket; ``announce`` sends it."""

    def __init__(self, announce: Callable[[protocol.ServerEvent], None], timeout: float):
        self._announce = announce
        self._timeout = timeout
        self._pending: _Pending | None = None

    def begin(self, event: protocol.Ready, old_pid: int) -> None:
        self.flush()
        self._pending = _Pending(event, old_pid, time.monotonic() + self._timeout)

    def released(self, pid: int) -> None:
        """Worker ``pid`` stopped accepting, or exited."""
        if self._pending is not None and self._pending.old_pid == pid:
            self.flush()

    def remaining(self) -> float | None:
        """Seconds until the held Ready goes out anyway; None when none is held."""
        return None if self._pending is None else max(0.0, self._pending.deadline - time.monotonic())

    def step(self) -> None:
        if self._pending is not None and time.monotonic() >= self._pending.deadline:
            self.flush()

    def flush(self) -> None:
        """Send the held Ready now (before any other event, so the order never changes)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._announce(pending.event)
