"""The supervisor's side of rung 0: asking the serving worker to apply a save in place, and
turning its answer into the server's events. The worker's side is ``serving.PatchRequests`` and
the decision itself ``patching``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol

logger = logging.getLogger("azmlinfsrv.supervisor")


@dataclass
class PatchInFlight:
    """A patch asked of the serving worker (a PatchOrder) for ``revision``, not yet answered."""

    revision: int
    started: float


class Patches:
    def __init__(self, emit: Callable[[protocol.ServerEvent], None],
                 send: Callable[[object, protocol.WorkerOrder], bool]):
        self.emit = emit
        self.send = send  # gives a worker an order
        self.in_flight: PatchInFlight | None = None
        # (pid, when, which SIGHUP) of a request sent from the signal handler, not yet booked
        self.early: tuple[int, float, int] | None = None

    def early_for(self, worker) -> int | None:
        """The SIGHUP count of an early request to ``worker`` not yet booked, else None."""
        return self.early[2] if self.early is not None and self.early[0] == worker.pid else None

    def signal_early(self, worker, reloads: int, revision: int) -> None:
        """From the supervisor's SIGHUP handler, which runs even while the parent is busy importing
        (warming): ask the serving worker at once for ``revision`` (the next one); ``ask`` then books
        it without asking twice. It only reads the supervisor's state and writes one line, so it is
        safe there."""
        if worker is not None and worker.ready and self.in_flight is None and self.early is None:
            self.early = (worker.pid, time.perf_counter(), reloads)
            self.send(worker, protocol.PatchOrder(revision=revision))

    def ask(self, worker, revision: int) -> None:
        early, self.early = self.early, None
        asked_at = early[1] if early is not None and early[0] == worker.pid else None
        self.in_flight = PatchInFlight(revision, asked_at or time.perf_counter())
        self.emit(protocol.Starting(revision=revision, pid=worker.pid, first=False))
        if asked_at is None:
            self.send(worker, protocol.PatchOrder(revision=revision))  # False: it just died, and its restart loads the save

    def answered(self, worker, message: protocol.WorkerPatched) -> str | None:
        """Patched: ``worker`` now serves the new revision. Failed: it keeps serving its own, and
        the failure is reported. Either way None; a swap is needed: the reason."""
        patch, self.in_flight = self.in_flight, None
        duration = round((time.perf_counter() - patch.started) * 1000, 3)
        if message.result == protocol.PatchResult.SWAP:
            return message.detail
        if message.result == protocol.PatchResult.PATCHED:
            worker.revision = patch.revision
            logger.info(f"Revision {patch.revision} is serving: {message.detail} patched in place ({duration:.1f} ms)")
            self.emit(protocol.Ready(revision=patch.revision, pid=worker.pid, duration_ms=duration, first=False,
                                     rung=protocol.Rung.PATCH, detail=message.detail))
        else:
            logger.error(f"Revision {patch.revision} failed (load); revision {worker.revision} keeps serving")
            self.emit(protocol.Failed(revision=patch.revision, stage=protocol.Stage.LOAD, traceback=message.traceback,
                                      duration_ms=duration, serving_revision=worker.revision))
        return None

    def cancel(self) -> int:
        """The worker died before it answered: the revision the patch had."""
        patch, self.in_flight = self.in_flight, None
        return patch.revision
