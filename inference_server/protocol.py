"""The messages the scoring server's processes send, and the one place that writes and reads them.

Two streams, both JSON lines (one object per line):

- **events, server -> devtui**: ``{"event": <kind>, <field>: <value>, ...}`` on the pipe devtui
  passes as ``--events-fd``; in a container, where there is no pipe to pass, on stdout behind
  :data:`EVENT_PREFIX` so devtui can take them out of the log.
- **worker status, worker -> supervisor**: ``{"status": <kind>, ...}`` on each worker's channel (a
  Unix socket pair, so that a retiring worker can hand its idle connections over with the line).
- **orders, supervisor -> worker**: ``{"order": <kind>, ...}`` on the same channel: apply a save in
  place as a given revision, or adopt connections handed over by the worker before it.

A field with a default is optional on the wire: it is left out while it holds its default and read
back as the default when absent, so every line carries the keys plain-dict readers already expect.
Keys a reader does not know are ignored: a newer server may say more.

Only the standard library is imported here: devtui imports this module too, and it runs in images.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, ClassVar

EVENT_PREFIX = b"@@devtui-event "
"""Marks an event line inside a container's log (``--events-stdout``)."""
_hints = functools.cache(typing.get_type_hints)  # a message's field types, read once a class


class EventKind(StrEnum):
    BIND_FAILED = "bind_failed"
    LISTENING = "listening"
    DEBUGGER = "debugger"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    CRASHED = "crashed"
    STOPPED = "stopped"
    EXITED = "exited"
    SPANS = "spans"


class Stage(StrEnum):
    """Where a revision failed."""

    LOAD = "load"  # importing score.py raised, or it lacks init()/run() or has a run() the server cannot call
    INIT = "init"  # init() raised
    START = "start"  # the worker exited before it said ready or failed (killed, os._exit in init())
    READINESS = "readiness"  # a bring-your-own container's readiness route never answered 200 (devtui's)


class DebuggerState(StrEnum):
    LISTENING = "listening"  # debugpy waits for a client on host:port
    ATTACHED = "attached"  # a client is connected
    STOPPED = "stopped"  # a worker is held at a breakpoint; detail says where ("at score.py:12 in run()")
    FAILED = "failed"  # debugpy could not listen; detail says why, and the server exits


class StatusKind(StrEnum):
    READY = "ready"
    FAILED = "failed"
    LEARNED = "learned"
    DEBUG_STOP = "debug_stop"
    PATCHED = "patched"
    DRAINING = "draining"
    HANDOFF = "handoff"
    SPANS = "spans"


class OrderKind(StrEnum):
    PATCH = "patch"
    ADOPT = "adopt"


class ReloadMode(StrEnum):
    """What a reload of changed code does (``--reload``), from devtui's command line to here."""

    PATCH = "patch"  # patch the changed functions into the running worker where that is safe, else swap
    SWAP = "swap"  # always a new worker


class Rung(StrEnum):
    """How a revision came to serve: the update ladder's step."""

    START = "start"  # the first worker of a server
    PATCH = "patch"  # the running worker got the new code in place; init() did not run again
    SWAP = "swap"  # a new worker imported the script and ran init(); the old one drained


class PatchResult(StrEnum):
    PATCHED = "patched"
    SWAP = "swap"  # the change cannot be applied in place: detail says why
    FAILED = "failed"  # the new source does not compile (or a new default raised): the old code serves


class _Message:
    """What every message has: its kind, written under ``KEY``."""

    KEY: ClassVar[str]
    kind: ClassVar[StrEnum]


# -- events, server -> devtui ---------------------------------------------------------------------

class _Event(_Message):
    KEY = "event"


@dataclass(frozen=True, kw_only=True)
class BindFailed(_Event):
    """The port could not be bound; the server exits with code 2."""

    kind = EventKind.BIND_FAILED
    host: str
    port: int
    reason: str  # "is already in use", "cannot be bound: <strerror>"


@dataclass(frozen=True, kw_only=True)
class Listening(_Event):
    """The socket is bound; ``port`` is the real one when 0 was asked for."""

    kind = EventKind.LISTENING
    host: str
    port: int
    pid: int | None = None  # the supervisor's; None where devtui cannot see it (a container)
    path: str = "/score"  # the scoring route; another only for a bring-your-own container


@dataclass(frozen=True, kw_only=True)
class HeldRequest:
    """A request in a worker a debugger holds, whoever sent it (started: Unix time; trace_id: traces on)."""

    request_id: str
    method: str
    path: str
    started: float
    trace_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Debugger(_Event):
    """The debugpy listener in the supervisor changed state."""

    kind = EventKind.DEBUGGER
    state: DebuggerState
    host: str
    port: int
    detail: str = ""
    attached: bool = False  # a client is attached (also while stopped, or wedged)
    wedged: bool = False  # failed because debugpy stopped answering new clients: a restart recovers
    held: tuple[HeldRequest, ...] = ()  # stopped: the requests the held worker was serving


@dataclass(frozen=True, kw_only=True)
class Starting(_Event):
    """A worker for ``revision`` is starting: the first one, or one for a reload or a crash."""

    kind = EventKind.STARTING
    revision: int
    pid: int | None = None
    first: bool  # no revision has been ready before it


@dataclass(frozen=True, kw_only=True)
class Ready(_Event):
    """``revision`` serves; the one before it drains and exits."""

    kind = EventKind.READY
    revision: int
    pid: int | None = None
    duration_ms: float
    first: bool
    rung: Rung = Rung.SWAP
    detail: str = ""  # patch: what was patched ("run(), helper()"); swap: why not a patch


@dataclass(frozen=True, kw_only=True)
class Failed(_Event):
    """``revision`` could not start; ``serving_revision`` (None: none) keeps serving."""

    kind = EventKind.FAILED
    revision: int
    stage: Stage
    traceback: str
    duration_ms: float
    serving_revision: int | None
    exit_code: int | None = None  # the worker's


@dataclass(frozen=True, kw_only=True)
class Crashed(_Event):
    """The serving worker exited on its own; the supervisor starts ``revision`` again."""

    kind = EventKind.CRASHED
    revision: int
    pid: int
    exit_code: int


@dataclass(frozen=True, kw_only=True)
class Stopped(_Event):
    """The supervisor is about to exit with ``exit_code``."""

    kind = EventKind.STOPPED
    exit_code: int


@dataclass(frozen=True, kw_only=True)
class Exited(_Event):
    """The server's process (or container) ended. Never sent by the server: devtui's runtimes
    make it when they see the process go, so the engine hears every end the same way."""

    kind = EventKind.EXITED
    exit_code: int | None  # None: not known (a container that could not be waited for)
    expected: bool  # devtui was stopping it


@dataclass(frozen=True, kw_only=True)
class Spans(_Event):
    """A batch of finished request spans from ``revision``'s worker, as the text of OTLP JSON (an
    ExportTraceServiceRequest: ``{"resourceSpans": [...]}``). Text, not an object: devtui hides
    secrets in it and keeps it as it is, so reading the event line is one string, not a tree of
    objects to make and write out again. One event per batch, never one per span; a batch's line
    stays under :data:`SPANS_LINE_LIMIT`."""

    kind = EventKind.SPANS
    revision: int
    otlp: str


# A batch of spans is cut so that its event line fits what devtui reads in one line (64 KiB).
SPANS_LINE_LIMIT = 60 * 1024

ServerEvent = BindFailed | Listening | Debugger | Starting | Ready | Failed | Crashed | Stopped | Exited | Spans


# -- worker status, worker -> supervisor ----------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _Status(_Message):
    KEY = "status"
    revision: int
    pid: int
    duration_ms: float  # since the worker started


@dataclass(frozen=True, kw_only=True)
class WorkerReady(_Status):
    """init() returned; the worker is about to serve."""

    kind = StatusKind.READY


@dataclass(frozen=True, kw_only=True)
class WorkerFailed(_Status):
    """The script did not load or init() raised; the worker exits with code 3."""

    kind = StatusKind.FAILED
    stage: Stage
    traceback: str


@dataclass(frozen=True, kw_only=True)
class WorkerLearned(_Status):
    """The third-party modules the worker imported, for the supervisor to import before the next fork."""

    kind = StatusKind.LEARNED
    modules: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class WorkerDebugStop(_Status):
    """A debugger holds the worker at ``where`` ("score.py:12 in run()"), or let it go (None)."""

    kind = StatusKind.DEBUG_STOP
    where: str | None
    held: tuple[HeldRequest, ...] = ()  # the requests in progress in the worker while it is held


@dataclass(frozen=True, kw_only=True)
class WorkerPatched(_Status):
    """The answer to a :class:`PatchOrder`: patched in place, a swap is needed, or failed. ``revision``
    is the one the worker serves now: the order's when patched, its own otherwise."""

    kind = StatusKind.PATCHED
    result: PatchResult
    detail: str = ""
    traceback: str = ""


@dataclass(frozen=True, kw_only=True)
class WorkerDraining(_Status):
    """Told to stop, the worker no longer accepts connections; it finishes those it has."""

    kind = StatusKind.DRAINING


@dataclass(frozen=True, kw_only=True)
class WorkerHandoff(_Status):
    """Told to stop, the worker hands over its idle kept-alive connections: their sockets travel
    with this line (SCM_RIGHTS), for the serving worker to adopt. A client's next request on them
    then reaches the new revision, never this one."""

    kind = StatusKind.HANDOFF
    connections: int


@dataclass(frozen=True, kw_only=True)
class WorkerSpans(_Status):
    """Finished spans, batched off the request path, as compact rows (``tracing.span_row``), with
    the worker's resource attributes; the supervisor passes them on to devtui as OTLP JSON, in
    :class:`Spans` events."""

    kind = StatusKind.SPANS
    spans: list
    resource: dict


WorkerStatus = (WorkerReady | WorkerFailed | WorkerLearned | WorkerDebugStop | WorkerPatched | WorkerDraining
                | WorkerHandoff | WorkerSpans)


# -- orders, supervisor -> worker -----------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _Order(_Message):
    KEY = "order"


@dataclass(frozen=True, kw_only=True)
class PatchOrder(_Order):
    """Apply the saved code in place (rung 0); if it applies, serve as ``revision`` from then on."""

    kind = OrderKind.PATCH
    revision: int


@dataclass(frozen=True, kw_only=True)
class AdoptOrder(_Order):
    """Serve the ``connections`` sockets that travel with this line: a retiring worker's idle ones."""

    kind = OrderKind.ADOPT
    connections: int


WorkerOrder = PatchOrder | AdoptOrder


# -- writing and reading --------------------------------------------------------------------------

def to_dict(message: ServerEvent | WorkerStatus | WorkerOrder) -> dict[str, Any]:
    """The message as the plain dict it travels as: its kind first, then its fields in order."""
    data: dict[str, Any] = {message.KEY: str(message.kind)}
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if field.default is dataclasses.MISSING or value != field.default:
            data[field.name] = _plain(value)
    return data


def encode(message: ServerEvent | WorkerStatus | WorkerOrder, *, prefix: bool = False) -> bytes:
    """One JSON line (newline included); behind :data:`EVENT_PREFIX` with ``prefix``."""
    line = (json.dumps(to_dict(message)) + "\n").encode()
    return EVENT_PREFIX + line if prefix else line


def is_event_line(line: bytes | str) -> bool:
    """Whether a log line is an event rather than something the server logged."""
    return line.startswith(EVENT_PREFIX if isinstance(line, bytes) else EVENT_PREFIX.decode())


def decode(line: bytes | str) -> ServerEvent:
    """The event on ``line``, a JSON line with or without :data:`EVENT_PREFIX`.

    Raises ValueError saying what is wrong when the line is not an event."""
    return _EVENTS.from_line(line)


def from_dict(data: Mapping[str, Any]) -> ServerEvent:
    """The event a plain dict describes (as :func:`to_dict` makes it). Raises ValueError."""
    return _EVENTS.from_dict(data)


def decode_status(line: bytes | str) -> WorkerStatus:
    """The worker status message on ``line``. Raises ValueError."""
    return _STATUS.from_line(line)


def decode_order(line: bytes | str) -> WorkerOrder:
    """The supervisor's order on ``line``. Raises ValueError."""
    return _ORDERS.from_line(line)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class _Codec:
    """Reads one stream: the kind under ``key`` picks the class, each field is checked against
    its annotation."""

    def __init__(self, what: str, key: str, classes: tuple[type, ...]):
        self.what = what
        self.key = key
        self.classes = {cls.kind.value: cls for cls in classes}

    def from_line(self, line: bytes | str) -> Any:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        body = text.removeprefix(EVENT_PREFIX.decode())
        try:
            data = json.loads(body)
        except ValueError as ex:
            raise ValueError(f"not a {self.what} line ({ex.args[0]}): {_excerpt(text)}") from None
        if not isinstance(data, dict):
            raise ValueError(f"not a {self.what} line (a JSON {type(data).__name__}, not an object): {_excerpt(text)}")
        return self.from_dict(data)

    def from_dict(self, data: Mapping[str, Any]) -> Any:
        kind = data.get(self.key)
        cls = self.classes.get(kind) if isinstance(kind, str) else None
        if cls is None:
            known = ", ".join(self.classes)
            found = f"{self.key!r} is {kind!r}" if self.key in data else f"no {self.key!r} key"
            raise ValueError(f"not a {self.what}: {found}; expected one of {known}")
        return _fields(cls, data, f"{self.what} {kind!r}")


def _fields(cls: type, data: Mapping[str, Any], what: str) -> Any:  # each field checked against its annotation
    fields = dataclasses.fields(cls)
    if missing := [f.name for f in fields if f.name not in data and f.default is dataclasses.MISSING]:
        raise ValueError(f"{what} lacks the field {missing[0]!r}")
    return cls(**{f.name: _check(what, f.name, data[f.name], _hints(cls)[f.name]) for f in fields if f.name in data})


def _check(what: str, name: str, value: Any, hint: Any) -> Any:
    arms = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for arm in arms:
        ok, converted = _convert(value, arm)
        if ok:
            return converted
    expected = " or ".join(_type_name(arm) for arm in arms)
    raise ValueError(f"{what}: field {name!r} should be {expected}, not {value!r}")


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether a JSON value fits ``hint``, and the value as the dataclass holds it."""
    if hint is type(None):
        return value is None, value
    if isinstance(hint, type) and issubclass(hint, Enum):
        known = isinstance(value, str) and value in hint._value2member_map_
        return (True, hint(value)) if known else (False, value)
    if typing.get_origin(hint) is tuple:  # tuple[str, ...]; tuple[HeldRequest, ...]
        return _items(value, typing.get_args(hint)[0])
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, hint), value


def _items(value: Any, item: Any) -> tuple[bool, Any]:
    record = dataclasses.is_dataclass(item)  # each item read as a message's fields are
    if not (isinstance(value, list) and all(isinstance(v, dict if record else item) for v in value)):
        return False, value
    return True, tuple(_fields(item, v, item.__name__) if record else v for v in value)


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _excerpt(text: str, limit: int = 120) -> str:
    text = text.rstrip("\n")
    return repr(text if len(text) <= limit else text[:limit] + "...")


_EVENTS = _Codec("scoring-server event", "event",
                 (BindFailed, Listening, Debugger, Starting, Ready, Failed, Crashed, Stopped, Exited, Spans))
_STATUS = _Codec("worker status", "status", (WorkerReady, WorkerFailed, WorkerLearned, WorkerDebugStop,
                                             WorkerPatched, WorkerDraining, WorkerHandoff, WorkerSpans))
_ORDERS = _Codec("worker order", "order", (PatchOrder, AdoptOrder))
