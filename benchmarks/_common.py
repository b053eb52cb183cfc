"""Shared helpers for the benchmarks: processes that are always cleaned up, deadlines, statistics.

Every server a benchmark starts runs in its own session (process group), so stopping it ends its
reloader, workers and anything they forked, even when the benchmark is interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
SKLEARN_SAMPLE = REPO / "samples" / "sklearn-regression"


class BenchmarkError(Exception):
    """A benchmark cannot go on; the message says why."""


def _terminate_on_sigterm() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` runs and nothing is left behind."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)


_terminate_on_sigterm()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.01,
               alive: Callable[[], None] | None = None):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass.
    ``alive`` is called on every round and may raise, e.g. when the process being waited on died."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Server:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.command = command
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchmarkError(f"{self.name} exited with code {self.process.returncode} before it was ready; "
                                 f"last lines of {self.log_path}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the whole group, then SIGKILL to whatever is left of it."""
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        # Workers and reloader children may outlive the leader for a moment; end them too.
        deadline = time.monotonic() + grace
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait()
        self._log.close()


def answering(server: Server, base: str, what: str, timeout: float = 120) -> None:
    """Wait until the server just started at ``base`` answers GET / with 200 (it is ready); a
    server that dies or never answers is stopped, and the error says so."""
    import httpx

    def healthy() -> bool:
        try:
            return httpx.get(base + "/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, timeout, f"{what} to answer GET /", interval=0.05, alive=server.check_alive)
    except BaseException:
        server.stop()
        raise


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_stats(values: list[float]) -> dict:
    return {"n": len(values), "median": percentile(values, 50), "p90": percentile(values, 90),
            "min": min(values) if values else math.nan, "max": max(values) if values else math.nan}


def write_results(name: str, payload: dict, smoke: bool = False) -> str:
    """Write benchmarks/results/NAME.json; the line that says where. A smoke run's figures say
    nothing, so it only checks that they serialise, and keeps the last real run's file."""
    payload = {"benchmark": name, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
               **payload}
    text = json.dumps(payload, indent=2) + "\n"
    if smoke:
        return "results: not written (--smoke)"
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(text)
    return f"results: {path.relative_to(REPO)}"


SMOKE_HELP = ("one iteration of everything, no targets, no results file: checks in seconds that the benchmark "
              "still runs end to end, not its figures")


def parse_with_smoke(parser: argparse.ArgumentParser, **smoke) -> argparse.Namespace:
    """The command line, with --smoke added: it sets the options named in SMOKE to those values."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        if getattr(args, "check", False):
            parser.error("--smoke checks no targets: leave out --check")
        vars(args).update(smoke)
    return args


def targets_line(met: bool, smoke: bool) -> str:
    """How a summary ends: whether the targets were met, or that a smoke run does not say."""
    return "not checked (--smoke)" if smoke else "met" if met else "MISSED"


def model_dir_for(sample: Path, tmp: Path) -> Path:
    """An AZUREML_MODEL_DIR that contains the sample's model folder under its own name."""
    target = tmp / "azureml-models"
    target.mkdir(parents=True, exist_ok=True)
    link = target / "model"
    if not link.exists():
        link.symlink_to(sample / "model", target_is_directory=True)
    return target


def run_main(main: Callable[[], int]) -> None:
    """Run a benchmark's main(): its own errors as one line, Ctrl-C as an orderly stop."""
    try:
        sys.exit(main())
    except BenchmarkError as ex:
        print(f"error: {ex}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
