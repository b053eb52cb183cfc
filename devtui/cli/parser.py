"""The command line: the verbs (``devtui up PATH``, ``devtui show``, ...) and the app's own
(``devtui [PATH]``). The options that say which deployment to run and how are defined once here
and shared by ``up``, ``validate`` and the app."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_server.protocol import ReloadMode

from .. import __version__
from ..events import DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER
from ..runtimes import NAMES
from ..runtimes.container.gpus import GpuRequest

VERBS = ("up", "show", "list", "invoke", "logs", "traces", "reload", "down", "validate")


def _command(module: str, name: str):
    """The function that carries out a verb, imported only when that verb runs: `devtui show`
    need not load the engine, the YAML models or the Docker SDK."""

    def run(args: argparse.Namespace) -> int:
        from importlib import import_module

        return getattr(import_module(f"devtui.cli.{module}"), name)(args)

    run.__name__ = name
    return run


def _whole_number(low: int, high: int | None = None, what: str = "value"):
    """An argparse type: a whole number from ``low`` to ``high``, with a message that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"within {low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{what} {value} is not {span}")
        return value

    return parse


def _gpus(text: str) -> GpuRequest:
    try:
        return GpuRequest.parse(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


def _request_file(text: str):
    """An argparse type: --replay's FILE, read and checked now, so a bad one stops `up` before
    anything starts."""
    from ..replay import PinnedRequest, RequestFileError

    try:
        return PinnedRequest.read(Path(text))
    except RequestFileError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


_port = _whole_number(0, 65535, "port")  # 0 picks a free one
_count = _whole_number(0, None, "count")


def _deployment_options(p: argparse.ArgumentParser, *, path_optional: bool = False) -> None:
    """Which deployment: PATH (the app's defaults to the current folder), -n and --endpoint-file."""
    if path_optional:
        p.add_argument("path", type=Path, nargs="?", default=Path("."), metavar="PATH",
                       help="a deployment YAML, or a folder holding one (default: the current folder)")
    else:
        p.add_argument("path", type=Path, metavar="PATH",
                       help="a deployment YAML, or a folder holding one (and optionally an endpoint YAML)")
    p.add_argument("-n", "--name", help="endpoint name (overrides the YAML files')")
    p.add_argument("--endpoint-file", type=Path, help="the endpoint YAML, when PATH is a deployment YAML")


def _serving_options(p: argparse.ArgumentParser) -> None:
    """Where and on which port the scoring server runs."""
    p.add_argument("--runtime", choices=list(NAMES), default="process",
                   help="where the scoring server runs: a child process (default) or containers on a Docker engine")
    p.add_argument("--port", type=_port, help="port to listen on (default or 0: a free one)")
    p.add_argument("--context", metavar="NAME",
                   help="the Docker context whose engine runs the containers (default: DOCKER_HOST, DOCKER_CONTEXT, "
                        "or the Docker CLI's current context)")
    p.add_argument("--gpus", type=_gpus, metavar="all|N|device=ID",
                   help="give the inference-server container GPUs, as `docker run --gpus` (needs the NVIDIA "
                        "Container Toolkit on the engine's machine)")
    p.add_argument("--connections", type=Path, action="append", default=[], metavar="FILE",
                   help="a prompt flow's connection, in prompt flow's connection YAML format (name, type, keys); "
                        "repeat for more. The deployment's environment variables override them as in the cloud")
    p.add_argument("--reload", choices=list(ReloadMode), default=ReloadMode.PATCH, type=ReloadMode,
                   help="what a save of the code does: patch the changed functions into the running worker, so "
                        "init() does not run again and the model stays loaded, falling back to a worker swap when "
                        "init(), a decorator or module-level code changed (patch, the default); or always swap")
    p.add_argument("--traces", action="store_true",
                   help="trace each request (a span per request, run() and your own spans in it; for a prompt flow, "
                        "its flow, node and LLM spans), kept per endpoint for `devtui traces` and sent to the "
                        "collector OTEL_EXPORTER_OTLP_ENDPOINT names; off by default, as it costs the request path")


def _debug_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true",
                   help="listen for a debugger (VS Code, debugpy) on 127.0.0.1; writes .vscode/launch.json")
    p.add_argument("--debug-port", type=_port, help="the debugger's port (default 5678; 0 picks a free one)")
    p.add_argument("--debug-wait", action="store_true", help="hold init() until a debugger attaches")


def verb_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="devtui", description="Run an Azure ML online deployment locally, with "
                                                            "hot reload, live logs, invoke and debugging. "
                                                            "`devtui [PATH]` opens the terminal app.")
    top.add_argument("--version", action="version", version=f"devtui {__version__}")
    verbs = top.add_subparsers(dest="command", metavar="COMMAND")

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help, description=help)
        p.set_defaults(func=_command("up" if name == "up" else "commands", f"cmd_{name}"))
        return p

    up = verb("up", "deploy the local endpoint and stream its logs until Ctrl-C")
    _deployment_options(up)
    _serving_options(up)
    up.add_argument("--detach", action="store_true",
                    help="return once the deployment is Succeeded (exit 0) or Failed (exit 1); keep it running")
    up.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # --detach's child
    up.add_argument("--replay", type=_request_file, metavar="FILE",
                    help="send this request again after each reload and print the revision, how it came to be "
                         "(patch or swap), the status and the diff of the body since the previous answer (or the "
                         "exception line when run() now raises). FILE is the JSON body (as sample-request.json), "
                         'or {"method": ..., "path": ..., "headers": {...}, "body": ...}')
    _debug_options(up)

    p = verb("show", "print the endpoint as JSON, like `az ml online-endpoint show --local`")
    p.add_argument("-n", "--name")
    p = verb("list", "list the running local endpoints")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = verb("invoke", "send a request file to the endpoint and print the answer")
    p.add_argument("-n", "--name")
    p.add_argument("--request-file", required=True, type=Path)
    p.add_argument("--deployment-name")
    p = verb("logs", "print a container's log")
    p.add_argument("-n", "--name")
    p.add_argument("--container", choices=[INFERENCE_SERVER, STORAGE_INITIALIZER, DEVTUI], default=INFERENCE_SERVER)
    p.add_argument("--lines", type=_count, help="only the last N lines")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p = verb("traces", "print what each request did inside the deployment: its spans, newest request first")
    p.add_argument("-n", "--name")
    p.add_argument("--last", type=_count, help="only the last N requests")
    p.add_argument("-o", "--output", choices=["tree", "json"], default="tree")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new requests' traces")
    p = verb("reload", "start a new worker with the current code (init() runs again); --full: restart the "
                       "scoring server with the YAML as it is now")
    p.add_argument("-n", "--name")
    p.add_argument("--full", action="store_true", help="restart the server (rung 3) instead of swapping workers")
    p = verb("down", "stop and delete a local endpoint")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-n", "--name")
    group.add_argument("--all", action="store_true")
    p.add_argument("--purge", action="store_true", help="also remove the endpoint's images (container runtime)")
    p = verb("validate", "check a deployment without running it")
    _deployment_options(p)
    return top


def app_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devtui", description="Open the devtui terminal app on a deployment. "
                                "Other commands: " + ", ".join(VERBS) + " (devtui COMMAND --help).")
    _deployment_options(p, path_optional=True)
    _serving_options(p)
    p.add_argument("--log-lines", type=_count, default=10_000, help="log lines kept in memory per view (default 10000)")
    _debug_options(p)
    p.set_defaults(func=_command("up", "cmd_tui"))
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """A verb (or help, or the version) goes to the verbs' parser; anything else opens the app.
    What runs a deployment (``up``, the app) gets its :class:`~devtui.launch.Launch` as
    ``args.launch``, built here, once."""
    if argv and (argv[0] in VERBS or argv[0] in ("-h", "--help", "--version")):
        args = verb_parser().parse_args(argv)
    else:
        args = app_parser().parse_args(argv)
    if hasattr(args, "runtime"):
        from ..launch import Launch

        args.launch = Launch.of(args)
    return args
