"""A socket proxy in front of the machine's Docker engine, which a test controls: devtui reaches
the engine through it (``DOCKER_HOST=proxy.host``), and the test can cut the engine off for a
while (``pause``/``resume``: the connections open are cut, new ones are closed at once, as an
engine that restarts or a network that drops does), or hold the first request that names
something (``hold``/``release``) to do something in between, at an exact point of devtui's work.

It forwards bytes and understands nothing of HTTP but a substring; the engine behind it is the
real one, so everything devtui creates is real. Its socket lives under /tmp with a name unique to
the test run.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from devtui.runtimes.container.docker_context import resolve


class EngineProxy:
    def __init__(self, upstream: str, run_id: str):
        self.upstream = upstream  # the engine's unix socket path
        self.folder = Path(tempfile.mkdtemp(prefix=f"{run_id}-proxy-", dir="/tmp"))
        self.path = self.folder / "docker.sock"
        self.host = f"unix://{self.path}"
        self.paused = False
        self.held = threading.Event()  # a request matching the hold pattern is waiting
        self._pattern: bytes | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="engine proxy").start()

    # -- what a test does -------------------------------------------------------------------------

    def pause(self) -> None:
        """The engine stops answering: open connections are cut, new ones closed at once."""
        with self._lock:
            self.paused = True
            cut, self._open = self._open, set()
        for sock in cut:
            _close(sock)

    def resume(self) -> None:
        with self._lock:
            self.paused = False

    def hold(self, pattern: bytes) -> None:
        """The first request whose bytes hold ``pattern`` waits (``held`` is set) until ``release``."""
        self._released.clear()
        self.held.clear()
        self._pattern = pattern

    def release(self) -> None:
        self._pattern = None
        self._released.set()

    def close(self) -> None:
        self._closed = True
        self.release()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        _close(self._listener)
        self.pause()
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    # -- forwarding --------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                paused = self.paused
            if paused:
                _close(client)
                continue
            try:
                engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                engine.connect(self.upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open |= {client, engine}
            threading.Thread(target=self._pump, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(engine, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, to_engine: bool) -> None:
        try:
            while data := source.recv(65536):
                pattern = self._pattern
                if to_engine and pattern is not None and pattern in data:
                    self.held.set()
                    self._released.wait(300)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, target}
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@pytest.fixture
def engine_proxy(docker_client, run_id):
    """An EngineProxy in front of the engine the other container tests use; closed afterwards.
    Ask for it before ``endpoint``, so that the endpoint's cleanup still finds the engine."""
    host = resolve().host
    if not host.startswith("unix://"):
        pytest.skip(f"the engine proxy forwards to a unix socket; this engine is at {host}")
    proxy = EngineProxy(host.removeprefix("unix://"), run_id)
    try:
        yield proxy
    finally:
        proxy.close()
