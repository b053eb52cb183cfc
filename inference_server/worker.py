"""One worker: load the script, run init(), then serve requests on the supervisor's socket.

A worker reports to the supervisor over a pipe (:data:`protocol.WorkerStatus`): ready once init()
has returned, then the third-party modules it imported (so the supervisor can import them before
the next fork), or failed with the traceback. The old worker keeps serving until the new one is ready.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import sys
import sysconfig
import time
from dataclasses import dataclass, field

from . import protocol

logger = logging.getLogger("azmlinfsrv")

LOG_FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"
TREE_LINE_LIMIT = 200
LEARN_EVERY_S = 0.1  # while init() runs


@dataclass
class Options:
    """Everything a worker needs; the supervisor passes it on unchanged."""

    entry_script: str
    app_root: str
    model_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 5001
    max_concurrent: int = 1
    max_in_flight: int | None = None
    timeout_ms: int | None = None
    timeout_status: int = 408
    cors_origins: list[str] = field(default_factory=list)
    stay_up_on_failure: bool = False
    fork: bool = True
    warm_imports: bool = True
    warm_file: str | None = None  # where the learned imports are kept for the next start
    events_fd: int | None = None
    events_stdout: bool = False
    first_revision: int = 1
    parent_pid: int | None = None
    debug_host: str | None = None  # set: a debugpy listener in the supervisor; workers attach as children
    debug_port: int = 5678
    debug_wait: bool = False
    reload_mode: str = "patch"  # patch: a reload tries rung 0 first; swap: always a new worker
    flow_dir: str | None = None  # a prompt flow folder, served by prompt flow's app (flow_worker.py)
    handover_timeout_s: float = 0.25  # a swap's Ready waits this long at most for the old worker (handover.py)


def draining_protocol(admission=None):
    """uvicorn's httptools protocol, but an idle keep-alive connection is not cut when the
    worker drains: its next request is answered (with ``Connection: close``) and the client
    reconnects to the new worker. Cutting it would race with a request already on its way and
    lose it; an idle client that sends nothing is closed by the keep-alive timeout as usual.

    With an ``admission.Admission``, a scoring request is counted the moment it is read, as of
    when it arrived (its ticket goes in the ASGI scope; see ``admission``)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from .admission import SCORE_PATH, TICKET, received_ago

    class DrainingProtocol(HttpToolsProtocol):
        draining = False
        tcp = None  # the connection's socket, for the time its requests arrived

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if admission is not None and admission.timed:
                self.tcp = transport.get_extra_info("socket")

        def shutdown(self) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self.draining = True
            else:
                self.cycle.keep_alive = False

        def on_headers_complete(self) -> None:
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


def quick_exit_server():
    """uvicorn's Server, but it stops accepting the moment it is told to exit.

    uvicorn notices the exit request on its next 100 ms tick; until then the old worker would
    keep taking new connections from the shared socket and serving open ones, and clients would
    keep getting the old revision after the new one is ready."""
    import asyncio

    import uvicorn

    class QuickExitServer(uvicorn.Server):
        on_loop = None  # called with the running loop once it runs
        on_draining = None  # called once it no longer accepts connections

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
            for server in getattr(self, "servers", []):
                server.close()
            # Open keep-alive connections too: their next answer says Connection: close, so
            # clients move to the new worker now rather than at uvicorn's next tick.
            for connection in list(self.server_state.connections):
                connection.shutdown()
            if self.on_draining is not None:
                self.on_draining, draining = None, self.on_draining
                draining()

    return QuickExitServer


class PatchRequests:
    """SIGUSR1 from the supervisor: apply the saved code to this worker in place (rung 0) and
    answer with a WorkerPatched status. The patch runs on the event loop, between requests; a
    request that arrives before the loop runs waits for it."""

    def __init__(self, report):
        self.report = report
        self.loop = None
        self.waiting = False

    def listen(self):
        import signal

        signal.signal(signal.SIGUSR1, self._requested)
        return self._attach

    def _attach(self, loop) -> None:
        self.loop = loop
        if self.waiting:
            self.waiting = False
            loop.call_soon(self._patch)

    def _requested(self, *_) -> None:
        if self.loop is None:
            self.waiting = True
        else:
            self.loop.call_soon_threadsafe(self._patch)

    def _patch(self) -> None:
        from . import patching

        outcome = patching.current.apply()
        if outcome.kind == "patched":
            logger.info(f"Patched {outcome.detail} in place in {outcome.duration_ms:.1f} ms; init() did not run again")
        elif outcome.kind == "failed":
            logger.error(f"The saved code cannot be applied; the running code keeps serving:\n{outcome.traceback}")
        else:
            logger.info(f"Not a patch ({outcome.detail}): a new worker takes over")
        self.report(protocol.WorkerPatched, result=protocol.PatchResult(outcome.kind), detail=outcome.detail,
                    traceback=outcome.traceback)


def watch_debug_stops(report, roots: tuple[str, ...]) -> None:
    """While a debugger holds this worker at a breakpoint, tell the supervisor where (polled:
    debugpy has no public hook for it). debugpy marks suspended threads' additional_info with
    pydev_state 2, and suspends them all; the stop is the innermost frame in the user's code."""
    import threading

    last = None
    while True:
        time.sleep(0.2)
        where = None
        frames = sys._current_frames()
        for thread in threading.enumerate():
            info = getattr(thread, "additional_info", None)
            if getattr(info, "pydev_state", None) != 2:
                continue
            frame = frames.get(thread.ident)
            while frame is not None and not frame.f_code.co_filename.startswith(roots):
                frame = frame.f_back
            if frame is not None:
                where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}()"
                break
        if where != last:
            last = where
            report(protocol.WorkerDebugStop, where=where)


def configure_logging() -> None:
    """Server and script logs in the reference server's format, on stdout, in UTC.

    The root logger gets the handler too, so ``logging.info`` in a script reaches the log."""
    formatter = logging.Formatter(LOG_FORMAT)
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper())


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


def _log_model_tree(model_dir: str | None) -> None:
    from .user_script import walk_tree

    if not model_dir or not os.path.exists(model_dir):
        return
    logger.info("Model Directory Contents:")
    tree = walk_tree(model_dir)
    for line in itertools.islice(tree, TREE_LINE_LIMIT):
        logger.info(line)
    if next(tree, None) is not None:
        logger.info(f"Output Truncated. First {TREE_LINE_LIMIT} lines shown.")


def _uvicorn_config(app, limits):
    # Requests are counted, as of when they arrived, only for an emulated endpoint or a timeout.
    from .app import serving

    admission = app.state.scoring.admission if limits.max_in_flight or limits.timeout_ms else None
    return app_config(serving(app, admission), admission)


def app_config(app, admission=None):
    """How uvicorn serves APP (an ASGI app) in a worker: uvloop, the draining protocol, no access
    log of its own (the app logs each request), and 30 s to finish what is in flight."""
    import uvicorn

    return uvicorn.Config(app, loop="uvloop", http=draining_protocol(admission), lifespan="off", log_config=None,
                          access_log=False, server_header=False, date_header=False,
                          timeout_graceful_shutdown=30)


def serve(options: Options, sock: socket.socket, revision: int, status_fd: int) -> int:
    """Run one worker to the end; the exit code follows the reference server (3: boot error)."""
    started = time.perf_counter()

    import threading

    lock = threading.Lock()  # the learning thread reports while init() runs: one message at a time

    def report(message: type[protocol.WorkerStatus], **fields) -> None:
        line = protocol.encode(message(revision=revision, pid=os.getpid(),
                                       duration_ms=round((time.perf_counter() - started) * 1000, 3), **fields))
        with lock:
            os.write(status_fd, line)

    if options.flow_dir:
        from . import flow_worker

        return flow_worker.serve(options, sock, revision, report)
    return _serve_script(options, sock, report)


def _serve_script(options: Options, sock: socket.socket, report) -> int:
    from . import user_script

    loaded_by_parent = set(sys.modules)
    script_dir = os.path.dirname(options.entry_script)
    for path in (options.app_root, script_dir):
        if path not in sys.path:
            sys.path.append(path)
    user_script.load_fresh_from([options.app_root, script_dir])
    with learning_while_loading(options, report, loaded_by_parent):
        try:
            script = user_script.load(options.entry_script)
        except BaseException:
            text = user_script.user_traceback()
            logger.error(text)
            report(protocol.WorkerFailed, stage=protocol.Stage.LOAD, traceback=text)
            return 3

        wait_for_debugger(options, before="init()")
        logger.info("Invoking user's init function")
        failed = _init(script, options, report)
    return failed if failed is not None else _serve_loaded(script, options, sock, report, loaded_by_parent)


def wait_for_debugger(options: Options, before: str) -> None:
    """With ``--debug-wait``, hold here until a debugger attaches (``before``: what waits for it)."""
    if options.debug_host and options.debug_wait:
        import debugpy

        logger.info(f"Waiting for a debugger to attach before {before} (--debug-wait)")
        debugpy.wait_for_client()
        logger.info("Debugger attached")


def _init(script, options: Options, report) -> int | None:
    """Run the user's init(); the exit code when it failed."""
    from . import user_script

    try:
        script.init()
    except BaseException:
        text = user_script.user_traceback()
        logger.error("User's init function failed")
        logger.error(f"Encountered Exception {text}")
        _log_model_tree(options.model_dir)
        report(protocol.WorkerFailed, stage=protocol.Stage.INIT, traceback=text)
        return 3
    logger.info("Users's init has completed successfully")
    return None


def _serve_loaded(script, options: Options, sock: socket.socket, report, loaded_by_parent: set[str]) -> int:
    from .app import Limits, create_app
    from .swagger import Swagger

    script_dir = os.path.dirname(options.entry_script)
    swagger = Swagger(script.run, [options.app_root, script_dir])
    if options.max_in_flight is not None or options.timeout_ms is not None:
        limits = Limits(options.max_concurrent, options.max_in_flight, options.timeout_ms, options.timeout_status)
        logger.info(f"Scoring timeout is set to {options.timeout_ms}")
    else:
        limits = Limits(options.max_concurrent)

    app = create_app(script, swagger, limits, options.cors_origins,
                     after_first_run=learning(options, report, loaded_by_parent), debugging=debugging_probe(options))
    return serve_app(_uvicorn_config(app, limits), options, sock, report, roots=(options.app_root, script_dir),
                     loaded_by_parent=loaded_by_parent)


@contextlib.contextmanager
def learning_while_loading(options: Options, report, loaded_by_parent: set[str]):
    """While the script loads and init() runs, tell the parent every LEARN_EVERY_S which
    third-party modules this worker has imported so far: the parent imports them meanwhile (on
    another core), so it is warm about when this worker is ready, not a whole init() later."""
    if not options.warm_imports:
        yield
        return
    import threading

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


def learning(options: Options, report, loaded_by_parent: set[str]):
    """What to call after the first answer: lazily importing libraries (and prompt flow's
    executor) load most on the first run, and the parent learns those too."""

    def learned() -> None:
        if options.warm_imports:
            report(protocol.WorkerLearned, modules=tuple(third_party_modules(loaded_by_parent)))

    return learned


def debugging_probe(options: Options):
    """Whether a debugger is attached to this worker (the request timeout waits then); None
    without a debugger listener."""
    if not options.debug_host:
        return None
    import debugpy

    return debugpy.is_client_connected


def serve_app(config, options: Options, sock: socket.socket, report, *, roots: tuple[str, ...],
              patchable: bool = True, loaded_by_parent: set[str] | None = None) -> int:
    """Serve the app of CONFIG (a uvicorn.Config; ``app_config`` makes one) on the supervisor's
    socket until told to stop: ready is reported, then what the worker imported, and debugger
    stops while they last."""
    loaded_by_parent = set(sys.modules) if loaded_by_parent is None else loaded_by_parent
    server = quick_exit_server()(config)
    server.on_draining = lambda: _tell_draining(report)
    if patchable:  # before ready is reported: from then on the supervisor may ask for a patch (SIGUSR1)
        server.on_loop = PatchRequests(report).listen()
    report(protocol.WorkerReady)
    logger.info(f"Worker with pid {os.getpid()} ready for serving traffic")
    if options.debug_host:
        import threading

        roots = tuple(os.path.join(os.path.abspath(p), "") for p in roots)
        watcher = threading.Thread(target=watch_debug_stops, args=(report, roots), daemon=True, name="debug-stops")
        # debugpy suspends every thread at a breakpoint, except its own: this one must keep watching.
        watcher.is_pydev_daemon_thread = True
        watcher.start()
    if options.warm_imports:
        report(protocol.WorkerLearned, modules=tuple(third_party_modules(loaded_by_parent)))
    server.run(sockets=[sock])
    return 0


def _tell_draining(report) -> None:
    """The supervisor may announce the next revision now (handover.py)."""
    try:
        report(protocol.WorkerDraining)
    except OSError:
        pass  # the supervisor is gone: nobody waits for the word


def main() -> None:
    """Entry point for a spawned worker (platforms or setups without fork)."""
    options = Options(**json.loads(sys.argv[1]))
    sock = socket.socket(fileno=int(sys.argv[2]))
    configure_logging()
    sys.exit(serve(options, sock, int(sys.argv[3]), int(sys.argv[4])))


if __name__ == "__main__":
    main()
