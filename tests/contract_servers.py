"""Scoring-server processes for the side-by-side contract tests.

Starts a server (ours, ``python -m inference_server``, or the reference ``azmlinfsrv``; flow_reference.py
starts prompt flow's with it too) with a given command, environment and working folder, waits for
``GET /`` (or another readiness path) to answer 200 by polling with a deadline, captures its output to a file, and stops it (terminate, wait, kill) so nothing is left
running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from helpers import Timeout, free_port, wait_for

START_TIMEOUT = 30
STOP_TIMEOUT = 10

# Environment that would change what either server does; the tests set what they need.
_SCRUBBED = ("AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR", "AML_APP_ROOT", "AZUREML_SOURCE_DIRECTORY",
             "HTTP_X_MS_SERVER_VERSION", "AZUREML_SERVER_VERSION_ENABLED", "SCORING_TIMEOUT_MS",
             "WORKER_COUNT", "AML_CORS_ORIGINS", "AZUREML_LOG_LEVEL", "AML_APP_INSIGHTS_ENABLED",
             "AML_APP_INSIGHTS_KEY", "SERVICE_NAME", "SERVICE_VERSION", "SERVICE_PATH_PREFIX",
             "AZUREML_CONFIG_FILE", "AZUREML_INFERENCE_HOST")

# The azureml.contrib.services import paths, for the reference server only: it knows just
# azureml_inference_server_http.api.*, while cloud images also ship these modules.
_SHIM = {
    "azureml/__init__.py": "",
    "azureml/contrib/__init__.py": "",
    "azureml/contrib/services/__init__.py": "",
    "azureml/contrib/services/aml_request.py":
        "from azureml_inference_server_http.api.aml_request import *  # noqa: F401,F403\n"
        "from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp  # noqa: F401\n",
    "azureml/contrib/services/aml_response.py":
        "from azureml_inference_server_http.api.aml_response import *  # noqa: F401,F403\n"
        "from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa: F401\n",
}


class ServerExited(AssertionError):
    pass


@dataclass
class ServerProcess:
    name: str
    command: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen
    log_file: object = field(repr=False)
    ready_path: str = "/"

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self.log_file.closed:  # still running; after stop() the log is complete
            self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll ``GET <ready_path>`` until it answers 200; fail at once if the process exits first."""

        def ready():
            if self.process.poll() is not None:
                return "exited"
            return "ready" if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200 else None

        try:
            state = wait_for(ready, timeout=timeout, interval=0.05,
                             message=f"{self.name} to answer GET {self.ready_path}")
        except Timeout as ex:
            raise Timeout(f"{ex}\n--- {self.name} output ---\n{self.output()}") from None
        if state == "exited":
            raise ServerExited(f"{self.name} exited with code {self.process.returncode} before it was ready:\n"
                               f"{self.output()}")

    def stop(self) -> None:
        """Terminate, wait, kill: the server and everything in its process group."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_TIMEOUT)
            # Workers (gunicorn's, ours) live in the group the server leads; none may outlive it.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        finally:
            self.log_file.close()


def start_server(name: str, command: list[str], env: dict[str, str], cwd: Path | str, port: int,
                 log_path: Path, wait: bool = True, ready_path: str = "/",
                 timeout: float = START_TIMEOUT) -> ServerProcess:
    log_file = open(log_path, "wb")
    process = subprocess.Popen(command, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=log_file,
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = ServerProcess(name, command, port, log_path, process, log_file, ready_path)
    if wait:
        try:
            server.wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
    return server


def base_env(script: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["AML_APP_ROOT"] = str(script.parent)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep tests/contract_scripts free of __pycache__
    return env


def ours_command(script: Path, model_dir: Path | None, port: int, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "inference_server", "--entry_script", str(script), "--port", str(port)]
    if model_dir is not None:
        command += ["--model_dir", str(model_dir)]
    return command + list(extra)


def reference_executable() -> Path:
    return Path(sys.executable).parent / "azmlinfsrv"


def reference_command(script: Path, model_dir: Path | None, port: int) -> list[str]:
    command = [str(reference_executable()), "--entry_script", str(script), "--port", str(port)]
    if model_dir is not None:
        command += ["--model_dir", str(model_dir)]
    return command


def write_shim(folder: Path) -> Path:
    for relative, text in _SHIM.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def start_ours(script: Path, model_dir: Path | None, workdir: Path, *extra: str, name: str = "ours",
               wait: bool = True) -> ServerProcess:
    port = free_port()
    env = base_env(script)
    env.pop("PYTHONPATH", None)  # ours must resolve azureml.contrib.services by itself
    return start_server(name, ours_command(script, model_dir, port, *extra), env, script.parent, port,
                        workdir / f"{name}.log", wait=wait)


def start_reference(script: Path, model_dir: Path | None, workdir: Path, name: str = "reference",
                    wait: bool = True) -> ServerProcess:
    port = free_port()
    env = base_env(script)
    shim = write_shim(workdir / "shim")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
    # gunicorn's control socket defaults to ~/.gunicorn/gunicorn.ctl: one per server instead.
    runtime = workdir / "runtime"
    runtime.mkdir(exist_ok=True)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return start_server(name, reference_command(script, model_dir, port), env, script.parent, port,
                        workdir / f"{name}.log", wait=wait)


def run_to_exit(command: list[str], env: dict[str, str], cwd: Path | str,
                timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a server that is expected to stop by itself (a failing init()); kill it at the deadline."""
    process = subprocess.Popen(command, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"{command} did not exit within {timeout}s:\n{out.decode(errors='replace')}") from None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return subprocess.CompletedProcess(command, process.returncode, out.decode("utf-8", errors="replace"))


def start_pair(script: Path, model_dir: Path | None, workdir: Path) -> tuple[ServerProcess, ServerProcess]:
    """Ours and the reference on the same script, started together; both ready, or both stopped."""
    started: list[ServerProcess] = []
    try:
        started.append(start_ours(script, model_dir, workdir, wait=False))
        started.append(start_reference(script, model_dir, workdir, wait=False))
        for server in started:
            server.wait_ready()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started[0], started[1]
