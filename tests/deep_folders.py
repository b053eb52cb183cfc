"""Folders nested deeper than Python's recursion limit (issue 19, item 10), made and removed
without recursion: os.makedirs and shutil.rmtree recurse once per level, and pytest removes old
tmp_path folders with rmtree."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

DEEPER_THAN_RECURSION = 1100  # levels: past sys.getrecursionlimit() (1000), as the review's folder


@contextlib.contextmanager
def deep_folder(parent: Path, name: str = "deep", levels: int = DEEPER_THAN_RECURSION) -> Iterator[Path]:
    """``parent/name/d/d/.../d``, ``levels`` folders in all; the deepest is yielded. Afterwards
    each is removed, bottom up, with the files a test put in it."""
    made = [parent / name]
    made[0].mkdir()
    try:
        for _ in range(levels - 1):
            made.append(made[-1] / "d")
            made[-1].mkdir()
        yield made[-1]
    finally:
        for folder in reversed(made):
            if folder.exists():
                for child in folder.iterdir():
                    if not child.is_dir() or child.is_symlink():
                        child.unlink()
                folder.rmdir()
