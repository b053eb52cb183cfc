"""What every resolver shares: the deployment document, the list problems go to, the sections that
already failed validation, and turning a path the YAML names into a local one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .messages import _dotted, _example
from .names import _URL_PATTERN, _is_registered
from .paths import _absolute
from .problems import Problem
from .yaml_lines import _Document


class _Checker:
    """Base of the resolvers. Each check appends its problems and returns None instead of raising,
    so one run reports everything."""

    def __init__(self, doc: _Document, problems: list[Problem], bad: set[str]):
        self.doc = doc
        self.problems = problems
        # Top-level sections that failed validation: later checks skip them instead of piling a
        # "missing" on top of a "wrong type".
        self.bad = bad

    def problem(self, path: tuple[Any, ...], message: str, doc: _Document | None = None) -> None:
        doc = doc or self.doc
        self.problems.append(Problem(doc.file, doc.line(path), _dotted(path) or None, message))

    def _local_path(self, where: tuple[Any, ...], raw: str, what: str) -> Path | None:
        """RAW resolved against the deployment YAML's folder, or None (with a problem) when it
        names something remote."""
        if _is_registered(raw) or _URL_PATTERN.match(raw):
            self.problem(where, (
                f"{raw!r} is not a local path; a local endpoint reads its {what} from this machine. "
                f"Download it and write a path relative to {self.doc.file.name}, e.g. `{_example(where)}`."
            ))
            return None
        if not raw.strip():
            self.problem(where, f"is empty. Write a path relative to {self.doc.file.name}, e.g. `{_example(where)}`.")
            return None
        return _absolute(self.doc.folder / Path(os.path.expanduser(raw)))
