"""Folders laid out on this machine before a server reads them: ``mirror`` (the process runtime's
model folder under ``AZUREML_MODEL_DIR``, by hard links where the file system allows) and
``FlowStage`` (a prompt flow with ``additional_includes`` or links, for both runtimes). The
container runtime's copy into volumes is ``container/storage.py``.

A flow with ``additional_includes`` is staged as `pf flow build` lays it out: the flow folder's
files (less what its ignore rules leave out, as the cloud's upload would; a link's target, a linked
folder's files, as prompt flow follows them), then each include, a
file under its own name, a folder with its contents, a ``X.zip`` entry as its folder packed; an
include wins over a flow file of the same name, as in prompt flow's copy.

The stage is a folder under the deployment's workdir, of copies (never links: prompt flow writes
into the folder it serves, and the user's folders are never written). Both runtimes serve from
it: the process runtime in place, the container runtime copies it into the model volume. Staging
again copies only what changed and removes what the sources no longer have, so a save of an
included file costs one copy before the worker swap. ``debug_mappings`` tells VS Code where each
staged file really lives."""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..ignore import kept_files
from ..spec import FlowSpec
from .base import RuntimeFailure

# What Python and prompt flow write into the folder they serve: never the sources' business.
_WRITTEN_BY_SERVING = ("__pycache__", ".promptflow")


def staged_files(flow: FlowSpec) -> dict[str, Path]:
    """relative path in the stage -> the file it is a copy of (zip entries excluded)."""
    files = {path.relative_to(flow.folder).as_posix(): path for path in kept_files(flow.folder)}
    for link in flow.links:  # a linked folder's files, as prompt flow's build walks into it
        if link.is_dir():
            files.update({f"{link.relative_to(flow.folder).as_posix()}/{path.relative_to(link).as_posix()}": path
                          for path in kept_files(link)})
    for include in flow.includes:
        if not include.source.exists():
            raise RuntimeFailure(f"{include.source}, which additional_includes bring into the flow ({include.entry!r} in "
                                 f"{flow.folder / flow.flow_file}), no longer exists: restore it, or remove the entry")
        if include.kind == "file":
            files[include.name] = include.source
        elif include.kind == "folder":
            for path in _walk(include.source):
                files[f"{include.name}/{path.relative_to(include.source).as_posix()}"] = path
    return files


def _walk(folder: Path) -> Iterator[Path]:
    """Every file under FOLDER, links followed, as prompt flow's copy follows them; no bytecode."""
    for root, folders, names in os.walk(folder, followlinks=True):
        folders[:] = sorted(f for f in folders if f not in _WRITTEN_BY_SERVING)
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file():
                yield path


class FlowStage:
    """The stage of one flow at ``target``; ``stage()`` brings it up to date with the sources."""

    def __init__(self, flow: FlowSpec, target: Path):
        self.flow = flow
        self.target = target
        self.placed: set[str] | None = None  # what the last stage() put there (None: not yet, this run)
        self.sources: dict[str, Path] = {}  # relative path in the stage -> the file it is a copy of

    def stage(self) -> list[tuple[str, int, str]]:
        """(relative path, size, how) for every file: copied, packed or unchanged."""
        files = staged_files(self.flow)
        placed = [(relative, source.stat().st_size, _copy(source, self.target / relative))
                  for relative, source in files.items()]
        for include in self.flow.includes:
            if include.kind == "zip":
                zipped = self.target / include.name
                _pack(include.source, zipped)
                files[include.name] = include.source
                placed.append((include.name, zipped.stat().st_size, "packed"))
        self._remove_others(set(files))
        self.placed, self.sources = set(files), files
        return placed

    def _remove_others(self, wanted: set[str]) -> None:
        """What an earlier stage placed and the sources no longer have; on the first stage of a run,
        any file but what serving wrote."""
        if self.placed is not None:
            for relative in self.placed - wanted:
                (self.target / relative).unlink(missing_ok=True)
            return
        for path in sorted(self.target.rglob("*"), reverse=True):
            relative = path.relative_to(self.target)
            if any(part in _WRITTEN_BY_SERVING for part in relative.parts):
                continue
            if path.is_file() and relative.as_posix() not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _copy(source: Path, target: Path) -> str:
    """A copy of SOURCE at TARGET, unless one of the same size and time is there (never a link to it)."""
    stat = source.stat()
    if target.exists() and not target.samefile(source):
        existing = target.stat()
        if (existing.st_size, existing.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return "unchanged"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Beside it, then renamed over it: the serving revision never finds the file missing.
    temporary = target.with_name(f".{target.name}.devtui-staging")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)
    return "copied"


def _pack(folder: Path, target: Path) -> None:
    """FOLDER as a zip holding the folder by its name, as prompt flow packs a ``X.zip`` include."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.devtui-staging")
    with zipfile.ZipFile(temporary, "w") as archive:
        archive.write(folder, folder.name)
        for path in _walk(folder):
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    os.replace(temporary, target)


def debug_mappings(flow: FlowSpec, remote: str) -> list[tuple[str, str]]:
    """VS Code's pathMappings for a stage at REMOTE (as the server sees it): each include, and each
    link at the top of the flow folder, to where it really lives; then the flow folder. debugpy tries
    every folder mapping before any file mapping, so where a file is brought in the flow folder is
    mapped entry by entry (else the folder's mapping would claim that file too). A link deeper in
    the folder is mapped with its folder: a breakpoint goes in the link, not in its target."""
    brought = [(i.source, i.name, i.kind == "file") for i in flow.includes if i.kind != "zip"]
    brought += [(link.resolve(), link.name, not link.is_dir()) for link in flow.links if link.parent == flow.folder]
    mappings = [(str(source), f"{remote}/{name}") for source, name, _ in brought]
    if not any(is_file for _, _, is_file in brought):
        return [*mappings, (str(flow.folder), remote)]
    names = {name for _, name, _ in brought}
    own = sorted(entry.name for entry in flow.folder.iterdir() if entry.name not in names)
    return [*mappings, *((str(flow.folder / name), f"{remote}/{name}") for name in own)]


def mirror(source: Path, target: Path) -> list[tuple[str, int, str]]:
    """Make ``target`` hold what ``source`` holds, less what its ignore file leaves out (as the
    cloud's upload would); unchanged files are left alone.

    Returns (relative path, size, how) for every file: how is linked, copied or unchanged."""
    if source.is_file():
        pairs = [(source, target)]
    else:
        pairs = [(p, target / p.relative_to(source)) for p in kept_files(source)]
        _remove_extra(target, {t for _, t in pairs})
    return [(src.name if source.is_file() else str(src.relative_to(source)), src.stat().st_size, _place(src, dst))
            for src, dst in pairs]


def _remove_extra(target: Path, wanted: set[Path]) -> None:
    """Files in ``target`` that the source no longer has, and folders left empty."""
    if not target.is_dir():
        return
    for existing in sorted(target.rglob("*"), reverse=True):
        if existing.is_file() and existing not in wanted:
            existing.unlink()
        elif existing.is_dir() and not any(existing.iterdir()):
            existing.rmdir()


def _place(src: Path, dst: Path) -> str:
    """Put ``src`` at ``dst`` by a hard link where the file system allows, else a copy."""
    stat = src.stat()
    if dst.exists() and (dst.samefile(src) or (dst.stat().st_size == stat.st_size
                                              and dst.stat().st_mtime == stat.st_mtime)):
        return "unchanged"
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Beside it, then renamed over it: the serving revision never finds the file missing.
    temporary = dst.with_name(f".{dst.name}.devtui-staging")
    temporary.unlink(missing_ok=True)
    try:
        os.link(src, temporary)
        how = "linked"
    except OSError:
        shutil.copy2(src, temporary)
        how = "copied"
    os.replace(temporary, dst)
    return how
