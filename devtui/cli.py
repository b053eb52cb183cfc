"""The commands: ``up``, ``show``, ``list``, ``invoke``, ``logs``, ``down``, ``validate``.

The verbs mirror ``az ml online-endpoint/online-deployment ... --local``. Every command prints
for people; errors name file, line and field and exit non-zero (2 for bad input), and no devtui
traceback ever reaches the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import __version__, registry, spec
from .debug import LaunchJsonError, attach_configuration, merge_launch_json
from .engine import DebugSettings, Engine, PortInUse, check_port
from .events import (DEVTUI, FAILED, INFERENCE_SERVER, SOURCES, STORAGE_INITIALIZER, SUCCEEDED, DebuggerChanged,
                     LogRecord, Logs, ReloadFinished, ReloadStarted, ServerStarted, StateChanged)
from .logs import LogFiles, follow, tail
from .runtimes import NAMES

BAD_INPUT = 2


class CommandError(Exception):
    """A message for the user and the exit code that goes with it."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


# -- up ------------------------------------------------------------------------------------------


def _load(args) -> spec.LocalDeployment:
    return spec.load(args.path, args.endpoint_file, args.name)


def _preflight(args) -> spec.LocalDeployment:
    deployment = _load(args)
    if registry.is_alive(deployment.endpoint_name):
        record = registry.read(deployment.endpoint_name) or {}
        existing = (record.get("deployments") or [{}])[0].get("name", "a deployment")
        raise CommandError(
            f"endpoint {deployment.endpoint_name!r} already has a deployment ({existing!r}) running; a local endpoint "
            f"has exactly one. Stop it with `devtui down -n {deployment.endpoint_name}`, or run this one under "
            "another name with -n NAME.", BAD_INPUT)
    try:
        check_port("127.0.0.1", args.port or 0)
        debug = _debug_settings(args)
        if debug is not None:
            check_port(debug.host, debug.port, "debug port", "--debug-port")
    except PortInUse as ex:
        raise CommandError(str(ex), BAD_INPUT) from None
    if args.runtime == "container":
        from .runtimes import RuntimeError_
        from .runtimes.container import connect

        try:
            connect()
        except RuntimeError_ as ex:
            raise CommandError(str(ex), BAD_INPUT) from None
    return deployment


class Recorder:
    """Keeps the registry record and the log files in step with the engine's events."""

    def __init__(self, engine: Engine, claim: registry.Claim):
        self.engine, self.claim = engine, claim
        self.files = LogFiles(claim.folder / "logs")
        d = engine.deployment
        claim.update(name=d.endpoint_name, auth_mode=d.auth_mode, location="local",
                     provisioning_state=engine.state, scoring_uri=None, swagger_uri=None,
                     traffic={d.deployment_name: 100}, tags=d.endpoint_tags, properties={},
                     deployment_file=str(d.deployment_file), logs=str(self.files.folder),
                     deployments=[engine.describe()])

    def _write(self, records) -> None:
        if self.files is None:
            return
        try:
            self.files.write(records)
        except OSError as ex:
            # A full disk (or a vanished folder) ends the log files, not the endpoint: say so once.
            files, self.files = self.files, None
            files.close(quiet=True)
            self.engine.log(DEVTUI, [f"error: writing the log files in {files.folder} failed ({ex.strerror}); "
                                     "they stop here, the endpoint keeps serving and the app still shows its logs"])

    def __call__(self, event) -> None:
        if isinstance(event, Logs):
            self._write(event.records)
        if isinstance(event, StateChanged):
            # The devtui log says why the state changed, for `devtui logs --container devtui`.
            detail = f" ({event.detail})" if event.detail else ""
            self._write([LogRecord(DEVTUI, f"provisioning_state: {event.state}{detail}")])
        if isinstance(event, (StateChanged, ServerStarted, ReloadFinished, DebuggerChanged)):
            uri = self.engine.scoring_uri
            self.claim.update(provisioning_state=self.engine.state, scoring_uri=uri,
                              swagger_uri=uri and uri.rsplit("/", 1)[0] + "/swagger.json",
                              deployments=[self.engine.describe()])


class LaunchConfig:
    """Writes (or updates) the VS Code attach configuration once the debugger listens."""

    def __init__(self, engine: Engine, folder: Path):
        self.engine, self.folder, self.written = engine, folder, None

    def __call__(self, event) -> None:
        if not isinstance(event, DebuggerChanged) or event.state != "listening":
            return
        runtime = self.engine.runtime
        d = self.engine.deployment
        configuration = attach_configuration(d.endpoint_name, "127.0.0.1", event.port,
                                             str(d.code_dir) if d.code_dir else None, runtime.code_path)
        if configuration == self.written:
            return
        try:
            path = merge_launch_json(self.folder, configuration)
        except (LaunchJsonError, OSError) as ex:
            self.engine.log(DEVTUI, [f"warning: {ex}"])
            return
        self.written = configuration
        self.engine.log(DEVTUI, [f"debugger listening on 127.0.0.1:{event.port}; attach with the configuration "
                                 f"{configuration['name']!r} in {path} (F5 in VS Code)"])


def _debug_settings(args) -> DebugSettings | None:
    if not (args.debug or args.debug_port is not None or args.debug_wait):
        return None
    return DebugSettings(5678 if args.debug_port is None else args.debug_port, args.debug_wait)


class Printer:
    """The foreground view of ``up``: every log line prefixed with its source. When the reader
    goes away (`devtui up PATH | head -3`), ``on_closed`` is called once: the host stops."""

    width = max(map(len, SOURCES))

    def __init__(self, on_closed=None):
        self.on_closed = on_closed
        self.closed = False

    def line(self, source: str, text: str) -> None:
        print(f"{source:<{self.width}} | {text}", flush=False)

    def __call__(self, event) -> None:
        if self.closed:
            return
        try:
            self._print(event)
        except BrokenPipeError:
            self.closed = True
            # Later writes (and the interpreter's final flush) go nowhere instead of failing.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if self.on_closed is not None:
                self.on_closed()

    def _print(self, event) -> None:
        if isinstance(event, Logs):
            for record in event.records:
                self.line(record.source, record.text)
        elif isinstance(event, StateChanged):
            self.line(DEVTUI, f"provisioning_state: {event.state}" + (f" ({event.detail})" if event.detail else ""))
        elif isinstance(event, DebuggerChanged):
            self.line(DEVTUI, f"debugger {event.state} on {event.host}:{event.port}"
                              + (f" ({event.detail})" if event.detail else ""))
        elif isinstance(event, ReloadStarted):
            files = f": {', '.join(Path(f).name for f in event.files)}" if event.files else ""
            self.line(DEVTUI, f"reloading revision {event.revision} ({event.reason}{files})")
        elif isinstance(event, ReloadFinished) and not (event.first and event.ok):
            if event.ok:
                self.line(DEVTUI, f"revision {event.revision} is serving ({event.duration_ms:.0f} ms)")
            else:
                serving = (f"revision {event.serving_revision} keeps serving" if event.serving_revision
                           else "nothing is serving")
                self.line(DEVTUI, f"revision {event.revision} failed in {event.stage} ({event.duration_ms:.0f} ms); "
                                  f"{serving}. The traceback is above; save a fix to try again.")
        sys.stdout.flush()


async def _host(args, deployment: spec.LocalDeployment, printer: Printer | None) -> int:
    """Run the engine in this process until Ctrl-C, SIGTERM or `devtui down`."""
    try:
        claim = registry.claim(deployment.endpoint_name)
    except registry.AlreadyRunning:
        raise CommandError(f"endpoint {deployment.endpoint_name!r} already has a deployment running; stop it with "
                           f"`devtui down -n {deployment.endpoint_name}` or pick another name with -n", BAD_INPUT)
    engine = Engine(deployment, claim.folder / "staging", runtime=args.runtime, port=args.port, name=args.name,
                    debug=_debug_settings(args))
    if printer:
        engine.subscribe(printer)
    engine.subscribe(Recorder(engine, claim))
    engine.subscribe(LaunchConfig(engine, Path.cwd()))
    stop = asyncio.Event()
    if printer:
        printer.on_closed = stop.set
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(engine.start())
    try:
        await stop.wait()
    finally:
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        await engine.stop()
        claim.release()
    return 0


def cmd_up(args) -> int:
    deployment = _preflight(args)
    if args.detach:
        return _detach(args, deployment)
    printer = None if args.serve else Printer()
    if printer:
        printer.line(DEVTUI, f"devtui {__version__}: endpoint {deployment.endpoint_name}, deployment "
                             f"{deployment.deployment_name}, {args.runtime} runtime; Ctrl-C stops everything")
    return asyncio.run(_host(args, deployment, printer))


def _detach(args, deployment: spec.LocalDeployment) -> int:
    name = deployment.endpoint_name
    folder = registry.folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "devtui", "up", str(args.path), "--runtime", args.runtime, "--serve"]
    for flag, value in (("--endpoint-file", args.endpoint_file), ("-n", args.name), ("--port", args.port),
                        ("--debug-port", args.debug_port)):
        if value is not None:
            command += [flag, str(value)]
    command += [flag for flag, on in (("--debug", args.debug), ("--debug-wait", args.debug_wait)) if on]
    with open(folder / "host.log", "ab") as out:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        record = registry.read(name) if registry.is_alive(name) else None
        state = record and record.get("provisioning_state")
        if state == SUCCEEDED:
            print(json.dumps(_show_json(record), indent=2))
            return 0
        if state == FAILED:
            error(f"deployment {deployment.deployment_name} of endpoint {name} failed; it keeps running in the "
                  f"background and retries on the next save (`devtui down -n {name}` stops it). Last log lines:")
            for source, count in ((DEVTUI, 10), (STORAGE_INITIALIZER, 10), (INFERENCE_SERVER, 30)):
                lines = tail(folder / "logs" / f"{source}.log", count)
                if lines:
                    print(f"{source}:", file=sys.stderr)
                    for line in lines:
                        print(f"  {line}", file=sys.stderr)
            return 1
        if child.poll() is not None:
            lines = tail(folder / "host.log", 20)
            raise CommandError(f"the background devtui exited with code {child.returncode}:\n" + "\n".join(lines))
        time.sleep(0.05)
    raise CommandError(f"endpoint {name} did not finish starting within 10 minutes; see `devtui logs -n {name}`")


# -- the terminal app -----------------------------------------------------------------------------


def cmd_tui(args) -> int:
    """`devtui [PATH]`: the same host as `up`, rendered by the Textual app."""
    from .tui.app import DevtuiApp

    deployment = _preflight(args)
    try:
        claim = registry.claim(deployment.endpoint_name)
    except registry.AlreadyRunning:
        raise CommandError(f"endpoint {deployment.endpoint_name!r} already has a deployment running", BAD_INPUT)
    engine = Engine(deployment, claim.folder / "staging", runtime=args.runtime, port=args.port, name=args.name,
                    debug=_debug_settings(args))
    engine.subscribe(Recorder(engine, claim))
    engine.subscribe(LaunchConfig(engine, Path.cwd()))
    sample = deployment.deployment_file.parent / "sample-request.json"
    request = sample.read_text() if sample.is_file() else None
    app = DevtuiApp(engine, request_text=request, log_capacity=args.log_lines)
    try:
        app.run()
    finally:
        engine.kill()  # only does something if the app ended without stopping the engine
        claim.release()
    return 0


# -- show / list ---------------------------------------------------------------------------------


def _docker(timeout: float = 5):
    """A Docker client when an engine answers quickly, else None (the process runtime needs none)."""
    from .runtimes import RuntimeError_
    from .runtimes.container import connect

    try:
        return connect(timeout)
    except RuntimeError_:
        return None


def _records() -> list[dict]:
    """Running endpoints: the registry's, plus any found only by container labels."""
    records = registry.running()
    client = _docker()
    if client is not None:
        from .runtimes.container import endpoints_from_labels

        known = {r["name"] for r in records}
        records += [r for r in endpoints_from_labels(client) if r["name"] not in known]
    return records


def _pick(name: str | None) -> dict:
    if name:
        record = registry.read(name) or next((r for r in _records() if r["name"] == name), None)
        if record is None:
            raise CommandError(f"no local endpoint named {name!r} is running; `devtui list` shows those that are")
        return record
    records = _records()
    if not records:
        raise CommandError("no local endpoint is running; start one with `devtui up PATH`")
    if len(records) > 1:
        names = ", ".join(r["name"] for r in records)
        raise CommandError(f"{len(records)} endpoints are running ({names}); choose one with -n NAME")
    return records[0]


def _show_json(record: dict) -> dict:
    keys = ("name", "auth_mode", "location", "provisioning_state", "scoring_uri", "swagger_uri", "traffic",
            "tags", "properties", "deployments")
    return {key: record.get(key) for key in keys}


def cmd_show(args) -> int:
    print(json.dumps(_show_json(_pick(args.name)), indent=2))
    return 0


def cmd_list(args) -> int:
    records = _records()
    if args.output == "json":
        print(json.dumps([_show_json(r) for r in records], indent=2))
        return 0
    rows = [("NAME", "DEPLOYMENT", "STATE", "RUNTIME", "REVISION", "SCORING URI")]
    for r in records:
        d = (r.get("deployments") or [{}])[0]
        rows.append((r["name"], d.get("name", ""), r.get("provisioning_state", ""), d.get("runtime", ""),
                     str(d.get("revision") or "-"), r.get("scoring_uri") or "-"))
    if len(rows) == 1:
        print("No local endpoints are running. Start one with `devtui up PATH`.")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


# -- invoke / logs / down / validate -------------------------------------------------------------


def cmd_invoke(args) -> int:
    import httpx

    record = _pick(args.name)
    deployment = (record.get("deployments") or [{}])[0]
    if args.deployment_name and args.deployment_name != deployment.get("name"):
        raise CommandError(f"endpoint {record['name']!r} has no deployment {args.deployment_name!r}; "
                           f"its deployment is {deployment.get('name')!r}", BAD_INPUT)
    if not record.get("scoring_uri"):
        raise CommandError(f"endpoint {record['name']!r} is {record.get('provisioning_state')}: it has no scoring "
                           "URI yet")
    path = Path(args.request_file)
    try:
        body = path.read_bytes()
    except OSError as ex:
        raise CommandError(f"{path}: cannot read the request file: {ex.strerror}", BAD_INPUT) from None
    timeout = (deployment.get("request_settings") or {}).get("request_timeout_ms", 5000) / 1000 + 10
    try:
        answer = httpx.post(record["scoring_uri"], content=body, timeout=timeout,
                            headers={"content-type": "application/json"})
    except httpx.HTTPError as ex:
        raise CommandError(f"could not reach {record['scoring_uri']}: {ex}") from None
    if answer.is_success:
        print(answer.text)
        return 0
    print(f"{answer.status_code} {answer.reason_phrase}", file=sys.stderr)
    print(answer.text)
    return 1


def cmd_logs(args) -> int:
    name = args.name or _pick(None)["name"]
    path = registry.folder(name) / "logs" / f"{args.container}.log"
    if not path.exists() and not registry.is_alive(name):
        client = _docker()
        if client is not None:
            from .runtimes.container import container_log

            lines = container_log(client, name, args.container)
            if lines is not None:
                for line in lines if args.lines is None else lines[-args.lines:] if args.lines else []:
                    print(line)
                return 0
        raise CommandError(f"no logs for endpoint {name!r}: it is not running and has not run here")
    for line in tail(path, args.lines):
        print(line)
    if args.follow:
        sys.stdout.flush()

        async def stream():
            async for line in follow(path, lambda: registry.is_alive(name)):
                print(line, flush=True)

        try:
            asyncio.run(stream())
        except KeyboardInterrupt:
            pass
    return 0


def _containers_removed(name: str, purge: bool) -> list[str]:
    """Containers and volumes labelled for the endpoint, removed even when no registry record
    remains (a killed host); none when no Docker engine answers."""
    from .runtimes.container import remove_endpoint

    client = _docker()
    return remove_endpoint(client, name, volumes=True, images=purge) if client is not None else []


def _down(name: str, timeout: float = 20, purge: bool = False) -> None:
    record = registry.read(name)
    if record is None:
        removed = _containers_removed(name, purge)
        if removed:
            print(f"Deleted local endpoint {name} (removed {', '.join(removed)}).")
            return
        raise CommandError(f"no local endpoint named {name!r} is running")
    pid = record.get("host_pid")
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while registry.is_alive(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if registry.is_alive(name):
        # The host did not stop in time: end it and its server the hard way.
        for deployment in record.get("deployments") or []:
            if deployment.get("pid"):
                try:
                    os.killpg(deployment["pid"], signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    runtimes_used = {d.get("runtime") for d in record.get("deployments") or []}
    if "container" in runtimes_used or purge:
        _containers_removed(name, purge)
    print(f"Deleted local endpoint {name}.")


def cmd_down(args) -> int:
    if args.all:
        for record in _records():
            _down(record["name"], purge=args.purge)
        return 0
    _down(args.name or _pick(None)["name"], purge=args.purge)
    return 0


def cmd_validate(args) -> int:
    d = _load(args)
    print(f"{d.deployment_file}: deployment {d.deployment_name!r} of endpoint {d.endpoint_name!r} is valid")
    if d.model:
        print(f"  model:           {d.model.path} (as {d.model.name}:{d.model.version})")
    if d.code_dir:
        print(f"  code:            {d.code_dir}, scoring script {d.scoring_script}")
    env = d.environment
    print(f"  environment:     {env.image or ''}{' + ' + str(env.conda_file) if env.conda_file else ''}"
          f"{' build ' + str(env.build_path) if env.build_path else ''}")
    settings = d.request_settings
    print(f"  request timeout: {settings.request_timeout_ms} ms, "
          f"max concurrent: {settings.max_concurrent_requests_per_instance}")
    print(f"  instances:       {d.instance_count} x {d.instance_type or '-'} (shown, not used locally)")
    for warning in d.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# -- entry point ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="devtui", description="Run an Azure ML online deployment locally, with "
                                                            "hot reload, live logs, invoke and debugging. "
                                                            "`devtui [PATH]` opens the terminal app.")
    top.add_argument("--version", action="version", version=f"devtui {__version__}")
    verbs = top.add_subparsers(dest="command", metavar="COMMAND")

    def verb(name: str, help: str, func) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def deployment_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", type=Path, metavar="PATH",
                       help="a deployment YAML, or a folder holding one (and optionally an endpoint YAML)")
        p.add_argument("-n", "--name", help="endpoint name (overrides the YAML files')")
        p.add_argument("--endpoint-file", type=Path, help="the endpoint YAML, when PATH is a deployment YAML")

    up = verb("up", "deploy the local endpoint and stream its logs until Ctrl-C", cmd_up)
    deployment_args(up)
    up.add_argument("--runtime", choices=list(NAMES), default="process",
                    help="where the scoring server runs: a child process (default) or containers on a Docker engine")
    up.add_argument("--port", type=_port, help="port to listen on (default or 0: a free one)")
    up.add_argument("--detach", action="store_true",
                    help="return once the deployment is Succeeded (exit 0) or Failed (exit 1); keep it running")
    up.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    _debug_flags(up)

    p = verb("show", "print the endpoint as JSON, like `az ml online-endpoint show --local`", cmd_show)
    p.add_argument("-n", "--name")
    p = verb("list", "list the running local endpoints", cmd_list)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = verb("invoke", "send a request file to the endpoint and print the answer", cmd_invoke)
    p.add_argument("-n", "--name")
    p.add_argument("--request-file", required=True, type=Path)
    p.add_argument("--deployment-name")
    p = verb("logs", "print a container's log", cmd_logs)
    p.add_argument("-n", "--name")
    p.add_argument("--container", choices=[INFERENCE_SERVER, STORAGE_INITIALIZER, DEVTUI], default=INFERENCE_SERVER)
    p.add_argument("--lines", type=_count, help="only the last N lines")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p = verb("down", "stop and delete a local endpoint", cmd_down)
    group = p.add_mutually_exclusive_group()
    group.add_argument("-n", "--name")
    group.add_argument("--all", action="store_true")
    p.add_argument("--purge", action="store_true", help="also remove the endpoint's images (container runtime)")
    p = verb("validate", "check a deployment without running it", cmd_validate)
    deployment_args(p)
    return top


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


_port = _whole_number(0, 65535, "port")  # 0 picks a free one
_count = _whole_number(0, None, "count")


def _debug_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true",
                   help="listen for a debugger (VS Code, debugpy) on 127.0.0.1; writes .vscode/launch.json")
    p.add_argument("--debug-port", type=_port, help="the debugger's port (default 5678; 0 picks a free one)")
    p.add_argument("--debug-wait", action="store_true", help="hold init() until a debugger attaches")


def _check_home() -> None:
    """DEVTUI_HOME must be a folder devtui can write: the registry and the logs live there."""
    home = registry.home()
    try:
        (home / "endpoints").mkdir(parents=True, exist_ok=True)
        # A file of its own: several devtui commands may check at the same moment.
        tempfile.TemporaryFile(dir=home).close()
    except OSError as ex:
        raise CommandError(f"DEVTUI_HOME={home} is not a folder devtui can write ({ex.strerror}); point DEVTUI_HOME "
                           "at a writable folder (default ~/.devtui)", BAD_INPUT) from None


VERBS = ("up", "show", "list", "invoke", "logs", "down", "validate")


def tui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devtui", description="Open the devtui terminal app on a deployment. "
                                "Other commands: " + ", ".join(VERBS) + " (devtui COMMAND --help).")
    p.add_argument("path", type=Path, nargs="?", default=Path("."), metavar="PATH",
                   help="a deployment YAML, or a folder holding one (default: the current folder)")
    p.add_argument("-n", "--name", help="endpoint name (overrides the YAML files')")
    p.add_argument("--endpoint-file", type=Path, help="the endpoint YAML, when PATH is a deployment YAML")
    p.add_argument("--runtime", choices=list(NAMES), default="process")
    p.add_argument("--port", type=_port, help="port to listen on (default or 0: a free one)")
    p.add_argument("--log-lines", type=_count, default=10_000, help="log lines kept in memory per view (default 10000)")
    _debug_flags(p)
    p.set_defaults(func=cmd_tui)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and (argv[0] in VERBS or argv[0] in ("-h", "--help", "--version")):
        args = parser().parse_args(argv)
    else:
        args = tui_parser().parse_args(argv)
    try:
        _check_home()
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`devtui logs | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except spec.SpecError as ex:
        for problem in ex.problems:
            error(str(problem))
        return BAD_INPUT
    except CommandError as ex:
        error(str(ex))
        return ex.code
    except KeyboardInterrupt:
        return 130
    except Exception as ex:  # a devtui bug: the user gets one line, the details go to a file
        crash = registry.home() / "crash.log"
        try:
            crash.parent.mkdir(parents=True, exist_ok=True)
            with open(crash, "a") as f:
                f.write(f"--- {time.ctime()} devtui {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
            where = f"Details are in {crash}"
        except OSError:
            where = "Run it again with DEVTUI_HOME set to a writable folder to keep the details"
        error(f"devtui failed unexpectedly ({type(ex).__name__}: {ex}). {where}; please report it.")
        return 70


if __name__ == "__main__":
    sys.exit(main())
