"""debugpy in the supervisor: it listens once, and every worker forked from there joins the
client's session as a child process, reload after reload. This module tells devtui what the
debugger is doing: listening, attached, stopped at a breakpoint in a worker, or failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .protocol import Debugger, DebuggerState, ServerEvent

logger = logging.getLogger("azmlinfsrv.supervisor")


class DebugListener:
    def __init__(self, host: str, port: int, emit: Callable[[ServerEvent], None]):
        self.host = host
        self.port = port  # the real one once listening, when 0 was asked for
        self.emit = emit
        self.attached = False
        self.stopped_at: str | None = None  # where a worker is held at a breakpoint

    def listen(self) -> bool:
        """Start debugpy's listener; False (and said so) when it cannot."""
        import debugpy

        try:
            debugpy.configure(subProcess=True)
            _, self.port = debugpy.listen((self.host, self.port))
        except Exception as ex:
            logger.error(f"The debugger cannot listen on {self.host}:{self.port}: {ex}")
            self._emit(DebuggerState.FAILED, detail=str(ex))
            return False
        logger.info(f"Debugger (debugpy) listening on {self.host}:{self.port}; "
                    "attach once, breakpoints survive reloads")
        self._emit(DebuggerState.LISTENING)
        return True

    def poll(self) -> None:
        """Notice a client attaching or going (debugpy has no callback for either)."""
        import debugpy

        attached = debugpy.is_client_connected()
        if attached != self.attached:
            self.attached = attached
            self.stopped_at = self.stopped_at if attached else None
            state = DebuggerState.ATTACHED if attached else DebuggerState.LISTENING
            logger.info(f"Debugger {state}")
            self._emit(state)

    def worker_stopped(self, where: str | None) -> None:
        """A worker reported that the debugger holds it at ``where``, or let it go (None)."""
        self.stopped_at = where
        if where:
            self._emit(DebuggerState.STOPPED, detail=f"at {where}")
        else:
            self._emit(DebuggerState.ATTACHED if self.attached else DebuggerState.LISTENING)

    def _emit(self, state: DebuggerState, detail: str = "") -> None:
        self.emit(Debugger(state=state, host=self.host, port=self.port, detail=detail))
