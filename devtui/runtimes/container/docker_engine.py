"""The Docker engine as every container runtime reaches it: connecting (with a message that says
how to get an engine), the labels that name what devtui created, and finding, reading and removing
an endpoint's containers, volumes and networks by those labels from any shell."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading

from ...registry import LABEL, home_label
from ...record import DeploymentRecord, EndpointRecord, swagger_uri
from ..base import PortInUse, RuntimeFailure
from .docker_context import DEFAULT_HOST, EngineAddress, resolve

SERVER_PORT = 5001
EVENT_PREFIX = "@@devtui-event "


def connect(timeout: float = 120, context: str | None = None, address: EngineAddress | None = None):
    """A Docker client that answers, or a RuntimeFailure that says how to get one. The engine is
    ``address``, else the one ``context`` names, else the one the environment and the Docker CLI's
    config choose (docker_context.resolve)."""
    import docker

    address = address or resolve(context)
    try:
        client = docker.DockerClient(timeout=timeout, **address.client_kwargs())
        client.ping()
    except Exception as ex:
        raise RuntimeFailure(engine_missing_message(ex, address)) from None
    return client


def engine_missing_message(ex: Exception, address: EngineAddress | None = None) -> str:
    where = (address or EngineAddress(os.environ.get("DOCKER_HOST") or DEFAULT_HOST, "default")).describe()
    return (f"no Docker engine answers at {where} ({type(ex).__name__}). Start one (Docker Desktop, "
            "`sudo systemctl start docker`, or scripts/docker-engine.sh on a bare Debian machine), point "
            "DOCKER_HOST at a remote one or choose a context with --context NAME, or use --runtime process.")


def product(client) -> str:
    """What answers, for a person: "Docker Engine 27.3.1", "Podman Engine 4.3.1"."""
    try:
        version = client.version()
    except Exception:
        return "an engine that does not say its version"
    component = next(iter(version.get("Components") or []), None) or {}
    name = component.get("Name") or "Engine"
    name = "Docker Engine" if name == "Engine" else name  # Docker says "Engine"; Podman "Podman Engine"
    return f"{name} {component.get('Version') or version.get('Version', '?')}"


def is_podman(client) -> bool:
    return product(client).lower().startswith("podman")


def labels(deployment, role: str) -> dict[str, str]:
    """The labels of everything devtui creates for a deployment."""
    return {LABEL: role, f"{LABEL}.endpoint": deployment.endpoint_name,
            f"{LABEL}.deployment": deployment.deployment_name, f"{LABEL}.home": home_label()}


def _not_ours(attrs_labels: dict | None) -> bool:
    return (attrs_labels or {}).get(f"{LABEL}.home") not in (None, home_label())


def _taken(kind: str, name: str) -> RuntimeFailure:
    return RuntimeFailure(f"a {kind} named {name} belongs to an endpoint of the same name started with another "
                          "DEVTUI_HOME; run this one under another name with -n NAME")


def endpoint_network(client, name: str, labels: dict[str, str]) -> str:
    """A bridge network of the endpoint's own, created if missing. On the engine's default bridge
    any other container could reach the scoring port and the debugger (which runs code as root);
    a network of its own, with inter-container traffic off, leaves only the host's published
    127.0.0.1 ports."""
    import docker.errors

    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        client.networks.create(name, driver="bridge", labels=labels,
                               options={"com.docker.network.bridge.enable_icc": "false"})
        return name
    if _not_ours(network.attrs.get("Labels")):
        raise _taken("network", name)
    return name


def remove_container(client, name: str) -> None:
    """Remove our container of that name; one of another DEVTUI_HOME is left alone."""
    import docker.errors

    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return
    if _not_ours(container.labels):
        raise _taken("container", name)
    container.remove(force=True)


def remove_endpoint(client, endpoint: str, volumes: bool = True, images: bool = False) -> list[str]:
    """Remove every container (and volume, and image if asked) labelled for ``endpoint`` by
    this DEVTUI_HOME; another home's endpoint of the same name is not touched."""
    import docker.errors

    removed = []
    selector = {"label": [f"{LABEL}.endpoint={endpoint}", f"{LABEL}.home={home_label()}"]}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True)
        removed.append(container.name)
    for network in client.networks.list(filters=selector):
        try:
            network.remove()
        except docker.errors.NotFound:
            continue
        removed.append(network.name)
    if volumes:
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)
            removed.append(volume.name)
    if images:
        for image in own_images(client, endpoint):
            client.images.remove(image.id, force=True)
            removed.append(image.short_id)
    return removed


def own_images(client, endpoint: str) -> list:
    """The images built from the endpoint's own Dockerfile and those built on them (its server
    layer and environment images, of no use to anything else), the ones built on others first:
    the engine refuses to remove an image another is built on. devtui-env images on any other
    base are shared, by content, with every endpoint (and every home) that has the same
    environment, and are not among them."""
    labelled = client.images.list(filters={"label": [f"{LABEL}.endpoint={endpoint}", f"{LABEL}.home={home_label()}"]})
    built = {image.id for image in labelled if any(tag.startswith("devtui-user-") for tag in image.tags)}
    if not built:
        return []
    ancestry = {image.id: [step["Id"] for step in image.history()] for image in labelled}
    own = [image for image in labelled if built & set(ancestry[image.id])]
    return sorted(own, key=lambda image: len(ancestry[image.id]), reverse=True)


# The state of an endpoint whose devtui is gone (killed) while its inference-server still runs:
# it answers, with the code of its last revision, but nothing applies a save or restarts it.
HOST_GONE = "host gone"


def endpoints_from_labels(client) -> list[EndpointRecord]:
    """Endpoints of this DEVTUI_HOME known only by their labelled containers (the registry files
    are gone, or the devtui that ran them was killed), as registry records. None of them is
    Succeeded: with no devtui watching, the state is ``HOST_GONE`` while the inference-server
    runs, else Failed."""
    found: dict[str, EndpointRecord] = {}
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}.home={home_label()}"}):
        labels = container.labels
        endpoint = labels.get(f"{LABEL}.endpoint")
        if not endpoint or labels.get(LABEL) not in ("inference-server", "storage-initializer"):
            continue
        record = found.get(endpoint)
        if record is None:
            record = found[endpoint] = EndpointRecord(
                name=endpoint, auth_mode="key", location="local", provisioning_state="Failed",
                scoring_uri=None, swagger_uri=None, traffic={labels.get(f"{LABEL}.deployment"): 100},
                tags={}, properties={"devtui": "found by container labels; no devtui process watches it: "
                                               f"`devtui down -n {endpoint}` removes it"},
                deployments=[DeploymentRecord(name=labels.get(f"{LABEL}.deployment"), runtime="container",
                                              provisioning_state="Failed", container_ids=[])])
        deployment = record.deployment
        deployment.container_ids.append(container.short_id)
        if labels.get(LABEL) == "inference-server" and container.status == "running":
            bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{SERVER_PORT}/tcp") or []
            if bindings:
                record.scoring_uri = f"http://127.0.0.1:{bindings[0]['HostPort']}/score"
                record.swagger_uri = swagger_uri(record.scoring_uri)
            record.provisioning_state = deployment.provisioning_state = HOST_GONE
            record.properties["devtui"] = (
                "the devtui that ran it is gone (killed?): its inference-server container still answers with the "
                f"code of its last revision, but no save is applied; `devtui down -n {endpoint}` removes it, "
                "`devtui up` runs it again")
    return list(found.values())


def container_log(client, endpoint: str, role: str) -> list[str] | None:
    """The log of the endpoint's container in ``role``, straight from the engine."""
    containers = client.containers.list(all=True, filters={"label": [
        f"{LABEL}={role}", f"{LABEL}.endpoint={endpoint}", f"{LABEL}.home={home_label()}"]})
    if not containers:
        return None
    lines = containers[0].logs().decode("utf-8", "replace").splitlines()
    return _scrubbed(containers[0], [line for line in lines if not line.startswith(EVENT_PREFIX)])


def _scrubbed(container, lines: list[str]) -> list[str]:
    """LINES without the secrets of the container's environment: the log files devtui keeps are
    scrubbed as they are written (scrub.py); a log read straight from the engine is scrubbed here."""
    from ...masking import hidden
    from ...scrub import Scrubber

    env = (container.attrs.get("Config") or {}).get("Env") or []
    pairs = (entry.partition("=") for entry in env)
    return Scrubber(piece for name, _, value in pairs for piece in hidden(name, value)).lines(lines)


# How Docker (and Podman) say that a host port to publish is taken: by another program, or by
# another container.
_PORT_TAKEN = re.compile(r":(\d+)(?:: bind: address already in use| failed: port is already allocated)")


def port_in_use(ex: Exception, debug_port: int | None = None) -> PortInUse | None:
    """The engine's error as devtui's own when it says that a host port to publish (the scoring
    port, or ``debug_port``) is taken by something else; None for any other error."""
    match = _PORT_TAKEN.search(str(ex))
    if match is None:
        return None
    port = int(match.group(1))
    if port == debug_port:
        return PortInUse("127.0.0.1", port, "debug port", "--debug-port")
    return PortInUse("127.0.0.1", port)


def published(container) -> dict[int, int]:
    """Container port -> host port, for every published port."""
    return {int(key.split("/")[0]): int(value[0]["HostPort"])
            for key, value in (container.attrs["NetworkSettings"]["Ports"] or {}).items() if value}


def in_daemon_thread(function, *args):
    """Run blocking Docker work on a daemon thread. Unlike asyncio.to_thread, a Ctrl-C during an
    image build need not wait for the build: devtui exits, and the engine cancels a build whose
    client went away."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def work():
        try:
            result = function(*args)
        except BaseException as ex:
            # Bound now: Python unbinds `ex` when the except block ends, before the loop runs this.
            loop.call_soon_threadsafe(lambda error=ex: future.done() or future.set_exception(error))
        else:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(result))

    threading.Thread(target=work, daemon=True, name="docker").start()
    return future


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
