"""One local endpoint's lifecycle: stage -> start -> ready -> reload -> stop.

The engine owns the deployment, a runtime, the file watcher and the runtime's sink
(``revisions.Revisions``, which turns what the runtime reports into events, ``devtui.events``).
It never prints: the CLI prints the events, the TUI renders them, the registry records them.
Reloads follow the update ladder of ``watch``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import runtimes, spec
from ..launch import DebugSettings, Launch
from ..events import CREATING, DELETING, FAILED, UPDATING, Event, Placement, ReloadReason
from ..record import DeploymentRecord
from ..runtimes import PortInUse
from ..scrub import Secrets
from .emitter import Emitter
from .revisions import Owner, ReloadRequest, Revisions
from .watch import Action, Batch, batches

# Waits before restarting a server that died unasked, one more step for each death in a row.
RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)
# A server that served this long before dying starts the back-off again.
BACKOFF_RESET_S = 60


def check_port(host: str, port: int, what: str = "port", flag: str = "--port") -> None:
    """Refuse a taken port before anything starts, so the user gets one clear error."""
    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise PortInUse(host, port, what, flag) from None


def port_to_reuse(host: str, port: int, say: Callable[..., None]) -> int:
    """The port a restarted server gets when devtui chose it: the one it had, so the scoring URI
    stays the same; 0 (a free one) when another process took it meanwhile, which ``say`` tells."""
    try:
        check_port(host, port)
    except PortInUse:
        say(f"Port {port} was taken by another process while the server restarted: it listens on a new port, "
            "and the scoring URI changes (pass --port to keep one)")
        return 0
    return port


def _revisions(name: str) -> property:
    return property(lambda engine: getattr(engine.revisions, name), doc=f"``Revisions.{name}``")


class Engine:
    def __init__(self, deployment: spec.LocalDeployment, workdir: Path, launch: Launch = Launch(), *,
                 runtimes_from: Callable[..., runtimes.Runtime] = runtimes.create):
        """``runtimes_from(deployment, launch, workdir, sink)`` makes the runtime ``launch.runtime``
        names (tests pass a fake one: the engine's boundary)."""
        self.deployment = deployment
        self.launch = launch  # as asked; replaced as the user switches runtime or debugger, or a port is chosen
        self._runtimes_from = runtimes_from
        self.workdir = workdir
        self.emitter = Emitter()
        self.secrets = Secrets()
        self.revisions = Revisions(self.emitter, launch.host, Owner(
            stopped=lambda: self.stopped, placement=lambda: self.runtime.placement(),
            server_died=lambda code: self.restarts.server_died(code), restart=lambda said, reason:
            self.restarts.debugger_wedged(said, reason), debug_port=self._debug_port,
            scrubber=lambda: self.secrets.of(self.deployment, self.launch.connections)))
        self.spec_error: spec.SpecError | None = None  # the changed YAML's problems, until a good one
        self.stopped = False
        self.runtime = self._new_runtime()
        self._watcher: asyncio.Task | None = None
        self._watch_stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.restarts = Restarts(self)

    @property
    def runtime_name(self) -> str:
        return self.launch.runtime

    @property
    def debug(self) -> DebugSettings | None:
        return self.launch.debug

    # -- what the engine reports, read from its revisions -----------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.emitter.subscribe(listener)

    def unsubscribe(self, listener: Callable[[Event], None]) -> None:
        self.emitter.unsubscribe(listener)

    def log(self, source: str, lines: list[str]) -> None:
        """Say something in the log (from a subscriber too: it is delivered after the event at hand)."""
        self.emitter.log(source, lines)

    # What the revisions keep, read through the engine (set only by the revisions).
    state = _revisions("state")
    revision = _revisions("revision")
    serving_revision = _revisions("serving_revision")
    scoring_uri = _revisions("scoring_uri")
    last_reload = _revisions("last_reload")
    debugger = _revisions("debugger")
    fatal = _revisions("fatal")

    @property
    def port(self) -> int:
        return self.revisions.port or self.launch.port

    @property
    def placement(self) -> Placement:
        """Where the runtime has put the server by now (the Docker engine is known before it listens)."""
        return self.runtime.placement()

    # -- lifecycle -------------------------------------------------------------------------------

    def _new_runtime(self) -> runtimes.Runtime:
        """The runtime for the launch as it is now, on the port the server had when devtui chose it."""
        port = self.launch.port or port_to_reuse(self.launch.host, self.port, self.emitter.say)
        return self._runtimes_from(self.deployment, replace(self.launch, port=port), self.workdir, self.revisions)

    async def start(self) -> str:
        """Stage and start; returns Succeeded or Failed once the first revision has an outcome.
        Watching starts either way: a Failed deployment recovers on the next good save; except
        when a port is taken (``fatal``), which no save can change. The ports were checked
        before (``cli.up.preflight``); one taken since fails the server's bind."""
        self.revisions.set_state(CREATING, f"deployment {self.deployment.deployment_name} "
                                           f"of endpoint {self.deployment.endpoint_name}")
        # Watch from the start, so a save made while the server boots is not missed; the
        # watcher applies it once the first outcome is known.
        if self.launch.watch and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())
        try:
            return await self._boot(first_revision=1)
        finally:
            self.revisions.booted.set()

    async def _boot(self, first_revision: int) -> str:
        outcome = self.revisions.booting()
        try:
            await self.runtime.stage()
            await self.runtime.start(first_revision)
        except Exception as ex:
            self.revisions.start_failed(ex)
        return await outcome

    async def reload(self, reason: ReloadReason = ReloadReason.MANUAL, files: tuple[str, ...] = (),
                     swap: bool = False) -> None:
        """The code changed (rung 0 where the server can patch it in place, else rung 1), or the
        user asked; ``swap``: a new worker whatever changed."""
        if await self._started_again(reason):
            return
        self.revisions.requests.append(ReloadRequest(ReloadReason(reason), files))
        await self.runtime.reload(swap=swap)

    async def restage(self, files: tuple[str, ...] = ()) -> None:
        """Stage the model again, then swap workers (rung 2)."""
        if await self._started_again(ReloadReason.MODEL):
            return
        self.revisions.requests.append(ReloadRequest(ReloadReason.MODEL, files))
        await self.runtime.stage()
        await self.runtime.reload(swap=True)

    async def _started_again(self, reason: ReloadReason) -> bool:
        """No server runs to take a change (its start failed, or it ended before it served): a
        change starts it again, as a Failed deployment's message promises."""
        if self.revisions.no_server and not self.stopped:
            await self.restart(f"a {reason} change after the server did not run", reload_yaml=False)
            return True
        return False

    async def restart(self, reason: str = "restart", reload_yaml: bool = True) -> str:
        """Load the YAML again and restart the server with it (rung 3). A YAML with problems is
        reported and not applied: the running revision keeps serving."""
        async with self._lock:
            loaded = self.deployment  # load it again as it was loaded: the same files and name
            try:
                deployment = (await asyncio.to_thread(spec.load, loaded.deployment_file, loaded.endpoint_file,
                                                      self.launch.name) if reload_yaml else loaded)
            except spec.SpecError as ex:
                self.spec_error = ex
                self.emitter.say("The changed YAML has problems; it is not applied and the running revision "
                                 "keeps serving:", *(f"  {p}" for p in ex.problems),
                                 *(f"  warning: {w}" for w in ex.warnings))
                return self.state
            if reload_yaml:
                self.spec_error = None
            if reload_yaml and deployment.warnings:
                self.emitter.say(*(f"warning: {w}" for w in deployment.warnings))
            if self.stopped:
                return self.state
            self.revisions.set_state(UPDATING, f"applying {reason}")
            try:
                await self.runtime.stop()
                self.deployment = deployment
                self.revisions.new_server()
                self.runtime = self._new_runtime()
            except runtimes.RuntimeFailure as ex:
                self.emitter.say(f"error: {ex}")
                self.revisions.resolve(FAILED, str(ex))
                return self.state
            if self.stopped:
                return self.state
            state = await self._boot(first_revision=self.revision + 1)
            if self._watcher is not None:
                # Watch again from the new YAML: folders, conda file or build context may have moved.
                self._watch_stop.set()
            return state

    def _debug_port(self, port: int) -> None:
        """The debugger listens on ``port``: kept across restarts (--debug-port 0), so VS Code's config holds."""
        if self.launch.debug is not None:
            self.launch = replace(self.launch, debug=replace(self.launch.debug, port=port))

    async def switch_runtime(self, name: str) -> str:
        """Run the same deployment on another runtime: stop this one, start that one."""
        async with self._lock:
            if self.stopped:
                return self.state
            self.revisions.set_state(UPDATING, f"switching to the {name} runtime")
            await self.runtime.stop()
            previous = self.launch
            self.launch = replace(previous, runtime=name)
            self.revisions.new_server()
            try:
                self.runtime = self._new_runtime()
            except runtimes.RuntimeFailure as ex:
                self.emitter.say(f"error: {ex}")
                self.launch = previous
                self.runtime = self._new_runtime()
            if self.stopped:
                return self.state
            return await self._boot(first_revision=self.revision + 1)

    async def set_debug(self, debug: DebugSettings | None) -> str:
        """Start (or stop) the debugger: the server restarts with it (rung 3)."""
        if debug is not None:
            check_port(debug.host, debug.port, "debug port", "--debug-port")
        self.launch = replace(self.launch, debug=debug)
        if debug is None:
            self.revisions.debugger = None
        return await self.restart("debugger " + ("on" if debug else "off"), reload_yaml=False)

    async def apply(self, batch: Batch) -> None:
        await self.revisions.booted.wait()
        files = tuple(str(f) for f in batch.files)
        if batch.action == Action.SWAP:
            await self.reload(ReloadReason.CODE, files)
        elif batch.action == Action.RESTAGE:
            await self.restage(files)
        elif batch.action == Action.RESTART:
            await self.restart("YAML change")
        elif batch.action == Action.REBUILD:
            if self.runtime_name == "process":
                self.emitter.say(f"{', '.join(files)} changed: the process runtime serves with this Python, so the "
                          "environment is not rebuilt; use --runtime container to test it.")
                if self.deployment.mlflow is not None:
                    # An MLflow model's conda.yaml is saved with the model: the model may be new too.
                    await self.restage(files)
            else:
                await self.restart("environment change")

    async def _watch(self) -> None:
        while not self.stopped:
            self._watch_stop = asyncio.Event()
            async for batch in batches(self.deployment, self._watch_stop, self.launch.connections):
                if self.stopped:
                    return
                try:
                    await self.apply(batch)
                except Exception as ex:  # one bad change must not end the watching
                    self.emitter.say(f"error: applying {', '.join(p.name for p in batch.files)} failed: {ex}")

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.revisions.set_state(DELETING, "stopping")
        self._watch_stop.set()
        for task in (self._watcher, self.restarts.recovery):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        # A restart or runtime switch under way finishes first (it sees `stopped` and boots
        # nothing new), so the runtime stopped below is the last one.
        async with self._lock:
            await self.runtime.stop()
        self.emitter.say("Stopped; nothing is left running.")

    def kill(self) -> None:
        """Last resort when the event loop is gone: end the runtime's processes at once."""
        self.runtime.kill()

    def describe(self) -> DeploymentRecord:
        """The deployment as `devtui show` lists it."""
        return DeploymentRecord.of(self)


class Restarts:
    """The restarts nobody asked for: after the server died unasked (killed, out of memory) once
    it had served, waiting longer after each death in a row; and one for a wedged debugger."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.recovery: asyncio.Task | None = None
        self.deaths: list[float] = []  # when the server died unasked, in a row
        self.for_debugger: asyncio.Task | None = None

    def server_died(self, exit_code: int | None) -> None:
        if self.recovery is None or self.recovery.done():
            self.recovery = asyncio.get_running_loop().create_task(self._recover(exit_code))

    def debugger_wedged(self, said: str, reason: str) -> None:
        if self.for_debugger is None or self.for_debugger.done():
            self.engine.emitter.say(said)
            self.for_debugger = asyncio.get_running_loop().create_task(self.engine.restart(reason, reload_yaml=False))

    async def _recover(self, exit_code: int | None) -> None:
        engine = self.engine
        why = f"The scoring server exited with code {exit_code}"
        while not engine.stopped:
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < BACKOFF_RESET_S] + [now]
            delay = RESTART_BACKOFF_S[min(len(self.deaths), len(RESTART_BACKOFF_S)) - 1]
            engine.emitter.say(f"{why}; restarting it in {delay:g} s (restart {len(self.deaths)} in a row)")
            await asyncio.sleep(delay)  # the back-off itself
            if engine.stopped:
                return
            await engine.restart(f"a restart after the server exited with code {exit_code}", reload_yaml=False)
            if not engine.revisions.boot_failed:
                return
            # The restart failed before a server ran (the Docker engine does not answer yet): again.
            why = "The restart failed"


# `devtui reload` asks the process hosting the engine by signal: a worker swap, or a full restart.
SWAP_REQUEST, RESTART_REQUEST = signal.SIGUSR1, signal.SIGUSR2


def accept_reload_requests(engine: Engine) -> None:
    """Take `devtui reload [--full]` from another shell (call it in the host's running loop)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(SWAP_REQUEST, lambda: loop.create_task(engine.reload(ReloadReason.MANUAL, swap=True)))
    loop.add_signal_handler(RESTART_REQUEST, lambda: loop.create_task(engine.restart("a restart requested")))
