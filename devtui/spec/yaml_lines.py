"""YAML with line numbers: a spec file parsed into plain data plus the line of every key, so a
problem can point at `file:line`; unreadable files and syntax errors become `Problem`s."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from .messages import _describe, _dotted
from .problems import Problem
from .yaml_limits import MAX_BYTES, BoundedLoader, Refused, check_expansion, too_large_message

_EMPTY_MESSAGE = (
    "the file is empty (or holds only comments). A deployment YAML needs at least name, endpoint_name, "
    "code_configuration and environment; an endpoint YAML needs name."
)


class _Document:
    """A parsed YAML mapping plus the line of every key path in it."""

    def __init__(self, file: Path, data: dict[str, Any], lines: dict[tuple[Any, ...], int]):
        self.file = file
        self.folder = file.parent
        self.data = data
        self.lines = lines

    def line(self, path: Iterable[Any]) -> int | None:
        """Line of PATH, or of its nearest enclosing key: a missing key is reported where its
        parent is, and the root maps to the first line of the document."""
        path = tuple(part for part in path if part != "[key]")
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _read_yaml(file: Path, problems: list[Problem]) -> _Document | None:
    text = _read_text(file, problems)
    if text is None:
        return None
    parsed = _parse(file, text, problems)
    if parsed is None:
        return None
    data, lines = parsed
    if not lines:
        problems.append(Problem(file, 1, None, _EMPTY_MESSAGE))
        return None
    if not isinstance(data, dict):
        fix = "Remove the '- ' in front of the keys." if isinstance(data, list) else "Write one `key: value` per line."
        problems.append(Problem(
            file, lines[()], None,
            f"the top level is {_describe(data)}, but a spec file is a mapping of `key: value` lines "
            f"(name:, endpoint_name:, model:, ...). {fix}",
        ))
        return None
    return _Document(file, data, lines)


def _read_text(file: Path, problems: list[Problem]) -> str | None:
    """FILE's text, or None (with a problem) when it cannot be read, is not UTF-8 or is larger
    than any spec file should be."""
    try:
        with open(file, "rb") as stream:
            # Read one byte past the limit rather than trusting the size `stat` gives: a pipe or a
            # device says 0 and never ends.
            data = stream.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                size = max(os.fstat(stream.fileno()).st_size, len(data))
                problems.append(Problem(file, None, None, too_large_message(size)))
                return None
    except OSError as error:
        problems.append(Problem(file, None, None, f"cannot be read ({error.strerror}). Check the path and its permissions."))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(file, None, None, "is not UTF-8 text. Save it as UTF-8 YAML."))
        return None


def _parse(file: Path, text: str, problems: list[Problem]) -> tuple[Any, dict[tuple[Any, ...], int]] | None:
    """TEXT's data and the line of every key path in it (no lines at all for an empty document);
    None, with a problem, when it is not valid YAML or is over the limits of `yaml_limits`."""
    loader = BoundedLoader(text)
    try:
        # Composing first keeps the node tree, whose marks give every key its line; the same
        # nodes are then constructed into plain Python data for pydantic.
        node = loader.get_single_node()
        if node is None:
            return None, {}
        # Before anything walks the tree with its aliases expanded.
        check_expansion(node)
        # Before constructing, which folds merge keys (`<<: *base`) into the mappings.
        problems.extend(_duplicate_keys(file, loader, node))
        data = loader.construct_document(node)
        lines: dict[tuple[Any, ...], int] = {(): node.start_mark.line + 1}
        _index_lines(loader, node, (), lines)
    except Refused as refused:
        problems.append(Problem(file, refused.line, None, refused.message))
        return None
    except yaml.MarkedYAMLError as error:
        problems.append(_syntax_problem(file, error))
        return None
    except yaml.YAMLError as error:
        problems.append(Problem(file, None, None, f"YAML syntax error: {error}. Fix the YAML."))
        return None
    finally:
        loader.dispose()
    return data, lines


def _syntax_problem(file: Path, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None
    if error.context and "single document" in error.context:
        return Problem(file, line, None, (
            "the file holds more than one YAML document (separated by '---'). "
            "Keep one deployment (or endpoint) per file."
        ))
    what = error.problem or error.context or "invalid YAML"
    if mark is not None:
        what += f" at column {mark.column + 1}"
    # "while parsing a flow sequence" points where the unclosed construct began, often
    # lines above where the parser gave up; both places help.
    if error.context and error.problem and error.context_mark is not None and error.context_mark is not mark:
        what += f" ({error.context} from line {error.context_mark.line + 1})"
    return Problem(
        file, line, None,
        f"YAML syntax error: {what}. Fix the YAML here: check indentation, "
        "a missing ':' or an unclosed quote or bracket.",
    )


def _index_lines(loader: yaml.SafeLoader, node: yaml.Node, path: tuple[Any, ...],
                 lines: dict[tuple[Any, ...], int]) -> None:
    # The tree may share nodes through aliases but has no cycles and a bounded expanded size:
    # `check_expansion` saw to that.
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            # Keys are constructed the way PyYAML built the data (`1:` is the int 1), so the
            # paths match pydantic's `loc`. A duplicate key overwrites: PyYAML keeps the last one.
            key = loader.construct_object(key_node)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(loader, value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _index_lines(loader, item, path + (index,), lines)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicate_keys(file: Path, loader: yaml.SafeLoader, root: yaml.Node) -> list[Problem]:
    """A problem for each key given twice in one mapping. PyYAML keeps the last one silently,
    so a file that "works" means something else to whoever reads it. Each mapping is checked
    once, however many aliases point at it; a merge key (`<<: *base`) overridden is not a
    duplicate, it is what merging is for."""
    problems: list[Problem] = []
    visited: set[int] = set()

    def visit(node: yaml.Node, path: tuple[Any, ...]) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                visit(item, path + (index,))
        elif isinstance(node, yaml.MappingNode):
            first_lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
                if key in first_lines:
                    problems.append(Problem(file, line, _dotted(path + (key,)), (
                        f"duplicate key: `{key}` is also on line {first_lines[key]}. YAML keeps only the last "
                        f"one, so line {first_lines[key]} is ignored; remove one of them."
                    )))
                first_lines.setdefault(key, line)
                visit(value_node, path + (key,))

    visit(root, ())
    return problems
