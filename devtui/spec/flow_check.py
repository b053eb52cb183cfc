"""The DAG of a flow.dag.yaml, checked as prompt flow checks it when it builds the app, but with
file, line and field: each node's name and source file, and every `${...}` reference (a node's
inputs, its `activate.when`, an output's `reference`) naming an input or a node that exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .deployment import FlowInclude, FlowNode
from .flow_includes import _provided
from .messages import _describe
from .paths import _absolute
from .problems import Problem
from .yaml_lines import _Document

# prompt flow reads `${flow.x}` and `${inputs.x}` as the flow input x; any other `${a.b}` is node a.
_INPUT_PREFIXES = ("flow.", "inputs.")
# Source types whose `path` is a file of the flow: a Python tool, or an LLM/prompt node's template.
_FILE_SOURCES = ("code", "package_with_prompt")


def _check_dag(doc: _Document, folder: Path, inputs: set[str], problems: list[Problem],
               includes: tuple[FlowInclude, ...] = ()) -> tuple[FlowNode, ...]:
    """The nodes of DOC (a flow.dag.yaml), with a problem for each broken node or reference. A
    node's file may come from INCLUDES (additional_includes): its source is then the real file."""
    return _DagChecker(doc, folder, inputs, problems, includes).check()


def _reference(value: Any) -> tuple[str, str] | None:
    """("input", NAME) or ("node", NAME) for a whole-value `${...}`; None for a literal."""
    if not isinstance(value, str) or len(value) < 3 or not value.startswith("${") or not value.endswith("}"):
        return None
    inner = value[2:-1].strip()
    for prefix in _INPUT_PREFIXES:
        if inner.startswith(prefix):
            return "input", inner[len(prefix):]
    return "node", inner.split(".", 1)[0]


class _DagChecker:
    def __init__(self, doc: _Document, folder: Path, inputs: set[str], problems: list[Problem],
                 includes: tuple[FlowInclude, ...] = ()):
        self.doc = doc
        self.includes = includes
        self.folder = folder
        self.inputs = inputs
        self.problems = problems
        self.names: set[str] = set()

    def problem(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self.doc.file, self.doc.line(path), ".".join(map(str, path)), message))

    def check(self) -> tuple[FlowNode, ...]:
        raw = self.doc.data.get("nodes")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            self.problem(("nodes",), (
                f"expected a list of nodes, found {_describe(raw)}. Write each node as a `- name: ...` item "
                "with its `type`, `source` and `inputs`."
            ))
            raw = []
        nodes = [self._node(index, node) for index, node in enumerate(raw)]
        # References are checked once every node's name is known: a node may use one defined below it.
        for index, node in enumerate(raw):
            if isinstance(node, dict):
                self._node_references(index, node)
        self._output_references()
        return tuple(node for node in nodes if node is not None)

    def _node(self, index: int, node: Any) -> FlowNode | None:
        where = ("nodes", index)
        if not isinstance(node, dict):
            self.problem(where, f"expected a node (a mapping with name, type, source and inputs), found {_describe(node)}.")
            return None
        name = node.get("name")
        if not isinstance(name, str) or not name.strip():
            found = "missing" if name is None else f"expected text, found {_describe(name)}"
            self.problem(where + ("name",), f"{found}: every node needs a name. Add e.g. `name: answer`.")
            return None
        if name in self.names:
            self.problem(where + ("name",), f"a second node named {name!r}; node names must be unique. Rename one.")
            return None
        self.names.add(name)
        kind = node.get("type")
        return FlowNode(name, kind if isinstance(kind, str) else "unknown", self._source(where, name, node.get("source")))

    def _source(self, where: tuple[Any, ...], name: str, source: Any) -> Path | None:
        if source is None:  # a node that uses variants, or a tool found by its name
            return None
        if not isinstance(source, dict):
            self.problem(where + ("source",), (
                f"node {name!r}: expected a mapping, found {_describe(source)}. Write e.g. "
                "`source: {type: code, path: answer.py}`."
            ))
            return None
        if source.get("type", "code") not in _FILE_SOURCES:
            return None  # a package tool: no file of the flow
        raw = source.get("path")
        if not isinstance(raw, str) or not raw.strip():
            found = "missing" if raw is None else f"expected a file name, found {_describe(raw)}"
            self.problem(where + ("source", "path"), (
                f"node {name!r}: {found}. Name the node's file, relative to the flow folder: `path: answer.py`."
            ))
            return None
        included = _provided(self.includes, raw)
        if included is not None:
            return included
        path = _absolute(self.folder / raw)
        if not path.is_file():
            state = "is a folder" if path.is_dir() else "not found"
            self.problem(where + ("source", "path"), (
                f"node {name!r}: {path} {state} (source.path {raw!r} is relative to the flow folder {self.folder}"
                f"{self._include_names()}). Fix the path, or create the file."
            ))
            return None
        return path

    def _include_names(self) -> str:
        if not self.includes:
            return ""
        return ", or to what additional_includes bring into it: " + ", ".join(i.name for i in self.includes)

    def _node_references(self, index: int, node: dict) -> None:
        where = ("nodes", index)
        inputs = node.get("inputs")
        if isinstance(inputs, dict):
            for key, value in inputs.items():
                self._check_reference(where + ("inputs", key), value)
        elif inputs is not None:
            self.problem(where + ("inputs",), (
                f"expected a mapping of the node's inputs, found {_describe(inputs)}. Write e.g. "
                "`inputs: {question: ${inputs.question}}`."
            ))
        if "activate" in node:
            self._activate(where, node["activate"])

    def _activate(self, where: tuple[Any, ...], activate: Any) -> None:
        if not isinstance(activate, dict) or "when" not in activate or "is" not in activate:
            self.problem(where + ("activate",), (
                "needs both `when:` and `is:`, e.g. `activate: {when: ${classify.output}, is: true}`; "
                "the node runs only when the value of `when` equals `is`."
            ))
            return
        self._check_reference(where + ("activate", "when"), activate["when"])

    def _output_references(self) -> None:
        outputs = self.doc.data.get("outputs")
        if not isinstance(outputs, dict):
            return
        for name, definition in outputs.items():
            if isinstance(definition, dict):
                self._check_reference(("outputs", name, "reference"), definition.get("reference"))

    def _check_reference(self, where: tuple[Any, ...], value: Any) -> None:
        reference = _reference(value)
        if reference is None:
            return
        kind, name = reference
        if kind == "input" and name not in self.inputs:
            self.problem(where, (
                f"`{value}` names the flow input {name!r}, which `inputs:` does not define "
                f"({_listing('its inputs', self.inputs)}). Fix the name, or add the input under `inputs:`."
            ))
        elif kind == "node" and name not in self.names:
            self.problem(where, (
                f"`{value}` names the node {name!r}, which `nodes:` does not have "
                f"({_listing('its nodes', self.names)}). Fix the name, or add the node; a flow input is "
                "`${inputs.NAME}`."
            ))


def _listing(what: str, names: set[str]) -> str:
    return f"{what}: {', '.join(sorted(names))}" if names else f"{what}: none"
