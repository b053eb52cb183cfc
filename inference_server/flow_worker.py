"""A prompt flow worker: prompt flow's own serving app for a flow folder, on the supervisor's socket.

The answers are prompt flow's (``promptflow-core``'s ``create_app``), not an imitation: ``/score``,
``/health``, ``/swagger.json``, streaming and response filtering come from its code. What devtui
adds is around it: the warm parent imports the serving stack once (1-1.5 s that every restart of
``pf flow serve`` pays), and each reload forks a worker that builds the app for the flow folder
afresh, its modules imported from source. This module and ``flow_connections`` are the only ones
that import prompt flow; prompt flow is an optional extra (``devtui[flow]``).

The engine is ``PROMPTFLOW_SERVING_ENGINE``: ``flask`` (the default, as in prompt flow's image)
runs through uvicorn's WSGI adapter, ``fastapi`` as an ASGI app.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback

from . import flow_tracing, protocol, tracing
from .admission import Admission, RequestSettings
from .fresh_import import load_fresh_from
from .held import noting_trace_ids
from .options import Options
from .serving import Channel, app_config, debugging_probe, learning, run_spawned, serve_app, wait_for_debugger

logger = logging.getLogger("azmlinfsrv")

ENGINES = ("flask", "fastapi")
MISSING = ("prompt flow is not installed: this deployment is a prompt flow, served by promptflow-core. "
           "Install the extra: pip install 'devtui[flow]' (make install does).")


def engine() -> str:
    return os.environ.get("PROMPTFLOW_SERVING_ENGINE", "flask").strip().lower() or "flask"


def import_serving() -> None:
    """Prompt flow's serving stack, imported in the warm parent so each worker finds it loaded.
    It starts no thread and touches no device, so forking after it is safe."""
    try:
        import promptflow.core._serving.app  # noqa: F401
        if engine() == "fastapi":
            import promptflow.core._serving.v2.app  # noqa: F401
        else:
            import promptflow.core._serving.v1.app  # noqa: F401
    except ImportError:
        pass  # the worker says so, as its failure


def failure_text(flow_dir: str) -> str:
    """The current exception for a person: the frames in the flow's own files (file and line), then
    each exception in the chain with its message. Prompt flow wraps a node's error in its own;
    the user's file and line are in the cause."""
    _, error, _ = sys.exc_info()
    root = os.path.join(os.path.realpath(flow_dir), "")
    lines: list[str] = []
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if not f.filename.startswith("<") and os.path.realpath(f.filename).startswith(root)]
        if frames:
            lines.append("Traceback (the flow's files):\n" + "".join(traceback.format_list(frames)))
        if isinstance(error, SyntaxError) and error.filename:
            lines.append(f'  File "{error.filename}", line {error.lineno}\n    {(error.text or "").strip()}\n')
        lines.append(f"{type(error).__name__}: {error}\n")
        error = error.__cause__ or error.__context__
    return "".join(lines)


def parse_each_text_once() -> None:
    """Building the app, prompt flow parses the flow file five times over with ruamel's pure-Python
    loader: measured, most of a reload (50-120 ms of 60-170). In this worker the same text parses to
    the same document, so parse it once and hand out copies: callers may change what they get."""
    import copy

    from promptflow._utils import yaml_utils

    if getattr(yaml_utils.YAML, "parses_once", False):
        return
    parsed: dict[tuple, object] = {}

    class ParsedOnce(yaml_utils.YAML):
        parses_once = True

        def load(self, stream):
            text = stream if isinstance(stream, str) else stream.read() if hasattr(stream, "read") else None
            if text is None:
                return super().load(stream)
            key = (text, repr(self.typ), self.preserve_quotes)
            if key not in parsed:
                parsed[key] = super().load(text)
            return copy.deepcopy(parsed[key])

    yaml_utils.YAML = ParsedOnce


def build_app(flow_dir: str):
    """Prompt flow's serving app for FLOW_DIR, as ``pf flow serve`` builds it, with the
    connections devtui resolved (``flow_connections``)."""
    from promptflow.core._serving.app import create_app

    from .flow_connections import provider

    parse_each_text_once()

    return create_app(engine=engine(), connection_provider=provider(flow_dir))


class Served:
    """Prompt flow's app as ASGI, with what the scoring server adds to every app it serves:

    - the access line for every request (method, path, status, milliseconds, bytes);
    - the endpoint's request_settings on the scoring route (``admission.RequestSettings``), as the
      cloud's front end applies them to a flow deployment too: 429 beyond the in-flight limit,
      408 when no answer has started within the request timeout (suspended while a debugger is
      attached, and said);
    - once the first answer is out, ``after_first``: the executor imports most of what it needs
      on its first run, and the warm parent learns it."""

    def __init__(self, app, wsgi: bool, after_first=None, options: Options | None = None, debugging=None,
                 tracer=tracing.OFF):
        if wsgi:
            from .wsgi_bridge import WsgiBridge

            app = WsgiBridge(app)  # not uvicorn's adapter, which streams on after the client has left
        if tracer.enabled:  # a span per scoring request, prompt flow's spans under it
            app = flow_tracing.TracedRequests(app, tracer)
        max_in_flight = getattr(options, "max_in_flight", None)
        timeout_ms = getattr(options, "timeout_ms", None)
        if max_in_flight is not None or timeout_ms:
            app = RequestSettings(app, Admission(max_in_flight), timeout_ms=timeout_ms, debugging=debugging,
                                  subject="The flow")
        self.app = app
        self.after_first = after_first

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, answer = time.perf_counter(), {"status": 500, "size": 0}

        async def sending(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["size"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            query = scope.get("query_string", b"")
            path = f"{scope['path']}?{query.decode('latin-1')}" if query else scope["path"]
            logger.info(f"{scope['method']} {path} {answer['status']} {(time.perf_counter() - started) * 1000:.3f}ms "
                        f"{answer['size']}")
            if self.after_first is not None:
                after_first, self.after_first = self.after_first, None
                after_first()


def _connection_error() -> type[Exception]:
    from .flow_connections import ConnectionError_

    return ConnectionError_


def serve(options: Options, sock: socket.socket, revision: int, status_fd: int) -> int:
    """Build the app and serve it until told to stop; 3 when the flow cannot be served."""
    report = Channel(status_fd, revision)
    loaded_by_parent = set(sys.modules)  # before the SDK's import: the parent learns it, for the next fork
    # Here, after the fork and before the flow loads: the warm parent never has a tracer provider.
    traces = tracing.start(options.traces, lambda rows, resource: report(protocol.WorkerSpans, spans=rows,
                                                                           resource=resource),
                           service=os.path.basename(os.path.realpath(options.flow_dir)))
    if traces.tracer.enabled:
        flow_tracing.turn_on_prompt_flow_tracing()
    try:
        return _serve(options, sock, report, traces.tracer, loaded_by_parent)
    finally:
        traces.close()  # the last spans go out before the worker exits


def _serve(options: Options, sock: socket.socket, report: Channel, tracer, loaded_by_parent: set[str]) -> int:
    flow_dir = os.path.realpath(options.flow_dir)
    os.environ["PROMPTFLOW_PROJECT_PATH"] = flow_dir
    # prompt flow's serving takes the project path as the working directory; a forked worker's
    # own, so the supervisor is unaffected.
    os.chdir(flow_dir)
    if flow_dir not in sys.path:
        sys.path.insert(0, flow_dir)
    load_fresh_from([flow_dir])  # the flow's modules from their source, never a stale copy
    if engine() not in ENGINES:
        text = (f"PROMPTFLOW_SERVING_ENGINE={os.environ.get('PROMPTFLOW_SERVING_ENGINE')!r} is not an engine "
                f"prompt flow knows: use {' or '.join(ENGINES)}.")
        logger.error(text)
        report(protocol.WorkerFailed, stage=protocol.Stage.LOAD, traceback=text)
        return 3
    wait_for_debugger(options, before="the flow loads")
    logger.info(f"Building prompt flow's serving app ({engine()}) for {flow_dir}")
    try:
        app = build_app(flow_dir)
    except _connection_error() as ex:
        text = str(ex)
        logger.error(f"The flow cannot be served: {text}")
        report(protocol.WorkerFailed, stage=protocol.Stage.INIT, traceback=text)
        return 3
    except ModuleNotFoundError as ex:
        text = MISSING if (ex.name or "").startswith("promptflow") else failure_text(flow_dir)
        logger.error(text)
        report(protocol.WorkerFailed, stage=protocol.Stage.LOAD, traceback=text)
        return 3
    except BaseException:
        text = failure_text(flow_dir)
        logger.error(f"The flow cannot be served:\n{text}")
        report(protocol.WorkerFailed, stage=protocol.Stage.INIT, traceback=text)
        return 3
    logger.info("The flow is ready")
    served = Served(app, wsgi=engine() == "flask", after_first=learning(options, report, loaded_by_parent),
                    options=options, debugging=debugging_probe(options),
                    tracer=noting_trace_ids(tracer, bool(options.debug_host)))
    return serve_app(app_config(served), options, sock, report, roots=(flow_dir,), loaded_by_parent=loaded_by_parent)


if __name__ == "__main__":
    run_spawned(serve)
