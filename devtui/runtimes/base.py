"""The interface every runtime implements, what it reports back to the engine, and the one copy
of the scoring server's contract that every runtime shares: its command line, its environment,
how long it gets to stop, and how its output becomes lines."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Protocol

from ..events import Placement
from ..lines import LineSplitter

if TYPE_CHECKING:  # the CLI's parser reads NAMES without loading the YAML models
    from ..launch import Launch
    from ..spec import LocalDeployment

# How long the scoring server gets to drain and exit before it is killed.
STOP_GRACE_S = 10
# What the server takes as a reload: SIGHUP patches where it can (else swaps), SIGUSR2 swaps.
RELOAD_SIGNAL, SWAP_SIGNAL = "SIGHUP", "SIGUSR2"


class RuntimeFailure(Exception):
    """A runtime cannot do what was asked; the message is for the user."""


class PortInUse(RuntimeFailure):
    """A port the server is to listen on is taken: found by devtui's check before the start, or by
    the bind itself when another program took it in between."""

    def __init__(self, host: str, port: int, what: str = "port", flag: str = "--port"):
        super().__init__(f"{what} {port} on {host} is already in use (another devtui?): pick another with {flag}, "
                         f"or {flag} 0 for a free one")
        self.port = port


class RuntimeSink(Protocol):
    def log(self, source: str, lines: list[str]) -> None:
        """A batch of log lines from one source."""

    def server_event(self, event) -> None:
        """The scoring server's own events (``inference_server.protocol``), and an ``Exited``
        event when it ends."""

    def progress(self, step: str, done: float, total: float = 0.0) -> None:
        """A long step advanced."""

    def engine_lost(self, detail: str) -> None:
        """The engine the runtime works through (Docker) does not answer; it keeps asking. What
        serves may go on serving, but nothing changes until the engine answers."""

    def engine_back(self, detail: str) -> None:
        """The engine answers again and the server kept running: the runtime follows it again."""


class Runtime(ABC):
    name: str
    # A prompt flow's stage (``staging.FlowStage``) where the runtime serves the flow from one.
    flow_stage = None

    def __init__(self, deployment: LocalDeployment, launch: Launch, workdir: Path, sink: RuntimeSink):
        self.deployment = deployment
        self.launch = launch  # the port in it is the one to listen on (0: a free one)
        self.workdir = workdir
        self.sink = sink
        self.host, self.port = launch.host, launch.port
        self.debug = launch.debug  # a container runtime fills in the port it chose for --debug-port 0

    @property
    def code_path(self) -> str | None:
        """Where the code runs, as the debugger sees it (VS Code's pathMappings remoteRoot); a
        prompt flow's code is its folder."""
        if self.deployment.flow is not None:
            return str(self.deployment.flow.folder)
        return str(self.deployment.code_dir) if self.deployment.code_dir else None

    def debug_mappings(self) -> list[tuple[str, str]]:
        """VS Code's pathMappings, (localRoot, remoteRoot) each: the code (or flow) folder to where it
        runs; where a flow is served from its stage, what the stage brings in each to its source."""
        local, remote = self.local_code, self.code_path
        if self.flow_stage is not None and remote:
            from .staging import debug_mappings

            return debug_mappings(self.deployment.flow, remote)
        return [(str(local), remote)] if local and remote else []

    @property
    def local_code(self) -> Path | None:
        """The folder of the code a save reloads, on this machine: the code folder, or the flow's."""
        d = self.deployment
        return d.flow.folder if d.flow is not None else d.code_dir

    # -- the scoring server's contract ----------------------------------------------------------

    def server_environment(self, code_dir: PurePath | None, model_dir: PurePath,
                           connections: list[PurePath] | None = None) -> dict[str, str]:
        """What the cloud sets for a scoring script, then the YAML's environment_variables. For a
        prompt flow, where its connection files are (``connections``, as the server sees them)."""
        d = self.deployment
        environment = {"AZUREML_MODEL_DIR": str(model_dir), "SERVICE_NAME": d.endpoint_name}
        if code_dir is not None:
            environment.update(AML_APP_ROOT=str(code_dir), AZUREML_ENTRY_SCRIPT=d.scoring_script or "")
        if d.mlflow is not None:  # a no-code MLflow deployment: the model folder, by name, as the cloud sets it
            environment["MLFLOW_MODEL_FOLDER"] = d.mlflow.folder.name
        if connections:
            environment["DEVTUI_FLOW_CONNECTIONS"] = os.pathsep.join(str(c) for c in connections)
        environment.update(d.environment_variables)
        return environment

    def server_command(self, python: list[str], host: str, port: int, first_revision: int,
                       extra: list[str], debug_host: str | None = None,
                       debug_port: int | None = None, flow_dir: PurePath | None = None) -> list[str]:
        """``python -m inference_server`` with the deployment's request_settings, the runtime's
        ``extra`` options (how the server reports its events, ...), and the debugger if asked;
        for a prompt flow, ``--flow`` and the folder as the server sees it (``flow_dir``)."""
        settings = self.deployment.request_settings
        if self.debug is not None:
            # Frozen stdlib modules make debugpy miss breakpoints; it says so on every start.
            python = [*python, "-X", "frozen_modules=off"]
        return [
            *python, "-m", "inference_server",
            *replace(self.launch, debug=self.debug).server_argv(host, port, debug_host, debug_port),
            *(["--flow", str(flow_dir)] if flow_dir is not None else []),
            "--request-timeout-ms", str(settings.request_timeout_ms),
            "--max-concurrent-requests", str(settings.max_concurrent_requests_per_instance),
            *extra, "--first-revision", str(first_revision), "--stay-up-on-failure",
        ]

    @staticmethod
    def line_splitter() -> LineSplitter:
        """How the server's output becomes log lines: capped in length, linear in time."""
        return LineSplitter()

    # -- the lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    async def stage(self) -> None:
        """The storage-initializer's job: put the model (and code) where the server reads it."""

    @abstractmethod
    async def start(self, first_revision: int) -> None:
        """Start the scoring server; readiness arrives as server events."""

    @abstractmethod
    async def reload(self, swap: bool = False) -> None:
        """Apply a change of the code or the staged model: patched into the running worker where
        the server can (rung 0, per ``launch.reload``), else a worker swap; ``swap``: always a swap."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop everything this runtime started; safe to call twice."""

    def kill(self) -> None:
        """End everything at once, without an event loop (after a crash); safe to call twice."""

    def placement(self) -> Placement:
        """Where the server runs, as `show` lists it (pid or container ids) and the debugger's
        path mapping needs it (the code's folder here and as the server sees it)."""
        local = self.local_code
        mappings = tuple(self.debug_mappings()) if self.flow_stage is not None else ()
        return Placement(local_code=str(local) if local else None, code_path=self.code_path, debug_mappings=mappings)
