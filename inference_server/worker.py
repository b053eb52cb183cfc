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
import time
from dataclasses import dataclass, field

from . import protocol
from .serving import Channel, app_config, serve_app, third_party_modules

__all__ = ["Options", "app_config", "serve", "serve_app"]  # app_config and serve_app: flow_worker's

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


def serve(options: Options, sock: socket.socket, revision: int, status_fd: int) -> int:
    """Run one worker to the end; the exit code follows the reference server (3: boot error)."""
    report = Channel(status_fd, revision)  # the learning thread reports while init() runs too
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
                     loaded_by_parent=loaded_by_parent, gate=getattr(app.state, "run_gate", None))


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


def main() -> None:
    """Entry point for a spawned worker (platforms or setups without fork)."""
    options = Options(**json.loads(sys.argv[1]))
    sock = socket.socket(fileno=int(sys.argv[2]))
    configure_logging()
    sys.exit(serve(options, sock, int(sys.argv[3]), int(sys.argv[4])))


if __name__ == "__main__":
    main()
