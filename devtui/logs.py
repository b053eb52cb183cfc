"""Log records from every source: bounded in memory, and in files for headless use.

The engine turns each read from a runtime into one ``Logs`` batch. :class:`LogBuffer` keeps the
latest records per source in ring buffers (the TUI's view), :class:`LogFiles` appends them to
one file per source under the endpoint's folder so ``devtui logs`` works from any shell, and
:func:`tail` / :func:`follow` read those files back.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from .events import SOURCES, LogRecord
from .registry import private_folder, private_opener


class LogBuffer:
    """The latest ``capacity`` records of each source, and of all of them together."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self.by_source: dict[str, deque[LogRecord]] = {s: deque(maxlen=capacity) for s in SOURCES}
        self.all: deque[LogRecord] = deque(maxlen=capacity)

    def extend(self, records: Iterable[LogRecord]) -> None:
        for record in records:
            self.by_source.setdefault(record.source, deque(maxlen=self.capacity)).append(record)
            self.all.append(record)

    def clear(self) -> None:
        for records in self.by_source.values():
            records.clear()
        self.all.clear()


class LogFiles:
    """One append-only file per source, written as the records arrive."""

    def __init__(self, folder: Path):
        self.folder = folder
        private_folder(folder)
        self.files = {}

    def path(self, source: str) -> Path:
        return self.folder / f"{source}.log"

    def write(self, records: Iterable[LogRecord]) -> None:
        touched = set()
        for record in records:
            file = self.files.get(record.source)
            if file is None:
                file = self.files[record.source] = open(self.path(record.source), "a", encoding="utf-8",
                                                                opener=private_opener)
            file.write(record.text + "\n")
            touched.add(file)
        for file in touched:
            file.flush()

    def close(self, quiet: bool = False) -> None:
        """Close every file; ``quiet``: a file that cannot flush (a full disk) is dropped silently."""
        for file in self.files.values():
            try:
                file.close()
            except OSError:
                if not quiet:
                    raise
        self.files.clear()


def tail(path: Path, lines: int | None = None) -> list[str]:
    """The last ``lines`` lines of a log file (all of them when None)."""
    if not path.exists():
        return []
    if lines is None:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    # Read backwards in blocks so a large log costs only what is shown.
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        position = f.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= lines:
            step = min(65536, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    return data.decode("utf-8", errors="replace").splitlines()[-lines:] if lines else []


async def follow(path: Path, still_running, poll: float = 0.2) -> AsyncIterator[str]:
    """New lines appended to ``path`` from its current end, until ``still_running()`` is false."""
    position = path.stat().st_size if path.exists() else 0
    pending = b""
    while True:
        if path.exists():
            size = path.stat().st_size
            if size < position:
                position = 0  # the file was recreated
            if size > position:
                with open(path, "rb") as f:
                    f.seek(position)
                    chunk = f.read(size - position)
                position = size
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
                continue
        if not still_running():
            return
        await asyncio.sleep(poll)
