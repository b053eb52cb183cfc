"""Shared fixtures: an isolated DEVTUI_HOME per test, copies of the samples to edit, this run's
prefix for names, and the Docker engine."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import mlflow_models
import spec_data
from private_engine import PrivateEngine, missing_prerequisite

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The helpers are in helpers.py; these names stay importable from here for modules written against it.
from helpers import ROOT, SAMPLES, children_of, devtui_command, new_run_id, pid_alive  # noqa: E402,F401
from helpers import devtui, unique_name  # noqa: E402

# The modules that take longest, slowest first. `make test` hands whole modules to its workers in
# the order they are collected (`--dist loadfile --no-loadscope-reorder`), so these start first and
# the short ones fill in around them; one of them started last would keep a worker busy for
# minutes after the others ran out of work. The rest keep pytest's order.
LONGEST_FIRST = ("test_debug.py", "test_container.py", "test_benchmarks.py", "test_tui.py", "test_mlflow_serving.py",
                 "test_tui_snapshots.py", "test_mlflow_container.py", "test_tui_keys.py", "test_isolation.py",
                 "test_cli.py", "test_patch.py", "test_flow_includes.py", "test_flow_container.py",
                 "test_engine_outage.py", "test_engines.py", "test_flow_links.py", "test_engine.py", "test_tui_trust.py",
                 "test_tui_traces.py", "test_tui_pty.py", "test_tui_flow.py", "test_replay.py", "test_flow_reload.py",
                 "test_flow_samples.py", "test_warming.py", "test_start_races.py", "test_flow_serving.py")


# What kind of test each module holds, for `make test-fast` (`-m "unit or fake"`): unit tests run
# devtui's code in this process; fake-runtime tests run the engine or the app against
# tests/fake_runtime.py; everything else is end to end (real servers, containers, debugpy, a
# terminal). A module that mixes kinds marks its tests itself (@pytest.mark.unit, .fake, .e2e),
# which wins over this table; a module not listed here is end to end.
KINDS = {
    "unit": ("test_ignore.py", "test_layout.py", "test_log_files.py", "test_masking.py", "test_outbox.py",
             "test_private_api.py", "test_protocol.py", "test_record.py", "test_run_gate.py", "test_spec.py",
             "test_spec_hostile.py", "test_views.py", "test_debug_launch.py", "test_watch.py", "test_spec_flow.py",
             "test_patch_faithful.py", "test_debug_gate.py", "test_log_secrets.py", "test_unavailable.py", "test_emitter.py", "test_launch.py",
             "test_spec_mlflow.py", "test_mlflow_reference.py", "test_traces.py"),
    "fake": ("test_engine_states.py", "test_tui_traces.py", "test_tui_trace_history.py"),
}
MARKERS = ("unit", "fake", "e2e")


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: devtui's code in this process, no server (make test-fast)")
    config.addinivalue_line("markers", "fake: the engine or the app on tests/fake_runtime.py (make test-fast)")
    config.addinivalue_line("markers", "e2e: end to end, on real servers, containers, debugpy or a terminal")
    # The MLflow models, made once for the run (tests/mlflow_models.py): here, before xdist starts
    # its workers, which inherit the variable; removed by the process that made the folder.
    if not os.environ.get(mlflow_models.CACHE_VARIABLE):
        config._model_cache = tempfile.mkdtemp(prefix="devtui-test-models-")
        os.environ[mlflow_models.CACHE_VARIABLE] = config._model_cache


def pytest_unconfigure(config):
    if getattr(config, "_model_cache", None):
        shutil.rmtree(config._model_cache, ignore_errors=True)
        del os.environ[mlflow_models.CACHE_VARIABLE]


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a module's tests keep their order
    for item in items:
        if not any(item.get_closest_marker(kind) for kind in MARKERS):
            kind = next((kind for kind, modules in KINDS.items() if item.path.name in modules), "e2e")
            item.add_marker(kind)


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


@pytest.fixture(scope="session")
def run_id() -> str:
    """This run's prefix for the names of what tests create where other runs can see it (a shared
    Docker engine): endpoints, and so their containers, volumes and images. Two runs started
    together on one machine never share it."""
    return new_run_id()


@pytest.fixture(scope="session")
def docker_client():
    """A Docker engine that answers. Without one the container tests are skipped, except in CI
    (CI set), where a missing engine is a failure: .ci/run starts one."""
    from devtui.runtimes import RuntimeFailure
    from devtui.runtimes.container.docker_engine import connect

    try:
        return connect()
    except RuntimeFailure as ex:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine for the container tests: {ex}")
        pytest.skip(f"no Docker engine: {ex}")


@pytest.fixture
def endpoint(docker_client, run_id):
    """endpoint("ct-x") reserves an endpoint name for the test, under this run's prefix: no other
    run, and no earlier one, has used it. Afterwards: `devtui down --purge` (which removes the
    images built from its Dockerfile and what devtui built on them), then nothing labelled with
    that endpoint may remain, no container, volume or network (leftovers are removed, then
    reported), and any image built from its Dockerfile still there is untagged (an image another
    tag names stays)."""
    names: list[str] = []

    def reserve(name: str) -> str:
        names.append(unique_name(run_id, name))
        return names[-1]

    yield reserve
    problems = []
    for name in names:
        devtui("down", "-n", name, "--purge", check=None)
        selector = {"label": f"devtui.endpoint={name}"}
        left = [*docker_client.containers.list(all=True, filters=selector),
                *docker_client.volumes.list(filters=selector)]
        networks = docker_client.networks.list(filters=selector)
        if left or networks:
            problems.append(f"{name}: left {[item.name for item in [*left, *networks]]}")
            for item in left:
                item.remove(force=True)
            for network in networks:
                network.remove()
        for image in docker_client.images.list(filters={"reference": f"devtui-user-{name}-*"}):
            for tag in image.tags:
                if tag.startswith(f"devtui-user-{name}-"):
                    docker_client.images.remove(tag)
    assert not problems, "; ".join(problems)


@pytest.fixture
def anyio_backend():
    """`async def` tests (marked anyio) run on asyncio, as devtui does."""
    return "asyncio"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with the local files spec_data.GOOD points at: model, code, conda file."""
    spec_data.write(tmp_path, "model/weights.pkl", "weights")
    spec_data.write(tmp_path, "src/score.py", "def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    spec_data.write(tmp_path, "conda.yml", "name: env\ndependencies: [python=3.11]\n")
    return tmp_path


@pytest.fixture(scope="module")
def private_engine(run_id):
    """A Docker engine of the module's own (private_engine.py), which a test may stop and restart.
    The module's tests share it: starting one, and loading the images it needs into it, takes as
    long as a test. After the module it is gone, with all it held."""
    why = missing_prerequisite()
    if why:
        pytest.skip(why)
    engine = PrivateEngine(run_id)
    try:
        engine.start()
        yield engine
    finally:
        engine.close()
