"""A worker as the supervisor sees it: the forked (or spawned) process and its channel, a Unix
socket pair that carries statuses in, orders out, and idle connections a retiring worker hands
over (see serving.py)."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from . import protocol
from .options import Options

logger = logging.getLogger("azmlinfsrv.supervisor")

_PR_SET_PDEATHSIG = 1

# A worker module's entry: (options, the listening socket, revision, its end of the channel) -> exit code.
Serve = Callable[[Options, socket.socket, int, int], int]


@dataclass(eq=False)
class Worker:
    revision: int
    pid: int
    status_fd: int  # the supervisor's end of the channel
    started: float
    ready: bool = False
    ready_at: float = 0.0
    buffer: bytes = b""
    failure: protocol.WorkerFailed | None = None
    why: str = ""  # why a new worker rather than a patch (Ready's detail)
    fds: list[int] = field(default_factory=list)  # sockets received, not yet claimed by their status line
    debug_stop: str | None = None  # where a debugger holds this worker ("score.py:12 in run()")
    held: tuple[protocol.HeldRequest, ...] = ()  # the requests it was serving then

    def receive(self) -> list[protocol.WorkerStatus] | None:
        """The statuses that arrived whole (their sockets kept for :meth:`take_fds`); None once
        the worker closed its end."""
        channel = socket.socket(fileno=self.status_fd)
        try:
            chunk, fds, _, _ = socket.recv_fds(channel, 65536, 64)
        except BlockingIOError:
            return []
        except OSError:
            chunk, fds = b"", []
        finally:
            channel.detach()  # the fd stays this Worker's
        self.fds.extend(fds)
        if not chunk:
            return None
        self.buffer += chunk
        lines = self.buffer.split(b"\n")
        self.buffer = lines.pop()
        return [protocol.decode_status(line) for line in lines]

    def take_fds(self, count: int) -> list[int]:
        """The sockets that came with a WorkerHandoff of ``count`` connections."""
        taken, self.fds = self.fds[:count], self.fds[count:]
        return taken

    def send(self, order: protocol.WorkerOrder, fds: list[int] | tuple[int, ...] = ()) -> bool:
        """Give the worker ORDER (with FDS); False when it cannot take it now."""
        if self.status_fd < 0:
            return False
        channel = socket.socket(fileno=self.status_fd)
        try:
            socket.send_fds(channel, [protocol.encode(order)], list(fds))
            return True
        except OSError:
            return False
        finally:
            channel.detach()  # the fd stays this Worker's

    def close_channel(self) -> None:
        os.close(self.status_fd)
        self.status_fd = -1
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def pass_on(worker: Worker, taker: Worker | None, count: int) -> list[int]:
    """A stopping ``worker``'s ``count`` idle connections go to ``taker``, the serving worker
    (see serving.py). Returns those nobody took (no worker serves, or the server is stopping):
    the caller answers or closes them."""
    fds = worker.take_fds(count)
    if taker is not None and taker.ready and taker.send(protocol.AdoptOrder(connections=len(fds)), fds):
        logger.debug(f"{len(fds)} kept-alive connections of worker {worker.pid} go to worker {taker.pid}")
        for fd in fds:
            os.close(fd)
        return []
    return fds


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal this process when its parent dies, so nothing outlives devtui."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def spawn(options: Options, sock: socket.socket, revision: int, selector: selectors.BaseSelector,
          inherited_fds: tuple[int, ...]) -> tuple[int, int]:
    """A worker for ``revision``, forked from this warm process (or spawned fresh without fork):
    its pid, and the supervisor's end of its channel (a Unix socket pair: statuses in, orders
    and handed-over connections out)."""
    serve = worker_for(options)  # imported here, in the warm parent, once
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    status_r, status_w = ours.detach(), theirs.detach()
    sys.stdout.flush()
    sys.stderr.flush()
    if options.fork:
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            _become_worker(serve, options, sock, revision, status_w, selector, inherited_fds)
    else:
        pid = subprocess.Popen(
            [sys.executable, "-m", serve.__module__, json.dumps(asdict(options)),
             str(sock.fileno()), str(revision), str(status_w)],
            pass_fds=(sock.fileno(), status_w)).pid
    os.close(status_w)
    os.set_blocking(status_r, False)
    return pid, status_r


def worker_for(options: Options) -> Serve:
    """Which kind of worker serves this deployment: its ``serve``. A flow folder is served by
    prompt flow's app (flow_worker.py), anything else is a scoring script (script_worker.py)."""
    if options.flow_dir:
        from .flow_worker import serve
    else:
        from .script_worker import serve
    return serve


def _become_worker(serve: Serve, options: Options, sock: socket.socket, revision: int, status_w: int,
                   selector: selectors.BaseSelector, inherited_fds: tuple[int, ...]) -> None:
    """In the forked child: drop the supervisor's state (its selector and the fds it inherited
    from it) and serve. Never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # A hang-up sent to the whole group (a closed terminal, `timeout`) is the supervisor's
        # business: it reloads or stops; a worker must not die of it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # the supervisor's (swap), as SIGHUP
        selector.close()
        for fd in inherited_fds:
            if fd >= 0:
                os.close(fd)
        die_with_parent()
        code = serve(options, sock, revision, status_w)
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
