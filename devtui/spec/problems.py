"""What a user sees when a spec is wrong: one `Problem` per fact (file, line, field, what to do),
and the `SpecError` that carries all of them at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .paths import _display


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where it is and what to do about it."""

    file: Path
    line: int | None  # 1-based
    field: str | None  # dotted path, e.g. "code_configuration.code"
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        where = _display(self.file)
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class SpecError(Exception):
    """Every problem found in the spec files, one `Problem` each, and the warnings found with
    them (a misspelled key is often why a section is "missing")."""

    def __init__(self, problems: Iterable[Problem], warnings: Iterable[Problem] = ()):
        self.problems: list[Problem] = list(problems)
        self.warnings: list[Problem] = list(warnings)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)
