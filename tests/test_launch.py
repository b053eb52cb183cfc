"""One launch, read once from the command line (devtui/launch.py): ``up --detach`` hands it to
its background child as argv, which must read back as the same launch."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtui.cli.parser import parse
from devtui.launch import DebugSettings, Launch
from devtui.runtimes.container.gpus import GpuRequest
from inference_server.protocol import ReloadMode

pytestmark = pytest.mark.unit

LAUNCHES = [
    Launch(path=Path("samples/sklearn-regression")),
    Launch(path=Path("d.yml"), endpoint_file=Path("e.yml"), name="my-endpoint", runtime="container", port=5001,
           reload=ReloadMode.SWAP, context="remote", gpus=GpuRequest(count=-1)),
    Launch(path=Path("d.yml"), debug=DebugSettings(0, wait=True), connections=(Path("/abs/conn.yaml"),)),
    Launch(path=Path("d.yml"), debug=DebugSettings(5679), gpus=GpuRequest(device_ids=("0", "2"))),
    Launch(path=Path("d.yml"), traces=True),
]


@pytest.mark.parametrize("launch", LAUNCHES, ids=range(len(LAUNCHES)))
def test_to_argv_reads_back_as_the_same_launch(launch):
    assert parse(["up", *launch.to_argv()]).launch == launch


def test_the_app_and_up_read_the_same_launch_from_the_same_options():
    options = ["d.yml", "--runtime", "container", "--port", "0", "--debug-wait", "--reload", "swap"]
    assert parse(options).launch == parse(["up", *options]).launch == Launch(
        path=Path("d.yml"), runtime="container", reload=ReloadMode.SWAP, debug=DebugSettings(5678, wait=True))


def test_server_argv_says_where_to_listen_what_a_reload_does_and_the_debugger():
    launch = Launch(reload=ReloadMode.SWAP, debug=DebugSettings(5679, wait=True))
    argv = launch.server_argv("0.0.0.0", 5001, debug_host="0.0.0.0")
    assert argv == ["--host", "0.0.0.0", "--port", "5001", "--reload", "swap",
                    "--debug-host", "0.0.0.0", "--debug-port", "5679", "--debug-wait"]
    assert "--debug-port" not in Launch().server_argv("127.0.0.1", 0)


def test_validate_takes_no_launch():
    assert not hasattr(parse(["validate", "d.yml"]), "launch")
