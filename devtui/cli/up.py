"""The commands that run an engine: ``up`` (in the foreground, or ``--detach``ed into a background
child that runs ``up --serve``) and ``devtui [PATH]``, the terminal app. Each checks what it can
before anything starts (the YAML, the name, the ports, the Docker engine), then hands over to the
host."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .. import __version__, orphans, registry, spec
from ..engine import check_port
from ..events import DEVTUI, FAILED, INFERENCE_SERVER, STORAGE_INITIALIZER, SUCCEEDED
from ..launch import Launch
from ..logs import tail
from ..runtimes import PortInUse
from .errors import BAD_INPUT, CommandError, already_running, error, warn
from .host import host, serve
from .views import Printer


def load(launch: Launch) -> spec.LocalDeployment:
    deployment = spec.load(launch.path, launch.endpoint_file, launch.name)
    if launch.connections:
        from ..spec.connections import check_connections

        check_connections(list(launch.connections), flow=deployment.flow is not None)
    return deployment


def preflight(launch: Launch) -> tuple[spec.LocalDeployment, registry.Claim]:
    """The deployment, and the claim of its endpoint's name, held from here on (released if a
    later check fails): of two `up`s of one name started together, one gets it and the other is
    told. A check that fails before anything needed the name leaves nothing behind."""
    deployment = load(launch)
    warn(deployment.warnings)
    _check_depth(deployment)
    name = deployment.endpoint_name
    # The background child of `up --detach` was handed the name; anyone else checks it is free.
    claim = registry.inherited_claim(name)
    if claim is None and registry.is_alive(name):
        raise already_running(name, registry.read(name))
    try:
        if orphans.find(name):
            # A killed devtui's processes (they may hold the port, checked next) are ended only
            # with the name held: then they surely are not those of an `up` starting meanwhile.
            claim = claim or _claim(name)
            _end_orphans(name)
        _check(launch, deployment)
        return deployment, claim or _claim(name)
    except BaseException:
        if claim is not None:
            claim.release()
        raise


def _check_depth(deployment: spec.LocalDeployment) -> None:
    """A model or code folder nested deeper than staging takes is refused before anything starts."""
    from ..ignore import FolderTooDeep, kept_files

    model = deployment.model.path if deployment.model is not None else None
    for kind, folder in (("model", model), ("code", deployment.code_dir)):
        if folder is not None and folder.is_dir():
            try:
                kept_files(folder)
            except FolderTooDeep as ex:
                raise CommandError(f"the {kind} folder {ex}", BAD_INPUT) from None


def _end_orphans(name: str) -> None:
    ended = orphans.end(name)
    if ended:
        print(f"Ended {len(ended)} process(es) left by a devtui that was killed ({', '.join(map(str, ended))}); "
              "they still served this endpoint", file=sys.stderr)


def _claim(name: str) -> registry.Claim:
    try:
        return registry.claim(name)
    except registry.AlreadyRunning as ex:
        raise already_running(ex.name, ex.record) from None


def _check(launch: Launch, deployment: spec.LocalDeployment) -> None:
    """The ports are free (checked here only: a port taken later fails the server's bind) and the
    Docker engine answers."""
    try:
        check_port(launch.host, launch.port)
        if launch.debug is not None:
            check_port(launch.debug.host, launch.debug.port, "debug port", "--debug-port")
    except PortInUse as ex:
        raise CommandError(str(ex), BAD_INPUT) from None
    if launch.runtime == "container":
        _check_engine(launch, deployment)


def _check_engine(launch: Launch, deployment: spec.LocalDeployment) -> None:
    """The engine answers (the one --context names, else the environment's), and gives GPUs if
    --gpus asks: checked with an image it already has, so nothing is built or left behind."""
    from ..runtimes import RuntimeFailure
    from ..runtimes.container import gpus
    from ..runtimes.container.docker_engine import connect, labels

    try:
        client = connect(context=launch.context)
        if launch.gpus is not None:
            image = gpus.probe_image(client, deployment)
            if image is not None:  # an engine with no image at all: the runtime checks after its build
                gpus.check(client, launch.gpus, image, labels(deployment, "gpu-probe"))
    except RuntimeFailure as ex:
        raise CommandError(str(ex), BAD_INPUT) from None


def cmd_up(args) -> int:
    launch = args.launch
    deployment, claim = preflight(launch)
    if args.detach:
        return _detach(launch, deployment, claim)
    printer = None if args.serve else Printer()
    if printer:
        printer.line(DEVTUI, f"devtui {__version__}: endpoint {deployment.endpoint_name}, deployment "
                             f"{deployment.deployment_name}, {launch.runtime} runtime; Ctrl-C stops everything")
        if launch.replay is not None:
            printer.line(DEVTUI, f"replaying {launch.replay.describe()} after each reload")
    return host(launch, deployment, claim, lambda engine: asyncio.run(serve(engine, printer)), view=printer)


def _detach(launch: Launch, deployment: spec.LocalDeployment, claim: registry.Claim) -> int:
    name = deployment.endpoint_name
    folder = registry.folder(name)
    try:
        with open(folder / "host.log", "ab", opener=registry.private_opener) as out:
            output = HostOutput(folder / "host.log", out.tell())
            # The background child: this `up`, with --serve in place of --detach.
            command = [sys.executable, "-m", "devtui", "up", *launch.to_argv(), "--serve"]
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(claim.lock_fd,),
                                     env={**os.environ, **registry.hand_over(claim)})
    finally:
        claim.release(remove=False)  # the child holds it now (or, if it did not start, nobody)
    started = time.monotonic()
    deadline = started + 600
    progress = Progress(folder / "logs", started)
    while time.monotonic() < deadline:
        record = registry.read(name) if registry.is_alive(name) else None
        state = record and record.provisioning_state
        if record is not None and record.fatal:
            progress.done()
            return output.fatal(child, record.fatal)
        progress.tell(state)
        if state in (SUCCEEDED, FAILED):
            progress.done()
        if state == SUCCEEDED:
            print(json.dumps(record.shown(), indent=2))
            return 0
        if state == FAILED:
            _report_failure(deployment)
            return 1
        if child.poll() is not None:
            progress.done()
            raise output.ended(child)
        time.sleep(0.05)
    raise CommandError(f"endpoint {name} did not finish starting within 10 minutes; see `devtui logs -n {name}`")


class HostOutput:
    """What the background devtui of this `up --detach` wrote to host.log (from ``offset`` on:
    the file keeps earlier runs'), and what its end means for this `up`."""

    def __init__(self, path: Path, offset: int):
        self.path, self.offset = path, offset

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def fatal(self, child: subprocess.Popen, message: str) -> int:
        """The deployment cannot start (a port taken since the check): the child stops everything
        and exits; then the error, once."""
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise CommandError(message, BAD_INPUT)

    def ended(self, child: subprocess.Popen) -> CommandError:
        """The child ended before its deployment had an outcome. Bad input (the port it checked
        again was taken, the YAML changed meanwhile) is said as the child said it, once."""
        lines = self.lines()
        errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        if child.returncode == BAD_INPUT and errors:
            return CommandError("\n".join(errors), BAD_INPUT)
        return CommandError(f"the background devtui exited with code {child.returncode}:\n" + "\n".join(lines[-20:]))


class Progress:
    """What a detached `up` is doing while it waits, on stderr: the phase, the time so far and the
    last log line, when the phase changes and every PERIOD_S seconds (a slow init() says it is
    still running); on a terminal, one line rewritten in place."""

    PERIOD_S = 5

    def __init__(self, logs: Path, started: float):
        self.logs, self.started = logs, started
        self.phase: str | None = None
        self.said_at = 0.0
        self.terminal = sys.stderr.isatty()

    def tell(self, state: str | None) -> None:
        now = time.monotonic()
        phase = self._phase(state)
        if phase == self.phase and now - self.said_at < self.PERIOD_S:
            return
        self.phase, self.said_at = phase, now
        last = next((line for source in (INFERENCE_SERVER, STORAGE_INITIALIZER, DEVTUI)
                     for line in tail(self.logs / f"{source}.log", 1)), "")
        text = f"{phase} ({now - self.started:.0f} s){': ' + last.strip()[:120] if last.strip() else ''}"
        if self.terminal:
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.terminal and self.phase is not None:
            print(file=sys.stderr)

    def _phase(self, state: str | None) -> str:
        if state is None:
            return "starting devtui"
        files = {source: (self.logs / f"{source}.log").exists() for source in (STORAGE_INITIALIZER, INFERENCE_SERVER)}
        if files[INFERENCE_SERVER]:
            return f"{state}: the scoring server is starting (init() runs)"
        if files[STORAGE_INITIALIZER]:
            return f"{state}: staging the model and code"
        return f"{state}: preparing the environment"


def _report_failure(deployment: spec.LocalDeployment) -> None:
    name = deployment.endpoint_name
    error(f"deployment {deployment.deployment_name} of endpoint {name} failed; it keeps running in the "
          f"background and retries on the next save (`devtui down -n {name}` stops it). Last log lines:")
    for source, count in ((DEVTUI, 10), (STORAGE_INITIALIZER, 10), (INFERENCE_SERVER, 30)):
        lines = tail(registry.folder(name) / "logs" / f"{source}.log", count)
        if lines:
            print(f"{source}:", file=sys.stderr)
            for line in lines:
                print(f"  {line}", file=sys.stderr)


def cmd_tui(args) -> int:
    """`devtui [PATH]`: the same host as `up`, rendered by the Textual app."""
    from ..tui.app import DevtuiApp

    deployment, claim = preflight(args.launch)

    def run_app(engine) -> None:
        try:  # the app prefills its Invoke tab itself (sample-request.json, a flow's sample)
            DevtuiApp(engine, log_capacity=args.log_lines).run()
        finally:
            engine.kill()  # only does something if the app ended without stopping the engine

    return host(args.launch, deployment, claim, run_app)
