"""How the container runtime learns that the inference-server is ready, and how a save reaches it.

- :class:`ServerEvents`: devtui's scoring server says it itself: its events come out of its log
  (``server_log.py``), and a save is copied into the container, then signalled (the server patches
  the saved code into its worker there, or swaps workers).
- :class:`Probes`: a bring-your-own container says nothing: its readiness route is polled (the
  YAML's readiness_probe), then its liveness route (liveness_probe), and after failure_threshold
  failures in a row the container is restarted; with no worker to swap, a save restarts it too.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import httpx

from inference_server import protocol

from ...events import DEVTUI
from ..base import RELOAD_SIGNAL, STOP_GRACE_S, SWAP_SIGNAL
from .docker_engine import SERVER_PORT, published

# How long a restarted container (a reload) gets to answer its readiness route.
RESTART_READY_S = 120


class Readiness(Protocol):
    """What the container runtime asks of a readiness source, made with the runtime it serves."""

    def started(self, revision: int) -> None:
        """The inference-server container runs (``runtime.server``): learn where it listens
        (``runtime.host_port``) and see that the revision's readiness is reported."""

    def reload(self, swap: bool) -> None:
        """Apply a save to the running container (``swap``: a worker swap, not a patch)."""


class ServerEvents:
    def __init__(self, runtime):
        self.runtime = runtime  # a ContainerRuntime

    def started(self, revision: int) -> None:
        """The container runs: learn where it listens. Its own events say the rest."""
        self.runtime.host_port = published(self.runtime.server).get(SERVER_PORT)

    def reload(self, swap: bool) -> None:
        """Copy the code folder (a flow's folder) into the running container, then signal it. A
        no-code MLflow deployment has no code: its model was staged again; the signal swaps."""
        runtime = self.runtime
        runtime.storage.sync(runtime.server)
        runtime.server.kill(signal=SWAP_SIGNAL if swap else RELOAD_SIGNAL)


class Probes:
    def __init__(self, runtime):
        self.runtime = runtime  # a ContainerRuntime
        self.config = runtime.deployment.environment.inference_config
        self.published: dict[int, int] = {}  # container port -> host port
        self.revision = 0

    def started(self, revision: int) -> None:
        """No server of devtui's reports: say what it would have, then probe."""
        runtime = self.runtime
        self.revision = revision
        self.published = published(runtime.server)
        runtime.host_port = self.published.get(self.config.scoring_route.port)
        runtime._event(protocol.Listening(host="127.0.0.1", port=runtime.host_port, pid=None,
                                          path=self.config.scoring_route.path))
        runtime._event(protocol.Starting(revision=revision, first=True))
        threading.Thread(target=self._probe, args=(runtime.server, revision), daemon=True).start()

    def _route_ok(self, route, timeout: float) -> bool:
        try:
            url = f"http://127.0.0.1:{self.published[route.port]}{route.path}"
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def _serving(self, container) -> bool:
        return not self.runtime.stopping and self.runtime.server is container

    def _await_ready(self, container, revision: int, first: bool, deadline: float, timeout: float,
                     successes_needed: int = 1) -> bool:
        """Poll the readiness route (no fixed wait) until it passes ``successes_needed`` times in
        a row, then report the revision ready; at the deadline or if the container exits, failed."""
        started = time.perf_counter()
        successes = 0
        while self._serving(container):
            successes = successes + 1 if self._route_ok(self.config.readiness_route, timeout) else 0
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            if successes >= successes_needed:
                self.runtime._event(protocol.Ready(revision=revision, duration_ms=elapsed, first=first))
                return True
            if time.monotonic() > deadline or container.status == "exited":
                self.runtime._event(protocol.Failed(
                    revision=revision, stage=protocol.Stage.READINESS, duration_ms=elapsed,
                    traceback="the container's readiness route never answered 200", serving_revision=None))
                return False
            time.sleep(0.1)
        return False

    def _probe(self, container, revision: int) -> None:
        """Readiness until it passes, then liveness by the YAML's liveness_probe: after
        failure_threshold failures in a row the container is restarted."""
        readiness, liveness = self.runtime.deployment.readiness_probe, self.runtime.deployment.liveness_probe
        deadline = time.monotonic() + readiness.initial_delay + readiness.period * readiness.failure_threshold
        if not self._await_ready(container, revision, True, deadline, readiness.timeout, readiness.success_threshold):
            return
        time.sleep(liveness.initial_delay)  # the probe's own schedule, not synchronisation
        failures = 0
        while self._serving(container):
            failures = 0 if self._route_ok(self.config.liveness_route, liveness.timeout) else failures + 1
            if failures >= liveness.failure_threshold:
                self.runtime._log(DEVTUI, [f"liveness probe failed {failures} times in a row "
                                           f"({self.config.liveness_route.path}); restarting the container"])
                if not self._restart(container):
                    return
                failures = 0
                time.sleep(liveness.initial_delay)
                continue
            time.sleep(liveness.period)

    def _restart(self, container) -> bool:
        self.runtime.restarting = True
        try:
            container.restart(timeout=STOP_GRACE_S)
            container.reload()
        except Exception:
            return False
        finally:
            self.runtime.restarting = False
        self.published = published(container)
        return True

    def reload(self, swap: bool) -> None:
        """No worker swap without devtui's server: copy the change and restart the container."""
        runtime = self.runtime
        runtime.storage.sync(runtime.server)
        self.revision += 1
        runtime._event(protocol.Starting(revision=self.revision, first=False))
        if self._restart(runtime.server):
            self._await_ready(runtime.server, self.revision, False, time.monotonic() + RESTART_READY_S, 2)
        else:
            runtime._event(protocol.Failed(revision=self.revision, stage=protocol.Stage.READINESS, duration_ms=0.0,
                                           traceback="the Docker engine could not restart the container",
                                           serving_revision=None))
