"""Shared fixtures: an isolated DEVTUI_HOME per test, and copies of the samples to edit."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def devtui_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("devtui-home")
    monkeypatch.setenv("DEVTUI_HOME", str(home))
    return home


@pytest.fixture
def sample(tmp_path):
    """Copy a sample into tmp_path so a test can edit it: sample("sklearn-regression")."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(SAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        return target

    return copy


def devtui_command() -> list[str]:
    return [sys.executable, "-m", "devtui"]


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


@pytest.fixture(scope="session")
def docker_client():
    """A Docker engine that answers. Without one the container tests are skipped, except in CI
    (CI set), where a missing engine is a failure: .ci/run starts one."""
    from devtui.runtimes import RuntimeFailure
    from devtui.runtimes.docker_engine import connect

    try:
        return connect()
    except RuntimeFailure as ex:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine for the container tests: {ex}")
        pytest.skip(f"no Docker engine: {ex}")
