"""Importing the user's modules from their source, every time: the loader a worker installs for
its code folders (a scoring script's, a flow's), and the one its entry script is loaded with.

What each load compiled goes to ``on_load`` (a worker's ``patching.Patcher``, which compares a
later save with it); the worker hands it over explicitly.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Callable

# (module name, file, source): what was compiled, for rung 0 to compare a later save with.
OnLoad = Callable[[str, str, bytes], None]


class FreshLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source every time, never from ``__pycache__``.

    A .pyc is trusted when the source's size and mtime in whole seconds match; two saves within
    one second that keep the size (a changed digit) would otherwise run the old code."""

    def __init__(self, fullname: str, path: str, on_load: OnLoad | None = None):
        super().__init__(fullname, path)
        self.on_load = on_load

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        source = self.get_data(path)
        if self.on_load is not None:
            self.on_load(fullname, path, source)  # what a later save is compared with
        return self.source_to_code(source, path)


class FreshFinder:
    """Finds modules like the path finder does, but loads those under the user's folders with
    :class:`FreshLoader`, so a helper module saved beside score.py is reloaded faithfully too."""

    def __init__(self, roots: list[str], on_load: OnLoad | None = None):
        self.roots = tuple(os.path.join(os.path.abspath(r), "") for r in roots)
        self.on_load = on_load

    def find_spec(self, fullname, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if (spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader)
                and spec.origin and spec.origin.startswith(self.roots)):
            spec.loader = FreshLoader(fullname, spec.origin, self.on_load)
        return spec


def load_fresh_from(roots: list[str], on_load: OnLoad | None = None) -> None:
    """From now on, import modules under ``roots`` from their source (see :class:`FreshLoader`),
    telling ``on_load`` what each compiled."""
    sys.dont_write_bytecode = True
    position = next((i for i, finder in enumerate(sys.meta_path) if finder is importlib.machinery.PathFinder),
                    len(sys.meta_path))
    sys.meta_path.insert(position, FreshFinder(roots, on_load))
