"""What reading one YAML file may cost: its size, the number of values it holds once its aliases
are expanded, and how deep they nest.

A deployment YAML is a few KB with a few dozen values. Hostile or mistaken input (a 50 MB file,
a "billion laughs" of nested aliases, thousands of nested brackets) is refused with one message
before it costs seconds or gigabytes: the size before parsing, the values and the depth while
composing (so a refusal is cheap too), and what aliases expand to right after, before anything
walks the expanded tree.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_VALUES = 10_000
MAX_DEPTH = 64


class Refused(Exception):
    """A YAML document over one of the limits: the line where it went over, and why."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def too_large_message(size: int) -> str:
    shown = f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"
    return (
        f"is {shown}, larger than the {MAX_BYTES // 1024 // 1024} MiB devtui reads; a deployment or endpoint "
        "YAML is a few KB. Check that this is the right file, and keep data out of it."
    )


_TOO_MANY = (
    f"holds more than {MAX_VALUES:,} values; a deployment YAML has a few dozen. "
    "Check that this is the right file, and keep data out of it."
)
_TOO_MANY_EXPANDED = (
    f"the aliases (`*name`) here expand to more than {MAX_VALUES:,} values (a \"billion laughs\"); "
    "a deployment YAML has a few dozen. Write the values out, or use fewer aliases."
)
_TOO_DEEP = (
    f"values nest more than {MAX_DEPTH} levels deep{{through}}; a deployment YAML nests four. "
    "Check the brackets and the indentation."
)
_RECURSIVE = (
    "an alias (`*name`) here refers to the mapping or list that contains itself, so it never ends. "
    "Remove the alias, or point it at another anchor."
)


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopping as soon as a document holds more than MAX_VALUES nodes
    (aliases counted once each) or nests deeper than MAX_DEPTH; PyYAML's composer recurses,
    so without the depth limit ten thousand `[` end in a RecursionError."""

    def __init__(self, text: str):
        super().__init__(text)
        self._values = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._values += 1
        self._depth += 1
        try:
            if self._values > MAX_VALUES:
                raise Refused(self._line(), _TOO_MANY)
            if self._depth > MAX_DEPTH:
                raise Refused(self._line(), _TOO_DEEP.format(through=""))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _line(self) -> int:
        return self.peek_event().start_mark.line + 1


def check_expansion(root: yaml.Node) -> None:
    """Raise `Refused` when ROOT, with every alias expanded, holds more than MAX_VALUES values,
    nests deeper than MAX_DEPTH, or contains itself. Each distinct node is measured once, so
    this costs what the text does, not what it expands to."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, levels) of the expanded subtree
    active: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        line = node.start_mark.line + 1
        if id(node) in active:
            raise Refused(line, _RECURSIVE)
        if id(node) not in measured:
            if depth > MAX_DEPTH:
                raise Refused(line, _TOO_DEEP.format(through=" once aliases are expanded"))
            active.add(id(node))
            parts = [measure(child, depth + 1) for child in _children(node)]
            active.discard(id(node))
            measured[id(node)] = (1 + sum(size for size, _ in parts), 1 + max((levels for _, levels in parts), default=0))
        size, levels = measured[id(node)]
        if size > MAX_VALUES:
            raise Refused(line, _TOO_MANY_EXPANDED)
        if depth + levels - 1 > MAX_DEPTH:  # a subtree measured higher up, reached again deeper down
            raise Refused(line, _TOO_DEEP.format(through=" once aliases are expanded"))
        return size, levels

    measure(root, 1)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
