"""What the engine tells the world: state changes, log lines, reloads.

The engine emits these and never prints; the CLI prints them, the TUI renders them, the
registry records them. Each is a small immutable value, cheap to queue and to coalesce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# provisioning_state values, as `az ml online-endpoint show` names them.
CREATING, UPDATING, SUCCEEDED, FAILED, DELETING = "Creating", "Updating", "Succeeded", "Failed", "Deleting"

STORAGE_INITIALIZER = "storage-initializer"
INFERENCE_SERVER = "inference-server"
DEVTUI = "devtui"
SOURCES = (STORAGE_INITIALIZER, INFERENCE_SERVER, DEVTUI)


@dataclass(frozen=True)
class LogRecord:
    source: str
    text: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Logs:
    """A batch of log records from one read: never one event per line."""

    records: tuple[LogRecord, ...]


@dataclass(frozen=True)
class StateChanged:
    state: str
    detail: str = ""


@dataclass(frozen=True)
class ServerStarted:
    """The scoring server is listening (not yet ready)."""

    scoring_uri: str
    port: int
    pid: int | None = None
    container_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReloadStarted:
    revision: int
    reason: str  # "code", "model", "restart", "manual", "crash"
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReloadFinished:
    revision: int
    ok: bool
    duration_ms: float  # from the change (or request) to ready or failed
    serving_revision: int | None
    first: bool = False
    stage: str = ""  # on failure: "load", "init", "start"
    traceback: str = ""


@dataclass(frozen=True)
class Progress:
    """A long step (model copy, image build): what it is doing, done out of total (0 total: unknown)."""

    step: str
    done: float
    total: float = 0.0


@dataclass(frozen=True)
class DebuggerChanged:
    """The debugger: "listening" (on host:port), "attached", or "failed" (detail says why)."""

    state: str
    host: str
    port: int
    detail: str = ""


Event = DebuggerChanged | Logs | StateChanged | ServerStarted | ReloadStarted | ReloadFinished | Progress
