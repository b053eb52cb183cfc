"""The engine's state machine with a fake runtime at its boundary: no scoring server is forked, so
every path (first failure, failed reload, crash, unexpected exit, restart, stop) is fast and exact.
The real runtimes are tested end to end in test_engine.py and test_container.py. Also: every
event kind has exactly one handler, in the engine and in the app."""

from __future__ import annotations

import asyncio
import shutil
import socket
import typing

import httpx
import pytest

from conftest import SAMPLES
from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import (CREATING, DELETING, FAILED, SUCCEEDED, UPDATING, Event, Logs, ReloadFinished, ReloadReason,
                           ReloadStarted, ServerStarted, StateChanged)
from fake_runtime import ANSWER, FakeRuntime
from inference_server import protocol

pytestmark = pytest.mark.anyio  # async def tests on anyio's pytest plugin (asyncio backend: conftest)


@pytest.fixture
def engine(tmp_path):
    FakeRuntime.instances.clear()
    engine = Engine(spec.load(SAMPLES / "sklearn-regression"), tmp_path / "work", Launch(watch=False),
                    runtimes_from=FakeRuntime)
    engine.events = []
    engine.subscribe(engine.events.append)
    return engine


def of(engine, kind) -> list:
    return [e for e in engine.events if isinstance(e, kind)]


def states(engine) -> list[str]:
    return [e.state for e in of(engine, StateChanged)]


async def test_start_reaches_succeeded_and_serves(engine):
    assert await engine.start() == SUCCEEDED
    async with httpx.AsyncClient() as client:
        assert (await client.post(engine.scoring_uri, content="{}")).json() == ANSWER
    await engine.stop()
    assert states(engine) == [CREATING, SUCCEEDED, DELETING]
    assert FakeRuntime.instances[0].calls == ["stage", "start", "stop"]
    started = of(engine, ServerStarted)
    assert len(started) == 1 and started[0].scoring_uri == engine.scoring_uri
    assert of(engine, ReloadStarted) == []  # the first revision is no reload
    assert engine.serving_revision == 1


async def test_a_first_revision_that_fails_is_failed_until_a_good_reload(engine):
    engine.runtime.fail_next(protocol.Stage.INIT)
    assert await engine.start() == FAILED
    assert engine.serving_revision is None
    await engine.reload(ReloadReason.CODE, ("score.py",))
    assert engine.state == SUCCEEDED and engine.serving_revision == 2
    await engine.stop()
    assert states(engine) == [CREATING, FAILED, SUCCEEDED, DELETING]
    failed, ok = of(engine, ReloadFinished)
    assert not failed.ok and failed.stage == "init" and "fake failure" in failed.traceback and failed.first
    assert ok.ok and ok.revision == 2
    assert of(engine, ReloadStarted)[0].reason == ReloadReason.CODE
    assert of(engine, ReloadStarted)[0].files == ("score.py",)


async def test_a_failed_reload_keeps_the_serving_revision(engine):
    await engine.start()
    engine.runtime.fail_next(protocol.Stage.LOAD)
    await engine.reload()
    assert engine.state == SUCCEEDED and engine.serving_revision == 1
    await engine.stop()
    finished = of(engine, ReloadFinished)[-1]
    assert not finished.ok and finished.revision == 2 and finished.serving_revision == 1 and finished.stage == "load"
    assert FAILED not in states(engine)


async def test_a_crashed_worker_is_updating_then_succeeded(engine):
    await engine.start()
    engine.runtime.crash()
    await engine.stop()
    assert states(engine) == [CREATING, SUCCEEDED, UPDATING, SUCCEEDED, DELETING]
    assert of(engine, ReloadStarted)[-1].reason == ReloadReason.CRASH


async def test_a_server_that_exits_unasked_is_failed(engine):
    await engine.start()
    engine.runtime.die()
    assert engine.state == FAILED and engine.serving_revision is None
    await engine.stop()
    assert "exited with code -9" in of(engine, StateChanged)[-2].detail


async def test_restart_stops_the_runtime_and_boots_a_new_one_with_the_next_revision(engine):
    await engine.start()
    assert await engine.restart("YAML change") == SUCCEEDED
    await engine.stop()
    first, second = FakeRuntime.instances
    assert first.calls == ["stage", "start", "stop"] and second.calls == ["stage", "start", "stop"]
    assert engine.serving_revision == 2
    assert states(engine) == [CREATING, SUCCEEDED, UPDATING, SUCCEEDED, DELETING]


def test_every_server_event_kind_has_one_handler(engine):
    assert set(engine.revisions._server_handlers) == set(typing.get_args(protocol.ServerEvent))


def test_every_engine_event_kind_has_one_handler_in_the_app(engine):
    from devtui.tui.app import DevtuiApp

    assert set(DevtuiApp(engine).handlers) == set(typing.get_args(Event))


def test_describe_masks_credentials_in_values_as_well_as_names(tmp_path):
    """What `show`, the app and the registry file print of environment variables."""
    import shutil

    folder = tmp_path / "d"
    shutil.copytree(SAMPLES / "sklearn-regression", folder)
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text().replace(
        "  LOG_LEVEL: INFO", "  LOG_LEVEL: INFO\n  DATABASE_URL: postgres://user:pass@db/app\n"
                            "  SOMETHING: AKIAIOSFODNN7EXAMPLE"))
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(watch=False), runtimes_from=FakeRuntime)
    shown = engine.describe().environment_variables
    assert shown["DATABASE_URL"] == "postgres://user:********@db/app"
    assert shown["SOMETHING"] == "********"
    assert shown["LOG_LEVEL"] == "INFO"


async def test_a_server_that_died_after_serving_is_restarted_and_each_restart_reported(engine):
    await engine.start()
    engine.runtime.die()
    assert engine.state == FAILED
    deadline = asyncio.get_running_loop().time() + 10
    while not (len(FakeRuntime.instances) == 2 and engine.state == SUCCEEDED):
        assert asyncio.get_running_loop().time() < deadline, "no restart"
        await asyncio.sleep(0.02)
    assert engine.serving_revision == 2
    await engine.stop()
    assert states(engine) == [CREATING, SUCCEEDED, FAILED, UPDATING, SUCCEEDED, DELETING]
    said = [r.text for e in engine.events if isinstance(e, Logs) for r in e.records]
    assert any("restarting it in" in line and "restart 1 in a row" in line for line in said), said


async def test_a_server_that_never_served_is_not_restarted(engine):
    engine.runtime.fail_next(protocol.Stage.INIT)
    await engine.start()
    engine.runtime.die()
    assert engine.restarts.recovery is None
    await engine.stop()
    assert len(FakeRuntime.instances) == 1


async def test_a_restart_finds_its_port_taken_and_listens_on_a_new_one(tmp_path):
    """devtui chose the port (no --port): a restart asks for the same one, so the scoring URI stays;
    if another process took it meanwhile, the server gets a new one rather than failing to bind."""
    taker = socket.socket()

    class PortTakenWhileStopped(FakeRuntime):
        async def stop(self) -> None:
            port = self.server.sockets[0].getsockname()[1] if self.server else None
            await super().stop()
            if port is not None and not taker.getsockname()[1]:
                taker.bind(("127.0.0.1", port))
                taker.listen()

    FakeRuntime.instances.clear()
    engine = Engine(spec.load(SAMPLES / "sklearn-regression"), tmp_path / "work", Launch(watch=False),
                    runtimes_from=PortTakenWhileStopped)
    said: list[str] = []
    engine.subscribe(lambda e: said.extend(r.text for r in e.records) if isinstance(e, Logs) else None)
    try:
        assert await engine.start() == SUCCEEDED
        first_port = engine.port
        assert await engine.restart("YAML change") == SUCCEEDED
        assert taker.getsockname()[1] == first_port
        assert FakeRuntime.instances[1].port == 0
        assert engine.port != first_port and f":{engine.port}/" in engine.scoring_uri
        async with httpx.AsyncClient() as client:
            assert (await client.post(engine.scoring_uri, content="{}")).json() == ANSWER
        assert any(f"Port {first_port} was taken" in line for line in said), said
    finally:
        await engine.stop()
        taker.close()


async def test_a_restart_keeps_the_port_devtui_chose(engine):
    await engine.start()
    first_port = engine.port
    await engine.restart("YAML change")
    assert FakeRuntime.instances[1].port == first_port and engine.port == first_port
    await engine.stop()


async def test_a_lost_engine_is_updating_and_the_state_before_returns_with_it(engine):
    """Issue 19, item 8: while the container runtime's engine does not answer, the deployment is
    Updating (its container may still serve); when it answers again, what it was before."""
    assert await engine.start() == SUCCEEDED
    sink = engine.runtime.sink
    sink.engine_lost("the Docker engine does not answer")
    assert engine.state == UPDATING and engine.serving_revision == 1
    sink.engine_lost("the Docker engine does not answer")  # lost again before it answered
    sink.engine_back("the Docker engine answers again")
    assert engine.state == SUCCEEDED and engine.serving_revision == 1
    await engine.stop()
    assert states(engine) == [CREATING, SUCCEEDED, UPDATING, UPDATING, SUCCEEDED, DELETING]
    assert of(engine, StateChanged)[-2].detail == "the Docker engine answers again"


async def test_a_failed_deployment_is_failed_again_when_its_engine_answers(engine):
    engine.runtime.fail_next(protocol.Stage.INIT)
    assert await engine.start() == FAILED
    engine.runtime.sink.engine_lost("the Docker engine does not answer")
    engine.runtime.sink.engine_back("the Docker engine answers again")
    assert engine.state == FAILED
    await engine.stop()


async def test_a_port_taken_as_the_deployment_starts_is_fatal_and_later_is_not(tmp_path):
    """Issue 19, item 9: no save can free a port another program took, so a start whose server
    finds its port taken (since preflight checked it) ends the host (``fatal``); a restart that
    finds it taken is only Failed."""
    FakeRuntime.instances.clear()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        engine = Engine(spec.load(SAMPLES / "sklearn-regression"), tmp_path / "work", Launch(port=port),
                        runtimes_from=FakeRuntime)
        assert await engine.start() == FAILED
        assert engine.fatal is not None and engine.fatal.port == port
        assert f"port {port} on 127.0.0.1 is already in use" in str(engine.fatal)
        assert engine.serving_revision is None and engine.revision == 0  # no revision ever started
        await engine.stop()

    engine = Engine(spec.load(SAMPLES / "sklearn-regression"), tmp_path / "work2", Launch(watch=False),
                    runtimes_from=FakeRuntime)
    assert await engine.start() == SUCCEEDED
    engine.revisions.server_event(protocol.BindFailed(host="127.0.0.1", port=engine.port, reason="is already in use"))
    assert engine.state == FAILED and engine.fatal is None
    await engine.stop()


async def test_a_save_after_a_start_that_failed_in_the_runtime_starts_it_again(tmp_path):
    """The engine refused a step (an engine away, a volume it could not make): no server runs, so
    a save could not reach one; it starts the deployment again, as Failed's message promises."""
    from devtui.runtimes import RuntimeFailure

    class RefusesFirstStage(FakeRuntime):
        async def stage(self) -> None:
            if len(FakeRuntime.instances) == 1:
                raise RuntimeFailure("the Docker engine refused a step: connection aborted")
            await super().stage()

    FakeRuntime.instances.clear()
    engine = Engine(spec.load(SAMPLES / "sklearn-regression"), tmp_path / "work", Launch(watch=False),
                    runtimes_from=RefusesFirstStage)
    assert await engine.start() == FAILED
    await engine.reload(ReloadReason.CODE, ("score.py",))
    assert engine.state == SUCCEEDED and len(FakeRuntime.instances) == 2
    await engine.reload(ReloadReason.CODE, ("score.py",))  # served now: a save is a reload again
    assert FakeRuntime.instances[1].calls == ["stage", "start", "reload"]
    await engine.stop()


async def test_a_save_after_a_server_that_ended_before_it_served_starts_it_again(engine):
    engine.runtime.fail_next(protocol.Stage.INIT)
    assert await engine.start() == FAILED
    engine.runtime.die()
    await engine.reload(ReloadReason.CODE, ("score.py",))
    assert engine.state == SUCCEEDED and len(FakeRuntime.instances) == 2
    await engine.stop()


async def test_a_restart_after_a_death_that_fails_in_the_runtime_is_tried_again_with_back_off(tmp_path, monkeypatch):
    """The server died with its engine (a Docker engine restarting): the first restart finds no
    engine and fails before any server runs; the next one, later, succeeds."""
    from devtui.engine import engine as engine_module
    from devtui.runtimes import RuntimeFailure

    monkeypatch.setattr(engine_module, "RESTART_BACKOFF_S", (0.01, 0.02, 0.05))

    class EngineAwayOnce(FakeRuntime):
        async def stage(self) -> None:
            if len(FakeRuntime.instances) == 2:
                raise RuntimeFailure("no Docker engine answers at unix:///var/run/docker.sock")
            await super().stage()

    FakeRuntime.instances.clear()
    engine = Engine(spec.load(SAMPLES / "sklearn-regression"), tmp_path / "work", Launch(watch=False),
                    runtimes_from=EngineAwayOnce)
    engine.events = []
    engine.subscribe(engine.events.append)
    assert await engine.start() == SUCCEEDED
    engine.runtime.die()
    deadline = asyncio.get_running_loop().time() + 10
    while not (len(FakeRuntime.instances) == 3 and engine.state == SUCCEEDED):
        assert asyncio.get_running_loop().time() < deadline, [r.text for e in of(engine, Logs) for r in e.records]
        await asyncio.sleep(0.02)
    await engine.stop()
    said = [r.text for e in of(engine, Logs) for r in e.records]
    assert any("The restart failed; restarting it in" in line and "restart 2 in a row" in line for line in said), said


async def test_a_yaml_edited_into_a_no_code_mlflow_deployment_is_applied_in_the_container_runtime(tmp_path):
    """The container runtime serves one too (an image built from the model's conda.yaml): the
    edited YAML is loaded and the server restarted with it, as for any YAML change."""
    from test_spec_mlflow import DEPLOYMENT, mlflow_model

    folder = tmp_path / "d"
    shutil.copytree(SAMPLES / "sklearn-regression", folder)
    mlflow_model(folder)  # the model folder, and deployment.yml naming it
    (folder / "deployment.yml").write_text((SAMPLES / "sklearn-regression" / "deployment.yml").read_text())
    FakeRuntime.instances.clear()
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(runtime="container", watch=False),
                    runtimes_from=FakeRuntime)
    assert await engine.start() == SUCCEEDED
    (folder / "deployment.yml").write_text(DEPLOYMENT)
    assert await engine.restart("YAML change") == SUCCEEDED
    assert len(FakeRuntime.instances) == 2 and engine.serving_revision == 2
    assert engine.deployment.mlflow is not None and FakeRuntime.instances[-1].deployment.mlflow is not None
    await engine.stop()
