"""The benchmarks still run end to end: each script under benchmarks/ with --smoke (one iteration
of everything, no targets, no results file), as a person runs it, exits 0 and prints its summary
with the ratios. The figures themselves are not checked: one save or one second of load on a
machine running the test suite says nothing about them.
"""

from __future__ import annotations

import re
import os
import shutil
import signal
import subprocess
import sys

import pytest

from helpers import ROOT

BENCHMARKS = ROOT / "benchmarks"
# A smoke run takes seconds to a minute on a loaded 2-core machine; a hung one is stopped here,
# well before pytest's own timeout, so that it can stop what it started.
DEADLINE_S = 240
# A smoke run's summary ends "not checked (--smoke)" where a real one says whether the targets were met.
SMOKE_LINES = (r"not checked \(--smoke\)$", r"^results: not written \(--smoke\)$")
NUMBER = r"\d+(?:\.\d+)?"


def smoke(script: str, *args: str) -> str:
    """Run benchmarks/SCRIPT --smoke ARGS; what it printed, once it exited 0."""
    command = [sys.executable, str(BENCHMARKS / script), "--smoke", *args]
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        # SIGTERM unwinds the benchmark like Ctrl-C (benchmarks/_common.py), so it stops its servers.
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        pytest.fail(f"{' '.join(command[1:])} took over {DEADLINE_S} s:\n{out[-3000:]}\n{err[-3000:]}")
    assert process.returncode == 0, \
        f"{' '.join(command[1:])} exited with code {process.returncode}:\n{out[-3000:]}\n{err[-3000:]}"
    assert "MISSED" not in out, f"a save was not answered in time:\n{out}"
    return out


def assert_printed(out: str, *patterns: str) -> None:
    for pattern in (*patterns, *SMOKE_LINES):
        assert re.search(pattern, out, re.M), f"no line matches {pattern!r} in:\n{out}"


@pytest.mark.parametrize(
    ("args", "ratios"),
    [
        pytest.param((), (rf"^patch vs uvicorn --reload: {NUMBER}x faster", rf"^patch vs a cold restart: {NUMBER}x faster",
                          rf"^swap: median .* = {NUMBER}x the median"), id="sklearn"),
        # The heavy case differs from sklearn only in its sample; sklearn's run covers the other tools.
        pytest.param(("--case", "heavy", "--tools", "devtui,uvicorn"),
                     (rf"^patch vs uvicorn --reload: {NUMBER}x faster",), id="heavy"),
        pytest.param(("--case", "flow"), (rf"^flow vs restarting prompt flow's app: {NUMBER}x faster",), id="flow"),
    ],
)
def test_reload(args: tuple[str, ...], ratios: tuple[str, ...]) -> None:
    assert_printed(smoke("reload.py", *args), *ratios)


def test_throughput() -> None:
    if shutil.which("wrk") is None:  # CI installs it (.ci/run): there a missing wrk is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("wrk is not installed (apt-get install wrk)")
    out = smoke("throughput.py")
    assert_printed(out, rf"^throughput: echo {NUMBER}x azmlinfsrv .*, devtui up {NUMBER}x azmlinfsrv .*"
                        rf"sklearn {NUMBER}x azmlinfsrv .*, devtui up {NUMBER}x azmlinfsrv")


def test_traces() -> None:
    if shutil.which("wrk") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("wrk is not installed (apt-get install wrk)")
    out = smoke("traces.py")
    assert_printed(out, rf"^traces: echo -?{NUMBER}% of throughput .*, sklearn -?{NUMBER}% of throughput .*, "
                        rf"flow -?{NUMBER}% of throughput, [+-]{NUMBER} ms at p99 \(the price, not a target\)")


def test_container(endpoint) -> None:
    """Under a name unique to this run; the endpoint fixture checks that nothing of it is left."""
    out = smoke("container.py", "--name", endpoint("bench"))
    assert_printed(out, rf"^container: up to Succeeded median {NUMBER} s .*reload median {NUMBER} ms")


def test_mlflow() -> None:
    """Without a copy of the cloud's script (it is not ours to ship), devtui's throughput alone."""
    if shutil.which("wrk") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("wrk is not installed (apt-get install wrk)")
    out = smoke("mlflow.py", "--cloud-script", "")
    assert_printed(out, rf"^mlflow: up to Succeeded {NUMBER} s, save to new answer {NUMBER} ms .*, "
                        rf"throughput {NUMBER} req/s; the ratio needs --cloud-script")


def test_compare() -> None:
    """Against HEAD, checked out into a worktree of its own that is removed at the end."""
    if shutil.which("wrk") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("wrk is not installed (apt-get install wrk)")
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    out = smoke("compare.py")
    assert_printed(out, rf"^  echo +this checkout +CPU +{NUMBER} us/request", rf"^  echo +HEAD +CPU +{NUMBER} us/request",
                   rf"^echo: this checkout's CPU per request = {NUMBER}x HEAD's")
    folder = re.search(r"^HEAD checked out in (\S+) ", out, re.M)[1]
    assert folder not in subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert not os.path.exists(os.path.dirname(folder))
