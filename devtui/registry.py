"""Running endpoints, recorded under ``DEVTUI_HOME`` so that ``show``, ``invoke``, ``logs`` and
``down`` find them from any shell.

Each endpoint has a folder ``$DEVTUI_HOME/endpoints/<name>/`` with ``endpoint.json`` (an
``EndpointRecord``: what ``show`` prints) and its log files. The process hosting the engine holds
an exclusive lock on ``lock`` for as long as it runs: a held lock means the endpoint is alive, so
a record left by a killed process is recognised as stale and a second ``up`` of the same name is
refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .record import EndpointRecord


# Endpoint names as the cloud allows them (letters, digits, hyphens, from a letter): never a path.
_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,62}")


class BadName(ValueError):
    """An endpoint name that cannot be one (``../../x``): it would reach outside DEVTUI_HOME."""


def home() -> Path:
    return Path(os.environ.get("DEVTUI_HOME") or "~/.devtui").expanduser()


# The label on everything devtui makes in a Docker engine ("devtui=<role>"), and the prefix of
# the others ("devtui.endpoint", "devtui.home", ...).
LABEL = "devtui"


def home_label() -> str:
    """Which DEVTUI_HOME this is, in a label (containers) or a process's environment: users (and
    tests) sharing an engine or a machine stay apart."""
    return hashlib.sha256(str(home().resolve()).encode()).hexdigest()[:12]


def folder(name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise BadName(f"{name!r} is not an endpoint name: use letters, digits and hyphens, starting with a letter")
    return home() / "endpoints" / name


def private_folder(path: Path) -> Path:
    """Make ``path`` (under DEVTUI_HOME) readable by this user only, as DEVTUI_HOME itself: the
    logs and records may hold what a scoring script printed."""
    root = home()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for part in [path, *path.parents]:
        if part == root or root not in part.parents:
            break
        os.chmod(part, 0o700)
    return path


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for open(): a new file is created 600."""
    return os.open(path, flags, 0o600)


class AlreadyRunning(Exception):
    def __init__(self, name: str, record: EndpointRecord | None):
        super().__init__(name)
        self.name = name
        self.record = record


@dataclass
class Claim:
    """The right to run endpoint ``name``, held by one process until it releases or dies."""

    name: str
    lock_fd: int
    record: EndpointRecord

    @property
    def folder(self) -> Path:
        return folder(self.name)

    def update(self, **fields) -> None:
        """Set fields of the record (each checked against ``EndpointRecord``) and write it."""
        for key, value in fields.items():
            setattr(self.record, key, value)
        path = self.folder / "endpoint.json"
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", opener=private_opener) as f:
            f.write(json.dumps(self.record.dump(), indent=2))
        os.replace(temporary, path)  # readers never see half a record

    def release(self, remove: bool = True) -> None:
        if remove:
            (self.folder / "endpoint.json").unlink(missing_ok=True)
        os.close(self.lock_fd)


def claim(name: str) -> Claim:
    path = private_folder(folder(name))
    fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(name, _read_record(name)) from None
    # A stale record or logs from an earlier run of the same name would mislead.
    for stale in ("endpoint.json", "logs"):
        target = path / stale
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    return Claim(name, fd, EndpointRecord(name=name, host_pid=os.getpid()))


# `up --detach` claims the name itself and hands the claim to the background devtui it starts, by
# an inherited file descriptor named in this variable: no other `up` can take the name between
# the two, and the one that cannot have it is told so by the `up` it ran.
CLAIM_FD = "DEVTUI_CLAIM_FD"


def hand_over(claim: Claim) -> dict[str, str]:
    """The environment entry that passes ``claim`` to a child started with its ``lock_fd`` in pass_fds."""
    return {CLAIM_FD: str(claim.lock_fd)}


def inherited_claim(name: str) -> Claim | None:
    """The claim of ``name`` this process was handed (``hand_over``), or None if it was handed none."""
    value = os.environ.pop(CLAIM_FD, None)  # popped: the scoring server must not see it
    if value is None:
        return None
    try:
        fd = int(value)
        held, lock = os.fstat(fd), os.stat(folder(name) / "lock")
    except (ValueError, OSError):
        return None
    if (held.st_dev, held.st_ino) != (lock.st_dev, lock.st_ino):
        return None  # not this endpoint's lock: claimed the ordinary way
    # Not inherited further: the name must end with this process, not with a server it starts.
    os.set_inheritable(fd, False)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the lock is this descriptor's already: only checked
    return Claim(name, fd, EndpointRecord(name=name, host_pid=os.getpid()))


def is_alive(name: str) -> bool:
    lock = folder(name) / "lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _read_record(name: str) -> EndpointRecord | None:
    try:
        return EndpointRecord.model_validate(json.loads((folder(name) / "endpoint.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError, ValidationError):
        return None


def read(name: str) -> EndpointRecord | None:
    """The record of a running endpoint, or None when it is not running."""
    if not is_alive(name):
        return None
    return _read_record(name)


def running() -> list[EndpointRecord]:
    base = home() / "endpoints"
    if not base.is_dir():
        return []
    records = []
    for entry in sorted(base.iterdir()):
        if not _NAME.fullmatch(entry.name):
            continue  # not ours
        record = read(entry.name)
        if record is not None:
            records.append(record)
    return records
