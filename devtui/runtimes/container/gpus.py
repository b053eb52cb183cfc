"""GPUs for the inference-server container, the equivalent of ``az ml online-deployment create
--local --local-enable-gpu``: ``--gpus all|N|device=ID[,ID]`` as ``docker run --gpus`` reads it,
asked of the engine as a device request with the ``gpu`` capability (what the NVIDIA Container
Toolkit serves); whether the engine can serve it, checked before anything of the deployment is
created; and the hint that a GPU ``instance_type`` (the NC, ND and NV families) wants it.

Podman's Docker-compatible API accepts device requests and ignores them, so a container would
silently run without GPUs there: devtui refuses ``--gpus`` on Podman and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..base import RuntimeFailure

NO_GPU_RUNTIME = ("this Docker engine cannot give containers GPUs: install the NVIDIA Container Toolkit, "
                  "or run without --gpus")
PODMAN = ("this engine is Podman, whose Docker-compatible API ignores GPU requests (the container would run "
          "without GPUs): run without --gpus, or use a Docker engine with the NVIDIA Container Toolkit")
USAGE = "--gpus takes all, a number of GPUs (2), or device=ID[,ID] (device=0,1 or device=GPU-<uuid>)"
# Azure's GPU VM families: Standard_NC6s_v3, Standard_NC24ads_A100_v4, Standard_ND96asr_v4, Standard_NV36ads_A10_v5.
GPU_INSTANCE = re.compile(r"^(Standard_)?N[CDV]\d", re.IGNORECASE)
# How an engine says that no device driver serves the request (Docker), or the toolkit failed.
_NO_DRIVER = re.compile(r"could not select device driver|nvidia-container-cli|unknown or invalid runtime name",
                        re.IGNORECASE)


@dataclass(frozen=True)
class GpuRequest:
    """``count`` GPUs (-1: all), or the devices ``device_ids`` names."""

    count: int | None = None
    device_ids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> GpuRequest:
        value = text.strip().strip("'\"").strip()
        if value == "all":
            return cls(count=-1)
        if value.isdigit() and int(value) > 0:
            return cls(count=int(value))
        if value.startswith("device="):
            ids = tuple(part.strip() for part in value[len("device="):].split(",") if part.strip())
            if ids:
                return cls(device_ids=ids)
        raise ValueError(f"{text!r}: {USAGE}")

    def __str__(self) -> str:
        if self.device_ids:
            return "device=" + ",".join(self.device_ids)
        return "all" if self.count == -1 else str(self.count)

    def device_requests(self) -> list:
        from docker.types import DeviceRequest

        if self.device_ids:
            return [DeviceRequest(device_ids=list(self.device_ids), capabilities=[["gpu"]])]
        return [DeviceRequest(count=self.count, capabilities=[["gpu"]])]


def prepare(client, request: GpuRequest | None, instance_type: str | None, image: str,
            labels: dict[str, str]) -> list[str]:
    """What a container runtime does about GPUs before any volume or container of the deployment
    exists: check that the engine serves the request (a RuntimeFailure if not), or, without one,
    suggest it for a GPU instance_type. The log lines to show."""
    if request is None:
        hint = suggestion(instance_type)
        return [hint] if hint else []
    check(client, request, image, labels)
    return [f"GPUs: --gpus {request}; the engine accepts the request"]


def container_options(request: GpuRequest | None) -> dict:
    """What the inference-server's container is created with for --gpus."""
    return {"device_requests": request.device_requests()} if request is not None else {}


def suggestion(instance_type: str | None) -> str | None:
    """The log line for a GPU instance_type run without --gpus, else None."""
    if not instance_type or not GPU_INSTANCE.match(instance_type):
        return None
    return (f"instance_type {instance_type} has GPUs in the cloud; this container gets none unless asked: "
            "add --gpus all (needs the NVIDIA Container Toolkit on the engine's machine)")


def cannot_give_gpus(error: Exception) -> bool:
    return bool(_NO_DRIVER.search(str(error)))


def check(client, request: GpuRequest, image: str, labels: dict[str, str]) -> None:
    """Start a container of ``image`` with the request, to learn whether the engine can serve it,
    before anything of the deployment exists; RuntimeFailure with the plain reason if not. The
    probe runs ``true`` with no network and is removed whatever happens."""
    from .docker_engine import is_podman

    if is_podman(client):
        raise RuntimeFailure(PODMAN)
    probe = client.containers.create(image, ["true"], entrypoint=[], network_mode="none", labels=labels,
                                      device_requests=request.device_requests())
    try:
        probe.start()
        probe.wait(timeout=60)
    except Exception as ex:
        if cannot_give_gpus(ex):
            raise RuntimeFailure(f"{NO_GPU_RUNTIME} ({_reason(ex)})") from None
        # Anything else (an image without `true`) comes after the engine placed the devices.
    finally:
        probe.remove(force=True)


def probe_image(client, deployment) -> str | None:
    """An image the engine already has, to probe with: the environment's, else any; None if none."""
    import docker.errors

    if deployment.environment.image:
        try:
            return client.images.get(deployment.environment.image).id
        except docker.errors.ImageNotFound:
            pass
    images = client.images.list()
    return images[0].id if images else None


def _reason(error: Exception) -> str:
    explanation = getattr(error, "explanation", None)
    return str(explanation or error).strip()
