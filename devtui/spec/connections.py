"""A prompt flow's connection files (``--connections FILE``), checked before anything starts.

Each file holds one connection in prompt flow's connection YAML format: ``name``, ``type``
(``custom``, ``azure_open_ai``, ``open_ai``, ...) and its keys (``configs``/``secrets`` for a custom
one). The scoring server reads them (``inference_server/flow_connections.py``); here only their
shape is checked, so a typo is a message with file and line, not a failed worker; and their secret
values are listed, so the logs never show them (``devtui.scrub``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..masking import hidden_in
from .problems import Problem, SpecError
from .yaml_limits import MAX_BYTES, BoundedLoader, Refused, check_expansion
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


def connection_secrets(files: list[Path] | tuple[Path, ...]) -> list[str]:
    """The secret values the files hold: a custom connection's ``secrets``, and every value under a
    key that looks secret (``api_key``, ...), as ``show`` masks them. Read as the server reads them
    (one connection, a list, or several YAML documents); what cannot be read holds none (the server
    says why it cannot read it)."""
    return [secret for file in files for document in connection_documents(file) or [] for secret in hidden_in(document)]


def connection_documents(file: Path) -> list | None:
    """The YAML documents of one connection file, read with the same bounds as the spec's YAML;
    None when it cannot be read now (missing, too large, being written, not YAML)."""
    try:
        if file.stat().st_size > MAX_BYTES:
            return None
        loader = BoundedLoader(file.read_text(encoding="utf-8"))
        documents = []
        try:
            while loader.check_node():
                node = loader.get_node()
                check_expansion(node)  # before anything walks what its aliases expand to
                documents.append(loader.construct_document(node))
        finally:
            loader.dispose()
        return documents
    except (OSError, UnicodeError, yaml.YAMLError, Refused):
        return None
