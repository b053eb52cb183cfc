"""Paths as the spec resolves and shows them: absolute without following symlinks, and shown
relative to the working directory when they are below it."""

from __future__ import annotations

import os
from pathlib import Path


def _absolute(path: Path) -> Path:
    # Absolute and normalised, but symlinks are NOT resolved: the model folder is mounted under
    # its own name (`$AZUREML_MODEL_DIR/<folder name>/...`), and resolving a symlinked folder
    # would rename it to its target's name and break the script's paths.
    return Path(os.path.abspath(os.path.expanduser(path)))


def _posix_relative(path: Path, start: Path) -> str:
    relative = Path(os.path.relpath(path, start)).as_posix()
    return relative if relative.startswith(".") else f"./{relative}"


def _display(path: Path) -> str:
    """PATH relative to the working directory when it is below it, else as it is."""
    try:
        return str(_absolute(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
