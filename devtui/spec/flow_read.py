"""A prompt flow's own files, read without prompt flow: `flow.dag.yaml`, `flow.flex.yaml` or a
`.prompty`'s front matter, with the line of every key, into the inputs, outputs, nodes, sample and
requirements of a `FlowSpec`. Each problem names the flow file, its line and the field; the DAG's
nodes and references are checked by `flow_check`.

The shapes are prompt flow's (`promptflow/contracts/flow.py`: `Flow`, `FlexFlow`, `PromptyFlow`;
`promptflow/core/_flow.py`: `Prompty`). Only what devtui shows or checks is read; the rest of a
flow file is prompt flow's business when the worker builds the app."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .deployment import FlowInclude, FlowInput, FlowNode, FlowSpec
from .flow_check import _check_dag
from .flow_includes import _provided, _read_includes
from .flow_links import _read_links
from .messages import _describe
from .paths import _absolute
from .problems import Problem
from .yaml_lines import _Document, _parse, _read_text

# prompt flow's ValueType: a flow input or output of any other type fails when the app is built.
_VALUE_TYPES = ("string", "int", "double", "bool", "list", "object", "file_path", "image", "secret",
                "prompt_template", "assistant_definition")
_CHAT_HISTORY = "chat_history"  # an input of this name is the chat history unless it says otherwise
# What an input without a default is prefilled with in the sample, by type.
_EMPTY = {"string": "", "int": 0, "double": 0.0, "bool": False, "list": [], "object": {}}
_SAMPLES_FILE = "samples.json"
_FENCE = re.compile(r"-{3,}")  # prompt flow's own pattern for the lines around the front matter
_REQUIREMENTS_FILE = "requirements.txt"


class _FlowReader:
    """Reads one flow file into a `FlowSpec`; every problem goes to PROBLEMS."""

    def __init__(self, folder: Path, flow_file: str, kind: str, problems: list[Problem], whole_folder: bool = True):
        self.folder = folder
        self.file = folder / flow_file
        self.flow_file = flow_file
        self.kind = kind
        self.problems = problems
        # False when model.path is the .prompty file itself: only that file is deployed, so the
        # samples.json or requirements.txt beside it are not part of the flow.
        self.whole_folder = whole_folder
        self.doc: _Document | None = None

    def problem(self, path: tuple[Any, ...], message: str) -> None:
        assert self.doc is not None
        self.problems.append(Problem(self.doc.file, self.doc.line(path), ".".join(map(str, path)) or None, message))

    def read(self) -> FlowSpec | None:
        self.doc = self._prompty_document() if self.kind == "prompty" else self._yaml_document()
        if self.doc is None:
            return None
        inputs = self._inputs()
        outputs, chat_output = self._outputs()
        # A .prompty has none: prompt flow reads additional_includes from a flow YAML only.
        includes = _read_includes(self.doc, self.folder, self.problems) if self.kind != "prompty" else ()
        if self.kind == "dag":
            nodes = _check_dag(self.doc, self.folder, {i.name for i in inputs}, self.problems, includes)
        elif self.kind == "flex":
            nodes = self._flex_entry(includes)
        else:
            nodes = (FlowNode(self.file.stem, "prompty", self.file),)
        return FlowSpec(
            folder=self.folder, flow_file=self.flow_file, kind=self.kind, inputs=inputs, outputs=outputs,
            nodes=nodes, chat_output=chat_output, sample=self._sample(inputs), requirements=self._requirements(),
            includes=includes, links=_read_links(self.folder, self.file, self.problems) if self.whole_folder else (),
        )

    # -- the file

    def _yaml_document(self) -> _Document | None:
        text = _read_text(self.file, self.problems)
        if text is None:
            return None
        return self._document(text, first_line=1, what=f"{self.flow_file}")

    def _prompty_document(self) -> _Document | None:
        """The front matter of a .prompty: the YAML between a first line `---` and the next `---`."""
        text = _read_text(self.file, self.problems)
        if text is None:
            return None
        lines = text.splitlines(keepends=True)
        opening = next((i for i, line in enumerate(lines) if line.strip()), None)
        if opening is None or not _FENCE.fullmatch(lines[opening].strip()):
            self.problems.append(Problem(self.file, (opening or 0) + 1, "front matter", (
                "a .prompty starts with its front matter: a line `---`, the YAML with the model and the "
                "inputs, and another line `---`; the prompt template follows. Add the front matter at the top."
            )))
            return None
        closing = next((i for i in range(opening + 1, len(lines)) if _FENCE.fullmatch(lines[i].strip())), None)
        if closing is None:
            self.problems.append(Problem(self.file, opening + 1, "front matter", (
                f"the front matter opened by `---` on line {opening + 1} is never closed. Add a line `---` "
                "between the YAML and the prompt template."
            )))
            return None
        # Blank lines in front keep the YAML's line numbers those of the .prompty.
        front = "\n" * (opening + 1) + "".join(lines[opening + 1:closing])
        return self._document(front, first_line=opening + 2, what="the front matter")

    def _document(self, text: str, first_line: int, what: str) -> _Document | None:
        parsed = _parse(self.file, text, self.problems)
        if parsed is None:
            return None
        data, lines = parsed
        field = "front matter" if self.kind == "prompty" else None
        if not lines:
            self.problems.append(Problem(self.file, first_line, field, (
                f"{what} is empty. {_SHAPES[self.kind]}"
            )))
            return None
        if not isinstance(data, dict):
            self.problems.append(Problem(self.file, lines[()], field, (
                f"{what} is {_describe(data)}, but it must be a mapping of `key: value` lines. {_SHAPES[self.kind]}"
            )))
            return None
        return _Document(self.file, data, lines)

    # -- inputs and outputs

    def _inputs(self) -> tuple[FlowInput, ...]:
        assert self.doc is not None
        raw = self.doc.data.get("inputs")
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.problem(("inputs",), (
                f"expected a mapping of input names to their definitions, found {_describe(raw)}. "
                "Write e.g. `inputs: {question: {type: string}}`."
            ))
            return ()
        inputs = (self._input(name, definition) for name, definition in raw.items())
        return tuple(flow_input for flow_input in inputs if flow_input is not None)

    def _input(self, name: Any, definition: Any) -> FlowInput | None:
        where = ("inputs", name)
        if not isinstance(definition, dict):
            self.problem(where, (
                f"expected the input's definition as a mapping, found {_describe(definition)}. "
                f"Write e.g. `{name}: {{type: string, default: ...}}`."
            ))
            return None
        kind = definition.get("type", "string" if self.kind == "prompty" else None)
        if self.kind == "dag" and kind not in _VALUE_TYPES:
            found = "missing" if kind is None else f"{kind!r} is not a prompt flow type"
            self.problem(where + ("type",), (
                f"{found}. Write one of {', '.join(_VALUE_TYPES)}, e.g. `type: string`."
            ))
            return None
        is_chat_history = definition.get("is_chat_history")
        return FlowInput(
            name=str(name),
            type=str(kind),
            default=definition.get("default"),
            is_chat_input=definition.get("is_chat_input") is True,
            # prompt flow's rule: an input called chat_history is the history unless it says false.
            is_chat_history=is_chat_history is True or (name == _CHAT_HISTORY and is_chat_history is not False),
        )

    def _outputs(self) -> tuple[tuple[str, ...], str | None]:
        assert self.doc is not None
        raw = self.doc.data.get("outputs")
        if raw is None:
            return (), None
        if not isinstance(raw, dict):
            self.problem(("outputs",), (
                f"expected a mapping of output names to their definitions, found {_describe(raw)}. "
                "Write e.g. `outputs: {answer: {type: string, reference: ${my_node.output}}}`."
            ))
            return (), None
        chat_output = next((str(name) for name, definition in raw.items()
                            if isinstance(definition, dict) and definition.get("is_chat_output") is True), None)
        return tuple(str(name) for name in raw), chat_output

    # -- the flex entry

    def _flex_entry(self, includes: tuple[FlowInclude, ...]) -> tuple[FlowNode, ...]:
        assert self.doc is not None
        entry = self.doc.data.get("entry")
        if not isinstance(entry, str) or entry.count(":") != 1 or not all(entry.split(":")):
            found = "missing" if entry is None else f"{_describe(entry)} is not `module:function`"
            self.problem(("entry",), (
                f"{found}: a flex flow names the function or class it runs. Write e.g. `entry: flow:ChatFlow` "
                f"for the class ChatFlow in flow.py beside {self.flow_file}."
            ))
            return ()
        module, function = entry.split(":")
        relative = module.strip().replace(".", "/") + ".py"
        source = _provided(includes, relative) or _absolute(self.folder / relative)
        # A module that is not a file of the flow may come from an installed package.
        return (FlowNode(function.strip(), "flex", source if source.is_file() else None),)

    # -- beside the flow file

    def _sample(self, inputs: tuple[FlowInput, ...]) -> dict | None:
        """samples.json (its first sample), else the flow file's own `sample:`, else the inputs'
        defaults (an empty value of the input's type where there is none)."""
        assert self.doc is not None
        samples = self.folder / _SAMPLES_FILE
        if self.whole_folder and samples.is_file():
            found = _json_sample(samples, self.problems)
            if found is not None:
                return found
        own = self.doc.data.get("sample")
        if self.kind != "dag" and isinstance(own, dict):
            return own
        if not inputs:
            return None
        return {i.name: i.default if i.default is not None else _empty(i) for i in inputs}

    def _requirements(self) -> Path | None:
        assert self.doc is not None
        environment = self.doc.data.get("environment")
        named = environment.get("python_requirements_txt") if isinstance(environment, dict) else None
        if isinstance(named, str) and named.strip():
            path = _absolute(self.folder / named)
            if not path.is_file():
                self.problem(("environment", "python_requirements_txt"), (
                    f"{path} not found (python_requirements_txt {named!r} is relative to the flow folder "
                    f"{self.folder}). Fix the name, or remove the key to use {_REQUIREMENTS_FILE} if there is one."
                ))
                return None
            return path
        default = self.folder / _REQUIREMENTS_FILE
        return _absolute(default) if self.whole_folder and default.is_file() else None


_SHAPES = {
    "dag": "A flow.dag.yaml has `inputs:`, `outputs:` and `nodes:`.",
    "flex": "A flow.flex.yaml names its `entry: module:function` (and may have `inputs:` and `init:`).",
    "prompty": "The front matter holds the prompty's `model:` and `inputs:`.",
}


def _empty(flow_input: FlowInput) -> Any:
    if flow_input.is_chat_history:
        return []
    return _EMPTY.get(flow_input.type, "")


def _json_sample(file: Path, problems: list[Problem]) -> dict | None:
    """The first sample of samples.json (prompt flow's swagger takes a list; one mapping is
    accepted too), or None. A file that is not JSON breaks prompt flow's app: a problem."""
    text = _read_text(file, problems)
    if text is None:
        return None
    try:
        samples = json.loads(text)
    except json.JSONDecodeError as error:
        problems.append(Problem(file, error.lineno, None, (
            f"is not valid JSON ({error.msg} at column {error.colno}); prompt flow's app reads it for its "
            "swagger example. Fix the JSON: a list of input mappings, e.g. `[{\"question\": \"hi\"}]`."
        )))
        return None
    if isinstance(samples, list) and samples and isinstance(samples[0], dict):
        return samples[0]
    return samples if isinstance(samples, dict) else None
