"""What the engine tells the world: state changes, log lines, reloads.

The engine emits these and never prints; the CLI prints them, the TUI renders them, the
registry records them. Each is a small immutable value, cheap to queue and to coalesce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

# The protocol's own enums, carried end to end: consumers compare members, never strings.
from inference_server.protocol import DebuggerState, HeldRequest, Rung, Stage


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
class Placement:
    """Where the runtime put the scoring server: what `show` lists, and the code's two places
    that the debugger's path mapping joins."""

    pid: int | None = None  # the server's process, on this machine (the process runtime)
    container_ids: tuple[str, ...] = ()  # the inference-server's, then the storage-initializer's
    image: str | None = None
    docker_daemon: str | None = None  # the Docker engine that answered, for a person: where and which
    docker_host: str | None = None
    docker_context: str | None = None
    gpus: str | None = None  # what --gpus asked for
    local_code: str | None = None  # the folder a save reloads, on this machine: the code's or the flow's
    code_path: str | None = None  # the same folder as the server sees it
    # VS Code's pathMappings, (localRoot, remoteRoot) each, where one pair of the above is not enough
    # (a flow's additional_includes map each to its source).
    debug_mappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ServerStarted:
    """The scoring server is listening (not yet ready)."""

    scoring_uri: str
    port: int
    placement: Placement = Placement()


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
    stage: Stage | None = None  # on failure: load, init, start or readiness
    traceback: str = ""
    rung: Rung | None = None  # on success: start, patch or swap
    detail: str = ""  # patch: what was patched ("run()"); swap: why not a patch ("init() changed")

    @property
    def how(self) -> str:
        """The rung in words, for the log, the app and `show`."""
        if self.rung == Rung.PATCH:
            return f"patched {self.detail} in place (model kept)" if self.detail else "nothing to apply (no code changed)"
        if self.rung == Rung.SWAP:
            return f"worker swap ({self.detail})" if self.detail else "worker swap"
        return str(self.rung or "")


@dataclass(frozen=True)
class Progress:
    """A long step (model copy, image build): what it is doing, done out of total (0 total: unknown)."""

    step: str
    done: float
    total: float = 0.0


@dataclass(frozen=True)
class DebuggerChanged:
    """The debugger: listening on host:port, attached, stopped (detail says where: "at
    score.py:12 in run()"; ``held``, the requests in progress there), or failed (detail says why)."""

    state: DebuggerState
    host: str
    port: int
    detail: str = ""
    held: tuple[HeldRequest, ...] = ()  # stopped: the requests it holds, whoever sent them


@dataclass(frozen=True)
class Traces:
    """A batch of request spans from the server: one OTLP JSON line (``resourceSpans``), with the
    deployment's secrets already hidden. One event per batch; ``devtui.traces`` reads them."""

    revision: int
    otlp: str


Event = DebuggerChanged | Logs | StateChanged | ServerStarted | ReloadStarted | ReloadFinished | Progress | Traces
