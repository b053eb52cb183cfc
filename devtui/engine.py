"""One local endpoint's lifecycle: stage -> start -> ready -> reload -> stop.

The engine owns the deployment, a runtime and the file watcher, and turns what they report into
events (``devtui.events``). It never prints: the CLI prints the events, the TUI renders them,
the registry records them. Reloads follow the update ladder of ``devtui.watch``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from . import runtimes, spec
from .events import CREATING, DELETING, FAILED, UPDATING, DebuggerChanged, Event, ReloadFinished, ReloadReason
from .record import DeploymentRecord
from .runtimes import PortInUse
from .server_events import DebugSettings, ReloadRequest, ServerEvents
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


class Engine(ServerEvents):
    def __init__(self, deployment: spec.LocalDeployment, workdir: Path, *, runtime: str = "process",
                 host: str = "127.0.0.1", port: int | None = None, watch: bool = True,
                 name: str | None = None, debug: DebugSettings | None = None,
                 runtimes_from: Callable[..., runtimes.Runtime] = runtimes.create, reload_mode: str = "patch"):
        """``runtimes_from(name, deployment, workdir, sink, host=, port=, debug=)`` makes the
        runtime (tests pass a fake one: the engine's boundary)."""
        self.deployment = deployment
        self._runtimes_from = runtimes_from
        self.reload_mode = reload_mode
        self.workdir = workdir
        self.runtime_name = runtime
        self.host = host
        self.port = self.port_asked = port or 0
        self.watch_enabled = watch
        # How the deployment was loaded, to load it again when its YAML changes.
        self._source = (deployment.deployment_file, deployment.endpoint_file, name)
        self.listeners: list[Callable[[Event], None]] = []
        self.state = CREATING
        self.revision = 0
        self.serving_revision: int | None = None
        self.scoring_uri: str | None = None
        self.last_reload: ReloadFinished | None = None
        self.spec_error: spec.SpecError | None = None  # the changed YAML's problems, until a good one
        self.debug = debug
        self.debugger: DebuggerChanged | None = None
        self.runtime = self._new_runtime()
        self._outcome: asyncio.Future | None = None
        self._requests: list[ReloadRequest] = []  # asked for, not yet answered by a starting worker
        self._started_at: dict[int, ReloadRequest] = {}  # revision -> what it answers
        self._watcher: asyncio.Task | None = None
        self._watch_stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.served = False
        self._recovery: asyncio.Task | None = None
        self._deaths: list[float] = []  # when the server died unasked, in a row
        self._booted = asyncio.Event()
        self.stopped = False

    # -- lifecycle -------------------------------------------------------------------------------

    def _new_runtime(self) -> runtimes.Runtime:
        port = self.port if self.port_asked else port_to_reuse(self.host, self.port, self._say)
        return self._runtimes_from(self.runtime_name, self.deployment, self.workdir, self, host=self.host,
                                   port=port, debug=self.debug, reload_mode=self.reload_mode)

    async def start(self) -> str:
        """Stage and start; returns Succeeded or Failed once the first revision has an outcome.
        Watching starts either way: a Failed deployment recovers on the next good save; except
        when a port is taken (``fatal``), which no save can change."""
        try:
            check_port(self.host, self.port)
            if self.debug is not None:
                check_port(self.debug.host, self.debug.port, "debug port", "--debug-port")
        except PortInUse as ex:
            self._port_taken(ex)
            self._booted.set()
            return self.state
        self._set_state(CREATING, f"deployment {self.deployment.deployment_name} "
                                  f"of endpoint {self.deployment.endpoint_name}")
        # Watch from the start, so a save made while the server boots is not missed; the
        # watcher applies it once the first outcome is known.
        if self.watch_enabled and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())
        try:
            return await self._boot(first_revision=1)
        finally:
            self._booted.set()

    async def _boot(self, first_revision: int) -> str:
        self._outcome = asyncio.get_running_loop().create_future()
        self._requests = [ReloadRequest(ReloadReason.START)]
        self.no_server = self.boot_failed = False
        try:
            await self.runtime.stage()
            await self.runtime.start(first_revision)
        except Exception as ex:
            self.no_server = self.boot_failed = True
            self._start_failed(ex)
        return await self._outcome

    async def reload(self, reason: ReloadReason = ReloadReason.MANUAL, files: tuple[str, ...] = (),
                     swap: bool = False) -> None:
        """The code changed (rung 0 where the server can patch it in place, else rung 1), or the
        user asked; ``swap``: a new worker whatever changed."""
        if await self._started_again(reason):
            return
        self._requests.append(ReloadRequest(ReloadReason(reason), files))
        await self.runtime.reload(swap=swap)

    async def restage(self, files: tuple[str, ...] = ()) -> None:
        """Stage the model again, then swap workers (rung 2)."""
        if await self._started_again(ReloadReason.MODEL):
            return
        self._requests.append(ReloadRequest(ReloadReason.MODEL, files))
        await self.runtime.stage()
        await self.runtime.reload(swap=True)

    async def _started_again(self, reason: ReloadReason) -> bool:
        """No server runs to take a change (its start failed, or it ended before it served): a
        change starts it again, as a Failed deployment's message promises."""
        if self.no_server and not self.stopped:
            await self.restart(f"a {reason} change after the server did not run", reload_yaml=False)
            return True
        return False

    async def restart(self, reason: str = "restart", reload_yaml: bool = True) -> str:
        """Load the YAML again and restart the server with it (rung 3). A YAML with problems is
        reported and not applied: the running revision keeps serving."""
        async with self._lock:
            deployment_file, endpoint_file, name = self._source
            try:
                deployment = (await asyncio.to_thread(spec.load, deployment_file, endpoint_file, name)
                              if reload_yaml else self.deployment)
            except spec.SpecError as ex:
                self.spec_error = ex
                self._say("The changed YAML has problems; it is not applied and the running revision "
                          "keeps serving:", *(f"  {p}" for p in ex.problems),
                          *(f"  warning: {w}" for w in ex.warnings))
                return self.state
            if reload_yaml:
                self.spec_error = None
            if reload_yaml and deployment.warnings:
                self._say(*(f"warning: {w}" for w in deployment.warnings))
            if self.stopped:
                return self.state
            self._set_state(UPDATING, f"applying {reason}")
            try:
                await self.runtime.stop()
                self.deployment = deployment
                self.serving_revision = None
                self.served = False
                self.runtime = self._new_runtime()
            except runtimes.RuntimeFailure as ex:
                self._say(f"error: {ex}")
                self._resolve(FAILED, str(ex))
                return self.state
            if self.stopped:
                return self.state
            state = await self._boot(first_revision=self.revision + 1)
            if self._watcher is not None:
                # Watch again from the new YAML: folders, conda file or build context may have moved.
                self._watch_stop.set()
            return state

    def _server_died(self, exit_code: int | None) -> None:
        # A server that never served (a taken port, a debugger that cannot listen) would only
        # fail the same way again: it waits for a save or a restart instead.
        self.no_server = not self.served
        if self.served and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.get_running_loop().create_task(self._recover(exit_code))

    async def _recover(self, exit_code: int | None) -> None:
        why = f"The scoring server exited with code {exit_code}"
        while not self.stopped:
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < BACKOFF_RESET_S] + [now]
            delay = RESTART_BACKOFF_S[min(len(self._deaths), len(RESTART_BACKOFF_S)) - 1]
            self._say(f"{why}; restarting it in {delay:g} s (restart {len(self._deaths)} in a row)")
            await asyncio.sleep(delay)  # the back-off itself
            if self.stopped:
                return
            await self.restart(f"a restart after the server exited with code {exit_code}", reload_yaml=False)
            if not self.boot_failed:
                return
            # The restart failed before a server ran (the Docker engine does not answer yet): again.
            why = "The restart failed"

    async def switch_runtime(self, name: str) -> str:
        """Run the same deployment on another runtime: stop this one, start that one."""
        async with self._lock:
            if self.stopped:
                return self.state
            self._set_state(UPDATING, f"switching to the {name} runtime")
            await self.runtime.stop()
            previous = self.runtime_name
            self.runtime_name = name
            self.serving_revision = None
            self.served = False
            try:
                self.runtime = self._new_runtime()
            except runtimes.RuntimeFailure as ex:
                self._say(f"error: {ex}")
                self.runtime_name = previous
                self.runtime = self._new_runtime()
            if self.stopped:
                return self.state
            return await self._boot(first_revision=self.revision + 1)

    async def set_debug(self, debug: DebugSettings | None) -> str:
        """Start (or stop) the debugger: the server restarts with it (rung 3)."""
        if debug is not None:
            check_port(debug.host, debug.port, "debug port", "--debug-port")
        self.debug = debug
        if debug is None:
            self.debugger = None
        return await self.restart("debugger " + ("on" if debug else "off"), reload_yaml=False)

    async def apply(self, batch: Batch) -> None:
        await self._booted.wait()
        files = tuple(str(f) for f in batch.files)
        if batch.action == Action.SWAP:
            await self.reload(ReloadReason.CODE, files)
        elif batch.action == Action.RESTAGE:
            await self.restage(files)
        elif batch.action == Action.RESTART:
            await self.restart("YAML change")
        elif batch.action == Action.REBUILD:
            if self.runtime_name == "process":
                self._say(f"{', '.join(files)} changed: the process runtime serves with this Python, so the "
                          "environment is not rebuilt; use --runtime container to test it.")
            else:
                await self.restart("environment change")

    async def _watch(self) -> None:
        while not self.stopped:
            self._watch_stop = asyncio.Event()
            async for batch in batches(self.deployment, self._watch_stop):
                if self.stopped:
                    return
                try:
                    await self.apply(batch)
                except Exception as ex:  # one bad change must not end the watching
                    self._say(f"error: applying {', '.join(p.name for p in batch.files)} failed: {ex}")

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._set_state(DELETING, "stopping")
        self._watch_stop.set()
        for task in (self._watcher, self._recovery):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        # A restart or runtime switch under way finishes first (it sees `stopped` and boots
        # nothing new), so the runtime stopped below is the last one.
        async with self._lock:
            await self.runtime.stop()
        self._say("Stopped; nothing is left running.")

    def kill(self) -> None:
        """Last resort when the event loop is gone: end the runtime's processes at once."""
        self.runtime.kill()

    def describe(self) -> DeploymentRecord:
        """The deployment as `devtui show` lists it."""
        return DeploymentRecord.of(self)


# `devtui reload` asks the process hosting the engine by signal: a worker swap, or a full restart.
SWAP_REQUEST, RESTART_REQUEST = signal.SIGUSR1, signal.SIGUSR2


def accept_reload_requests(engine: Engine) -> None:
    """Take `devtui reload [--full]` from another shell (call it in the host's running loop)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(SWAP_REQUEST, lambda: loop.create_task(engine.reload(ReloadReason.MANUAL, swap=True)))
    loop.add_signal_handler(RESTART_REQUEST, lambda: loop.create_task(engine.restart("a restart requested")))
