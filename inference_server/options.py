"""The server's one configuration: :class:`Options`, made once from the command line (the
azmlinfsrv flags plus what devtui needs) and the environment, and handed unchanged to the
supervisor and every worker (a spawned worker gets it as JSON); and the log format they share.

The reference server's flags keep their names and defaults (``--entry_script``, ``--model_dir``,
``--port`` 5001, ``--worker_count``). Endpoint emulation (timeouts, 429) is off unless asked for.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field

from . import __version__
from .protocol import ReloadMode

LOG_FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"


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
    reload_mode: ReloadMode = ReloadMode.PATCH  # patch: a reload tries rung 0 first; swap: always a new worker
    flow_dir: str | None = None  # a prompt flow folder, served by prompt flow's app (flow_worker.py)
    # Request traces (tracing.py): --traces, where devtui hears the server's events.
    traces: bool = False
    handover_timeout_s: float = 0.25  # a swap's Ready waits this long at most for the old worker (handover.py)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not within 0-65535")
    return port


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not greater than zero")
    return value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference_server",
                                     description=f"devtui inference server v{__version__} (azmlinfsrv compatible)")
    parser.add_argument("--entry_script", help="The relative or absolute path to the scoring script.")
    parser.add_argument("--flow", help="Serve the prompt flow in this folder (flow.dag.yaml, flow.flex.yaml or a "
                        ".prompty) with prompt flow's own serving app, instead of a scoring script.")
    parser.add_argument("--model_dir", help="The model directory; scripts see it as AZUREML_MODEL_DIR.")
    parser.add_argument("--port", type=_port, help="The serving port. Default is 5001; 0 picks a free one.")
    parser.add_argument("--worker_count", type=_positive,
                        help="How many run() calls may execute at once (one process serves them; above 1, on "
                             "threads). Default is WORKER_COUNT from the environment, else 1.")
    parser.add_argument("--appinsights_instrumentation_key", help="Accepted for compatibility; not used locally.")
    parser.add_argument("--access_control_allow_origins", help='Enable CORS for these origins, separated by ",".')
    parser.add_argument("--host", default=os.environ.get("AZUREML_INFERENCE_HOST", "127.0.0.1"),
                        help="Address to listen on. Default 127.0.0.1 (use 0.0.0.0 inside a container).")
    parser.add_argument("--request-timeout-ms", type=_positive,
                        help="Emulate request_settings.request_timeout_ms: answer 408 after this long.")
    parser.add_argument("--max-concurrent-requests", type=_positive,
                        help="Emulate request_settings.max_concurrent_requests_per_instance: more than twice this "
                             "many requests in flight get 429. run() calls still run one at a time per worker "
                             "(--worker_count), as in the cloud, and the others wait.")
    parser.add_argument("--debug-port", type=_port, help="Listen for a debugpy client (VS Code) on this port; "
                        "0 picks a free one. Workers join the session as child processes.")
    parser.add_argument("--debug-host", default="127.0.0.1", help="Address the debugger listens on (127.0.0.1).")
    parser.add_argument("--debug-wait", action="store_true", help="Hold init() until a debugger attaches.")
    parser.add_argument("--events-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--events-stdout", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--traces", action="store_true", help=argparse.SUPPRESS)  # devtui's --traces
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-revision", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--handover-timeout", type=float, default=0.25, help=argparse.SUPPRESS)  # seconds
    parser.add_argument("--stay-up-on-failure", action="store_true",
                        help="Keep running when the first init() fails and retry on the next reload (SIGHUP).")
    parser.add_argument("--no-fork", action="store_true",
                        help="Spawn fresh worker processes instead of forking them from the warm parent.")
    parser.add_argument("--reload", choices=list(ReloadMode), default=ReloadMode.PATCH, type=ReloadMode,
                        help="What a reload (SIGHUP) does: patch the changed functions into the running worker "
                             "when init() and the script's shape did not change, else swap (default: patch); "
                             "swap: always a new worker. SIGUSR2 always swaps.")
    parser.add_argument("--warm-file", help="A JSON file that keeps the libraries workers imported, so the next "
                        "start imports them in the warm parent before the first worker (devtui passes one).")
    parser.add_argument("--no-warm-imports", action="store_true",
                        help="Do not import the previous worker's libraries into the parent before a reload.")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    """Resolve flags and environment the way azmlinfsrv does."""
    app_root = os.environ.setdefault("AML_APP_ROOT", os.getcwd())
    entry_script = "" if args.flow else _entry_script(args, app_root)
    _set_model_dir(args)
    os.environ.setdefault("HTTP_X_MS_SERVER_VERSION", f"devtui-inference-server/{__version__}")

    timeout_ms, timeout_status, max_in_flight = args.request_timeout_ms, 408, None
    if args.max_concurrent_requests:
        max_in_flight = 2 * args.max_concurrent_requests
    if timeout_ms is None and os.environ.get("SCORING_TIMEOUT_MS"):
        # The reference server's own setting, with its answer (500, not the endpoint's 408).
        timeout_ms, timeout_status = int(os.environ["SCORING_TIMEOUT_MS"]), 500
    origins = args.access_control_allow_origins or os.environ.get("AML_CORS_ORIGINS")
    return Options(
        entry_script=entry_script, app_root=app_root, model_dir=os.environ.get("AZUREML_MODEL_DIR"),
        host=args.host, port=5001 if args.port is None else args.port,
        max_concurrent=args.worker_count or _worker_count_from_environment(),
        max_in_flight=max_in_flight, timeout_ms=timeout_ms, timeout_status=timeout_status,
        cors_origins=[o.strip() for o in origins.split(",")] if origins else [],
        stay_up_on_failure=args.stay_up_on_failure, fork=hasattr(os, "fork") and not args.no_fork,
        warm_imports=not args.no_warm_imports and os.environ.get("DEVTUI_WARM_IMPORTS", "1") != "0",
        events_fd=args.events_fd, events_stdout=args.events_stdout, first_revision=args.first_revision,
        parent_pid=args.parent_pid, debug_host=args.debug_host if args.debug_port is not None else None,
        debug_port=args.debug_port or 0, debug_wait=args.debug_wait,
        reload_mode=_reload_mode(args),
        warm_file=args.warm_file, flow_dir=_flow_dir(args), handover_timeout_s=args.handover_timeout,
        traces=_traces(args))


def _traces(args: argparse.Namespace) -> bool:
    """Request traces are on when asked (--traces) and devtui hears the events: the supervisor
    passes the spans on with them."""
    return args.traces and (args.events_fd is not None or args.events_stdout)


def _flow_dir(args: argparse.Namespace) -> str | None:
    return os.path.realpath(args.flow) if args.flow else None


def _reload_mode(args: argparse.Namespace) -> ReloadMode:
    # A flow is rebuilt by prompt flow from its files: every reload is a new worker.
    return ReloadMode.SWAP if args.flow else args.reload


def _worker_count_from_environment() -> int:
    """WORKER_COUNT, as the reference server reads it (a deployment sets it in environment_variables)."""
    value = os.environ.get("WORKER_COUNT", "1")
    try:
        return _positive(value)
    except (ValueError, argparse.ArgumentTypeError):
        raise SystemExit(f"WORKER_COUNT={value!r} is not a whole number above 0; set it in the deployment's "
                         "environment_variables, or leave it out for 1.") from None


def _entry_script(args: argparse.Namespace, app_root: str) -> str:
    """The scoring script's absolute path; scripts see it as AZUREML_ENTRY_SCRIPT."""
    if args.entry_script:
        entry_script = os.path.realpath(args.entry_script)
        os.environ["AZUREML_ENTRY_SCRIPT"] = entry_script
        return entry_script
    if os.environ.get("AZUREML_ENTRY_SCRIPT"):
        return os.path.join(app_root, os.environ["AZUREML_ENTRY_SCRIPT"])
    if os.environ.get("MLFLOW_MODEL_FOLDER"):
        # A no-code MLflow deployment: the scoring script is the one the cloud would generate
        # (its path only: importing it here would load mlflow in the supervisor's parser).
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlflow_score.py")
    raise SystemExit("Either provide an entry_script using --entry_script or set AZUREML_ENTRY_SCRIPT.")


def _set_model_dir(args: argparse.Namespace) -> None:
    if args.model_dir:
        os.environ["AZUREML_MODEL_DIR"] = os.path.realpath(args.model_dir)
    elif "AZUREML_MODEL_DIR" not in os.environ:
        print("The environment variable 'AZUREML_MODEL_DIR' has not been set.")
        print("Use the --model_dir command line argument to set it.")


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
