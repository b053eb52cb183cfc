"""What the inference-server container is, per kind of deployment: its image, command,
environment, ports, working folder, and the files copied in before it starts or when a save comes.
The container runtime (``runtime.py``) runs every kind through one lifecycle; how it learns that the
server is ready is the other half (``readiness.py``). A new kind of deployment is one more spec here.

- :class:`ScriptServer`: devtui's scoring server for a ``score.py``, in the environment's image
  with the server's layer added (``images.py``); it reports its own events in its log.
- :class:`FlowServer`: a prompt flow, served by devtui's server with prompt flow's own app
  (``--flow``), as in the process runtime. Its image is prompt flow's runtime image, or a stand-in
  for it, plus the flow's requirements.txt (``flow_image.py``). The flow folder is staged by the
  storage-initializer as the model is (the cloud deploys it as the model), under
  ``AZUREML_MODEL_DIR``; the server works in it, and a save is synced into it before the worker
  swap (``Storage.sync``). The ``--connections`` files are copied into the container before it
  starts, and ``DEVTUI_FLOW_CONNECTIONS`` names them where the server sees them. A flow with
  ``additional_includes`` or symbolic links is staged on this machine first (``staging``), and
  that stage is what the storage-initializer copies and a save syncs.
- :class:`MlflowServer`: a no-code MLflow deployment, served by devtui's server with the MLflow
  scoring script the cloud would generate (``inference_server/mlflow_score.py``, picked by
  ``MLFLOW_MODEL_FOLDER``), as in the process runtime. Its image holds the model's ``conda.yaml``
  (``mlflow_image.py``). It has no code: a save over the model is staged into the model volume by
  the storage-initializer again, then the server swaps workers.
- :class:`OwnImage`: a bring-your-own container (an ``environment`` with ``inference_config``, a
  flow on another image included): the user's image as it is, with its own ports, and a
  storage-initializer on ``python:3.11-slim`` (the image may have no Python to verify with).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ...events import DEVTUI, STORAGE_INITIALIZER
from ...scrub import Scrubber
from ..connection_files import ConnectionFiles
from ..staging import FlowStage
from .docker_engine import SERVER_PORT, free_port
from .flow_image import FlowImageBuilder
from .images import ImageBuilder
from .mlflow_image import MlflowImageBuilder

APP = PurePosixPath("/var/azureml-app")
MODELS = APP / "azureml-models"
# Where the connection files are, in the container: beside the volumes, in the container's own
# layer, so they are gone with it (they hold secrets) and a restart copies them afresh.
CONNECTIONS = APP / "devtui-connections"
# The storage-initializer needs Python to verify; a bring-your-own image may have none.
INITIALIZER_IMAGE = "python:3.11-slim"

Log = Callable[[str, list[str]], None]


class ServerSpec:
    """What every kind shares: where the code and the model are in the container, and the steps
    a kind may add (each a no-op here)."""

    builder_class = ImageBuilder
    flow_stage: FlowStage | None = None  # a flow served from a stage on this machine (staging.py)

    def __init__(self, deployment, launch, workdir: Path):
        self.deployment, self.launch, self.workdir = deployment, launch, workdir

    @property
    def code_mount(self) -> PurePosixPath:
        return APP / (self.deployment.code_dir.name if self.deployment.code_dir else "code")

    @property
    def model_dir(self) -> PurePosixPath:
        model = self.deployment.model
        return MODELS / model.name / model.version if model else MODELS

    @property
    def code_path(self) -> str | None:
        """Where the code runs, as the debugger sees it."""
        return str(self.code_mount) if self.deployment.code_dir else None

    @property
    def model_source(self) -> Path | None:
        """Where the model volume's files are copied from, when not ``model.path``."""
        return None

    def environment(self, runtime) -> dict[str, str]:
        """What the cloud sets for a scoring script (``Runtime.server_environment``), as the server sees it."""
        return runtime.server_environment(self.code_mount if self.deployment.code_dir else None, self.model_dir)

    def image(self, builder: ImageBuilder) -> str:
        """The environment's image with devtui's scoring server added."""
        return builder.ensure()

    def initializer_image(self, image: str) -> str:
        # The storage-initializer needs Python to verify: the environment image has it.
        return image

    def container(self, runtime, first_revision: int) -> dict:
        """The inference-server's command, environment, ports and working folder, as keyword
        arguments of the Docker SDK's ``containers.create``."""
        raise NotImplementedError

    def prepare(self, log: Log) -> None:
        """On this machine, before the storage-initializer copies anything."""

    def copy_in(self, container) -> None:
        """Files put into the inference-server between its creation and its start."""

    def refresh(self, runtime, swap: bool) -> bool:
        """Before a save is synced into the running container; whether it needs a worker swap."""
        return swap


class ScriptServer(ServerSpec):
    """devtui's scoring server; ``flow_dir`` is a prompt flow's folder as the server sees it."""

    flow_dir: PurePosixPath | None = None

    def container(self, runtime, first_revision: int) -> dict:
        debug_port = runtime.debug_port()
        command = runtime.server_command(["python"], "0.0.0.0", SERVER_PORT, first_revision, extra=["--events-stdout"],
                                         debug_host="0.0.0.0", debug_port=debug_port, flow_dir=self.flow_dir)
        ports = {f"{SERVER_PORT}/tcp": ("127.0.0.1", runtime.port or None)}
        if debug_port is not None:
            # debugpy tells the client to connect to each worker on the port it listens on, so the
            # port is published under the same number, on 127.0.0.1 only.
            ports[f"{debug_port}/tcp"] = ("127.0.0.1", debug_port)
        return {"command": command, "entrypoint": [], "environment": self.environment(runtime),
                "working_dir": str(self.flow_dir or self.code_mount), "ports": ports}


class FlowServer(ScriptServer):
    builder_class = FlowImageBuilder

    def __init__(self, deployment, launch, workdir: Path):
        super().__init__(deployment, launch, workdir)
        self.connection_files = ConnectionFiles(())
        flow = deployment.flow
        # Links too: a copy through the Docker API would carry a link, not what it leads to.
        staged = flow.includes or flow.links
        self.flow_stage = FlowStage(flow, workdir / "flow-stage" / flow.folder.name) if staged else None

    @property
    def flow_dir(self) -> PurePosixPath:
        """The flow folder in the container: the model folder under AZUREML_MODEL_DIR (or, for a
        single .prompty, AZUREML_MODEL_DIR itself, as the storage-initializer lays it out)."""
        model = self.deployment.model
        return self.model_dir / model.path.name if model.path.is_dir() else self.model_dir

    @property
    def code_path(self) -> str:
        return str(self.flow_dir)

    @property
    def model_source(self) -> Path | None:
        return self.flow_stage.target if self.flow_stage is not None else None

    def connection_paths(self) -> list[PurePosixPath]:
        """Each --connections file as the server sees it; numbered, so two files of one name differ."""
        return [CONNECTIONS / f"{number}-{path.name}" for number, path in enumerate(self.launch.connections)]

    def environment(self, runtime) -> dict[str, str]:
        return runtime.server_environment(None, self.model_dir, self.connection_paths())

    def prepare(self, log: Log) -> None:
        if self.flow_stage is None:
            return
        log(STORAGE_INITIALIZER, [f"additional include {include}" for include in self.deployment.flow.includes])
        files = self.flow_stage.stage()
        log(STORAGE_INITIALIZER, [f"flow staged with what its additional_includes and links bring: "
                                  f"{len(files)} files in {self.flow_stage.target}"])

    def copy_in(self, container) -> None:
        self.connection_files = ConnectionFiles(self.launch.connections)
        if not self.launch.connections:
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            folder = tarfile.TarInfo(CONNECTIONS.name)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(folder)
            for path, inside in zip(self.launch.connections, self.connection_paths(), strict=True):
                data = path.read_bytes()
                info = tarfile.TarInfo(str(inside.relative_to(APP)))
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
        container.put_archive(str(APP), buffer.getvalue())

    def refresh(self, runtime, swap: bool) -> bool:
        if self.flow_stage is not None:
            self.flow_stage.stage()  # the sync that follows copies what changed in the stage
        if self.connection_files.files and self._connections_changed(runtime):
            swap = True  # the new worker reads the files afresh
        return swap

    def _connections_changed(self, runtime) -> bool:
        """Whether a --connections file changed since it was copied in; if so, it is copied in again,
        the log hides its new secrets too, and one line says which connections and keys changed."""
        changed = self.connection_files.changes()
        if changed:
            self.copy_in(runtime.server)
            pump = runtime.server_log.pump
            if pump is not None:
                pump.scrubber = pump.scrubber.adding(Scrubber.of(self.deployment, self.launch.connections))
                changed = pump.scrubber.lines(changed)
            runtime._log(DEVTUI, changed)
        return bool(changed)


class MlflowServer(ScriptServer):
    builder_class = MlflowImageBuilder


class OwnImage(ServerSpec):
    """The user's image as it is: its own command and working folder, its own ports."""

    def image(self, builder: ImageBuilder) -> str:
        return builder.base()

    def initializer_image(self, image: str) -> str:
        return INITIALIZER_IMAGE

    def container(self, runtime, first_revision: int) -> dict:
        """Host ports are chosen here, not by the engine: a restart (liveness, reload) keeps them,
        so the scoring URI stays valid."""
        config = self.deployment.environment.inference_config
        ports = {f"{route.port}/tcp": ("127.0.0.1", free_port())
                 for route in (config.liveness_route, config.readiness_route)}
        ports[f"{config.scoring_route.port}/tcp"] = ("127.0.0.1", runtime.port or free_port())
        return {"detach": True, "environment": self.environment(runtime), "ports": ports}
