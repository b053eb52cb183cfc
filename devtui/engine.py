"""One local endpoint's lifecycle: stage -> start -> ready -> reload -> stop.

The engine owns the deployment, a runtime and the file watcher, and turns what they report into
events (``devtui.events``). It never prints: the CLI prints the events, the TUI renders them,
the registry records them. Reloads follow the update ladder of ``devtui.watch``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import runtimes, spec
from .events import (CREATING, DELETING, DEVTUI, FAILED, SUCCEEDED, UPDATING, DebuggerChanged, Event, LogRecord,
                     Logs, Progress, ReloadFinished, ReloadStarted, ServerStarted, StateChanged)
from .record import DebuggerRecord, DeploymentRecord, RequestSettingsRecord
from .watch import Action, Batch, batches


@dataclass(frozen=True)
class DebugSettings:
    """debugpy for the scoring code: listen on host:port (0: a free one); hold init() with wait."""

    port: int = 5678
    wait: bool = False
    host: str = "127.0.0.1"


class PortInUse(Exception):
    def __init__(self, host: str, port: int, what: str = "port", flag: str = "--port"):
        super().__init__(f"{what} {port} on {host} is already in use (another devtui?): pick another with {flag}, "
                         f"or {flag} 0 for a free one")
        self.port = port


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


class Engine:
    def __init__(self, deployment: spec.LocalDeployment, workdir: Path, *, runtime: str = "process",
                 host: str = "127.0.0.1", port: int | None = None, watch: bool = True,
                 name: str | None = None, debug: DebugSettings | None = None):
        self.deployment = deployment
        self.workdir = workdir
        self.runtime_name = runtime
        self.host = host
        self.port = port or 0
        self.watch_enabled = watch
        # How the deployment was loaded, to load it again when its YAML changes.
        self._source = (deployment.deployment_file, deployment.endpoint_file, name)
        self.listeners: list[Callable[[Event], None]] = []
        self.state = CREATING
        self.revision = 0
        self.serving_revision: int | None = None
        self.scoring_uri: str | None = None
        self.last_reload: ReloadFinished | None = None
        self.debug = debug
        self.debugger: DebuggerChanged | None = None
        self.runtime = self._new_runtime()
        self._outcome: asyncio.Future | None = None
        self._requests: list[tuple[float, str, tuple[str, ...]]] = []
        self._started_at: dict[int, tuple[float, str, tuple[str, ...]]] = {}
        self._watcher: asyncio.Task | None = None
        self._watch_stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._booted = asyncio.Event()
        self.stopped = False

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.listeners.append(listener)

    def _emit(self, event: Event) -> None:
        # A subscriber that raises must not take the engine down with it: the exception would end
        # whichever task emitted (the log pump, the server's events), and a server whose output
        # nobody reads blocks on its next print(). It is reported once and gets no more events.
        for listener in tuple(self.listeners):
            try:
                listener(event)
            except Exception as ex:
                self._drop_listener(listener, ex)

    def _drop_listener(self, listener: Callable[[Event], None], ex: Exception) -> None:
        if listener not in self.listeners:
            return
        self.listeners.remove(listener)
        name = getattr(listener, "__qualname__", type(listener).__qualname__)
        self._say(f"error: {name} failed ({type(ex).__name__}: {ex}) and gets no more events; "
                  "the endpoint keeps serving")

    def _say(self, *lines: str) -> None:
        self._emit(Logs(tuple(LogRecord(DEVTUI, line) for line in lines)))

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self._emit(StateChanged(state, detail))

    # -- runtime sink ----------------------------------------------------------------------------

    def log(self, source: str, lines: list[str]) -> None:
        now = time.time()
        self._emit(Logs(tuple(LogRecord(source, line, now) for line in lines)))

    def progress(self, step: str, done: float, total: float = 0.0) -> None:
        self._emit(Progress(step, done, total))

    def server_event(self, event: dict) -> None:
        kind = event["event"]
        if kind == "listening":
            self.port = event["port"]
            self.scoring_uri = f"http://{_url_host(self.host)}:{self.port}{event.get('path', '/score')}"
            described = self.runtime.describe()
            self._emit(ServerStarted(self.scoring_uri, self.port, pid=described.get("pid"),
                                     container_ids=tuple(described.get("container_ids", ()))))
        elif kind == "starting":
            self.revision = event["revision"]
            requested = self._requests or [(time.perf_counter(), "start" if event["first"] else "manual", ())]
            self._requests = []
            reason = max(requested, key=lambda r: len(r[2]))[1] if requested else "manual"
            files = tuple(dict.fromkeys(f for r in requested for f in r[2]))
            self._started_at[event["revision"]] = (requested[0][0], reason, files)
            if not event["first"] or self.serving_revision is not None:
                self._emit(ReloadStarted(event["revision"], reason, files))
        elif kind in ("ready", "failed"):
            self._finish(event)
        elif kind == "crashed":
            self._say(f"The worker of revision {event['revision']} exited with code {event['exit_code']}; "
                      "starting it again")
            self._requests.append((time.perf_counter(), "crash", ()))
            # Nothing serves until the new worker is ready (or fails, which makes it Failed).
            self.serving_revision = None
            self._set_state(UPDATING, f"the worker of revision {event['revision']} crashed; starting it again")
        elif kind == "debugger":
            if self.debug is not None and event["state"] != "failed":
                # Keep the port chosen for --debug-port 0 across restarts, so VS Code's config holds.
                self.debug = DebugSettings(event["port"], self.debug.wait, self.debug.host)
            self.debugger = DebuggerChanged(event["state"], event.get("host", ""), event["port"],
                                            event.get("detail", ""))
            self._emit(self.debugger)
            if event["state"] == "failed":
                self._say(f"error: the debugger cannot listen on port {event['port']}: {event.get('detail', '')}")
        elif kind == "bind_failed":
            self._resolve(FAILED, f"port {event['port']} {event['reason']}")
        elif kind == "exited":
            if not event.get("expected") and not self.stopped:
                self.serving_revision = None
                self._resolve(FAILED, f"the scoring server exited with code {event['exit_code']}")

    def _finish(self, event: dict) -> None:
        if self.stopped:
            return  # a worker cut short by stopping is not a failed revision
        revision = event["revision"]
        since, _, _ = self._started_at.pop(revision, (time.perf_counter(), "", ()))
        ok = event["event"] == "ready"
        if ok:
            self.serving_revision = revision
        elif "serving_revision" in event:
            self.serving_revision = event["serving_revision"]  # the supervisor knows best
        first = event.get("first", False) if ok else self.serving_revision is None
        finished = ReloadFinished(revision, ok, round((time.perf_counter() - since) * 1000, 1),
                                  self.serving_revision, first, event.get("stage", ""),
                                  event.get("traceback", ""))
        self.last_reload = finished
        self._emit(finished)
        if ok:
            if self.state != SUCCEEDED:
                self._resolve(SUCCEEDED, f"revision {revision} is serving at {self.scoring_uri}")
        elif self.serving_revision is None:
            self._resolve(FAILED, f"revision {revision} failed in {event.get('stage', 'start')}(); "
                                  "save a fix to try again")

    def _resolve(self, state: str, detail: str) -> None:
        if self.state != state:
            self._set_state(state, detail)
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(state)

    # -- lifecycle -------------------------------------------------------------------------------

    def _new_runtime(self) -> runtimes.Runtime:
        return runtimes.create(self.runtime_name, self.deployment, self.workdir, self, host=self.host,
                               port=self.port, debug=self.debug)

    async def start(self) -> str:
        """Stage and start; returns Succeeded or Failed once the first revision has an outcome.
        Watching starts either way: a Failed deployment recovers on the next good save."""
        check_port(self.host, self.port)
        if self.debug is not None:
            check_port(self.debug.host, self.debug.port, "debug port", "--debug-port")
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
        self._requests = [(time.perf_counter(), "start", ())]
        try:
            await self.runtime.stage()
            await self.runtime.start(first_revision)
        except runtimes.RuntimeError_ as ex:
            self._say(f"error: {ex}")
            self._resolve(FAILED, str(ex))
        except Exception as ex:  # a bug, but the deployment must still say Failed, not hang
            self._say(f"error: {type(ex).__name__}: {ex}")
            self._resolve(FAILED, f"{type(ex).__name__}: {ex}")
        return await self._outcome

    async def reload(self, reason: str = "manual", files: tuple[str, ...] = ()) -> None:
        """Swap workers (rung 1): the code changed, or the user asked."""
        self._requests.append((time.perf_counter(), reason, files))
        await self.runtime.reload()

    async def restage(self, files: tuple[str, ...] = ()) -> None:
        """Stage the model again, then swap workers (rung 2)."""
        self._requests.append((time.perf_counter(), "model", files))
        await self.runtime.stage()
        await self.runtime.reload()

    async def restart(self, reason: str = "restart", reload_yaml: bool = True) -> str:
        """Load the YAML again and restart the server with it (rung 3). A YAML with problems is
        reported and not applied: the running revision keeps serving."""
        async with self._lock:
            deployment_file, endpoint_file, name = self._source
            try:
                deployment = (await asyncio.to_thread(spec.load, deployment_file, endpoint_file, name)
                              if reload_yaml else self.deployment)
            except spec.SpecError as ex:
                self._say("The changed YAML has problems; it is not applied and the running revision "
                          "keeps serving:", *(f"  {p}" for p in ex.problems))
                return self.state
            if self.stopped:
                return self.state
            self._set_state(UPDATING, f"applying {reason}")
            try:
                await self.runtime.stop()
                self.deployment = deployment
                self.serving_revision = None
                self.runtime = self._new_runtime()
            except runtimes.RuntimeError_ as ex:
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
            try:
                self.runtime = self._new_runtime()
            except runtimes.RuntimeError_ as ex:
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
            await self.reload("code", files)
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

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked after every event) or the timeout passes."""
        changed = asyncio.Event()
        self.listeners.append(lambda _: changed.set())
        deadline = time.monotonic() + timeout
        try:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    return predicate()
            return True
        finally:
            self.listeners.pop()

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._set_state(DELETING, "stopping")
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
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
        d = self.deployment
        return DeploymentRecord(
            name=d.deployment_name,
            provisioning_state=self.state,
            runtime=self.runtime_name,
            revision=self.serving_revision,
            latest_revision=self.revision,
            instance_type=d.instance_type,
            instance_count=d.instance_count,
            model=str(d.model.path) if d.model else None,
            code=str(d.code_dir) if d.code_dir else None,
            scoring_script=d.scoring_script,
            environment_variables={k: mask(k, v) for k, v in d.environment_variables.items()},
            request_settings=RequestSettingsRecord(
                request_timeout_ms=d.request_settings.request_timeout_ms,
                max_concurrent_requests_per_instance=d.request_settings.max_concurrent_requests_per_instance,
            ),
            debugger=(DebuggerRecord(state=self.debugger.state, host=self.debugger.host, port=self.debugger.port,
                                     detail=self.debugger.detail) if self.debugger else None),
            **self.runtime.describe(),
        )


SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CONNECTION_STRING")


def mask(name: str, value: str) -> str:
    return "********" if any(word in name.upper() for word in SECRET_WORDS) else value


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
