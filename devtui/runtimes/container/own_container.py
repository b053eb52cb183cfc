"""A bring-your-own container: an ``environment`` with ``inference_config`` runs the user's image
as it is, without devtui's scoring server. What it overrides of the container runtime: the image
is not extended, the server is the image's own, readiness and liveness are learned by probing its
routes (the YAML's readiness_probe and liveness_probe), and a reload restarts the container.
"""

from __future__ import annotations

import threading
import time

import httpx

from inference_server import protocol

from ...events import DEVTUI
from .images import ImageBuilder
from . import gpus
from ..base import STOP_GRACE_S
from .runtime import ContainerRuntime
from .docker_engine import SERVER_PORT, free_port, published

# The storage-initializer needs Python to verify; a bring-your-own image may have none.
INITIALIZER_IMAGE = "python:3.11-slim"
# How long a restarted container (a reload) gets to answer its readiness route.
RESTART_READY_S = 120


class OwnContainerRuntime(ContainerRuntime):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = self.deployment.environment.inference_config
        self.published: dict[int, int] = {}
        self.revision = 0

    def _image(self, builder: ImageBuilder) -> str:
        return builder.base()

    @property
    def initializer_image(self) -> str:
        return INITIALIZER_IMAGE

    def _run_server(self, first_revision: int):
        """The user's image as it is. Host ports are chosen here, not by the engine: a restart
        (liveness, reload) keeps them, so the scoring URI stays valid."""
        config = self.config
        ports = {f"{route.port}/tcp": ("127.0.0.1", free_port())
                 for route in (config.liveness_route, config.readiness_route)}
        ports[f"{config.scoring_route.port}/tcp"] = ("127.0.0.1", self.port or free_port())
        self.revision = first_revision
        return self.client.containers.run(
            self.image, detach=True, name=f"{self.prefix}-inference-server", labels=self.labels("inference-server"),
            environment=self._environment(), volumes=self.storage.volumes(), ports=ports, network=self._network(),
            **gpus.container_options(self.launch.gpus))

    def _started(self, revision: int) -> None:
        """No server of devtui's reports: say what it would have, then probe."""
        self.published = published(self.server)
        self.host_port = self.published.get(self.config.scoring_route.port)
        listening = protocol.Listening(host="0.0.0.0", port=SERVER_PORT, path=self.config.scoring_route.path)
        self.server_log.server_event(listening)
        self._event(protocol.Starting(revision=revision, first=True))
        threading.Thread(target=self._probe, args=(self.server, revision), daemon=True).start()

    def _route_ok(self, route, timeout: float) -> bool:
        try:
            url = f"http://127.0.0.1:{self.published[route.port]}{route.path}"
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def _await_ready(self, container, revision: int, first: bool, deadline: float, timeout: float,
                     successes_needed: int = 1) -> bool:
        """Poll the readiness route (no fixed wait) until it passes ``successes_needed`` times in
        a row, then report the revision ready; at the deadline or if the container exits, failed."""
        started = time.perf_counter()
        successes = 0
        while not self.stopping and self.server is container:
            successes = successes + 1 if self._route_ok(self.config.readiness_route, timeout) else 0
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            if successes >= successes_needed:
                self._event(protocol.Ready(revision=revision, duration_ms=elapsed, first=first))
                return True
            if time.monotonic() > deadline or container.status == "exited":
                self._event(protocol.Failed(revision=revision, stage=protocol.Stage.READINESS, duration_ms=elapsed,
                                            traceback="the container's readiness route never answered 200",
                                            serving_revision=None))
                return False
            time.sleep(0.1)
        return False

    def _probe(self, container, revision: int) -> None:
        """Readiness until it passes, then liveness by the YAML's liveness_probe: after
        failure_threshold failures in a row the container is restarted."""
        readiness, liveness = self.deployment.readiness_probe, self.deployment.liveness_probe
        deadline = time.monotonic() + readiness.initial_delay + readiness.period * readiness.failure_threshold
        if not self._await_ready(container, revision, True, deadline, readiness.timeout, readiness.success_threshold):
            return
        time.sleep(liveness.initial_delay)  # the probe's own schedule, not synchronisation
        failures = 0
        while not self.stopping and self.server is container:
            failures = 0 if self._route_ok(self.config.liveness_route, liveness.timeout) else failures + 1
            if failures >= liveness.failure_threshold:
                self._log(DEVTUI, [f"liveness probe failed {failures} times in a row "
                                   f"({self.config.liveness_route.path}); restarting the container"])
                if not self._restart(container):
                    return
                failures = 0
                time.sleep(liveness.initial_delay)
                continue
            time.sleep(liveness.period)

    def _restart(self, container) -> bool:
        self.restarting = True
        try:
            container.restart(timeout=STOP_GRACE_S)
            container.reload()
        except Exception:
            return False
        finally:
            self.restarting = False
        self.published = published(container)
        return True

    def _apply(self, swap: bool) -> None:
        # No worker swap without devtui's server: copy the change and restart the container.
        self.storage.sync(self.server)
        self.revision += 1
        self._event(protocol.Starting(revision=self.revision, first=False))
        if self._restart(self.server):
            self._await_ready(self.server, self.revision, False, time.monotonic() + RESTART_READY_S, 2)
        else:
            self._event(protocol.Failed(revision=self.revision, stage=protocol.Stage.READINESS, duration_ms=0.0,
                                        traceback="the Docker engine could not restart the container",
                                        serving_revision=None))
