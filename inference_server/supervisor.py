"""The supervisor: owns the listening socket, stays warm, and swaps workers on reload.

It never serves a request itself. On start and on every SIGHUP it forks a worker from itself:
because it has already imported the server and the heavy libraries the previous worker used,
the new worker only imports the user's script and runs init(). When the new worker reports
ready, the old one gets SIGTERM and drains its in-flight requests; if the new one fails, the
old one keeps serving. The socket is shared, so no connection is refused during a swap.

Progress goes out as JSON lines on the events fd (for devtui) and as log lines on stdout.
The supervisor runs no threads and no event loop, so forking it is safe.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from .worker import Options, configure_logging

logger = logging.getLogger("azmlinfsrv.supervisor")

_PR_SET_PDEATHSIG = 1
EVENT_PREFIX = "@@devtui-event "


@dataclass(eq=False)
class Worker:
    revision: int
    pid: int
    status_fd: int
    started: float
    ready: bool = False
    ready_at: float = 0.0
    buffer: bytes = b""
    failure: dict | None = field(default=None)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal this process when its parent dies, so nothing outlives devtui."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, options: Options):
        self.options = options
        self.revision = options.first_revision - 1
        self.current: Worker | None = None
        self.pending: Worker | None = None
        self.retiring: list[Worker] = []
        self.reload_requested = False
        self.stopping = False
        self.exit_code = 0
        self.learned: set[str] = set()
        self.crashes = 0  # in a row; a worker that stays up resets it
        self.restart_at: float | None = None
        self.imported: set[str] = set()
        self.selector = selectors.DefaultSelector()

    # -- events ------------------------------------------------------------------------------

    def emit(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, **fields}) + "\n"
        if self.options.events_fd is not None:
            try:
                os.write(self.options.events_fd, line.encode())
            except OSError:
                pass  # devtui went away; the parent-death signal ends us soon
        elif self.options.events_stdout:
            # In a container there is no pipe to pass: events travel in the log, marked so that
            # devtui can take them out of it. One write of one line, so they never interleave.
            sys.stdout.flush()
            os.write(sys.stdout.fileno(), (EVENT_PREFIX + line).encode())

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        # Handlers first: a reload or stop asked for while the server is still starting must
        # not kill it (their default action) but take effect once it can.
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        if self.options.parent_pid:
            die_with_parent()
            if os.getppid() != self.options.parent_pid:
                return 1
        try:
            self.sock = bind(self.options.host, self.options.port)
        except OSError as ex:
            reason = "is already in use" if ex.errno == errno.EADDRINUSE else f"cannot be bound: {ex.strerror}"
            logger.error(f"Port {self.options.port} on {self.options.host} {reason}.")
            self.emit("bind_failed", host=self.options.host, port=self.options.port, reason=reason)
            return 2
        port = self.sock.getsockname()[1]
        logger.info(f"Listening on http://{self.options.host}:{port}")
        self.emit("listening", host=self.options.host, port=port, pid=os.getpid())
        self._warm_up_server()
        if self.options.debug_host and not self._listen_for_debugger():
            return 2

        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake_fds = (wake_r, wake_w)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(wake_r, selectors.EVENT_READ, None)

        if self.stopping:
            return self.exit_code
        # A reload asked for while starting is already covered by the first worker.
        self.reload_requested = False
        self._start_worker()
        while True:
            timeout = 0.25 if self.options.debug_host else 1.0
            if self.restart_at is not None:
                timeout = max(0.0, min(timeout, self.restart_at - time.monotonic()))
            for key, _ in self.selector.select(timeout=timeout):
                if key.data is None:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._read_status(key.data)
            self._reap()
            if self.options.debug_host:
                self._watch_debugger()
            if self.stopping and not self._workers():
                break
            if self.restart_at is not None and time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.reload_requested = True
            if self.reload_requested and self.pending is None and not self.stopping:
                self.reload_requested = False
                self._start_worker()
        logger.info("Supervisor stopped")
        self.emit("stopped", exit_code=self.exit_code)
        return self.exit_code

    def _listen_for_debugger(self) -> bool:
        """debugpy listens here, in the supervisor: a client attaches once, and every worker
        forked from here joins as a child process of that session, reload after reload."""
        import debugpy

        host, port = self.options.debug_host, self.options.debug_port
        try:
            debugpy.configure(subProcess=True)
            _, port = debugpy.listen((host, port))
        except Exception as ex:
            logger.error(f"The debugger cannot listen on {host}:{port}: {ex}")
            self.emit("debugger", state="failed", host=host, port=port, detail=str(ex))
            return False
        self.debug_port = port
        self.debug_attached = False
        self.debug_stop = None
        logger.info(f"Debugger (debugpy) listening on {host}:{port}; attach once, breakpoints survive reloads")
        self.emit("debugger", state="listening", host=host, port=port)
        return True

    def _watch_debugger(self) -> None:
        import debugpy

        attached = debugpy.is_client_connected()
        if attached != self.debug_attached:
            self.debug_attached = attached
            self.debug_stop = None if not attached else self.debug_stop
            state = "attached" if attached else "listening"
            logger.info(f"Debugger {state}")
            self.emit("debugger", state=state, host=self.options.debug_host, port=self.debug_port)

    def _on_reload(self, *_):
        self.reload_requested = True

    def _on_stop(self, *_):
        if not self.stopping:
            self.stopping = True
            for worker in self._workers():
                _kill(worker.pid, signal.SIGTERM)

    def _workers(self) -> list[Worker]:
        return [w for w in (self.current, self.pending, *self.retiring) if w is not None]

    # -- warm parent -------------------------------------------------------------------------

    def _warm_up_server(self) -> None:
        """Import everything a worker needs to serve, once, here in the parent."""
        import uvicorn

        from . import app  # noqa: F401  (FastAPI, Starlette, werkzeug)

        async def nothing(scope, receive, send):
            pass

        config = uvicorn.Config(nothing, loop="uvloop", http="httptools", lifespan="off", log_config=None)
        config.load()

    def _warm_up_learned(self) -> None:
        """Import the libraries the last worker imported, so the next one finds them loaded.

        Runs while idle, right after a worker reports them; a reload requested meanwhile goes
        first (the new worker imports what is not here yet itself)."""
        if not self.options.warm_imports:
            return
        for name in sorted(self.learned - self.imported):
            if self.reload_requested:
                return
            self.imported.add(name)
            started = time.perf_counter()
            try:
                importlib.import_module(name)
            except BaseException as ex:  # a library that cannot load here is simply left to the worker
                logger.debug(f"Not preloading {name}: {ex!r}")
                continue
            logger.debug(f"Preloaded {name} in {(time.perf_counter() - started) * 1000:.1f} ms")

    # -- workers -----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self.revision += 1
        status_r, status_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.perf_counter()
        if self.options.fork:
            pid = os.fork()
            if pid == 0:
                os.close(status_r)
                self._become_worker(status_w)
        else:
            pid = subprocess.Popen(
                [sys.executable, "-m", "inference_server.worker", json.dumps(asdict(self.options)),
                 str(self.sock.fileno()), str(self.revision), str(status_w)],
                pass_fds=(self.sock.fileno(), status_w)).pid
        os.close(status_w)
        os.set_blocking(status_r, False)
        worker = Worker(self.revision, pid, status_r, started)
        self.selector.register(status_r, selectors.EVENT_READ, worker)
        self.pending = worker
        first = self.current is None
        logger.info(f"Starting worker {pid} for revision {self.revision}")
        self.emit("starting", revision=self.revision, pid=pid, first=first)

    def _become_worker(self, status_w: int) -> None:
        """In the forked child: drop the supervisor's state and serve. Never returns."""
        from .worker import serve

        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            # A hang-up sent to the whole group (a closed terminal, `timeout`) is the supervisor's
            # business: it reloads or stops; a worker must not die of it.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            self.selector.close()
            for fd in (*self.wake_fds, *(w.status_fd for w in self._workers())):
                if fd >= 0:
                    os.close(fd)
            if self.options.events_fd is not None:
                os.close(self.options.events_fd)
            die_with_parent()
            code = serve(self.options, self.sock, self.revision, status_w)
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _read_status(self, worker: Worker) -> None:
        try:
            chunk = os.read(worker.status_fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.selector.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = -1
            return
        worker.buffer += chunk
        while b"\n" in worker.buffer:
            line, worker.buffer = worker.buffer.split(b"\n", 1)
            message = json.loads(line)
            if message["status"] == "ready":
                self._on_ready(worker, message)
            elif message["status"] == "learned":
                self.learned.update(message["modules"])
                self._warm_up_learned()
            elif message["status"] == "failed":
                worker.failure = message
            elif message["status"] == "debug_stop" and self.options.debug_host:
                self.debug_stop = message["where"]
                state = "stopped" if self.debug_stop else ("attached" if self.debug_attached else "listening")
                self.emit("debugger", state=state, host=self.options.debug_host, port=self.debug_port,
                          detail=f"at {self.debug_stop}" if self.debug_stop else "")

    def _on_ready(self, worker: Worker, message: dict) -> None:
        worker.ready = True
        worker.ready_at = time.monotonic()
        previous, self.current = self.current, worker
        if self.pending is worker:
            self.pending = None
        if previous is not None:
            self.retiring.append(previous)
            _kill(previous.pid, signal.SIGTERM)
        logger.info(f"Revision {worker.revision} ready in {message['duration_ms']:.1f} ms (worker {worker.pid})")
        self.emit("ready", revision=worker.revision, pid=worker.pid, duration_ms=message["duration_ms"],
                  first=previous is None)
        if self.stopping:
            _kill(worker.pid, signal.SIGTERM)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            worker = next((w for w in self._workers() if w.pid == pid), None)
            if worker is None:
                continue
            if worker.status_fd >= 0:
                self._read_status(worker)  # a last message may still sit in the pipe
                if worker.status_fd >= 0:
                    self.selector.unregister(worker.status_fd)
                    os.close(worker.status_fd)
                    worker.status_fd = -1
            self._on_exit(worker, code)

    def _on_exit(self, worker: Worker, code: int) -> None:
        if worker in self.retiring:
            self.retiring.remove(worker)
            return
        if worker is self.pending:
            self.pending = None
            if self.stopping:
                return  # cut short by the stop, not a failed revision
            failure = worker.failure or {"stage": "start", "traceback": f"worker exited with code {code} before it was ready"}
            serving = self.current.revision if self.current else None
            logger.error(f"Revision {worker.revision} failed ({failure['stage']}); "
                         + (f"revision {serving} keeps serving" if serving else "no revision is serving"))
            self.emit("failed", revision=worker.revision, stage=failure["stage"], traceback=failure["traceback"],
                      duration_ms=round((time.perf_counter() - worker.started) * 1000, 3), serving_revision=serving,
                      exit_code=code)
            if serving is None and not self.options.stay_up_on_failure and not self.stopping:
                self.exit_code = 3
                self.stopping = True
            return
        if worker is self.current:
            self.current = None
            if self.stopping:
                return
            if time.monotonic() - worker.ready_at > 30:
                self.crashes = 0  # it had been serving a good while: this is a new crash, not a loop
            # The serving worker died under us (a crash in run(), an OOM kill): start it again,
            # waiting longer after each crash in a row so a worker that keeps dying does not spin.
            self.crashes += 1
            delay = min(0.1 * 2 ** (self.crashes - 1), 10.0)
            logger.error(f"Worker {worker.pid} of revision {worker.revision} exited with code {code}; restarting it"
                         + (f" in {delay:.1f} s ({self.crashes} crashes in a row)" if self.crashes > 1 else ""))
            self.emit("crashed", revision=worker.revision, pid=worker.pid, exit_code=code)
            self.restart_at = time.monotonic() + (delay if self.crashes > 1 else 0)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run(options: Options) -> int:
    configure_logging()
    return Supervisor(options).run()
