"""Prompt flow's own serving app, for a flow folder, as the reference the flow tests compare against.

``start_flow_reference(flow, workdir)`` runs this file as a subprocess that serves the folder the way
``pf flow serve`` does (promptflow-devkit's ``serve_python_flow``): ``PROMPTFLOW_PROJECT_PATH`` set to
the folder, the folder as working directory, ``promptflow.core._serving.app.create_app(engine=...)``,
and then werkzeug's threaded server (flask, what ``app.run`` uses) or uvicorn (fastapi). Two
differences from ``pf flow serve``, both because the devkit is not installed: connections come from
``connection_provider`` (the caller's list, or none) instead of the devkit's local store, and
``additional_includes`` are not resolved. It binds 127.0.0.1 on a free port and is ready once
``GET /health`` answers 200; stopping it ends its whole process group (a flex flow's signature is read
in a multiprocessing child, with a manager process beside it).

Prompt flow writes into the flow folder it serves (``.promptflow/``, a flex flow's ``flow.json``):
serve a copy of a sample, not the sample itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

# Set here, these would change what the app does; the caller passes what a test needs in ``env``.
_SCRUBBED_PREFIXES = ("PROMPTFLOW_", "PF_")
_SCRUBBED = ("AZUREML_MODEL_DIR", "PRT_CONFIG_OVERRIDE", "BUILD_INFO")

ENGINES = ("flask", "fastapi")
START_TIMEOUT = 60  # importing prompt flow takes 1-1.5 s warm; a cold start on a busy machine, far more

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FLOW_SAMPLES = ("flow-basic", "flow-chat", "flow-flex")

# What each sample answers, on prompt flow's app (either engine), for its sample-request.json with
# the deployment's environment_variables: the answers devtui must give too.
FLOW_BASIC_ANSWER = {"result": "hello flow hello flow hello flow", "words": 6}
FLOW_CHAT_ANSWER = {"answer": 'Question 2: "And how does it stream?". Before that you asked "What is devtui?".'}
FLOW_FLEX_ANSWER = {"message": "Bonjour, Ada!", "length": 13}

# A flow whose one node reads a custom connection, my_conn: "TEXT via BASE, key of N", BASE from its
# configs and N the length of its `key` secret. Its files by name.
CONNECTED_FLOW = {
    "flow.dag.yaml": """\
inputs:
  text:
    type: string
outputs:
  out:
    type: string
    reference: ${peek.output}
nodes:
- name: peek
  type: python
  source:
    type: code
    path: peek.py
  inputs:
    text: ${inputs.text}
    conn: my_conn
""",
    "peek.py": """\
from promptflow.connections import CustomConnection
from promptflow.core import tool


@tool
def peek(text: str, conn: CustomConnection) -> str:
    return f"{text} via {conn.configs['base']}, key of {len(conn.secrets['key'])}"
""",
}


def copy_sample(name: str, into: Path) -> Path:
    """A copy of samples/<name> under ``into`` (prompt flow writes into the flow it serves): its folder."""
    target = into / name
    shutil.copytree(SAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__", ".promptflow"))
    return target


def deployment_env(sample: Path) -> dict[str, str]:
    """The ``environment_variables`` of a sample's deployment.yml, as the app's environment gets them."""
    import yaml

    document = yaml.safe_load((sample / "deployment.yml").read_text(encoding="utf-8"))
    return {key: str(value) for key, value in (document.get("environment_variables") or {}).items()}


def start_flow_reference(flow: Path, workdir: Path, *, engine: str = "flask", env: dict[str, str] | None = None,
                         connections: list[dict] | None = None, name: str = "pf-reference",
                         timeout: float = START_TIMEOUT):
    """Serve ``flow`` (a folder holding flow.dag.yaml, flow.flex.yaml or one .prompty) with prompt flow's
    app and return the ready server: ``.url``, ``.output()``, ``.stop()``, and a context manager.
    ``env`` is added to the app's environment (the deployment's ``environment_variables``, say);
    ``connections`` are dicts in prompt flow's connection YAML shape (``name``, ``type``, ``configs``,
    ``secrets``) or its executor's (``name``, ``type: CustomConnection``, ``value``, ``secret_keys``),
    handed to the app through ``connection_provider``. The log is ``workdir/<name>.log``."""
    from contract_servers import start_server
    from helpers import free_port

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    flow = Path(flow).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--flow", str(flow), "--engine", engine,
               "--port", str(port)]
    if connections is not None:
        # A file, not an argument: connections hold secrets, and a command line is visible to all.
        connections_file = workdir / f"{name}-connections.json"
        connections_file.write_text(json.dumps(connections), encoding="utf-8")
        command += ["--connections", str(connections_file)]
    return start_server(name, command, reference_env(env), flow, port, workdir / f"{name}.log",
                        ready_path="/health", timeout=timeout)


def reference_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)}
    environment["PYTHONUNBUFFERED"] = "1"
    return {**environment, **(extra or {})}


# -- the server process ---------------------------------------------------------------------------


def load_connections(path: Path | None) -> list:
    """Prompt flow connection objects from a JSON list of dicts (see start_flow_reference)."""
    if path is None:
        return []
    from promptflow.core._connection import CustomConnection, _Connection

    # promptflow-core 1.18.5's FlowInvoker calls item.to_execution_connection_dict() on what a
    # connection_provider callable returns, a method only the devkit's connection entities have
    # (core's is _to_execution_connection_dict): without this, any connection fails the app's start.
    if not hasattr(_Connection, "to_execution_connection_dict"):
        _Connection.to_execution_connection_dict = _Connection._to_execution_connection_dict

    connections = []
    for data in json.loads(path.read_text(encoding="utf-8")):
        if "value" in data:  # the executor's shape
            connections.append(_Connection._from_execution_connection_dict(data["name"], data))
            continue
        wanted = str(data.get("type", "custom")).replace("_", "").lower()
        type_class = next((cls for key, cls in _Connection.SUPPORTED_TYPES.items() if key.lower() == wanted), None)
        if type_class is None:
            raise SystemExit(f"connection {data.get('name')!r}: unknown type {data.get('type')!r}")
        configs, secrets = data.get("configs") or {}, data.get("secrets") or {}
        if type_class is CustomConnection:
            connections.append(CustomConnection(name=data["name"], configs=configs, secrets=secrets))
        else:
            connections.append(type_class(name=data["name"], **configs, **secrets))
    return connections


def serve(flow: Path, engine: str, port: int, connections: list) -> None:
    # What serve_python_flow does before create_app: the project path, and the folder as cwd.
    os.environ["PROMPTFLOW_PROJECT_PATH"] = flow.as_posix()
    os.chdir(flow)
    from promptflow.core._serving.app import create_app

    app = create_app(engine=engine, connection_provider=lambda: connections)
    if engine == "flask":
        from werkzeug.serving import make_server

        make_server("127.0.0.1", port, app, threaded=True).serve_forever()
    else:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a flow folder with prompt flow's own serving app.")
    parser.add_argument("--flow", type=Path, required=True)
    parser.add_argument("--engine", choices=ENGINES, default="flask")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=Path)
    args = parser.parse_args(argv)
    serve(args.flow.resolve(), args.engine, args.port, load_connections(args.connections))


if __name__ == "__main__":
    # Run as a script, this folder (tests/) heads sys.path: the flow's modules must not see it.
    del sys.path[0]
    main()
