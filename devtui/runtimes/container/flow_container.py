"""A prompt flow in the container runtime: the deployment's model is a flow folder and its image
is prompt flow's runtime image, so devtui's scoring server serves the flow with prompt flow's own
app (``--flow``), as in the process runtime. What it overrides of the container runtime:

- the image: the runtime image, or a stand-in for it, plus the flow's requirements.txt
  (``flow_image.py``);
- the flow folder is staged by the storage-initializer as the model is (the cloud deploys it as
  the model), under ``AZUREML_MODEL_DIR``; the server gets ``--flow`` with that folder, works in
  it, and a save is synced into it before the worker swap (``Storage.sync``);
- the connection files of ``--connections`` are copied into the container before it starts, and
  ``DEVTUI_FLOW_CONNECTIONS`` names them where the server sees them;
- the debugger maps the flow folder on this machine to its folder in the container;
- a flow with ``additional_includes`` or symbolic links is staged on this machine first
  (``flow_staging``), and that stage is what the storage-initializer copies and a save syncs.

A flow on another image with an ``inference_config`` is a bring-your-own container (``own_container.py``).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import PurePosixPath

from ...events import DEVTUI, STORAGE_INITIALIZER
from ...scrub import Scrubber
from ..connection_files import ConnectionFiles
from .flow_image import FlowImageBuilder
from .runtime import APP, ContainerRuntime
from ..flow_staging import FlowStage

# Where the connection files are, in the container: beside the volumes, in the container's own
# layer, so they are gone with it (they hold secrets) and a restart copies them afresh.
CONNECTIONS = APP / "devtui-connections"


class FlowContainerRuntime(ContainerRuntime):
    builder_class = FlowImageBuilder

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connection_files = ConnectionFiles(())
        flow = self.deployment.flow
        # Links too: a copy through the Docker API would carry a link, not what it leads to.
        staged = flow.includes or flow.links
        self.flow_stage = FlowStage(flow, self.workdir / "flow-stage" / flow.folder.name) if staged else None

    def _connect(self) -> None:
        super()._connect()
        if self.flow_stage is not None:
            self.storage.model_source = self.flow_stage.target

    def _stage(self) -> None:
        if self.flow_stage is not None and not self.stopping:
            self._log(STORAGE_INITIALIZER, [f"additional include {include}" for include in self.deployment.flow.includes])
            files = self.flow_stage.stage()
            self._log(STORAGE_INITIALIZER, [f"flow staged with what its additional_includes and links bring: "
                                            f"{len(files)} files in {self.flow_stage.target}"])
        super()._stage()

    def _apply(self, swap: bool) -> None:
        if self.flow_stage is not None:
            self.flow_stage.stage()  # the sync below copies what changed in the stage
        if self.connection_files.files and self._connections_changed():
            swap = True  # the new worker reads the files afresh
        super()._apply(swap)

    def _connections_changed(self) -> bool:
        """Whether a --connections file changed since it was copied in; if so, it is copied in again,
        the log hides its new secrets too, and one line says which connections and keys changed."""
        changed = self.connection_files.changes()
        if changed:
            self._before_start(self.server)
            pump = self.server_log.pump
            if pump is not None:
                pump.scrubber = pump.scrubber.adding(Scrubber.of(self.deployment, self.launch.connections))
                changed = pump.scrubber.lines(changed)
            self._log(DEVTUI, changed)
        return bool(changed)

    @property
    def flow_dir(self) -> PurePosixPath:
        """The flow folder in the container: the model folder under AZUREML_MODEL_DIR (or, for a
        single .prompty, AZUREML_MODEL_DIR itself, as the storage-initializer lays it out)."""
        model = self.deployment.model
        return self.model_dir / model.path.name if model.path.is_dir() else self.model_dir

    @property
    def code_path(self) -> str:
        return str(self.flow_dir)

    def connection_paths(self) -> list[PurePosixPath]:
        """Each --connections file as the server sees it; numbered, so two files of one name differ."""
        return [CONNECTIONS / f"{number}-{path.name}" for number, path in enumerate(self.launch.connections)]

    def _environment(self) -> dict[str, str]:
        return self.server_environment(None, self.model_dir, self.connection_paths())

    def _before_start(self, container) -> None:
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
