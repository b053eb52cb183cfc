"""The interface every runtime implements, and what it reports back to the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from ..spec import LocalDeployment


class RuntimeError_(Exception):
    """A runtime cannot do what was asked; the message is for the user."""


class RuntimeSink(Protocol):
    def log(self, source: str, lines: list[str]) -> None:
        """A batch of log lines from one source."""

    def server_event(self, event: dict) -> None:
        """The scoring server's own events (listening, starting, ready, failed, ...), and
        ``{"event": "exited", "exit_code": n}`` when it ends."""

    def progress(self, step: str, done: float, total: float = 0.0) -> None:
        """A long step advanced."""


class Runtime(ABC):
    name: str

    def __init__(self, deployment: LocalDeployment, workdir: Path, sink: RuntimeSink,
                 host: str = "127.0.0.1", port: int = 0, debug=None):
        self.deployment = deployment
        self.debug = debug  # engine.DebugSettings or None
        self.workdir = workdir
        self.sink = sink
        self.host = host
        self.port = port

    @property
    def code_path(self) -> str | None:
        """Where the code runs, as the debugger sees it (VS Code's pathMappings remoteRoot)."""
        return str(self.deployment.code_dir) if self.deployment.code_dir else None

    @abstractmethod
    async def stage(self) -> None:
        """The storage-initializer's job: put the model (and code) where the server reads it."""

    @abstractmethod
    async def start(self, first_revision: int) -> None:
        """Start the scoring server; readiness arrives as server events."""

    @abstractmethod
    async def reload(self) -> None:
        """Swap workers: the code or the staged model changed."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop everything this runtime started; safe to call twice."""

    def kill(self) -> None:
        """End everything at once, without an event loop (after a crash); safe to call twice."""

    def describe(self) -> dict:
        """What `show` lists for the deployment: pid or container ids."""
        return {}
