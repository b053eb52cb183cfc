"""Which files of a folder the cloud would upload: the rules of the folder's ``.amlignore`` (else its
``.gitignore``), as Azure ML applies them when it uploads code or a model, plus the litter editors
and tools leave (``__pycache__``, ``*.pyc``, ``.ipynb_checkpoints``, swap, backup and atomic-save
temporary files, and the ``4913`` file Vim writes to test a folder). The watcher, the storage-initializer's copy and the sync
into a running container all ask here, so a file is either part of the deployment everywhere or
nowhere.

Like the cloud, only the ignore file at the root of the folder counts, with gitignore's syntax
(pathspec's ``GitIgnoreSpec``); its rules come after the defaults, so ``!*.pyc`` brings those back.
The rules are read again on every question that starts a walk, so editing ``.amlignore`` takes
effect on the next save.
"""

from __future__ import annotations

import os
from pathlib import Path

import pathspec

from .runtimes.base import RuntimeFailure

IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present wins, as in the cloud
# Editors' atomic saves write a temporary file and rename it over the original: a hidden `.NAME.tmp`
# (Atom, many tools), JetBrains' `NAME___jb_tmp___`/`___jb_old___`, Emacs' `.#NAME` lock and `#NAME#`
# autosave. Seen by the watcher, a temporary could make one save two reloads on a busy machine.
# .promptflow/: what prompt flow writes into a flow folder it loads (a flex flow's signature, runs).
DEFAULTS = ("__pycache__/", "*.pyc", ".ipynb_checkpoints/", "*.swp", "4913", "*~", ".*.tmp", "*___jb_tmp___",
            "*___jb_old___", ".#*", r"\#*#", ".promptflow/")
# Deeper than this is no model or code layout but a hostile or runaway folder: staging says so
# rather than stage it. Within it, the walks of a staged folder that recurse (the storage-
# initializer's os.walk, pathlib's rglob) stay far from Python's recursion limit.
MAX_DEPTH = 256


class IgnoreRules:
    """The rules of one folder: ``ignored(path)`` for a path under it, ``files()`` for what is kept."""

    def __init__(self, root: Path):
        self.root = root
        self.source = next((root / name for name in IGNORE_FILES if (root / name).is_file()), None)
        lines = list(DEFAULTS)
        if self.source is not None:
            try:
                lines += self.source.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                pass  # unreadable now (being saved): the defaults still apply; the next save reads it
        self.spec = pathspec.GitIgnoreSpec.from_lines(lines)

    def ignored(self, path: Path) -> bool:
        """Whether ``path`` (under the root, absolute or relative to it) is left out: it matches,
        or a folder above it does. A path that no longer exists may have been a folder."""
        try:
            relative = path.relative_to(self.root) if path.is_absolute() else path
        except ValueError:
            return False  # not under this folder: not ours to say
        parts = relative.parts
        if not parts:
            return False
        for depth in range(1, len(parts)):
            if self.spec.match_file("/".join(parts[:depth]) + "/"):
                return True
        whole = "/".join(parts)
        if self.spec.match_file(whole):
            return True
        full = self.root / relative
        return (full.is_dir() or not full.exists()) and self.spec.match_file(whole + "/")

    def files(self, links: list[Path] | None = None) -> list[Path]:
        """Every file under the root that is kept, sorted; ignored folders are not walked, nor
        folders reached through a link. Walked without recursion, so no depth breaks the walk;
        a kept folder more than ``MAX_DEPTH`` levels down raises FolderTooDeep. ``links``, when
        given, gets every kept link too: to a file, to a folder (not walked) or to nothing."""
        found = []
        folders: list[tuple[str, str, int]] = [(str(self.root), "", 0)]  # (folder, relative, depth)
        while folders:
            folder, base, depth = folders.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = list(listing)
            except OSError:
                continue  # as os.walk: a folder that cannot be read is left out
            for entry in entries:
                relative = f"{base}/{entry.name}" if base else entry.name
                if links is not None and entry.is_symlink() and not self.ignored(Path(relative)):
                    links.append(Path(entry.path))
                if _is_folder(entry):
                    if entry.is_symlink() or self.spec.match_file(relative + "/"):
                        continue
                    if depth == MAX_DEPTH:
                        raise FolderTooDeep(self.root, relative)
                    folders.append((entry.path, relative, depth + 1))
                elif os.path.isfile(entry.path) and not self.spec.match_file(relative):
                    found.append(Path(entry.path))
        return sorted(found)


class FolderTooDeep(RuntimeFailure):
    """A folder to stage holds folders nested deeper than MAX_DEPTH. A runtime's failure to
    stage: the engine reports its message as it is, with no traceback."""

    def __init__(self, root: Path, relative: str):
        top = relative.split("/", 1)[0]
        super().__init__(f"{root} holds folders more than {MAX_DEPTH} levels deep (under {top}/); devtui stages "
                         f"folders at most {MAX_DEPTH} levels deep. Move the files up, or leave that folder out "
                         f"with the line /{top}/ in {root / '.amlignore'}")
        self.root, self.relative = root, relative


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def kept_files(source: Path) -> list[Path]:
    """The files the cloud would upload from ``source``: a single file is itself."""
    return [source] if source.is_file() else IgnoreRules(source).files()
