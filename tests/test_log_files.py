"""Log files and streams stay bounded (issue 13, items 14 and 15): a line without end is cut and
marked, a log file rotates at its cap, and reading the last lines of a huge line is instant."""

from __future__ import annotations

import pytest

from devtui.events import DEVTUI, LogRecord
from devtui.lines import LINE_LIMIT, LineSplitter
from devtui.logs import LogFiles, tail


def test_a_line_without_a_newline_is_cut_and_marked_and_the_buffer_stays_small():
    splitter = LineSplitter()
    emitted = []
    for _ in range(200):  # 12.5 MiB without a newline
        emitted += splitter.feed(b"x" * 65536)
        assert len(splitter._pending) <= LINE_LIMIT
    emitted += splitter.feed(b"tail of the long line\nnext\n")
    assert len(emitted) == 2
    assert emitted[0].endswith(f"[... line cut at {LINE_LIMIT} bytes]")
    assert emitted[1] == "next"


def test_lines_split_across_chunks_are_whole():
    splitter = LineSplitter()
    assert splitter.feed(b"ab") == [] and splitter.feed(b"c\nde") == ["abc"] and splitter.flush() == ["de"]


def test_log_files_rotate_at_their_cap(tmp_path):
    files = LogFiles(tmp_path / "logs", rotate_bytes=10_000)
    for i in range(1000):
        files.write([LogRecord(DEVTUI, f"line {i:04d} " + "y" * 90)])
    files.close()
    current, older = tmp_path / "logs" / "devtui.log", tmp_path / "logs" / "devtui.log.1"
    assert current.stat().st_size <= 10_000 + 200 and older.stat().st_size <= 10_000 + 200
    assert tail(current, 1)[0].startswith("line 0999")


@pytest.mark.timeout(10)
def test_tail_of_a_huge_single_line_reads_only_the_end(tmp_path):
    path = tmp_path / "inference-server.log"
    with open(path, "wb") as f:
        for _ in range(50):  # 50 MiB on one line
            f.write(b"z" * (1 << 20))
        f.write(b"\nlast\n")
    lines = tail(path, 2)
    assert lines[-1] == "last" and len(lines[0]) <= LINE_LIMIT
