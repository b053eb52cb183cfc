"""A flow's ``additional_includes``: files and folders outside the flow folder that `pf flow build`
copies into it. Read as prompt flow reads them (promptflow-devkit's additional-includes merge): each
entry is a path, absolute or relative to the flow folder, links resolved; a file lands in the flow
folder under its own name, a folder with its contents, and ``X.zip`` naming a folder ``X`` (with no
file ``X.zip``) lands as that folder packed into ``X.zip``. Prompt flow's serving app knows nothing
of them (only the build resolves them); devtui stages them (``devtui.runtimes.staging``).

An entry that names nothing is an error here, with the flow file's line, where prompt flow only
fails at build time; so is a glob, which prompt flow takes as a literal name that never exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .deployment import FlowInclude
from .messages import _describe
from .problems import Problem
from .yaml_lines import _Document, _read_yaml

KEY = "additional_includes"
_GLOB = set("*?[")


def _read_includes(doc: _Document, folder: Path, problems: list[Problem]) -> tuple[FlowInclude, ...]:
    """The resolved entries of DOC's additional_includes; a problem for each that cannot be staged."""
    raw = doc.data.get(KEY)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(Problem(doc.file, doc.line((KEY,)), KEY, (
            f"expected a list of files and folders, found {_describe(raw)}. Write e.g. "
            f"`{KEY}: [../web-classification/convert_to_dict.py]`."
        )))
        return ()
    found = (_include(doc, folder, index, entry, problems) for index, entry in enumerate(raw))
    return tuple(include for include in found if include is not None)


def _include(doc: _Document, folder: Path, index: int, entry: Any, problems: list[Problem]) -> FlowInclude | None:
    line = doc.line((KEY, index))

    def problem(message: str) -> None:
        problems.append(Problem(doc.file, line, f"{KEY}.{index}", message))

    if not isinstance(entry, str) or not entry.strip():
        problem(f"expected the path of a file or folder, found {_describe(entry)}.")
        return None
    if _GLOB & set(entry):
        problem(f"{entry!r} is a pattern; prompt flow copies each entry as it is named (one file or folder), "
                "so `pf flow build` would not find it. List the files or the folder they are in instead.")
        return None
    path = Path(entry).expanduser()
    source = (path if path.is_absolute() else folder / path).resolve()
    if source.suffix == ".zip" and not source.exists() and source.with_suffix("").is_dir():
        return FlowInclude(entry, source.with_suffix(""), "zip", line)
    if source.is_file():
        return FlowInclude(entry, source, "file", line)
    if source.is_dir():
        return FlowInclude(entry, source, "folder", line)
    problem(f"{entry!r} not found: {source} does not exist (an entry is relative to the flow folder {folder}). "
            "Fix the path, or remove the entry.")
    return None


def _provided(includes: tuple[FlowInclude, ...], relative: str) -> Path | None:
    """The real file behind RELATIVE (a path in the flow folder) when an include brings it, else None.
    A later entry wins over an earlier one, as in prompt flow's copy."""
    parts = Path(relative).parts
    if not parts:
        return None
    for include in reversed(includes):
        if include.kind == "file" and parts == (include.name,):
            return include.source
        if include.kind == "folder" and parts[0] == include.name and len(parts) > 1:
            candidate = include.source.joinpath(*parts[1:])
            if candidate.is_file():
                return candidate
    return None


def includes_changed(flow) -> bool:
    """Whether FLOW's file (a FlowSpec's) now lists other additional_includes than it was read with:
    then the deployment must be read again (new places to stage and watch). A file that cannot be
    read now is not: the swap its save makes reports why."""
    if flow.kind == "prompty":
        return False
    doc = _read_yaml(flow.folder / flow.flow_file, [])
    if doc is None or not isinstance(doc.data, dict):
        return False
    return (doc.data.get(KEY) or []) != [include.entry for include in flow.includes]
