"""reload.py --case flow: a copy of samples/flow-basic, a save of one of its node files, and the
reference: prompt flow's own serving app, stopped and started again in a new process for each save.

Each save rewrites the node `repeat.py` so that the flow's `result` output ends with `[save N]`.
The reference is what a user of `pf flow serve` without reload does after a save: stop the server
and start it again, on the same port, until the first answer shows the edit. It runs
tests/flow_reference.py as a script, which serves the folder as `pf flow serve` does (promptflow-devkit,
which has `pf`, is not installed here): promptflow-core's `create_app` served by werkzeug's threaded
server for flask, uvicorn for fastapi, as the deployment's PROMPTFLOW_SERVING_ENGINE says. The clock
runs from the write: stopping the old server is part of a restart, a person's keystrokes are not.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import time
from pathlib import Path

from _common import REPO, Server

FLOW_SAMPLE = REPO / "samples" / "flow-basic"
ENDPOINT = "flow-basic-endpoint"  # samples/flow-basic/endpoint.yml
EDITED = "flow/repeat.py"
# The node's last line, which each save rewrites to carry the save number.
RETURN_LINE = '    return " ".join([text] * count)\n'
SAVED = re.compile(r" \[save (\d+)\]$")


def node_text(template: str, save: int) -> str:
    return template.replace(RETURN_LINE, f'    return " ".join([text] * count) + " [save {save}]"\n')


def saved(data) -> int | None:
    """The save an answer of the flow reflects: its `result` ends with "[save N]"."""
    result = data.get("result") if isinstance(data, dict) else None
    match = SAVED.search(result) if isinstance(result, str) else None
    return int(match[1]) if match else None


def make_copy(folder: Path) -> None:
    """A copy of the sample: prompt flow writes .promptflow/ into the flow folder it serves."""
    shutil.copytree(FLOW_SAMPLE, folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".promptflow"))


def _flow_reference():
    """tests/flow_reference.py, the one description of how prompt flow's app is started for a flow."""
    path = REPO / "tests" / "flow_reference.py"
    spec = importlib.util.spec_from_file_location("flow_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RestartedApp:
    """Prompt flow's serving app for a copy of the sample, started again in a new process on every
    save (the same port, so the client's URL holds)."""

    def __init__(self, deployment: Path, work: Path, port: int, bytecode: bool = True):
        reference = _flow_reference()
        env = reference.reference_env(reference.deployment_env(deployment))
        if bytecode:  # as on a developer's machine, like the devtui side (reload.server_environment)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env = env
        self.command = [sys.executable, reference.__file__, "--flow", str(deployment / "flow"), "--engine",
                        env.get("PROMPTFLOW_SERVING_ENGINE", "flask"), "--port", str(port)]
        self.work = work
        self.starts = 0
        self.server: Server | None = None

    def start(self) -> None:
        self.starts += 1
        self.server = Server("prompt flow's app", self.command, self.work / f"pf-restart-{self.starts}.log",
                             env=self.env, cwd=self.work)

    def restart(self) -> dict:
        """Stop the running app (its whole process group) and start a new one; what stopping took."""
        started = time.perf_counter()
        self.stop()
        stopped = time.perf_counter()
        self.start()
        return {"stop_ms": round((stopped - started) * 1000, 1)}

    def check_alive(self) -> None:
        if self.server is not None:
            self.server.check_alive()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
