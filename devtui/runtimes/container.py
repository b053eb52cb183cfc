"""The container runtime: a storage-initializer and an inference-server container on a Docker
engine, reached through the Docker SDK (``DOCKER_HOST`` or the default socket).

Nothing is bind-mounted: model and code are copied into named volumes through the API, so it
works with a local engine, a remote one, or the host's engine from inside a dev container.
The storage-initializer verifies what arrived (files, sizes, digests) and exits; the
inference-server mounts the volumes where the cloud puts them and publishes its port on
127.0.0.1 only. A save is copied into the running container the same way, then the server swaps
workers. Every container and volume carries labels naming endpoint and deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import threading
import time
from pathlib import Path, PurePosixPath

from ..events import DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER
from ..images import LABEL, ImageBuilder, ImageError
from ..record import DeploymentRecord, EndpointRecord, swagger_uri
from .base import Runtime, RuntimeError_

APP = PurePosixPath("/var/azureml-app")
MODELS = APP / "azureml-models"
SERVER_PORT = 5001
MANIFEST = ".devtui-manifest.json"
EVENT_PREFIX = b"@@devtui-event "
STOP_GRACE_S = 10
INITIALIZER_IMAGE = "python:3.11-slim"

# Runs in the storage-initializer: checks every file against the manifest devtui copied with
# it, removes files that are no longer in the source, and logs what is there.
VERIFY = r"""
import hashlib, json, os, sys
failed = False
for root in sys.argv[1:]:
    manifest = json.load(open(os.path.join(root, ".devtui-manifest.json")))
    expected = manifest["files"]
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if relative != ".devtui-manifest.json" and relative not in expected:
                os.remove(path)
                print(f"removed {relative} (no longer in the source)")
        if folder != root and not os.listdir(folder):
            os.rmdir(folder)
    total = 0
    for relative, (size, digest) in sorted(expected.items()):
        path = os.path.join(root, relative)
        actual = hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else "missing"
        total += size
        mark = "ok" if actual == digest else f"MISMATCH (got {actual[:12]})"
        failed |= actual != digest
        print(f"{manifest['kind']}: {relative} ({size} bytes) sha256:{digest[:12]} {mark}")
    print(f"{manifest['kind']}: {len(expected)} files, {total} bytes, digest sha256:{manifest['digest'][:16]} "
          f"in {root}")
print("storage-initializer: " + ("verification FAILED" if failed else "all files verified"))
sys.exit(1 if failed else 0)
"""


def connect(timeout: float = 120):
    """A Docker client that answers, or a RuntimeError_ that says how to get one."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as ex:
        raise RuntimeError_(engine_missing_message(ex)) from None
    return client


def engine_missing_message(ex: Exception) -> str:
    import os

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return (f"no Docker engine answers at {where} ({type(ex).__name__}). Start one (Docker Desktop, "
            "`sudo systemctl start docker`, or scripts/docker-engine.sh on a bare Debian machine), point "
            "DOCKER_HOST at a remote one, or use --runtime process.")


def manifest(source: Path, kind: str, prefix: PurePosixPath) -> dict:
    """Every file under ``source`` as it will be in the volume: path -> (size, sha256)."""
    files = {}
    paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file()
                                                    and "__pycache__" not in p.parts)
    for path in paths:
        relative = prefix / (path.name if source.is_file() else path.relative_to(source).as_posix())
        files[str(relative)] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"kind": kind, "files": files, "digest": digest}


def archive(source: Path, prefix: PurePosixPath, listing: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if source.is_file():
            tar.add(source, arcname=next(iter(listing["files"])))
        else:
            for relative in listing["files"]:
                tar.add(source / PurePosixPath(relative).relative_to(prefix), arcname=relative)
        data = json.dumps(listing).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ContainerRuntime(Runtime):
    name = "container"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = connect()
        self.image: str | None = None
        self.server = None
        self.initializer = None
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pump: threading.Thread | None = None
        self.host_port: int | None = None
        self.restarting = False
        self.builder: ImageBuilder | None = None
        self.code_files: set[str] | None = None  # what the last copy put in the code volume
        self.revision = 0
        self.published: dict[int, int] = {}

    # -- names -----------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"devtui-{self.deployment.endpoint_name}-{self.deployment.deployment_name}"

    def labels(self, role: str) -> dict[str, str]:
        return {LABEL: role, f"{LABEL}.endpoint": self.deployment.endpoint_name,
                f"{LABEL}.deployment": self.deployment.deployment_name, f"{LABEL}.home": home_label()}

    @property
    def byoc(self):
        """The deployment's inference_config when it brings its own server, else None."""
        return self.deployment.environment.inference_config

    @property
    def initializer_image(self) -> str:
        # The storage-initializer needs Python to verify: the environment image has it (devtui's
        # server was added to it); a bring-your-own image may have none.
        return INITIALIZER_IMAGE if self.byoc else self.image

    @property
    def code_mount(self) -> PurePosixPath:
        return APP / (self.deployment.code_dir.name if self.deployment.code_dir else "code")

    @property
    def code_path(self) -> str | None:
        return str(self.code_mount) if self.deployment.code_dir else None

    @property
    def model_dir(self) -> PurePosixPath:
        model = self.deployment.model
        return MODELS / model.name / model.version if model else MODELS

    def _volume(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        try:
            self.client.volumes.get(name)
        except Exception:
            self.client.volumes.create(name, labels=self.labels(f"{role}-volume"))
        return name

    def _network(self) -> str:
        """A bridge network of the endpoint's own. On the engine's default bridge any other
        container could reach the scoring port and the debugger (which runs code as root); a
        network of its own, with inter-container traffic off, leaves only the host's published
        127.0.0.1 ports."""
        import docker.errors

        name = f"{self.prefix}-net"
        try:
            network = self.client.networks.get(name)
        except docker.errors.NotFound:
            self.client.networks.create(name, driver="bridge", labels=self.labels("network"),
                                        options={"com.docker.network.bridge.enable_icc": "false"})
            return name
        if network.attrs.get("Labels", {}).get(f"{LABEL}.home") not in (None, home_label()):
            raise RuntimeError_(f"a network named {name} belongs to an endpoint of the same name started with "
                                "another DEVTUI_HOME; run this one under another name with -n NAME")
        return name

    def _volumes(self, code_mode: str = "rw", model_mode: str = "ro") -> dict:
        return {self._volume("model"): {"bind": str(MODELS), "mode": model_mode},
                self._volume("code"): {"bind": str(self.code_mount), "mode": code_mode}}

    def _log(self, source: str, lines: list[str]) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.sink.log, source, lines)

    def _progress(self, step: str, done: float, total: float = 0.0) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.sink.progress, step, done, total)

    # -- image + storage-initializer -------------------------------------------------------------

    async def stage(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await _in_daemon_thread(self._stage)
        except ImageError as ex:
            raise RuntimeError_(str(ex)) from None
        except RuntimeError_:
            raise
        except Exception as ex:  # the engine's own errors (docker.errors.*), said plainly
            raise RuntimeError_(f"the Docker engine refused a step: {ex}") from None

    def _stage(self) -> None:
        if self.stopping:
            return
        cache = self.workdir / "image-cache"
        builder = self.builder = ImageBuilder(self.client, self.deployment, cache,
                                              lambda lines: self._log(DEVTUI, lines), self._progress)
        # A bring-your-own container runs as it is; otherwise devtui's server is added to it.
        self.image = builder.base() if self.byoc else builder.ensure()
        if self.stopping:
            return
        self._initialize_storage()

    def _initialize_storage(self) -> None:
        d = self.deployment
        self._remove(f"{self.prefix}-storage-initializer")
        volumes = self._volumes(code_mode="rw", model_mode="rw")
        roots = [str(MODELS)] + ([str(self.code_mount)] if d.code_dir else [])
        container = self.client.containers.create(
            self.initializer_image, ["python", "-c", VERIFY, *roots], entrypoint=[],
            name=f"{self.prefix}-storage-initializer", labels=self.labels("storage-initializer"), volumes=volumes,
            network_mode="none")
        self.initializer = container
        copies = []
        if d.model:
            # AZUREML_MODEL_DIR holds the model folder under its own name (or the single file).
            prefix = PurePosixPath(d.model.name) / d.model.version
            if d.model.path.is_dir():
                prefix /= d.model.path.name
            copies.append(("model", d.model.path, MODELS, prefix))
        else:
            copies.append(("model", None, MODELS, PurePosixPath(".")))
        if d.code_dir:
            copies.append(("code", d.code_dir, self.code_mount, PurePosixPath(".")))
        for kind, source, target, prefix in copies:
            listing = manifest(source, kind, prefix) if source else {"kind": kind, "files": {}, "digest": "empty"}
            if kind == "code":
                self.code_files = set(listing["files"])
            if self._present_digest(container, target) == listing["digest"]:
                self._log(STORAGE_INITIALIZER, [f"{kind}: unchanged (digest sha256:{listing['digest'][:16]}), "
                                                "not copied again"])
                continue
            size = sum(s for s, _ in listing["files"].values())
            self._log(STORAGE_INITIALIZER, [f"{kind}: copying {len(listing['files'])} files ({size} bytes) "
                                            f"from {source} into volume {self.prefix}-{kind} at {target}"])
            self._progress(f"Copying {kind}", 0, size or 1)
            data = archive(source, prefix, listing) if source else archive_empty(listing)
            container.put_archive(str(target), data)
            self._progress(f"Copying {kind}", size or 1, size or 1)
        container.start()
        result = container.wait()
        lines = container.logs().decode("utf-8", "replace").splitlines()
        self._log(STORAGE_INITIALIZER, lines)
        if result.get("StatusCode") != 0:
            raise RuntimeError_(f"the storage-initializer exited with code {result.get('StatusCode')}; "
                                "its log says why")

    def _present_digest(self, container, target: PurePosixPath) -> str | None:
        try:
            stream, _ = container.get_archive(str(target / MANIFEST))
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.getmembers()[0]
                return json.loads(tar.extractfile(member).read())["digest"]
        except Exception:
            return None

    # -- inference-server ------------------------------------------------------------------------

    async def start(self, first_revision: int) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await _in_daemon_thread(self._start, first_revision)
        except Exception as ex:
            raise RuntimeError_(f"the inference-server container did not start: {ex}") from None

    def _start(self, first_revision: int) -> None:
        if self.stopping:
            return
        if self.byoc:
            self._start_own_server(first_revision)
            return
        d = self.deployment
        settings = d.request_settings
        self._remove(f"{self.prefix}-inference-server")
        environment = {"AML_APP_ROOT": str(self.code_mount), "AZUREML_ENTRY_SCRIPT": d.scoring_script,
                       "AZUREML_MODEL_DIR": str(self.model_dir), "SERVICE_NAME": d.endpoint_name,
                       **d.environment_variables}
        command = ["python", "-m", "inference_server", "--host", "0.0.0.0", "--port", str(SERVER_PORT),
                   "--request-timeout-ms", str(settings.request_timeout_ms),
                   "--max-concurrent-requests", str(settings.max_concurrent_requests_per_instance),
                   "--first-revision", str(first_revision), "--stay-up-on-failure", "--events-stdout"]
        ports = {f"{SERVER_PORT}/tcp": ("127.0.0.1", self.port or None)}
        if self.debug is not None:
            # debugpy tells the client to connect to each worker on the port it listens on, so the
            # port is published under the same number, on 127.0.0.1 only.
            port = self.debug.port or _free_port()
            ports[f"{port}/tcp"] = ("127.0.0.1", port)
            command = ["python", "-X", "frozen_modules=off", *command[1:],
                       "--debug-host", "0.0.0.0", "--debug-port", str(port)]
            if self.debug.wait:
                command.append("--debug-wait")
        self.server = self.client.containers.run(
            self.image, command, entrypoint=[], detach=True, name=f"{self.prefix}-inference-server",
            labels=self.labels("inference-server"), environment=environment, working_dir=str(self.code_mount),
            volumes=self._volumes(), ports=ports, network=self._network())
        self.server.reload()
        bindings = self.server.attrs["NetworkSettings"]["Ports"].get(f"{SERVER_PORT}/tcp") or []
        self.host_port = int(bindings[0]["HostPort"]) if bindings else None
        self.pump = threading.Thread(target=self._pump, args=(self.server,), daemon=True)
        self.pump.start()

    def _pump(self, container) -> None:
        """Stream the server's log; take devtui's events out of it. A container restarted on
        purpose (liveness, a bring-your-own reload) is followed again."""
        since = None
        while True:
            pending = b""
            try:
                for chunk in container.logs(stream=True, follow=True, since=since):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    texts = []
                    for line in lines:
                        if line.startswith(EVENT_PREFIX):
                            self._event(json.loads(line[len(EVENT_PREFIX):]))
                        else:
                            texts.append(line.decode("utf-8", "replace"))
                    if texts:
                        self._log(INFERENCE_SERVER, texts)
            except Exception:
                pass
            since = int(time.time())
            if self.stopping or not self._restarted(container):
                break
        try:
            code = container.wait(timeout=30).get("StatusCode")
        except Exception:
            code = None
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.sink.server_event,
                                           {"event": "exited", "exit_code": code, "expected": self.stopping})

    def _restarted(self, container) -> bool:
        """Whether the container is running again after a restart devtui asked for."""
        deadline = time.monotonic() + STOP_GRACE_S + 20
        while time.monotonic() < deadline and not self.stopping:
            try:
                container.reload()
            except Exception:
                return False
            if container.status == "running" and not self.restarting:
                return True
            if container.status in ("exited", "dead") and not self.restarting:
                return False
            time.sleep(0.05)
        return False

    def _event(self, event: dict) -> None:
        if event.get("event") == "listening":
            # The server sees its container port; users reach the published one.
            event = {**event, "host": "127.0.0.1", "port": self.host_port, "pid": None}
        elif event.get("event") == "debugger":
            event = {**event, "host": "127.0.0.1"}
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.sink.server_event, event)

    # -- bring your own container --------------------------------------------------------------

    def _start_own_server(self, revision: int) -> None:
        """Run the user's image as it is and watch it through its own routes."""
        d = self.deployment
        config = self.byoc
        self._remove(f"{self.prefix}-inference-server")
        environment = {"AZUREML_MODEL_DIR": str(self.model_dir), **d.environment_variables}
        if d.code_dir:
            environment.update(AML_APP_ROOT=str(self.code_mount), AZUREML_ENTRY_SCRIPT=d.scoring_script or "")
        # Host ports chosen here, not by the engine: a restart (liveness, reload) keeps them, so the
        # scoring URI stays valid.
        ports = {f"{route.port}/tcp": ("127.0.0.1", _free_port()) for route in
                 (config.liveness_route, config.readiness_route)}
        ports[f"{config.scoring_route.port}/tcp"] = ("127.0.0.1", self.port or _free_port())
        self.revision = revision
        self.server = self.client.containers.run(
            self.image, detach=True, name=f"{self.prefix}-inference-server", labels=self.labels("inference-server"),
            environment=environment, volumes=self._volumes(), ports=ports, network=self._network())
        self.server.reload()
        self.published = _published(self.server)
        self.host_port = self.published.get(config.scoring_route.port)
        self.pump = threading.Thread(target=self._pump, args=(self.server,), daemon=True)
        self.pump.start()
        self._event({"event": "listening", "port": SERVER_PORT, "path": config.scoring_route.path})
        self._event({"event": "starting", "revision": revision, "first": True})
        self.prober = threading.Thread(target=self._probe, args=(self.server, revision), daemon=True)
        self.prober.start()

    def _route_url(self, route) -> str:
        return f"http://127.0.0.1:{self.published[route.port]}{route.path}"

    def _probe(self, container, revision: int) -> None:
        """Readiness until it passes (polled, no fixed wait), then liveness by the YAML's
        liveness_probe: after failure_threshold failures in a row the container is restarted."""
        import time

        import httpx

        d = self.deployment
        readiness, liveness = d.readiness_probe, d.liveness_probe
        started = time.perf_counter()
        successes = 0
        deadline = time.monotonic() + readiness.initial_delay + readiness.period * readiness.failure_threshold
        while not self.stopping and self.server is container:
            try:
                ok = httpx.get(self._route_url(self.byoc.readiness_route), timeout=readiness.timeout).status_code == 200
            except httpx.HTTPError:
                ok = False
            successes = successes + 1 if ok else 0
            if successes >= readiness.success_threshold:
                self._event({"event": "ready", "revision": revision, "pid": None, "first": True,
                             "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
                break
            if time.monotonic() > deadline or container.status == "exited":
                self._event({"event": "failed", "revision": revision, "stage": "readiness",
                             "traceback": "the container's readiness route never answered 200",
                             "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
                return
            time.sleep(0.1)
        time.sleep(liveness.initial_delay)
        failures = 0
        while not self.stopping and self.server is container:
            try:
                alive = httpx.get(self._route_url(self.byoc.liveness_route), timeout=liveness.timeout).status_code == 200
            except httpx.HTTPError:
                alive = False
            failures = 0 if alive else failures + 1
            if failures >= liveness.failure_threshold:
                self._log(DEVTUI, [f"liveness probe failed {failures} times in a row "
                                   f"({self.byoc.liveness_route.path}); restarting the container"])
                self.restarting = True
                try:
                    container.restart(timeout=STOP_GRACE_S)
                except Exception:
                    return
                finally:
                    self.restarting = False
                failures = 0
                time.sleep(liveness.initial_delay)
                continue
            time.sleep(liveness.period)

    async def reload(self) -> None:
        if self.byoc:
            # No worker swap without devtui's server: copy the change and restart the container.
            await asyncio.to_thread(self._sync_and_restart)
            return
        await asyncio.to_thread(self._sync_and_signal)

    def _sync_and_restart(self) -> None:
        if self.server is None:
            return
        self._sync_code()
        self.revision += 1
        self._event({"event": "starting", "revision": self.revision, "first": False})
        started = time.perf_counter()
        self.restarting = True
        try:
            self.server.restart(timeout=STOP_GRACE_S)
            self.server.reload()
        finally:
            self.restarting = False
        self.published = _published(self.server)
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self.stopping:
            try:
                if httpx.get(self._route_url(self.byoc.readiness_route), timeout=2).status_code == 200:
                    self._event({"event": "ready", "revision": self.revision, "pid": None, "first": False,
                                 "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self._event({"event": "failed", "revision": self.revision, "stage": "readiness",
                     "traceback": "the restarted container's readiness route never answered 200",
                     "duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    def _sync_code(self) -> None:
        """Copy the code folder into the running container, through the API; files deleted
        since the last copy are deleted there too."""
        code = self.deployment.code_dir
        if not code:
            return
        listing = manifest(code, "code", PurePosixPath("."))
        self.server.put_archive(str(self.code_mount), archive(code, PurePosixPath("."), listing))
        previous = self.code_files if self.code_files is not None else set(listing["files"])
        removed = sorted(previous - set(listing["files"]))
        self.code_files = set(listing["files"])
        if removed:
            self.server.exec_run(["rm", "-f", *(str(self.code_mount / name) for name in removed)])

    def _sync_and_signal(self) -> None:
        """Copy the code folder into the running container, then swap workers."""
        d = self.deployment
        if self.server is None or not d.code_dir:
            return
        self._sync_code()
        self.server.kill(signal="SIGHUP")

    # -- stop ------------------------------------------------------------------------------------

    def _remove(self, name: str) -> None:
        """Remove our container of that name; one of another DEVTUI_HOME is left alone."""
        import docker.errors

        try:
            container = self.client.containers.get(name)
        except docker.errors.NotFound:
            return
        if container.labels.get(f"{LABEL}.home") not in (None, home_label()):
            raise RuntimeError_(f"a container named {name} belongs to an endpoint of the same name started with "
                                "another DEVTUI_HOME; run this one under another name with -n NAME")
        container.remove(force=True)

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.to_thread(self._stop)
        if self.pump is not None:
            await asyncio.to_thread(self.pump.join, 15)

    def _stop(self) -> None:
        if self.builder is not None:
            self.builder.cancel()
        if self.server is not None:
            try:
                self.server.stop(timeout=STOP_GRACE_S)
            except Exception:
                pass
        try:
            remove_endpoint(self.client, self.deployment.endpoint_name, volumes=True)
        except Exception as ex:  # the engine went away: nothing of ours can be running on it then
            self._log(DEVTUI, [f"warning: could not remove the containers: {ex}; `devtui down` retries"])

    def kill(self) -> None:
        try:
            remove_endpoint(self.client, self.deployment.endpoint_name, volumes=True)
        except Exception:
            pass

    def describe(self) -> dict:
        ids = tuple(c.short_id for c in (self.server, self.initializer) if c is not None)
        return {"container_ids": ids, "image": self.image}


def _published(container) -> dict[int, int]:
    """Container port -> host port, for every published port."""
    return {int(key.split("/")[0]): int(value[0]["HostPort"])
            for key, value in (container.attrs["NetworkSettings"]["Ports"] or {}).items() if value}


def _in_daemon_thread(function, *args):
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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def archive_empty(listing: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = json.dumps(listing).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


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
        for image in client.images.list(filters={"label": f"{LABEL}.endpoint={endpoint}"}):
            client.images.remove(image.id, force=True)
            removed.append(image.short_id)
    return removed


def home_label() -> str:
    """Which DEVTUI_HOME started a container: users (and tests) sharing an engine stay apart."""
    from ..registry import home

    return hashlib.sha256(str(home().resolve()).encode()).hexdigest()[:12]


def endpoints_from_labels(client) -> list[EndpointRecord]:
    """Endpoints of this DEVTUI_HOME known only by their labelled containers (the registry files
    are gone, or the devtui that ran them was killed), as registry records."""
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
                tags={}, properties={"devtui": "found by container labels; no devtui process watches it"},
                deployments=[DeploymentRecord(name=labels.get(f"{LABEL}.deployment"), runtime="container",
                                              provisioning_state="Failed", container_ids=[])])
        deployment = record.deployment
        deployment.container_ids.append(container.short_id)
        if labels.get(LABEL) == "inference-server" and container.status == "running":
            bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{SERVER_PORT}/tcp") or []
            if bindings:
                record.scoring_uri = f"http://127.0.0.1:{bindings[0]['HostPort']}/score"
                record.swagger_uri = swagger_uri(record.scoring_uri)
            record.provisioning_state = deployment.provisioning_state = "Succeeded"
    return list(found.values())


def container_log(client, endpoint: str, role: str) -> list[str] | None:
    """The log of the endpoint's container in ``role``, straight from the engine."""
    containers = client.containers.list(all=True, filters={"label": [f"{LABEL}={role}",
                                                                     f"{LABEL}.endpoint={endpoint}"]})
    if not containers:
        return None
    lines = containers[0].logs().decode("utf-8", "replace").splitlines()
    return [line for line in lines if not line.startswith(EVENT_PREFIX.decode())]
