"""The supervisor: owns the listening socket, stays warm, and swaps workers on reload.

It never runs the user's script itself. On start and on every SIGHUP it forks a worker from itself:
because it has already imported the server and the heavy libraries the previous worker used,
the new worker only imports the user's script and runs init(). When the new worker reports
ready, the old one gets SIGTERM and drains its in-flight requests; if the new one fails, the
old one keeps serving. The socket is shared, so no connection is refused during a swap. While
no worker serves at all, the supervisor answers each connection with a 503 that says why
(unavailable.py), rather than leave it waiting in the listen queue.

Progress goes out as events for devtui (see protocol.py) and as log lines on stdout.
The supervisor runs no threads and no event loop, so forking it is safe.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

from . import protocol
from .debugger import DebugListener
from .handover import Handover
from .patch_requests import Patches
from .warming import Preloader
from .unavailable import Unavailable
from .options import Options, configure_logging
from .tracing import spans_events
from .worker_process import Worker, die_with_parent, kill, pass_on, spawn

logger = logging.getLogger("azmlinfsrv.supervisor")

def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def listen(host: str, port: int, emit: Callable[[protocol.ServerEvent], None]) -> socket.socket | None:
    """The listening socket, or None (and said so) when the port cannot be bound."""
    try:
        sock = bind(host, port)
    except OSError as ex:
        reason = "is already in use" if ex.errno == errno.EADDRINUSE else f"cannot be bound: {ex.strerror}"
        logger.error(f"Port {port} on {host} {reason}.")
        emit(protocol.BindFailed(host=host, port=port, reason=reason))
        return None
    port = sock.getsockname()[1]
    logger.info(f"Listening on http://{host}:{port}")
    emit(protocol.Listening(host=host, port=port, pid=os.getpid()))
    return sock


class Backoff:
    """When to start a crashed serving worker again: at once the first time, then waiting longer
    after each crash in a row, so a worker that keeps dying does not spin."""

    def __init__(self):
        self.crashes = 0  # in a row; a worker that stayed up a good while resets it
        self.restart_at: float | None = None

    def crashed(self, worker: Worker, code: int) -> protocol.Crashed:
        """The serving ``worker`` died under us (a crash in run(), an OOM kill): when to start it
        again is set, and said in the log; the event to send is returned."""
        if time.monotonic() - worker.ready_at > 30:
            self.crashes = 0  # it had been serving a good while: this is a new crash, not a loop
        self.crashes += 1
        delay = min(0.1 * 2 ** (self.crashes - 1), 10.0) if self.crashes > 1 else 0.0
        self.restart_at = time.monotonic() + delay
        logger.error(f"Worker {worker.pid} of revision {worker.revision} exited with code {code}; restarting it"
                     + (f" in {delay:.1f} s ({self.crashes} crashes in a row)" if self.crashes > 1 else ""))
        return protocol.Crashed(revision=worker.revision, pid=worker.pid, exit_code=code)

    def due(self) -> bool:
        if self.restart_at is None or time.monotonic() < self.restart_at:
            return False
        self.restart_at = None
        return True


def exited_children():
    """(pid, exit code) of each child process that has exited, without waiting for any."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)


class Supervisor:
    """The process devtui starts; see the module's docstring for what it does."""

    def __init__(self, options: Options):
        self.options = options
        self.revision = options.first_revision - 1
        self.current: Worker | None = None
        self.pending: Worker | None = None
        self.retiring: list[Worker] = []
        self.reload_requested, self.reloads = False, 0  # a reload is due; SIGHUPs so far
        self.swap_requested: str | None = None  # the next reload is a new worker, for this reason
        self.patches = Patches(self.emit, lambda worker, order: worker.send(order))
        self.stopping = False
        self.exit_code = 0
        self.backoff = Backoff()  # restarting a serving worker that crashed
        self.preloader = Preloader(options.warm_imports, options.warm_file)
        self.selector = selectors.DefaultSelector()
        self.sock: socket.socket | None = None
        self.unavailable = Unavailable(self.selector)
        self.wake_fds: tuple[int, ...] = ()  # the signal wake-up pipe: read end, write end
        self.debugger = DebugListener(options.debug_host, options.debug_port, self.emit) if options.debug_host else None
        self.handover = Handover(self._announce, options.handover_timeout_s)

    def emit(self, event: protocol.ServerEvent) -> None:
        self.handover.flush()  # events go out in the order they happened
        self._announce(event)

    def _announce(self, event: protocol.ServerEvent) -> None:
        self.unavailable.observe(event)
        write_event(self.options, event)

    def run(self) -> int:
        # Handlers first: a reload or stop asked for while the server is still starting must
        # not kill it (their default action) but take effect once it can.
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGUSR2, self._on_swap)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        if self.options.parent_pid:
            die_with_parent()
            if os.getppid() != self.options.parent_pid:
                return 1
        self.sock = listen(self.options.host, self.options.port, self.emit)
        if self.sock is None:
            return 2
        self.unavailable.listen(self.sock)
        self.preloader.import_server()
        if self.debugger is not None and not self.debugger.listen():
            return 2
        self.wake_fds = wake_on_signals(self.selector)
        if self.stopping:
            return self.exit_code
        self.reload_requested = False  # one asked for while starting: the first worker covers it
        if not self.options.debug_wait:  # imports here made the first worker's wait_for_client() return at once
            self.preloader.before_first_worker(self.options)
        self._start_worker()
        while True:
            self._wait()
            self._reap()
            if self.debugger is not None:
                self.debugger.poll()
            if self.stopping and not self._workers():
                break
            self._start_worker_if_due()
            self.preloader.step(self._busy, most=1)
        self.unavailable.finish()  # what is left is answered (503), not reset as the socket closes
        if self.debugger is not None:
            self.debugger.close()
        logger.info("Supervisor stopped")
        self.emit(protocol.Stopped(exit_code=self.exit_code))
        return self.exit_code

    def _wait(self) -> None:
        """Wait for a signal, a worker's status, a connection while nothing serves or a due
        restart, and handle what came: statuses first, so a worker that is ready gets the
        connections still waiting in the listen queue."""
        timeout = 0.0 if self.preloader.pending and not self._busy() else 0.25 if self.debugger is not None else 1.0
        if self.backoff.restart_at is not None:
            timeout = max(0.0, min(timeout, self.backoff.restart_at - time.monotonic()))
        if (held := self.handover.remaining()) is not None:
            timeout = min(timeout, held)
        self.unavailable.update(self.stopping)
        events = self.selector.select(timeout=timeout)
        for key, _ in events:
            if key.data is None:
                _drain(key.fd)
            elif isinstance(key.data, Worker):
                self._read_status(key.data)
        self.unavailable.update(self.stopping)
        self.handover.step()
        for handle in [key.data for key, _ in events if callable(key.data)]:
            handle()

    def _busy(self) -> bool:
        """Warming waits: a swap is due, or its Ready waits for the old worker's word."""
        return self.reload_requested or self.handover.remaining() is not None

    def _start_worker_if_due(self) -> None:
        if self.backoff.due():
            self._on_swap(why="the serving worker crashed")
        if self.reload_requested and self.pending is None and self.patches.in_flight is None and not self.stopping:
            self.reload_requested = False
            why, self.swap_requested = self.swap_requested, None
            if why is None and self.current is not None and self.current.debug_stop:
                # Frozen by the debugger, the worker cannot apply a patch (or give up waiting for one).
                why = f"a request is held at a breakpoint ({self.current.debug_stop})"
            if why is None and self.options.reload_mode == protocol.ReloadMode.PATCH and self.current and self.current.ready:
                self.revision += 1
                self.patches.ask(self.current, self.revision)
            else:
                self._start_worker(why=why or "a new worker was asked for")

    def _on_reload(self, *_):
        self.reload_requested, self.reloads = True, self.reloads + 1
        if (self.swap_requested is None and self.pending is None and self.options.reload_mode == protocol.ReloadMode.PATCH
                and not (self.current is not None and self.current.debug_stop)):
            self.patches.signal_early(self.current, self.reloads, self.revision + 1)  # now, not after a warming import

    def _on_swap(self, *_, why: str = "a new worker was asked for"):
        self.reload_requested = True
        self.swap_requested = why

    def _on_patched(self, worker: Worker, message: protocol.WorkerPatched) -> None:
        # The answer to an early request not booked yet: book it now, unless a swap came since.
        if (self.patches.in_flight is None and (sighup := self.patches.early_for(worker)) is not None
                and self.pending is None and self.swap_requested is None):
            self.reload_requested = self.reload_requested and sighup != self.reloads
            self.revision += 1
            self.patches.ask(worker, self.revision)
        patch = self.patches.in_flight
        if patch is not None and worker is self.current and (why := self.patches.answered(worker, message)):
            self._start_worker(why=why, revision=patch.revision)

    def _on_stop(self, *_):
        if not self.stopping:
            self.stopping = True
            for worker in self._workers():
                kill(worker.pid, signal.SIGTERM)

    def _workers(self) -> list[Worker]:
        return [w for w in (self.current, self.pending, *self.retiring) if w is not None]

    # -- workers -----------------------------------------------------------------------------

    def _start_worker(self, why: str = "", revision: int | None = None) -> None:
        """A worker for the next revision, or for ``revision`` (announced: a patch needed a swap)."""
        announced = revision is not None
        self.revision = revision if announced else self.revision + 1
        started = time.perf_counter()
        inherited = (*self.wake_fds, *(w.status_fd for w in self._workers()), *self.unavailable.fds())
        if self.options.events_fd is not None:
            inherited += (self.options.events_fd,)
        pid, status_r = spawn(self.options, self.sock, self.revision, self.selector, inherited)
        worker = Worker(self.revision, pid, status_r, started, why=why)
        self.selector.register(status_r, selectors.EVENT_READ, worker)
        self.pending = worker
        first = self.current is None
        logger.info(f"Starting worker {pid} for revision {self.revision}" + (f" ({why})" if why and not first else ""))
        if not announced:
            self.emit(protocol.Starting(revision=self.revision, pid=pid, first=first))

    def _read_status(self, worker: Worker) -> None:
        messages = worker.receive()
        if messages is None:
            self._close_status(worker)
            return
        for message in messages:
            if isinstance(message, protocol.WorkerReady):
                self._on_ready(worker, message)
            elif isinstance(message, protocol.WorkerLearned):
                self.preloader.learn(message.modules)
            elif isinstance(message, protocol.WorkerFailed):
                worker.failure = message
            elif isinstance(message, protocol.WorkerDebugStop) and self.debugger is not None:
                worker.debug_stop, worker.held = message.where, message.held
                self.debugger.workers_stopped(self._workers())
            elif isinstance(message, protocol.WorkerPatched):
                self._on_patched(worker, message)
            elif isinstance(message, protocol.WorkerHandoff):
                taker = self.current if self.current is not worker and not self.stopping else None
                self.unavailable.adopt(pass_on(worker, taker, message.connections))  # none to take them: 503
            elif isinstance(message, protocol.WorkerDraining):
                self.handover.released(worker.pid)
            elif isinstance(message, protocol.WorkerSpans):
                pass_spans(self.options, message)

    def _close_status(self, worker: Worker) -> None:
        self.selector.unregister(worker.status_fd)
        worker.close_channel()

    def _on_ready(self, worker: Worker, message: protocol.WorkerReady) -> None:
        worker.ready = True
        worker.ready_at = time.monotonic()
        previous, self.current = self.current, worker
        if self.pending is worker:
            self.pending = None
        if previous is not None:
            self.retiring.append(previous)
            kill(previous.pid, signal.SIGTERM)
        logger.info(f"Revision {worker.revision} ready in {message.duration_ms:.1f} ms (worker {worker.pid})")
        ready = protocol.Ready(revision=worker.revision, pid=worker.pid, duration_ms=message.duration_ms,
                               first=previous is None, rung=protocol.Rung.START if previous is None
                               else protocol.Rung.SWAP, detail=worker.why if previous is not None else "")
        if previous is not None:
            self.handover.begin(ready, previous.pid)
        else:
            self.emit(ready)
        if self.stopping:
            kill(worker.pid, signal.SIGTERM)

    def _reap(self) -> None:
        for pid, code in exited_children():
            worker = next((w for w in self._workers() if w.pid == pid), None)
            if worker is None:
                continue
            if worker.status_fd >= 0:
                self._read_status(worker)  # a last message may still sit in the pipe
                if worker.status_fd >= 0:
                    self._close_status(worker)
            self._on_exit(worker, code)

    def _on_exit(self, worker: Worker, code: int) -> None:
        self.handover.released(worker.pid)
        if worker.debug_stop and self.debugger is not None:  # it exited held, or before it said it was let go
            worker.debug_stop, worker.held = None, ()
            self.debugger.workers_stopped(self._workers())
        if worker in self.retiring:
            self.retiring.remove(worker)
        elif worker is self.pending:
            self.pending = None
            if not self.stopping:  # else cut short by the stop, not a failed revision
                self._revision_failed(worker, code)
        elif worker is self.current:
            self.current = None
            if self.patches.in_flight is not None:  # it died answering a patch: the restart loads the save
                self.revision = self.patches.cancel() - 1
            if not self.stopping:
                self.emit(self.backoff.crashed(worker, code))

    def _revision_failed(self, worker: Worker, code: int) -> None:
        serving = self.current.revision if self.current else None
        self.emit(failed_revision(worker, code, serving))
        if serving is None and not self.options.stay_up_on_failure and not self.stopping:
            self.exit_code = 3
            self.stopping = True


def failed_revision(worker: Worker, code: int, serving: int | None) -> protocol.Failed:
    """What devtui hears (and the log says) of a worker that exited with ``code`` before it was ready."""
    if worker.failure is not None:
        stage, text = worker.failure.stage, worker.failure.traceback
    else:
        stage, text = protocol.Stage.START, f"worker exited with code {code} before it was ready"
    logger.error(f"Revision {worker.revision} failed ({stage}); "
                 + (f"revision {serving} keeps serving" if serving else "no revision is serving"))
    return protocol.Failed(revision=worker.revision, stage=stage, traceback=text,
                           duration_ms=round((time.perf_counter() - worker.started) * 1000, 3),
                           serving_revision=serving, exit_code=code)


def wake_on_signals(selector: selectors.BaseSelector) -> tuple[int, int]:
    """Signals (a reload, a stop, a child that exited) end the wait in ``selector``; the wake-up
    pipe's read and write ends."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector.register(wake_r, selectors.EVENT_READ, None)
    return wake_r, wake_w


def pass_spans(options: Options, message: protocol.WorkerSpans) -> None:
    """A worker's spans to devtui, as OTLP JSON; straight out, not through Supervisor.emit(): a
    Ready held for the handover (handover.py) is not a span's to hurry."""
    prefix = options.events_stdout and options.events_fd is None
    for line in spans_events(message.revision, message.spans, message.resource,
                             lambda event: protocol.encode(event, prefix=prefix)):
        write_line(options, line)


def write_event(options: Options, event: protocol.ServerEvent) -> None:
    """Tell devtui, on the events fd or, in a container, in the log."""
    write_line(options, protocol.encode(event, prefix=options.events_stdout and options.events_fd is None))


def write_line(options: Options, line: bytes) -> None:
    """An encoded event line (behind the prefix for the log, see write_event) to devtui."""
    if options.events_fd is not None:
        try:
            os.write(options.events_fd, line)
        except OSError:
            pass  # devtui went away; the parent-death signal ends us soon
    elif options.events_stdout:
        # In a container there is no pipe to pass: events travel in the log, marked so that
        # devtui can take them out of it. One write of one line, so they never interleave.
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), line)


def _drain(fd: int) -> None:
    """Empty the signal wake-up pipe; what was written there does not matter, only that it was."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def run(options: Options) -> int:
    configure_logging()
    return Supervisor(options).run()
