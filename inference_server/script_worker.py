"""A score.py worker: load the script, run init(), then serve its requests on the supervisor's
socket (the app is ``app.py``; the harness, ``serving.py``).

A worker reports to the supervisor over a pipe (:data:`protocol.WorkerStatus`): ready once init()
has returned, then the third-party modules it imported (so the supervisor can import them before
the next fork), or failed with the traceback. The old worker keeps serving until the new one is ready.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sys

from . import protocol, tracing, user_script
from .fresh_import import load_fresh_from
from .held import noting_trace_ids
from .options import Options
from .patching import Patcher
from .serving import (Channel, app_config, debugging_probe, learning, learning_while_loading, run_spawned,
                      serve_app, wait_for_debugger)

logger = logging.getLogger("azmlinfsrv")

TREE_LINE_LIMIT = 200


def _log_model_tree(model_dir: str | None) -> None:
    if not model_dir or not os.path.exists(model_dir):
        return
    logger.info("Model Directory Contents:")
    tree = user_script.walk_tree(model_dir)
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
    loaded_by_parent = set(sys.modules)  # before the SDK's import: the parent learns it, for the next fork
    # Here, after the fork and before the script loads: the warm parent never has a tracer provider.
    traces = tracing.start(options.traces, lambda rows, resource: report(protocol.WorkerSpans, spans=rows,
                                                                           resource=resource),
                           service=os.path.basename(options.entry_script))
    try:
        return _serve(options, sock, report, traces, loaded_by_parent)
    finally:
        traces.close()  # the last spans go out before the worker exits


def _serve(options: Options, sock: socket.socket, report: Channel, traces: tracing.WorkerTracing,
           loaded_by_parent: set[str]) -> int:
    script_dir = os.path.dirname(options.entry_script)
    for path in (options.app_root, script_dir):
        if path not in sys.path:
            sys.path.append(path)
    # What the user's modules were compiled from, for rung 0 to compare a later save with.
    patcher = Patcher([options.app_root, script_dir])
    load_fresh_from([options.app_root, script_dir], patcher.loaded)
    with learning_while_loading(options, report, loaded_by_parent):
        try:
            script = user_script.load(options.entry_script, patcher.loaded)
        except BaseException:
            text = user_script.user_traceback()
            logger.error(text)
            report(protocol.WorkerFailed, stage=protocol.Stage.LOAD, traceback=text)
            return 3

        wait_for_debugger(options, before="init()")
        logger.info("Invoking user's init function")
        failed = _init(script, options, report)
    if failed is not None:
        return failed
    return _serve_loaded(script, options, sock, report, loaded_by_parent, patcher, traces.tracer)


def _init(script, options: Options, report: Channel) -> int | None:
    """Run the user's init(); the exit code when it failed."""
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


def _serve_loaded(script, options: Options, sock: socket.socket, report: Channel, loaded_by_parent: set[str],
                  patcher: Patcher, tracer) -> int:
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
                     after_first_run=learning(options, report, loaded_by_parent), debugging=debugging_probe(options),
                     tracer=noting_trace_ids(tracer, bool(options.debug_host)))
    return serve_app(_uvicorn_config(app, limits), options, sock, report, roots=(options.app_root, script_dir),
                     patcher=patcher, loaded_by_parent=loaded_by_parent, gate=getattr(app.state, "run_gate", None))


if __name__ == "__main__":
    run_spawned(serve)
