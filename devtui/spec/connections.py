"""A prompt flow's connection files (``--connections FILE``), checked before anything starts.

Each file holds one connection in prompt flow's connection YAML format: ``name``, ``type``
(``custom``, ``azure_open_ai``, ``open_ai``, ...) and its keys (``configs``/``secrets`` for a custom
one). The scoring server reads them (``inference_server/flow_connections.py``); here only their
shape is checked, so a typo is a message with file and line, not a failed worker."""

from __future__ import annotations

from pathlib import Path

from .problems import Problem, SpecError
from .yaml_lines import _read_yaml


def check_connections(files: list[Path] | tuple[Path, ...], flow: bool) -> list[str]:
    """The names the files define; raises SpecError naming file, line and field. ``flow``: the
    deployment is a prompt flow (the only kind that has connections)."""
    problems: list[Problem] = []
    names: list[str] = []
    for file in files:
        if not flow:
            problems.append(Problem(file, None, "--connections", (
                "connections are for prompt flow deployments (a model folder with flow.dag.yaml, flow.flex.yaml "
                "or a .prompty); this deployment runs a scoring script. Remove --connections.")))
            continue
        doc = _read_yaml(file, problems)
        if doc is None:
            continue
        for key in ("name", "type"):
            if not isinstance(doc.data.get(key), str) or not doc.data[key].strip():
                problems.append(Problem(file, doc.line((key,)), key, (
                    f"missing: a connection file in prompt flow's format needs `{key}:` "
                    "(for example `name: my_connection` and `type: custom`)")))
        for key in ("configs", "secrets"):
            if key in doc.data and not isinstance(doc.data[key], dict):
                problems.append(Problem(file, doc.line((key,)), key, "must be a mapping of `key: value` lines"))
        if isinstance(doc.data.get("name"), str):
            if doc.data["name"] in names:
                problems.append(Problem(file, doc.line(("name",)), "name",
                                        f"{doc.data['name']!r} is defined by an earlier --connections file too"))
            names.append(doc.data["name"])
    if problems:
        raise SpecError(problems)
    return names
