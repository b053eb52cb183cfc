"""A flow's connections, resolved locally the way a deployed endpoint resolves them.

In the cloud, prompt flow's serving takes connections from the workspace, and a deployment
overrides one with an environment variable named after it (spaces as underscores): its value is
either another connection's name, or the connection itself as JSON. Locally there is no
workspace: the connections come from a file the user names (``devtui up --connections FILE``,
passed on as ``DEVTUI_FLOW_CONNECTIONS``) in prompt flow's connection YAML format, one connection
or a list (or several YAML documents)::

    name: my_llm
    type: azure_open_ai          # or open_ai, custom, serp, ...
    api_key: ...
    api_base: https://...

    name: my_custom
    type: custom
    configs: {endpoint: https://...}
    secrets: {key: ...}

``{CONNECTION}_{KEY}`` variables then override single keys; prompt flow's invoker applies those.
A connection the flow uses that none of these provide is an error naming it, the nodes that use
it, and how to provide it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

FILE_VARIABLE = "DEVTUI_FLOW_CONNECTIONS"
FLOW_FILES = ("flow.dag.yaml", "flow.dag.yml")


class ConnectionError_(Exception):
    """A connection cannot be resolved; the message says which, where it is used, and what to do."""


def read_file(path: str) -> dict[str, dict]:
    """name -> the connection's mapping, from a connections file."""
    with open(path, encoding="utf-8") as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    entries = []
    for document in documents:
        entries.extend(document if isinstance(document, list) else [document])
    connections = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConnectionError_(f"{path}: every connection needs a `name:` and a `type:` (prompt flow's "
                                   "connection YAML format)")
        connections[entry["name"]] = entry
    return connections


def build(name: str, data: dict):
    """Prompt flow's connection object for one mapping in its YAML format."""
    from promptflow.core._connection import CustomConnection, _Connection

    wanted = str(data.get("type", "")).replace("_", "").replace("-", "").lower()
    kinds = {key.lower(): cls for key, cls in _Connection.SUPPORTED_TYPES.items()}
    cls = kinds.get(wanted) or kinds.get(wanted.removesuffix("connection"))
    if cls is None:
        known = ", ".join(sorted(k for k in _Connection.SUPPORTED_TYPES if not k.startswith("_")))
        raise ConnectionError_(f"connection {name!r} has type {data.get('type')!r}, which prompt flow does not "
                               f"know; use one of: {known}")
    if cls is CustomConnection:
        return CustomConnection(name=name, configs=dict(data.get("configs") or {}),
                                secrets=dict(data.get("secrets") or {}))
    fields = {k: v for k, v in data.items() if k not in {"name", "type", "$schema", "module"}}
    try:
        return cls(name=name, **fields)
    except TypeError as ex:
        raise ConnectionError_(f"connection {name!r} ({data.get('type')}): {ex}") from None


def _from_json(name: str, value: dict):
    """An environment variable's JSON: prompt flow's YAML shape, or the workspace's (the shape the
    cloud's own override takes)."""
    if "type" in value:
        return build(name, value)
    from promptflow.core._connection import _Connection
    from promptflow.core._connection_provider._workspace_connection_provider import WorkspaceConnectionProvider

    try:
        execution = WorkspaceConnectionProvider._convert_to_connection_dict(name, value)
        return _Connection._from_execution_connection_dict(name, execution)
    except Exception as ex:  # prompt flow raises several kinds; all mean the same to the user
        raise ConnectionError_(f"the environment variable {name} does not hold a connection prompt flow can "
                               f"read ({ex}); give its `type:` and fields as JSON, or another connection's name")


def uses(flow_dir: str) -> dict[str, list[str]]:
    """connection name -> the nodes that use it, for a DAG flow (flex flows and prompty files name
    their connections in code or front matter: every connection in the file is offered to them)."""
    flow_file = next((f for f in FLOW_FILES if os.path.exists(os.path.join(flow_dir, f))), None)
    if flow_file is None:
        return {}
    from promptflow.contracts.flow import Flow

    flow = Flow.from_yaml(Path(flow_file), working_dir=Path(flow_dir))
    found: dict[str, list[str]] = {}
    for node in flow.nodes:
        names = {node.connection} if node.connection else set()
        if not names:
            for key in flow.get_connection_input_names_for_node(node.name):
                assignment = node.inputs.get(key)
                if assignment is not None and isinstance(assignment.value, str):
                    names.add(assignment.value)
        for name in names:
            found.setdefault(name, []).append(node.name)
    return found


def resolve(flow_dir: str, environ=os.environ) -> list:
    """Every connection the flow may use, as prompt flow's connection objects."""
    path = environ.get(FILE_VARIABLE)
    available = {}
    for file in filter(None, (path or "").split(os.pathsep)):
        available.update(read_file(file))
    resolved = {}
    needed = uses(flow_dir)
    for name in sorted(set(needed) | set(available)):
        override = environ.get(name.replace(" ", "_"))
        if override is not None:
            try:
                value = json.loads(override)
            except ValueError:
                value = None
            if isinstance(value, dict):
                resolved[name] = _from_json(name, value)
                continue
            if override not in available:
                raise ConnectionError_(_missing(override, needed.get(name, []), path, because=f"{name} names it"))
            resolved[name] = build(name, available[override])
        elif name in available:
            resolved[name] = build(name, available[name])
        else:
            raise ConnectionError_(_missing(name, needed[name], path))
    return list(resolved.values())


def _missing(name: str, nodes: list[str], path: str | None, because: str = "") -> str:
    where = f"node{'s' if len(nodes) > 1 else ''} {', '.join(nodes)}" if nodes else "the flow"
    files = ", ".join(filter(None, (path or "").split(os.pathsep)))
    source = f"it is not in {files}" if files else "no connections file was given"
    why = f" ({because})" if because else ""
    return (f"connection {name!r}{why}, used by {where}, cannot be resolved: {source}. Provide it in a "
            f"connections file in prompt flow's YAML format (devtui up --connections FILE), or set the "
            f"deployment's environment variable {name.replace(' ', '_')} to another connection's name or to "
            "the connection as JSON.")


def provider(flow_dir: str):
    """What prompt flow's serving app takes as ``connection_provider``: a callable returning the
    connections. Resolved now, so a missing connection fails the worker with its message."""
    connections = resolve(flow_dir)
    for connection in connections:
        # promptflow-core 1.18.5's invoker calls to_execution_connection_dict(), which only the
        # devkit's connection classes define; core's own is the underscored one.
        if not hasattr(connection, "to_execution_connection_dict"):
            connection.to_execution_connection_dict = connection._to_execution_connection_dict
    return lambda: list(connections)
