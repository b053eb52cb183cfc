"""How a worker calls run(): on the event loop or on a pool of threads, within the request's time,
and through the run gate (``run_gate``), so that a patch applies only between calls.

A worker calls run() one call at a time, on the event loop itself, as the reference server's
synchronous worker does and as the cloud does with its default WORKER_COUNT of 1: handing each
call to a thread cost half as much CPU again per request on the sklearn sample. The timeout
interrupts a call by SIGALRM, as the reference server's own does. Only ``--worker_count`` (or
``WORKER_COUNT``) above 1 runs calls on threads.

A streamed answer (run() returned a Response whose body is an iterator) runs the script's code
too, chunk by chunk, where its run() ran: see ``streaming``.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .admission import Ticket, timeout_suspended
from .run_gate import RunGate
from .user_script import UserScript

logger = logging.getLogger("azmlinfsrv")

END = object()  # what next_chunk() returns once a streamed answer has no more chunks


@dataclass(frozen=True)
class Limits:
    """How many run() calls may run at once, how many requests may be in flight, and for how
    long (from when the request arrived; see ``admission``).

    ``timeout_status`` is 408 for an emulated endpoint (what the cloud answers) and 500 for the
    reference server's own ``SCORING_TIMEOUT_MS``.
    """

    max_concurrent: int = 1
    max_in_flight: int | None = None
    timeout_ms: int | None = None
    timeout_status: int = 408

    @property
    def inline(self) -> bool:
        """One run() at a time: call it on the event loop itself, like the reference server's
        synchronous worker, and skip a thread hop per request."""
        return self.max_concurrent == 1


class RunTimeout(Exception):
    """The request's time ran out; ``ran``: run() was called (else it waited past its deadline)."""

    def __init__(self, ran: bool = True):
        super().__init__()
        self.ran = ran


class _Alarm(TimeoutError):
    """Raised inside an inline run() by SIGALRM when the request's time is up."""


class _AlarmClock:
    """SIGALRM interrupts an inline run() once its request's time is up, as the reference server's
    timeout does (even a sleeping run()). The handler stays installed between calls (putting it
    in and back for each request cost 6 us, and asking whether it is still there 2 us) and raises
    only while a call is timed."""

    def __init__(self) -> None:
        self.armed = self.installed = False

    def _ring(self, signum, frame) -> None:
        if self.armed:
            self.armed = False
            raise _Alarm()

    def arm(self, seconds: float) -> None:
        # Installed once. A run() that puts in a SIGALRM handler of its own is no longer
        # interrupted, but still answered 408 once it returns past its deadline.
        if not self.installed:
            signal.signal(signal.SIGALRM, self._ring)
            self.installed = True
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.armed = False


_ALARM = _AlarmClock()


class _RunCall:
    """One run() call on a pool thread, which a timeout can interrupt."""

    def __init__(self, call_run: Callable[[dict, dict], Any], arguments: dict, headers: dict):
        self.call_run, self.arguments, self.headers = call_run, arguments, headers
        self.lock = threading.Lock()
        self.thread_id: int | None = None
        self.abandoned = self.started = False

    def __call__(self) -> tuple[Any, float]:
        with self.lock:
            if self.abandoned:
                raise RunTimeout()
            self.thread_id = threading.get_ident()
            self.started = True
        started = time.perf_counter()
        try:
            output = self.call_run(self.arguments, self.headers)
        finally:
            with self.lock:
                self.thread_id = None
        return output, (time.perf_counter() - started) * 1000

    def abandon(self) -> None:
        """The client has its answer; stop run() at its next Python line so the thread is free
        again (code blocked inside C keeps its thread until it returns)."""
        with self.lock:
            self.abandoned = True
            if self.thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                          ctypes.py_object(TimeoutError))


class RunCalls:
    """Calls the script's run() for a request, as the limits say, through the run gate."""

    def __init__(self, script: UserScript, limits: Limits):
        self.script, self.limits = script, limits
        self.gate = RunGate()
        self.slots: asyncio.Semaphore | None = None
        # Threads beyond max_concurrent only matter after timeouts, when an abandoned run() may
        # still hold one. None: run() is called inline.
        self.pool = None if limits.inline else ThreadPoolExecutor(max_workers=limits.max_concurrent + 16,
                                                                  thread_name_prefix="run")
        self.debugging: Callable[[], bool] | None = None  # whether a debugger is attached to this worker
        # Calls run() inside the request's ``run`` span (tracing.RequestTracer.run); None: not traced.
        self.traced: Callable[[Callable[[], Any]], Any] | None = None

    def call_run(self, arguments: dict, headers: dict) -> Any:
        """The script's run(), in its span when traced."""
        if self.traced is None:
            return self.script.call_run(arguments, headers)
        return self.traced(lambda: self.script.call_run(arguments, headers))

    async def call(self, arguments: dict, headers: dict, ticket: Ticket) -> tuple[Any, float]:
        """run()'s output and how long it took (ms), or RunTimeout, or what run() raised. When it
        returns, the call is still counted in the gate: the caller leaves it once the output is
        answered (a streamed answer, once its last chunk is made)."""
        timeout_ms = self._timeout_ms()
        deadline = ticket.arrived + timeout_ms / 1000 if timeout_ms else None
        gate = self.gate
        if self.limits.inline:
            await gate.enter()
            try:
                return self._run_inline(arguments, headers, deadline)
            except BaseException:
                gate.leave()
                raise
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.limits.max_concurrent)
        call = _RunCall(self.call_run, arguments, headers)
        loop = asyncio.get_running_loop()
        timeout = asyncio.timeout(None if deadline is None else deadline - time.monotonic())
        try:
            async with timeout:
                async with self.slots:
                    await gate.enter()
                    # A traced call takes the request's context to its thread: the run span, and the
                    # user's own spans inside it, are children of the request's span.
                    future = self.pool.submit(contextvars.copy_context().run, call) if self.traced else \
                        self.pool.submit(call)
                    try:
                        return await asyncio.wrap_future(future, loop=loop)
                    except BaseException:
                        # Counted until its thread is done: an abandoned call's code still runs.
                        future.add_done_callback(lambda _: loop.call_soon_threadsafe(gate.leave))
                        raise
        except TimeoutError:
            if not timeout.expired():  # run() itself raised TimeoutError: its own failure, a 500
                raise
            call.abandon()
            raise RunTimeout(ran=call.started) from None

    async def next_chunk(self, chunks: Iterator[bytes]) -> Any:
        """The next chunk of a streamed answer, or END, made where run() runs: on the loop (one
        call at a time), or on a pool thread."""
        if self.pool is None:
            return next(chunks, END)
        return await asyncio.get_running_loop().run_in_executor(self.pool, next, chunks, END)

    async def finish(self, close: Callable[[], None]) -> None:
        """Close a streamed answer (its generator's ``finally`` runs), where its chunks were made."""
        if self.pool is None:
            close()
        else:
            await asyncio.get_running_loop().run_in_executor(self.pool, close)

    def _timeout_ms(self) -> int | None:
        """The request's timeout; none while a debugger is attached, so that a stop at a
        breakpoint is not answered 408 behind the user's back (said in the log)."""
        timeout_ms = self.limits.timeout_ms
        if timeout_ms and self.debugging is not None and self.debugging():
            logger.info(timeout_suspended(timeout_ms))
            return None
        return timeout_ms

    def _run_inline(self, arguments: dict, headers: dict, deadline: float | None) -> tuple[Any, float]:
        if deadline is None:
            started = time.perf_counter()
            output = self.call_run(arguments, headers)
            return output, (time.perf_counter() - started) * 1000
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # Its time ran out while it waited behind other calls: the endpoint has answered by now.
            raise RunTimeout(ran=False)
        try:
            _ALARM.arm(remaining)
            started = time.perf_counter()
            try:
                output = self.call_run(arguments, headers)
            finally:
                _ALARM.disarm()
        except _Alarm:
            raise RunTimeout() from None
        if time.monotonic() > deadline:  # run() caught the alarm and went on: too late all the same
            raise RunTimeout()
        return output, (time.perf_counter() - started) * 1000
