"""The process runtime: the scoring server as a child process of devtui, with this Python.

Staging lays out ``AZUREML_MODEL_DIR`` as the cloud does (a folder that contains the model
folder under its own name), by hard links where the file system allows and copies otherwise,
and logs it under ``storage-initializer``. The code folder is served in place, so a save is
picked up by a worker swap with nothing to copy; so is a prompt flow's folder, unless it has
``additional_includes``: then the flow is served from its stage in AZUREML_MODEL_DIR
(``staging``), which a save brings up to date before the worker swap.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from inference_server import protocol

from .. import orphans
from ..events import DEVTUI, INFERENCE_SERVER, STORAGE_INITIALIZER, Placement
from ..scrub import Scrubber
from .base import RELOAD_SIGNAL, STOP_GRACE_S, SWAP_SIGNAL, Runtime
from .connection_files import ConnectionFiles
from .output_pipe import OutputPipe
from .staging import FlowStage, mirror


# How long the output pipe may stay open after the server exited (its last lines are read meanwhile).
OUTPUT_GRACE_S = 2.0


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.process: asyncio.subprocess.Process | None = None
        self.output: OutputPipe | None = None
        self.tasks: list[asyncio.Task] = []
        self.stopping = False
        self.scrubber = Scrubber()
        self.connection_files = ConnectionFiles(())
        flow = self.deployment.flow
        self.flow_stage = FlowStage(flow, self.model_dir / flow.folder.name) if flow and flow.includes else None

    @property
    def served_flow(self) -> Path | None:
        """The folder prompt flow's app serves: the flow's own, or its stage when it has includes."""
        if self.flow_stage is not None:
            return self.flow_stage.target
        return self.deployment.flow.folder if self.deployment.flow is not None else None

    @property
    def code_path(self) -> str | None:
        return str(self.served_flow) if self.flow_stage is not None else super().code_path

    @property
    def model_dir(self) -> Path:
        model = self.deployment.model
        if model is None:
            return self.workdir / "azureml-models" / "none"
        return self.workdir / "azureml-models" / model.name / model.version

    # -- storage-initializer ---------------------------------------------------------------------

    async def stage(self) -> None:
        self._notes()
        await asyncio.to_thread(self._stage)

    def _notes(self) -> None:
        """--gpus and --context are about containers: say so once, rather than ignore them silently."""
        notes = []
        if self.launch.gpus is not None:
            notes.append(f"--gpus {self.launch.gpus} is for containers: the process runtime runs on this machine "
                         "and uses its GPUs directly (CUDA_VISIBLE_DEVICES chooses among them)")
        if self.launch.context:
            notes.append(f"--context {self.launch.context} is for containers: the process runtime uses no "
                         "Docker engine")
        if notes:
            self.sink.log(DEVTUI, notes)

    def _stage(self) -> None:
        log = lambda *lines: self.sink.log(STORAGE_INITIALIZER, list(lines))  # noqa: E731
        started = time.perf_counter()
        model = self.deployment.model
        self.model_dir.mkdir(parents=True, exist_ok=True)
        if model is None:
            log("No model in this deployment; AZUREML_MODEL_DIR is an empty folder.")
        else:
            log(f"Model {model.name}:{model.version} from {model.path}")
            self.sink.progress("Staging model", 0)
            if self.flow_stage is not None:
                log(*(f"  additional include {include}" for include in self.deployment.flow.includes))
                files = self.flow_stage.stage()
            else:
                files = mirror(model.path, self.model_dir / model.path.name)
            total = sum(size for _, size, _ in files)
            shown = files[:200]
            log(*(f"  {name} ({_size(size)}, {how})" for name, size, how in shown))
            if len(files) > len(shown):
                log(f"  ... and {len(files) - len(shown)} more files")
            self.sink.progress("Staging model", total, total)
            log(f"Model ready: {len(files)} files, {_size(total)} in AZUREML_MODEL_DIR={self.model_dir} "
                f"({(time.perf_counter() - started) * 1000:.0f} ms)")
        if self.deployment.code_dir:
            log(f"Code: {self.deployment.code_dir} (served in place: a save reloads it)")
        if self.deployment.flow is not None:
            self._flow_notes(log)

    # -- inference-server --------------------------------------------------------------------------

    def _flow_notes(self, log) -> None:
        flow = self.deployment.flow
        if self.flow_stage is not None:
            log(f"Prompt flow: {flow.folder / flow.flow_file} (served from {self.flow_stage.target} by prompt flow's "
                "own app, with its additional_includes: a save of the flow or of an include is staged, then "
                "the flow is built again in a new worker)")
        else:
            log(f"Prompt flow: {flow.folder / flow.flow_file} (served in place by prompt flow's own app: "
                "a save builds it again in a new worker)")
        if flow.requirements is not None:
            log(f"{flow.requirements.name}: the process runtime uses the packages installed here; the "
                "container runtime installs it into the image")

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", **orphans.mark(self.deployment.endpoint_name),
                **self.server_environment(self.deployment.code_dir, self.model_dir,
                                          [c.resolve() for c in self.launch.connections])}

    async def start(self, first_revision: int) -> None:
        # Built at each start: the deployment's environment and its connection files as they are now.
        self.scrubber = Scrubber.of(self.deployment, self.launch.connections)
        self.connection_files = ConnectionFiles(self.launch.connections)
        events_r, events_w = os.pipe()
        command = self.server_command(
            [sys.executable], self.host, self.port, first_revision,
            extra=["--events-fd", str(events_w), "--parent-pid", str(os.getpid()),
                   # What this deployment's workers imported, for a warm parent from the next start on.
                   "--warm-file", str(self.workdir / "warm-imports.json")],
            flow_dir=self.served_flow)
        self.stopping = False
        output_r, output_w = os.pipe()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.DEVNULL, stdout=output_w, stderr=subprocess.STDOUT,
                env=self._environment(), cwd=self.served_flow or self.local_code, pass_fds=(events_w,),
                # Its own process group: Ctrl-C reaches devtui, which stops the server in order.
                start_new_session=True)
        except BaseException:
            os.close(output_r)
            os.close(events_r)
            raise
        finally:
            os.close(output_w)
            os.close(events_w)
        self.output = OutputPipe(output_r, self.line_splitter(), lambda lines: self.sink.log(INFERENCE_SERVER, lines),
                                 self.scrubber)
        self.tasks = [asyncio.create_task(self.output.pump()), asyncio.create_task(self._pump_events(events_r))]

    async def _pump_events(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(fd, "rb", buffering=0))
        try:
            while line := await reader.readline():
                try:
                    event = protocol.decode(line)
                except ValueError as ex:
                    self.sink.log(INFERENCE_SERVER, [f"devtui: an unreadable server event: {ex}"])
                    continue
                # What the server logged before this event (a failed reload's traceback) goes first.
                self.output.drain()
                self.sink.server_event(self.scrubber.event(event))
        finally:
            transport.close()
        code = await self.process.wait()
        await self._output_ended()
        self.sink.server_event(protocol.Exited(exit_code=code, expected=self.stopping))

    async def _output_ended(self) -> None:
        """Let the last log lines through before saying the server ended. A process the server
        started that left its process group keeps the output pipe open, and the pump would wait
        for it for ever: debugpy's adapter daemonizes so, and a wedged one may not exit (a run()
        can fork such a daemon too). After OUTPUT_GRACE_S those processes, found by the endpoint's
        mark, are ended, said in the log; the pump then stops at the latest OUTPUT_GRACE_S later."""
        pump = self.tasks[0]
        if (await asyncio.wait([pump], timeout=OUTPUT_GRACE_S))[0]:
            return
        ended = await asyncio.to_thread(orphans.end, self.deployment.endpoint_name)
        if ended:
            self.sink.log(DEVTUI, [f"devtui: ended {len(ended)} process(es) the scoring server had started that "
                                   f"outlived it and kept its output open (pid {', '.join(map(str, ended))})"])
        if not (await asyncio.wait([pump], timeout=OUTPUT_GRACE_S))[0]:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    async def reload(self, swap: bool = False) -> None:
        if self.flow_stage is not None:
            await asyncio.to_thread(self._restage_flow)
        if self.connection_files.files and await asyncio.to_thread(self._connections_changed):
            swap = True  # the new worker reads the files afresh
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.Signals[SWAP_SIGNAL if swap else RELOAD_SIGNAL])

    def _connections_changed(self) -> bool:
        """Whether a --connections file changed since it was read; if so, its new secrets are hidden
        from now on (and the old ones still) and one line says which connections and keys changed."""
        changed = self.connection_files.changes()
        if changed:
            self.scrubber = self.scrubber.adding(Scrubber.of(self.deployment, self.launch.connections))
            if self.output is not None:
                self.output.scrubber = self.scrubber
            self.sink.log(DEVTUI, self.scrubber.lines(changed))
        return bool(changed)

    def _restage_flow(self) -> None:
        """Bring the flow's stage up to date before the swap builds it again; one line says what."""
        files = self.flow_stage.stage()
        changed = [f"{name} <- {self.flow_stage.sources[name]}" for name, _, how in files if how != "unchanged"]
        self.sink.log(STORAGE_INITIALIZER, [f"Flow staged again: {len(changed)} of {len(files)} files copied"
                                            + (f": {', '.join(changed[:10])}" if changed else "")])

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.stopping = True
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                pass
        # Workers that outlived their supervisor (they should not) go with the whole group.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        await process.wait()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def placement(self) -> Placement:
        return replace(super().placement(), pid=self.process.pid if self.process else None)
