"""What the test modules share, in one place: polling with a deadline, the `devtui` CLI as a
subprocess, editor-style saves, process checks, names unique to this test run, the app
without a deployment, and an ASGI client that hangs up mid-answer. Fixtures live in conftest.py; a test module imports this, never another
test module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# What the sklearn sample answers for its sample-request.json (both runtimes, and the reference).
SKLEARN_PREDICTIONS = [199.85, 74.01]
# One row in the shape the sklearn sample's run() takes.
ONE_ROW_REQUEST = '{"data": [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, -0.00, 0.02, -0.02]]}'

T = TypeVar("T")


# -- waiting --------------------------------------------------------------------------------------


class Timeout(AssertionError):
    pass


def wait_for(condition: Callable[[], T], timeout: float = 30, interval: float = 0.02, message: str = "") -> T:
    """Call ``condition`` until it returns something truthy; return that, or fail at the deadline.

    Between two calls it waits ``interval``, or as long as the last call took if that is longer:
    a condition that starts a process (a `devtui show`) then takes at most half a core, and leaves
    the rest to what the test waits for."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        asked = time.monotonic()
        try:
            value = condition()
        except Exception as ex:  # not ready yet (connection refused, file missing, ...)
            last_error = ex
        else:
            if value:
                return value
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(max(interval, now - asked), deadline - now))  # and a last try at the deadline
    raise Timeout(f"timed out after {timeout}s waiting for {message or condition}"
                  + (f" (last error: {last_error!r})" if last_error else ""))


async def async_wait_for(condition: Callable[[], T], timeout: float = 30, interval: float = 0.02,
                         message: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(interval)
    raise Timeout(f"timed out after {timeout}s waiting for {message or condition}")


# -- the app under a Pilot -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(app, size: tuple[int, int] = (140, 40)):
    """``app.run_test()``, and the engine stopped afterwards even when the test fails midway."""
    try:
        async with app.run_test(size=size) as pilot:
            yield pilot
    finally:
        if not app.engine.stopped:
            await app.engine.stop()


# Between two checks of until()'s condition: a Pilot's pause() waits for every widget to process
# its messages and then updates the whole screen, so pausing without a delay, over and over while
# a server starts, spent more CPU than the app itself (make test is CPU-bound on 2 cores).
UNTIL_INTERVAL = 0.03


async def until(pilot, condition: Callable[[], T], timeout: float = 30, message: str = "") -> T:
    """Let the app run until ``condition()`` is truthy; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(UNTIL_INTERVAL)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")


def run_async(coroutine, timeout: float = 120):
    """Run a test's async scenario to its end, or fail at the deadline."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def free_port() -> int:
    """A port free now on 127.0.0.1, from below the kernel's ephemeral range: ports the kernel
    and Docker hand out on their own (connections, `-p 127.0.0.1::PORT`, other test runs' servers
    on port 0) come from that range, so none of them takes this one before the test uses it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = random.sample(range(10000, low), min(200, low - 10000)) if low > 10200 else []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- an ASGI client that hangs up -----------------------------------------------------------------


class HangingUpClient:
    """One request to an ASGI app, from a client that leaves mid-answer: the app gets the request,
    then ``http.disconnect`` once :meth:`hang_up` is called; what the app sent is in ``sent``."""

    def __init__(self, method: str = "POST", body: bytes = b"", headers: Sequence[tuple[bytes, bytes]] = ()):
        self.sent: list[dict] = []
        self.hung_up = asyncio.Event()
        self.requests = [{"type": "http.request", "body": body, "more_body": False}]
        self.scope = {"type": "http", "method": method, "path": "/score", "query_string": b"", "root_path": "",
                      "headers": list(headers), "http_version": "1.1", "scheme": "http"}

    async def receive(self) -> dict:
        if self.requests:
            return self.requests.pop(0)
        await self.hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def hang_up(self) -> None:
        self.hung_up.set()

    def request(self, app) -> asyncio.Future:
        """The request to APP, running."""
        return asyncio.ensure_future(app(self.scope, self.receive, self.send))


# -- files ----------------------------------------------------------------------------------------


def save(path: Path, text: str) -> None:
    """Save the way editors do: write a temporary file beside it, then rename it over."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# -- processes ------------------------------------------------------------------------------------


def devtui_command() -> list[str]:
    return [sys.executable, "-m", "devtui"]


def devtui(*args: str, check: int | None = 0, timeout: float = 300, cwd: Path | str = ROOT,
           env: dict[str, str] | None = None, inside: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in ``cwd`` with ``env`` added to this environment (and under
    ``inside``, a command such as nsenter that runs the rest): the exit code is checked (unless
    ``check`` is None), and devtui's own traceback never reaches the terminal (the user's script's
    may)."""
    result = subprocess.run([*inside, *devtui_command(), *args], capture_output=True, text=True, timeout=timeout,
                            cwd=cwd, env={**os.environ, **(env or {})})
    if check is not None:
        assert result.returncode == check, (f"devtui {' '.join(args)}: exit {result.returncode}\n"
                                            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    assert not re.search(r'File "[^"]*/(devtui|inference_server)/', result.stderr), result.stderr
    return result


def show(name: str, **options) -> dict:
    """`devtui show -n NAME`, read; ``options`` as for devtui()."""
    return json.loads(devtui("show", "-n", name, **options).stdout)


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (via /proc), to prove nothing is left running."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- names unique to the run ----------------------------------------------------------------------

# Azure's rule for endpoint names (devtui/spec checks the same): 3-32 letters, digits and hyphens,
# starting with a letter and not ending with a hyphen. Lowercase, since Docker names and image
# tags built from it must be.
_ENDPOINT_NAME = re.compile(r"^[a-z](?:[-a-z0-9]*[a-z0-9])?$")


def new_run_id() -> str:
    """Short, lowercase, starts with a letter: this process's id and a random part, so two runs
    started together on one machine (or one engine) never share it."""
    return f"t{os.getpid():x}{secrets.token_hex(2)}"


def unique_name(run_id: str, name: str) -> str:
    """``name`` under this run's prefix, as an endpoint name (and so container, volume and image
    names derived from it) no other run uses."""
    unique = f"{run_id}-{name}"
    assert 3 <= len(unique) <= 32 and _ENDPOINT_NAME.match(unique), f"{unique!r} is not a valid endpoint name"
    return unique


# -- the app --------------------------------------------------------------------------------------


def __getattr__(name: str):
    """``QuietApp``, made on first use: importing this module must not import devtui's app (conftest
    imports it, and a test of one part of devtui runs while another part is being edited)."""
    if name != "QuietApp":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from devtui.tui import app as app_module
    from devtui.tui.app import DevtuiApp

    class QuietApp(DevtuiApp):
        """The app without a deployment: no server starts, the test feeds the events."""

        CSS_PATH = Path(app_module.__file__).with_name("app.tcss")  # relative paths follow the subclass

        def deploy(self) -> None:
            pass

    QuietApp.__qualname__ = "QuietApp"
    globals()["QuietApp"] = QuietApp
    return QuietApp


def read_until(process: subprocess.Popen, text: str, timeout: float = 240, seen: list[str] | None = None) -> list[str]:
    """Read ``process``'s stdout (text mode) line by line until a line holds ``text``; the lines
    read, or a failure naming them when the deadline passes or the process ends first."""
    lines = [] if seen is None else seen

    def found() -> bool:
        line = process.stdout.readline()
        lines.append(line)
        assert line or process.poll() is None, "".join(lines)
        return text in line

    wait_for(found, timeout=timeout, message=repr(text))
    return lines


def write_deployment(folder: Path, deployment_yaml: str, **code: str) -> Path:
    """A deployment in ``folder``: deployment.yml, and each ``code`` file (name=text) in ./code."""
    (folder / "code").mkdir(parents=True)
    for name, text in code.items():
        (folder / "code" / f"{name}.py").write_text(text)
    (folder / "deployment.yml").write_text(deployment_yaml)
    return folder
