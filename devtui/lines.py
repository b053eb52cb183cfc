"""Bytes to lines, for every stream devtui reads: a server's stdout, a container's log, a log file.

One splitter for all of them, linear in what it is fed: each chunk is searched once for newlines,
and a line longer than ``limit`` bytes is cut there and marked, the rest of it dropped up to the
next newline. Output without a newline (a progress bar, a runaway print) cannot grow a buffer.
"""

from __future__ import annotations

LINE_LIMIT = 64 * 1024
CUT_MARK = " [... line cut at {limit} bytes]"


class LineSplitter:
    """Feed it chunks; it returns the complete lines (decoded, without the newline)."""

    def __init__(self, limit: int = LINE_LIMIT):
        self.limit = limit
        self._pending = bytearray()
        self._dropping = False  # the pending line was cut: drop bytes up to the next newline

    def feed(self, chunk: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._take(chunk[start:end], lines)
            if not self._dropping:
                lines.append(self._finish())
            self._dropping = False
            start = end + 1
        self._take(chunk[start:], lines)
        return lines

    def flush(self) -> list[str]:
        """What is left without a final newline, as a last line (or nothing)."""
        return [self._finish()] if self._pending else []

    def _take(self, data: bytes, lines: list[str]) -> None:
        """Add to the pending line; a line past the limit is cut and emitted now."""
        if self._dropping:
            return
        room = self.limit - len(self._pending)
        if len(data) <= room:
            self._pending += data
            return
        self._pending += data[:room]
        lines.append(self._finish() + CUT_MARK.format(limit=self.limit))
        self._dropping = True

    def _finish(self) -> str:
        text = self._pending.decode("utf-8", "replace")
        self._pending.clear()
        return text
