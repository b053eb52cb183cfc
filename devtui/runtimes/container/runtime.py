"""The container runtime: a storage-initializer and an inference-server container on a Docker
engine, reached through the Docker SDK: the engine ``--context`` names, else ``DOCKER_HOST``,
``DOCKER_CONTEXT``, the Docker CLI's current context or the default socket (``docker_context.py``);
with ``--gpus``, the inference-server gets GPUs by a device request (``gpus.py``).

Nothing is bind-mounted: model and code are copied into named volumes through the API
(``storage.py``), so it works with a local engine, a remote one, or the host's engine from inside a
dev container. The inference-server runs devtui's scoring server in the environment's image, on a
bridge network of the endpoint's own, with its port published on 127.0.0.1 only; its events come
out of its log. A save is copied into the running container the same way, then the server swaps
workers. What differs between kinds of deployment is in two objects the runtime is composed with:
a ``ServerSpec`` (``specs.py``: the image, command, environment, ports and files to copy in) and a
readiness source (``readiness.py``: the server's own events from its log, or HTTP probes of a
bring-your-own container). Every container, volume and network carries labels naming endpoint and
deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from inference_server import protocol

from ...events import DEVTUI, Placement
from . import docker_engine, gpus
from ..base import STOP_GRACE_S, Runtime, RuntimeFailure
from .docker_context import EngineAddress, resolve
from .docker_engine import in_daemon_thread, remove_endpoint
from .images import ImageBuilder, ImageError
from .outbox import Outbox
from .readiness import Readiness
from .server_log import ServerLog
from .specs import MODELS, ServerSpec
from .storage import Storage


class ContainerRuntime(Runtime):
    name = "container"

    def __init__(self, deployment, launch, workdir: Path, sink, spec: ServerSpec,
                 readiness: Callable[[ContainerRuntime], Readiness]):
        """``runtimes.create`` picks ``spec`` and ``readiness`` (made here, with this runtime) for
        the deployment; the constructor does no Docker I/O."""
        super().__init__(deployment, launch, workdir, sink)
        self.spec = spec
        self.readiness = readiness(self)
        self.flow_stage = spec.flow_stage
        # No Docker I/O here: the engine may build a runtime on its event loop. stage() connects.
        self.client = None
        self.storage: Storage | None = None
        self.image: str | None = None
        self.server = None
        self.stopping = False
        self.outbox: Outbox | None = None  # to the event loop, once it runs
        self.server_log = ServerLog(self)
        self.host_port: int | None = None
        self.restarting = False
        self.builder: ImageBuilder | None = None
        self.work: asyncio.Future | None = None  # the Docker work on a thread now
        self.address: EngineAddress | None = None  # which engine, once connected
        self.docker_daemon: str | None = None  # the Docker engine that answered, for a person

    # -- names -----------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"devtui-{self.deployment.endpoint_name}-{self.deployment.deployment_name}"

    def labels(self, role: str) -> dict[str, str]:
        return docker_engine.labels(self.deployment, role)

    @property
    def code_path(self) -> str | None:
        return self.spec.code_path

    def _network(self) -> str:
        return docker_engine.endpoint_network(self.client, f"{self.prefix}-net", self.labels("network"))

    def _log(self, source: str, lines: list[str]) -> None:
        if self.outbox is not None:
            self.outbox.log(source, lines)

    def _progress(self, step: str, done: float, total: float = 0.0) -> None:
        if self.outbox is not None:
            self.outbox.put(self.sink.progress, step, done, total)

    def _event(self, event: protocol.ServerEvent) -> None:
        if self.outbox is not None:
            self.outbox.put(self.sink.server_event, event)

    # -- image + storage-initializer -------------------------------------------------------------

    async def stage(self) -> None:
        self.outbox = Outbox(asyncio.get_running_loop(), self.sink.log)
        try:
            await self._in_thread(self._stage)
        except ImageError as ex:
            raise RuntimeFailure(str(ex)) from None
        except RuntimeFailure:
            raise
        except Exception as ex:  # the engine's own errors (docker.errors.*), said plainly
            raise RuntimeFailure(f"the Docker engine refused a step: {ex}") from None

    def _connect(self) -> None:
        if self.client is None:
            self.address = resolve(self.launch.context)
            self.client = docker_engine.connect(address=self.address)
            self.docker_daemon = f"{self.address.describe()} ({docker_engine.product(self.client)})"
            self._log(DEVTUI, [f"Docker engine: {self.docker_daemon}"])
            self.storage = Storage(self.client, self.deployment, self.prefix, self.labels, self.spec.code_mount,
                                   MODELS, self._log, self._progress)
            self.storage.model_source = self.spec.model_source

    def _stage(self) -> None:
        if self.stopping:
            return
        self.spec.prepare(self._log)
        if self.stopping:
            return
        self._connect()
        cache = self.workdir / "image-cache"
        self.builder = self.spec.builder_class(self.client, self.deployment, cache,
                                               lambda lines: self._log(DEVTUI, lines), self._progress)
        self.image = self.spec.image(self.builder)
        if self.stopping:
            return
        self._check_gpus()
        self.storage.initialize(self.spec.initializer_image(self.image), self._remove)

    def _check_gpus(self) -> None:
        """Before any volume or container of the deployment exists (gpus.prepare)."""
        lines = gpus.prepare(self.client, self.launch.gpus, self.deployment.instance_type, self.image,
                             self.labels("gpu-probe"))
        if lines:
            self._log(DEVTUI, lines)

    # -- inference-server ------------------------------------------------------------------------

    async def start(self, first_revision: int) -> None:
        self.outbox = Outbox(asyncio.get_running_loop(), self.sink.log)
        try:
            await self._in_thread(self._start, first_revision)
        except RuntimeFailure:
            raise
        except Exception as ex:
            raise RuntimeFailure(f"the inference-server container did not start: {ex}") from None

    def _start(self, first_revision: int) -> None:
        if self.stopping:
            return
        self._connect()
        self._remove(f"{self.prefix}-inference-server")
        try:
            self.server = self._run_server(first_revision)
        except Exception as ex:
            taken = docker_engine.port_in_use(ex, self.debug and self.debug.port)
            if taken is None:
                raise
            raise taken from None  # a port taken since devtui checked it: the engine ends the start
        self.server.reload()
        self.readiness.started(first_revision)
        self.server_log.follow(self.server)

    def _run_server(self, first_revision: int):
        """Create the inference-server as the spec says, copy its files in, start it."""
        container = self.client.containers.create(
            self.image, name=f"{self.prefix}-inference-server", labels=self.labels("inference-server"),
            volumes=self.storage.volumes(), network=self._network(), **self.spec.container(self, first_revision),
            **gpus.container_options(self.launch.gpus))
        self.spec.copy_in(container)
        container.start()
        return container

    def debug_port(self) -> int | None:
        if self.debug is None:
            return None
        if not self.debug.port:
            # 0: a free one, chosen once so a restart keeps VS Code's configuration valid.
            self.debug = type(self.debug)(docker_engine.free_port(), self.debug.wait, self.debug.host)
        return self.debug.port

    # -- reload ------------------------------------------------------------------------------------

    async def reload(self, swap: bool = False) -> None:
        await asyncio.to_thread(self._reload, swap)

    def _reload(self, swap: bool) -> None:
        """Apply a save now, or, while the engine does not answer, once it answers again."""
        if self.server is None or self.server_log.defer(swap):
            return
        try:
            self._apply(swap)
        except Exception:
            if self.server_log.answers():
                raise
            self.server_log.lose(pending=swap)

    def _apply(self, swap: bool) -> None:
        """What the spec brings up to date on this machine, then the save into the container as the
        readiness source applies it (a signal to devtui's server, or a restart)."""
        self.readiness.reload(self.spec.refresh(self, swap))

    # -- stop ------------------------------------------------------------------------------------

    def _remove(self, name: str) -> None:
        docker_engine.remove_container(self.client, name)

    def _in_thread(self, function, *args) -> asyncio.Future:
        """Blocking Docker work on a thread; stop() waits for it, so a stop during a recreate
        cannot race the volumes and containers it is creating (the engine would make an
        unlabelled volume for a mount whose volume was just removed)."""
        self.work = asyncio.shield(in_daemon_thread(function, *args))
        return self.work

    async def stop(self) -> None:
        self.stopping = True
        if self.builder is not None:
            self.builder.cancel()  # a build ends at once; the steps after it see `stopping`
        if self.work is not None and not (self.builder is not None and self.builder.building):
            await asyncio.gather(self.work, return_exceptions=True)
        self.server_log.stop()
        await asyncio.to_thread(self._stop)
        await asyncio.to_thread(self.server_log.join, 15)

    def _stop(self) -> None:
        if self.builder is not None:
            self.builder.cancel()
        if self.client is None:
            return  # never connected: nothing of ours exists
        if self.server is not None:
            with contextlib.suppress(Exception):  # already gone: removed below either way
                self.server.stop(timeout=STOP_GRACE_S)
        try:
            remove_endpoint(self.client, self.deployment.endpoint_name, volumes=True)
        except Exception as ex:  # the engine went away: nothing of ours can be running on it then
            self._log(DEVTUI, [f"warning: could not remove the containers: {ex}; `devtui down` retries"])

    def kill(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                remove_endpoint(self.client, self.deployment.endpoint_name, volumes=True)

    def placement(self) -> Placement:
        initializer = self.storage.container if self.storage else None
        ids = tuple(c.short_id for c in (self.server, initializer) if c is not None)
        address = self.address
        return replace(super().placement(), container_ids=ids, image=self.image, docker_daemon=self.docker_daemon,
                       docker_host=address.host if address else None, docker_context=address.context if address else None,
                       gpus=str(self.launch.gpus) if self.launch.gpus is not None else None)
