"""The conda file an environment names: read within the limits of any spec file, and checked for
the shape conda gives it, so `validate` catches what would otherwise surface only in an image
build. A string where a list belongs is the dangerous case: read as a list, `dependencies:
"numpy"` asks pip for the packages `n`, `u`, `m`, ..., names anyone could publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .messages import _describe, _dotted
from .problems import Problem, SpecError
from .yaml_lines import _Document, _parse, _read_text

_DEPENDENCIES_EXAMPLE = "dependencies: [python=3.11, numpy=1.26, {pip: [requests==2.32.3]}]"


def load_conda(file: Path) -> dict[str, Any]:
    """FILE's content, checked: `name` is text, `channels` a list of text, `dependencies` a list
    of text and `{pip: [text, ...]}`. Raises SpecError with every problem."""
    problems: list[Problem] = []
    document = _check_conda(file, problems)
    if document is None:
        raise SpecError(problems)
    return document


def _check_conda(file: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """FILE's content ({} when it is empty), or None after adding its problems to PROBLEMS."""
    before = len(problems)
    text = _read_text(file, problems)
    parsed = _parse(file, text, problems) if text is not None else None
    if parsed is None:
        return None
    data, lines = parsed
    if not lines:
        return {}  # an empty conda file installs nothing
    checker = _CondaChecker(_Document(file, data, lines))
    if not isinstance(data, dict):
        checker.problem((), (
            f"the top level is {_describe(data)}, but a conda file is a mapping: `name: env`, "
            f"`channels: [conda-forge]`, `{_DEPENDENCIES_EXAMPLE}`."
        ))
    else:
        checker.check(data)
    # Duplicate keys were reported while parsing: they count too.
    if checker.problems or len(problems) > before:
        problems.extend(checker.problems)
        return None
    return data


class _CondaChecker:
    def __init__(self, doc: _Document):
        self.doc = doc
        self.problems: list[Problem] = []

    def problem(self, where: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self.doc.file, self.doc.line(where), _dotted(where) or None, message))

    def check(self, data: dict[Any, Any]) -> None:
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            self.problem(("name",), f"expected text, found {_describe(name)}. Write e.g. `name: my-env`.")
        self.texts(("channels",), data.get("channels"), "channels: [conda-forge]")
        self.dependencies(data.get("dependencies"))

    def dependencies(self, dependencies: Any) -> None:
        where: tuple[Any, ...] = ("dependencies",)
        if dependencies is None:
            return
        if not isinstance(dependencies, list):
            self.problem(where, (
                f"expected a list of packages, found {_describe(dependencies)}. Write one package per line "
                f"(`- numpy=1.26`), pip packages under `- pip:`; e.g. `{_DEPENDENCIES_EXAMPLE}`."
            ))
            return
        for index, item in enumerate(dependencies):
            if isinstance(item, dict):
                self.pip_section(where + (index,), item)
            elif not isinstance(item, str):
                self.problem(where + (index,), (
                    f"expected a package such as `numpy=1.26`, or a `pip:` list, found {_describe(item)}. "
                    "Quote a package name that reads as a number."
                ))

    def pip_section(self, where: tuple[Any, ...], section: dict[Any, Any]) -> None:
        for key in section:
            if key != "pip":
                self.problem(where + (key,), (
                    f"only `pip:` may be nested in dependencies, found `{key}:`. List conda packages "
                    "directly under dependencies, pip packages under `- pip:`."
                ))
        if "pip" in section:
            self.texts(where + ("pip",), section["pip"], "pip: [requests==2.32.3]")

    def texts(self, where: tuple[Any, ...], value: Any, example: str) -> None:
        """VALUE must be a list of text (or absent)."""
        if value is None:
            return
        if not isinstance(value, list):
            self.problem(where, f"expected a list, found {_describe(value)}. Write e.g. `{example}`.")
            return
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(where + (index,), (
                    f"expected text, found {_describe(item)}. Write e.g. `{example}` (quote what reads as a number)."
                ))
