"""What the engine tells the world: state changes, log lines, reloads.

The engine emits these and never prints; the CLI prints them, the TUI renders them, the
registry records them. Each is a small immutable value, cheap to queue and to coalesce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class ProvisioningState(StrEnum):
    """provisioning_state, as `az ml online-endpoint show` names it."""

    CREATING = "Creating"
    UPDATING = "Updating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETING = "Deleting"


CREATING, UPDATING, SUCCEEDED, FAILED, DELETING = ProvisioningState


class ReloadReason(StrEnum):
    """Why a revision started."""

    START = "start"  # the first revision of a (re)started server
    MANUAL = "manual"  # the user asked (`r` in the app)
    CODE = "code"  # the code folder changed (rung 1)
    MODEL = "model"  # the model folder changed and was staged again (rung 2)
    CRASH = "crash"  # the serving worker exited on its own

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
    state: ProvisioningState
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
    reason: ReloadReason
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReloadFinished:
    revision: int
    ok: bool
    duration_ms: float  # from the change (or request) to ready or failed
    serving_revision: int | None
    first: bool = False
    stage: str = ""  # on failure, an inference_server.protocol.Stage: load, init, start or readiness
    traceback: str = ""
    rung: str = ""  # on success, an inference_server.protocol.Rung: start, patch or swap
    detail: str = ""  # patch: what was patched ("run()"); swap: why not a patch ("init() changed")

    @property
    def how(self) -> str:
        """The rung in words, for the log, the app and `show`."""
        if self.rung == "patch":
            return f"patched {self.detail} in place (model kept)" if self.detail else "nothing to apply (no code changed)"
        if self.rung == "swap":
            return f"worker swap ({self.detail})" if self.detail else "worker swap"
        return self.rung


@dataclass(frozen=True)
class Progress:
    """A long step (model copy, image build): what it is doing, done out of total (0 total: unknown)."""

    step: str
    done: float
    total: float = 0.0


@dataclass(frozen=True)
class DebuggerChanged:
    """The debugger (an inference_server.protocol.DebuggerState): listening on host:port,
    attached, stopped (detail says where: "at score.py:12 in run()"), or failed (detail says why)."""

    state: str
    host: str
    port: int
    detail: str = ""


Event = DebuggerChanged | Logs | StateChanged | ServerStarted | ReloadStarted | ReloadFinished | Progress
