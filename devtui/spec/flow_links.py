"""Symbolic links in a flow folder (prompt flow's ``flow-with-symlinks`` example shares another
flow's files this way), followed as prompt flow follows them: its serving app just opens them, and
its build and upload (promptflow-devkit's vendored ``get_upload_files_from_folder``) walk into
linked folders and copy a linked file's target, wherever it lives, inside the flow's tree or not.

So a link that leaves the tree is allowed, as prompt flow allows it. What prompt flow cannot follow
is refused here, naming the link: one that leads nowhere (its build or upload fails on reading
it), and a folder link back into a folder that holds it (its walk never ends). What the flow
folder's ignore rules leave out is not looked at: the cloud would not upload it either."""

from __future__ import annotations

import os
from pathlib import Path

from ..ignore import FolderTooDeep, IgnoreRules
from .problems import Problem


def _read_links(folder: Path, flow_file: Path, problems: list[Problem]) -> tuple[Path, ...]:
    """The links in FOLDER that staging follows; a problem for each that cannot be followed."""
    links: list[Path] = []
    try:
        IgnoreRules(folder).files(links)
    except FolderTooDeep:
        return ()  # staging says so, with what to do
    followed = []
    for link in sorted(links):
        target = Path(os.path.realpath(link))
        if not target.exists():
            problems.append(Problem(link, None, None, (
                f"a link to {os.readlink(link)}, which leads nowhere; prompt flow follows links in a flow folder "
                f"(its build copies the target), so it would fail on this one. Point it at a file or folder, remove "
                f"it, or leave it out with a line in {folder / '.amlignore'}. (Linked from the flow {flow_file}.)"
            )))
        elif target.is_dir() and (target == (holder := Path(os.path.realpath(link.parent))) or target in holder.parents):
            problems.append(Problem(link, None, None, (
                f"a link to {target}, a folder that holds the link itself: following it, as prompt flow does, "
                "never ends. Link a folder outside this one, or remove the link."
            )))
        else:
            followed.append(link)
    return tuple(followed)
