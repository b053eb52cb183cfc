"""Processes a killed devtui left behind. The process runtime's server runs in a process group of
its own and notices when devtui dies, but a process that ``run()`` forked can outlive both and keep
the endpoint's port. Every process of a server carries ``DEVTUI_ENDPOINT`` in its environment
(inherited by what it forks), so ``up`` and ``down`` find and end them by that mark, not by a
pid that may have been reused.
"""

from __future__ import annotations

import os
import signal
import time

from .registry import home_label

MARK = "DEVTUI_ENDPOINT"


def mark(endpoint: str) -> dict[str, str]:
    """The environment entry that marks a process as serving ``endpoint`` for this DEVTUI_HOME."""
    return {MARK: f"{home_label()}/{endpoint}"}


def find(endpoint: str) -> list[int]:
    """Live processes of this user marked for ``endpoint`` (none on a system without /proc)."""
    wanted = f"{MARK}={home_label()}/{endpoint}".encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if wanted in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:  # gone, or not ours
            continue
    return found


def end(endpoint: str, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """SIGKILL every process marked for ``endpoint`` (and its process group); the pids ended."""
    ended = []
    own_group = os.getpgrp()
    for pid in find(endpoint):
        if pid in exclude:
            continue
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        ended.append(pid)
    _wait_gone(ended)
    return ended


def _wait_gone(pids: list[int], timeout: float = 5) -> None:
    """Until the killed processes are gone (their sockets closed), so the port is free after."""
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
