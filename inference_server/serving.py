"""The uvicorn harness every kind of worker serves on: its channel to the supervisor, draining
and handing over connections when told to stop, the revision stamp on each answer, rung 0's
patch orders, the debugger (waiting for one, watching its stops), and learning what the worker
imported. A worker module (``script_worker``, ``flow_worker``) builds its app and serves it here.

A worker that stops because a newer revision is ready hands its idle kept-alive connections to the
supervisor, which passes them to the new worker (the sockets travel over the channel, a Unix socket
pair, as SCM_RIGHTS). Closing them instead would race with a request already on its way and lose
it; keeping them would answer a client's next request with the old code after the new revision was
announced. A handed-over connection loses nothing: bytes the old worker has not read stay in the
socket, and the new worker reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import sysconfig
import threading
import time
from collections.abc import Callable

from . import held, protocol
from .options import Options, configure_logging

logger = logging.getLogger("azmlinfsrv")

REVISION_HEADER = b"x-devtui-revision"
# How long a patch waits for run() calls in flight to return before a new worker takes over instead.
PATCH_WAIT_S = 2.0
LEARN_EVERY_S = 0.1  # while init() runs


class Channel:
    """The worker's end of its channel to the supervisor: statuses go out (from any thread, one
    line at a time), orders come in (read on the event loop). Called like a function, it reports
    a status: ``channel(protocol.WorkerReady)``."""

    def __init__(self, fd: int, revision: int):
        self.sock = socket.socket(fileno=fd)  # blocking: a status is written whole
        self.revision = revision  # the revision this worker's code is; a patch moves it on
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._buffer = b""
        self._fds: list[int] = []

    def __call__(self, message: type[protocol.WorkerStatus], fds: tuple[int, ...] = (), **fields) -> None:
        values = {"revision": self.revision, "pid": os.getpid(),
                  "duration_ms": round((time.perf_counter() - self.started) * 1000, 3), **fields}
        line = protocol.encode(message(**values))
        with self._lock:
            if fds:
                socket.send_fds(self.sock, [line], list(fds))
            else:
                self.sock.sendall(line)

    def listen(self, loop, on_order: Callable[[protocol.WorkerOrder, list[int]], None]) -> None:
        """Read orders on ``loop``; ``on_order`` gets each with the sockets that came with it."""

        def readable() -> None:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 65536, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            self._fds.extend(fds)
            if not data:  # the supervisor is gone; the parent-death signal ends this worker
                loop.remove_reader(self.sock.fileno())
                return
            self._buffer += data
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                order = protocol.decode_order(line)
                count = getattr(order, "connections", 0)
                taken, self._fds = self._fds[:count], self._fds[count:]
                on_order(order, taken)

        loop.add_reader(self.sock.fileno(), readable)


class Handoff:
    """Idle connections a stopping worker gives up, sent to the supervisor in one status."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.fds: list[int] = []

    def take(self, protocol_) -> bool:
        """Take PROTOCOL's connection if it can travel; False: the worker keeps and drains it."""
        transport = protocol_.transport
        sock = transport.get_extra_info("socket")
        if sock is None or transport.is_closing() or transport.get_write_buffer_size():
            return False
        transport.pause_reading()
        if not self.fds:  # taken outside stop_accepting too (uvicorn's shutdown asks again): sent next
            asyncio.get_running_loop().call_soon(self.flush)
        self.fds.append(os.dup(sock.fileno()))
        # The socket lives on in the copy: closing this end sends nothing to the client.
        transport.abort()
        return True

    def flush(self) -> None:
        fds, self.fds = self.fds, []
        if not fds:
            return
        try:
            self.channel(protocol.WorkerHandoff, fds=tuple(fds), connections=len(fds))
        except OSError:
            pass  # the supervisor is gone: the connections close with this worker
        finally:
            for fd in fds:
                os.close(fd)


def draining_protocol(admission=None):
    """uvicorn's httptools protocol, made to stop as a swap needs: told to shut down, an idle
    keep-alive connection is handed over (see the module's docstring) when a :class:`Handoff` is
    set, and otherwise its next request is answered with ``Connection: close``; a connection
    with a request on its way finishes it and closes.

    With an ``admission.Admission``, a scoring request is counted the moment it is read, as of
    when it arrived (its ticket goes in the ASGI scope; see ``admission``)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from .admission import SCORE_PATH, TICKET, received_ago

    class DrainingProtocol(HttpToolsProtocol):
        draining = False
        receiving = False  # a request's first bytes were read, its headers not all yet
        tcp = None  # the connection's socket, for the time its requests arrived
        handoff: Handoff | None = None  # set on the class by serve_app

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if admission is not None and admission.timed:
                self.tcp = transport.get_extra_info("socket")

        def idle(self) -> bool:
            return ((self.cycle is None or self.cycle.response_complete) and not self.receiving
                    and not self.pipeline)

        def shutdown(self) -> None:
            if self.idle():
                if self.handoff is None or not self.handoff.take(self):
                    self.draining = True
            else:  # the request on its way is answered, with Connection: close
                if self.cycle is not None and not self.cycle.response_complete:
                    self.cycle.keep_alive = False
                self.draining = True

        def on_message_begin(self) -> None:
            self.receiving = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self.receiving = False
            scope = self.scope
            if admission is not None and self.url.partition(b"?")[0] == SCORE_PATH:
                # Before uvicorn starts the request's task, which may read the ticket at once.
                scope[TICKET] = admission.arrive(received_ago(self.tcp) if self.tcp is not None else 0.0, self)
            super().on_headers_complete()
            if self.cycle is None or self.cycle.scope is not scope:  # upgraded, not answered by the app
                if TICKET in scope:
                    admission.leave(scope[TICKET])
            elif self.draining:
                self.cycle.keep_alive = False

        def connection_lost(self, exc) -> None:
            # Pipelined requests that will never be answered leave the count.
            for cycle, _ in getattr(self, "pipeline", ()):
                if TICKET in cycle.scope:
                    admission.leave(cycle.scope[TICKET])
            super().connection_lost(exc)

    return DrainingProtocol


def stamped(app, channel: Channel):
    """APP, with each answer saying which revision's code wrote it (``x-devtui-revision``): the
    worker's revision when the answer starts, which a patch moves on between requests."""

    async def stamp(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_stamped(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (REVISION_HEADER, str(channel.revision).encode())]}
            await send(message)

        await app(scope, receive, send_stamped)

    return stamp


def quick_exit_server():
    """uvicorn's Server, but it stops accepting the moment it is told to exit, and it can serve
    connections another worker handed over.

    uvicorn notices the exit request on its next 100 ms tick; until then the old worker would
    keep taking new connections from the shared socket and serving open ones, and clients would
    keep getting the old revision after the new one is ready."""
    import asyncio

    import uvicorn

    class QuickExitServer(uvicorn.Server):
        on_loop = None  # called with the running loop once it runs
        on_draining = None  # called once it no longer accepts connections
        handoff: Handoff | None = None
        accepting = True

        async def serve(self, sockets=None) -> None:
            self.loop = asyncio.get_running_loop()
            if self.on_loop is not None:
                self.on_loop(self.loop)
            await super().serve(sockets)

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            loop = getattr(self, "loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(self.stop_accepting)

        def stop_accepting(self) -> None:
            if not self.accepting:
                return
            self.accepting = False
            for server in getattr(self, "servers", []):
                server.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()
            if self.handoff is not None:
                self.handoff.flush()  # before the word below: Ready follows it
            if self.on_draining is not None:
                self.on_draining, draining = None, self.on_draining
                draining()

        def adopt(self, fds: list[int]) -> None:
            """Serve the connections in FDS, handed over by the worker before this one."""
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                self.loop.create_task(self._adopt(sock))

        async def _adopt(self, sock: socket.socket) -> None:
            config = self.config
            _, connection = await self.loop.connect_accepted_socket(
                lambda: config.http_protocol_class(config=config, server_state=self.server_state,
                                                   app_state=self.lifespan.state), sock)
            if not self.accepting:  # this worker was told to stop meanwhile: pass it on
                connection.shutdown()
                if self.handoff is not None:
                    self.handoff.flush()

    return QuickExitServer


class PatchRequests:
    """Patch orders from the supervisor: apply the saved code to this worker in place (rung 0) and
    answer with a WorkerPatched status. The decision (reading and parsing the sources) runs on a
    thread, off the serving path; the change is made on the event loop, between requests, once no
    run() call is executing (``gate``), so a request runs the old code or the new, never both."""

    def __init__(self, channel: Channel, patcher, gate=None):
        self.channel = channel
        self.patcher = patcher  # the worker's patching.Patcher, which its loader reports to
        self.gate = gate

    def order(self, loop, revision: int) -> None:
        patcher = self.patcher
        decide = getattr(patcher, "decide", None)
        if decide is None:  # a patcher without the split: decide and apply in one step
            self._when_idle(revision, patcher.apply)
            return
        future = loop.run_in_executor(None, decide)
        future.add_done_callback(lambda done: self._decided(revision, patcher, done))

    def _decided(self, revision: int, patcher, done) -> None:
        try:
            decision = done.result()
        except Exception as ex:  # the decision itself broke: a fresh worker is the faithful answer
            self._report(revision, patching_outcome("swap", f"the change could not be compared ({ex})"))
            return
        self._when_idle(revision, lambda: patcher.commit(decision))

    def _when_idle(self, revision: int, commit: Callable[[], object]) -> None:
        """Commit once no run() executes; a swap if they keep executing past PATCH_WAIT_S."""
        if self.gate is None:
            self._commit(revision, commit)
            return
        if self.gate.executing:
            logger.info(f"The patch waits for {self.gate.executing} run() call(s) to return")
        self.gate.hold(lambda: self._commit(revision, commit), PATCH_WAIT_S,
                       lambda: self._report(revision, patching_outcome(
                           "swap", f"run() was still executing after {PATCH_WAIT_S:.0f} s")))

    def _commit(self, revision: int, commit: Callable[[], object]) -> None:
        outcome = commit()
        if outcome.kind == "patched":
            self.channel.revision = revision  # in the same step as the change: answers say it
        self._report(revision, outcome)

    def _report(self, revision: int, outcome) -> None:
        if outcome.kind == "patched":
            summary = outcome.summary  # "patched run() in place", "nothing to apply (no code changed)"
            logger.info(f"{summary[:1].upper()}{summary[1:]} in {outcome.duration_ms:.1f} ms; init() did not run again")
        elif outcome.kind == "failed":
            logger.error(f"The saved code cannot be applied; the running code keeps serving:\n{outcome.traceback}")
        else:
            logger.info(f"Not a patch ({outcome.detail}): a new worker takes over")
        self.channel(protocol.WorkerPatched, result=protocol.PatchResult(outcome.kind), detail=outcome.detail,
                     traceback=outcome.traceback)


def patching_outcome(kind: str, detail: str):
    from .patching import Outcome

    return Outcome(kind, detail)


def third_party_modules(already_loaded: set[str]) -> list[str]:
    """Modules this worker imported from site-packages: what the next worker will import again.

    Submodules count: unpickling a model imports e.g. ``sklearn.linear_model._ridge``. Modules the
    parent had already are skipped, which also keeps this cheap on the second and later reloads."""
    roots = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    roots = tuple(os.path.join(r, "") for r in roots | {os.path.realpath(r) for r in roots})
    names = []
    for name in set(sys.modules) - already_loaded:
        if name.startswith(("_", "inference_server", "entry_module", "azureml")):
            continue
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and path.startswith(roots):
            names.append(name)
    return sorted(names)


def app_config(app, admission=None):
    """How uvicorn serves APP (an ASGI app) in a worker: uvloop, the draining protocol, no access
    log of its own (the app logs each request), and 30 s to finish what is in flight."""
    import uvicorn

    return uvicorn.Config(app, loop="uvloop", http=draining_protocol(admission), lifespan="off", log_config=None,
                          access_log=False, server_header=False, date_header=False,
                          timeout_graceful_shutdown=30)


def serve_app(config, options: Options, sock: socket.socket, report: Channel, *, roots: tuple[str, ...],
              patcher=None, loaded_by_parent: set[str] | None = None, gate=None) -> int:
    """Serve the app of CONFIG (a uvicorn.Config; ``app_config`` makes one) on the supervisor's
    socket until told to stop: ready is reported, then what the worker imported, and debugger
    stops while they last. ``patcher``: the worker's ``patching.Patcher``, which patch orders
    go to (None: the worker cannot be patched, every reload is a new one); ``gate`` the app's
    run() gate, which patches wait on."""
    loaded_by_parent = set(sys.modules) if loaded_by_parent is None else loaded_by_parent
    config.app = stamped(config.app, report)
    if options.debug_host:  # decided once: without a debugger, requests are not registered at all
        config.app = in_flight = held.InFlight(config.app)
    server = quick_exit_server()(config)
    server.handoff = config.http.handoff = Handoff(report)
    server.on_draining = lambda: _tell_draining(report)
    patches = PatchRequests(report, patcher, gate) if patcher is not None else None

    def on_order(order, fds: list[int]) -> None:
        if isinstance(order, protocol.AdoptOrder):
            server.adopt(fds)
        elif isinstance(order, protocol.PatchOrder) and patches is not None:
            patches.order(server.loop, order.revision)

    # Listening starts with the loop, before any request: orders sent meanwhile wait in the socket.
    server.on_loop = lambda loop: report.listen(loop, on_order)
    report(protocol.WorkerReady)
    logger.info(f"Worker with pid {os.getpid()} ready for serving traffic")
    if options.debug_host:
        held.start_watching(report, tuple(os.path.join(os.path.abspath(p), "") for p in roots), in_flight)
    if options.warm_imports:
        report(protocol.WorkerLearned, modules=tuple(third_party_modules(loaded_by_parent)))
    # What the imports and init() made lives as long as the worker: out of the collector's sight,
    # so a full collection while serving walks only what requests made, not the model and its
    # libraries (hundreds of thousands of objects, milliseconds a collection).
    gc.freeze()
    server.run(sockets=[sock])
    return 0


def _tell_draining(report: Channel) -> None:
    """The supervisor may announce the next revision now (handover.py)."""
    with contextlib.suppress(OSError):  # the supervisor is gone: nobody waits for the word
        report(protocol.WorkerDraining)


def wait_for_debugger(options: Options, before: str) -> None:
    """With ``--debug-wait``, hold here until a debugger attaches (``before``: what waits for it)."""
    if options.debug_host and options.debug_wait:
        import debugpy

        logger.info(f"Waiting for a debugger to attach before {before} (--debug-wait)")
        debugpy.wait_for_client()
        logger.info("Debugger attached")


def debugging_probe(options: Options):
    """Whether a debugger is attached to this worker (the request timeout waits then); None
    without a debugger listener."""
    if not options.debug_host:
        return None
    import debugpy

    return debugpy.is_client_connected


@contextlib.contextmanager
def learning_while_loading(options: Options, report: Channel, loaded_by_parent: set[str]):
    """While the script loads and init() runs, tell the parent every LEARN_EVERY_S which
    third-party modules this worker has imported so far: the parent imports them meanwhile (on
    another core), so it is warm about when this worker is ready, not a whole init() later."""
    if not options.warm_imports:
        yield
        return
    done = threading.Event()
    told = set(loaded_by_parent)

    def tell() -> None:
        while not done.wait(LEARN_EVERY_S):
            new = third_party_modules(told)
            if new:
                told.update(new)
                report(protocol.WorkerLearned, modules=tuple(new))

    teller = threading.Thread(target=tell, daemon=True, name="learn-while-loading")
    teller.is_pydev_daemon_thread = True  # debugpy neither traces nor suspends it
    teller.start()
    try:
        yield
    finally:
        done.set()
        teller.join()


def learning(options: Options, report: Channel, loaded_by_parent: set[str]):
    """What to call after the first answer: lazily importing libraries (and prompt flow's
    executor) load most on the first run, and the parent learns those too."""

    def learned() -> None:
        if options.warm_imports:
            report(protocol.WorkerLearned, modules=tuple(third_party_modules(loaded_by_parent)))

    return learned


def run_spawned(serve: Callable[[Options, socket.socket, int, int], int]) -> None:
    """A spawned worker's entry point (platforms or setups without fork): ``python -m
    inference_server.script_worker OPTIONS SOCKET REVISION CHANNEL`` runs ``serve`` with them."""
    import json

    options = Options(**json.loads(sys.argv[1]))
    sock = socket.socket(fileno=int(sys.argv[2]))
    configure_logging()
    sys.exit(serve(options, sock, int(sys.argv[3]), int(sys.argv[4])))
