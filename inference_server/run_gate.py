"""The gate every run() call passes: a patch (rung 0) applies only while no run() is executing.

With ``WORKER_COUNT`` above 1, run() calls execute on pool threads while the event loop goes on;
a patch applied on the loop meanwhile swaps functions under a call half way through it, which
then answers with old code and new at once. The worker holds the gate instead: new calls wait,
the calls already executing finish on the code they started with, and the patch applies once
none is left (or, if they take too long, the worker swaps instead and releases the gate).

Everything here runs on the event loop's thread: a pooled call is counted from before it is
handed to its thread until its result is back on the loop. No lock, no thread of its own.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


class _Hold:
    """One pending patch: what to call once no run() executes, or when they take too long."""

    __slots__ = ("then", "on_timeout", "timer")

    def __init__(self, then: Callable[[], object], on_timeout: Callable[[], None]):
        self.then, self.on_timeout = then, on_timeout
        self.timer: asyncio.TimerHandle | None = None


class _Running:
    """``async with gate.running()``: :meth:`RunGate.enter` and :meth:`RunGate.leave` around a block."""

    __slots__ = ("gate",)

    def __init__(self, gate: RunGate):
        self.gate = gate

    async def __aenter__(self) -> None:
        await self.gate.enter()

    async def __aexit__(self, *exc_info) -> None:
        self.gate.leave()


class RunGate:
    """Patches apply only between run() calls: new calls wait while a patch is pending.

    - ``await gate.enter()`` before each run() call and ``gate.leave()`` once its result is back
      on the loop (``async with gate.running():`` for both): waits while the gate is held, then
      counts the call. ``run_calls`` counts a pooled call until its thread is done (an abandoned
      one too), and a streamed answer until its generator is closed: both run the script's code.
    - ``gate.hold(then, timeout_s, on_timeout)``: from now on new calls wait; ``then()`` is called
      once no call is executing (at once, inside ``hold``, when none is), and the gate opens when
      it returns (if it returns an awaitable, once that is done). If the calls executing have not
      all ended within ``timeout_s``, ``on_timeout()`` is called instead of ``then()`` and the gate
      opens: the caller swaps to a new worker rather than patch this one.

    Holds made while one is pending queue up, each with its own timeout, and apply in order.
    An exception from ``then`` or ``on_timeout`` goes to the loop's exception handler (it would
    otherwise surface in whichever request happened to end last), and the gate opens regardless.
    """

    def __init__(self) -> None:
        self.executing = 0  # calls entered and not yet left
        self.waiting = 0  # calls waiting to enter while the gate is held
        self.pending: list[_Hold] = []
        self.applying = False  # a then() that returned an awaitable is still running
        self.opened = asyncio.Event()  # set while not held: what waiting calls wait for
        self.opened.set()

    @property
    def held(self) -> bool:
        return bool(self.pending) or self.applying

    def running(self) -> _Running:
        return _Running(self)

    async def enter(self) -> None:
        """Wait while the gate is held, then count one call executing (until :meth:`leave`)."""
        # Re-checked after each wait: a patch held again before this call resumed goes first.
        while self.held:
            self.waiting += 1
            try:
                await self.opened.wait()
            finally:
                self.waiting -= 1
        self.executing += 1

    def leave(self) -> None:
        """One call that :meth:`enter` counted has ended (its result is back on the loop)."""
        self.executing -= 1
        if not self.executing and self.pending:
            # Next on the loop, not inside the request that ended: its answer is not held up.
            asyncio.get_running_loop().call_soon(self._apply)

    def hold(self, then: Callable[[], object | Awaitable[object]], timeout_s: float,
             on_timeout: Callable[[], None]) -> None:
        """Called on the event loop's thread; see the class."""
        hold = _Hold(then, on_timeout)
        self.pending.append(hold)
        self.opened.clear()
        if not self.executing and not self.applying:
            self._apply()
        if hold in self.pending:
            hold.timer = asyncio.get_running_loop().call_later(timeout_s, self._expire, hold)

    def _apply(self) -> None:
        """No call executes: apply the pending holds in order, then open (unless one is still going)."""
        while self.pending and not self.applying and not self.executing:
            hold = self.pending.pop(0)
            if hold.timer is not None:
                hold.timer.cancel()
            result = _call(hold.then)
            if inspect.isawaitable(result):
                self.applying = True
                asyncio.ensure_future(result).add_done_callback(self._applied)
        self._open_if_free()

    def _applied(self, task: asyncio.Future) -> None:
        self.applying = False
        if not task.cancelled() and task.exception() is not None:
            _report(task.exception())
        if not self.executing:
            self._apply()

    def _expire(self, hold: _Hold) -> None:
        """Calls still execute ``timeout_s`` after the hold: give it up, and let waiting calls go."""
        if hold not in self.pending:
            return
        self.pending.remove(hold)
        _call(hold.on_timeout)
        self._open_if_free()

    def _open_if_free(self) -> None:
        if not self.held:
            self.opened.set()


def _call(function: Callable[[], object]) -> object:
    try:
        return function()
    except Exception as ex:
        _report(ex)
        return None


def _report(ex: BaseException) -> None:
    asyncio.get_running_loop().call_exception_handler(
        {"message": "A run gate's callback failed", "exception": ex})
