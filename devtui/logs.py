"""Log records from every source: bounded in memory, and in files for headless use.

The engine turns each read from a runtime into one ``Logs`` batch. :class:`LogBuffer` keeps the
latest records per source in ring buffers (the TUI's view), :class:`LogFiles` appends them to
one file per source under the endpoint's folder so ``devtui logs`` works from any shell, and
:func:`tail` / :func:`follow` read those files back.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from .events import SOURCES, LogRecord
from .lines import LINE_LIMIT, LineSplitter
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


# Each source's log file is rotated at this size, keeping one older file (``NAME.log.1``):
# an endpoint's logs take at most 2 x ROTATE_BYTES x 3 sources on disk.
ROTATE_BYTES = 10 * 1024 * 1024


# Terminal escape sequences (colours, cursor moves: CSI, OSC, and the two-byte ones) that tools
# such as pip, conda and docker build write when they think a terminal reads them: a log file is
# read by `devtui logs`, grep and editors, where they are noise.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()*+][0-~]|[@-Z\\-_])")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return ANSI.sub("", text) if "\x1b" in text else text


class LogFiles:
    """One append-only file per source, written as the records arrive, rotated before a batch
    once it holds ROTATE_BYTES."""

    def __init__(self, folder: Path, rotate_bytes: int = ROTATE_BYTES):
        self.folder = folder
        self.rotate_bytes = rotate_bytes
        private_folder(folder)
        self.files = {}

    def path(self, source: str) -> Path:
        return self.folder / f"{source}.log"

    def _file(self, source: str):
        file = self.files.get(source)
        # Flushed at the end of every batch, so its buffer's position is the byte count (a text
        # file's own tell() costs more than the write).
        if file is not None and file.buffer.tell() >= self.rotate_bytes:
            file.close()
            os.replace(self.path(source), self.path(source).with_suffix(".log.1"))
            file = None
        if file is None:
            file = self.files[source] = open(self.path(source), "a", encoding="utf-8", opener=private_opener)
        return file

    def write(self, records: Iterable[LogRecord]) -> None:
        touched = {}
        for record in records:
            file = touched.get(record.source)
            if file is None:
                file = touched[record.source] = self._file(record.source)
            file.write(plain(record.text) + "\n")
        for file in touched.values():
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
    """The last ``lines`` lines of a log file (all of them when None). Reads from the end, and
    never more than ``lines`` lines of the longest length a log line can have."""
    if not path.exists():
        return []
    if lines is None:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        return []
    budget = (lines + 1) * (LINE_LIMIT + 64)
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        position = f.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= lines and len(data) < budget:
            step = min(65536, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    text = data[-budget:].decode("utf-8", errors="replace")
    return [line[:LINE_LIMIT] for line in text.splitlines()[-lines:]]


async def follow(path: Path, still_running, poll: float = 0.2) -> AsyncIterator[str]:
    """New lines appended to ``path`` from its current end, until ``still_running()`` is false.
    A rotated or recreated file is followed from its start."""
    position = path.stat().st_size if path.exists() else 0
    splitter = LineSplitter()
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size < position:
            position = 0  # rotated or recreated
        if size > position:
            with open(path, "rb") as f:
                f.seek(position)
                chunk = f.read(min(size - position, 1 << 20))
            position += len(chunk)
            for line in splitter.feed(chunk):
                yield line
            continue
        if not still_running():
            return
        await asyncio.sleep(poll)  # a file has no change notification here that works everywhere
