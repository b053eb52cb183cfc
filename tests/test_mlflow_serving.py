"""No-code MLflow deployments served by devtui (inference_server/mlflow_score.py, through the
process runtime) answer as the cloud's MLflow scoring script answered under azmlinfsrv: every
request of tests/data/mlflow_reference_*.json gets the recorded status, body and headers. A
retrained model is served after a save, with no restart."""

from __future__ import annotations

import json

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED, Logs, ReloadFinished
from helpers import async_wait_for, save
from mlflow_models import KINDS, MODEL_FOLDER, make
from test_mlflow_reference import exchange, reference

pytestmark = pytest.mark.anyio

DEPLOYMENT = f"""
name: blue
endpoint_name: mlflow-endpoint
model:
  name: diabetes
  version: 1
  path: ./{MODEL_FOLDER}
  type: mlflow_model
instance_type: Standard_DS3_v2
instance_count: 1
"""
# The cloud's script could not read the input example in the environment the reference was
# recorded in (pandas 3 no longer reads JSON text given as a path), so its swagger fell back to the
# signature's empty frame. devtui reads the example, as the cloud's image (pandas 2) does: these
# are checked on their own below.
EXAMPLE_SHAPES = {"swagger", "swagger-v3", "swagger-example"}
HEADERS = ("content-type", "x-ms-run-function-failed")


def flat(value) -> list:
    return [x for item in value for x in flat(item)] if isinstance(value, list) else [value]


def retrain(model_file) -> None:
    """The sklearn model fitted again, less regularised, and saved over ``model_file``."""
    import cloudpickle
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model_file.write_bytes(cloudpickle.dumps(Ridge(alpha=0.001).fit(features, target)))


class Served:
    def __init__(self, kind: str, folder):
        make(kind, folder)
        (folder / "deployment.yml").write_text(DEPLOYMENT)
        self.engine = Engine(spec.load(folder), folder / "work", Launch(port=0))
        self.reloads: list[ReloadFinished] = []
        self.engine.subscribe(lambda e: isinstance(e, ReloadFinished) and self.reloads.append(e))

    async def send(self, request: dict) -> httpx.Response:
        base = self.engine.scoring_uri.removesuffix("/score")
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.request(request["method"], base + request["path"], headers=request["headers"],
                                        content=request["body"].encode())


@pytest.fixture(params=KINDS)
async def served(request, tmp_path):
    running = Served(request.param, tmp_path)
    assert await running.engine.start() == SUCCEEDED
    try:
        yield request.param, running
    finally:
        await running.engine.stop()


async def test_every_request_is_answered_as_the_clouds_script_answered_and_the_swagger_example_served(served):
    """One server a model for both checks: an MLflow deployment takes seconds of CPU to start."""
    kind, running = served
    for recorded in reference(kind)["exchanges"]:
        request, expected = recorded["request"], recorded["response"]
        if request["name"] in EXAMPLE_SHAPES:
            continue
        answer = await running.send(request)
        got = {"status": answer.status_code, "body": answer.text,
               "headers": {name: answer.headers.get(name) for name in HEADERS}}
        assert got == {**expected, "headers": {n: expected["headers"].get(n) for n in HEADERS}}, request["name"]
    await swagger_example_is_the_models_input_example_and_is_served(kind, running)


async def swagger_example_is_the_models_input_example_and_is_served(kind: str, running: Served) -> None:
    swagger = (await running.send({"method": "GET", "path": "/swagger.json", "headers": {}, "body": ""})).json()
    example = swagger["definitions"]["ServiceInput"]["example"]
    saved = json.loads((running.engine.deployment.mlflow.input_example).read_text())
    assert example["input_data"]["columns"] == saved["columns"]
    assert [row == pytest.approx(want) for row, want in zip(example["input_data"]["data"], saved["data"],
                                                             strict=True)] == [True] * len(saved["data"])
    answer = await running.send({"method": "POST", "path": "/score", "headers": {"content-type": "application/json"},
                                 "body": json.dumps(example)})
    good = json.loads(exchange(reference(kind), "good")["response"]["body"])
    assert answer.status_code == 200, answer.text
    assert flat(answer.json()) == pytest.approx(flat(good[:len(answer.json())]))


async def test_a_retrained_model_is_served_after_a_save_without_a_restart(tmp_path):
    running = Served("sklearn", tmp_path)
    assert await running.engine.start() == SUCCEEDED
    try:
        good = exchange(reference("sklearn"), "good")["request"]
        before = (await running.send(good)).json()
        pid = running.engine.placement.pid
        retrain(tmp_path / MODEL_FOLDER / "model.pkl")
        await async_wait_for(lambda: any(r.ok and r.revision > 1 for r in running.reloads), 60,
                             message="a new revision from the saved model")
        after = (await running.send(good)).json()
        assert after != before and running.engine.placement.pid == pid  # a new worker, the same server
    finally:
        await running.engine.stop()


async def test_a_changed_conda_yaml_is_noted_and_the_model_staged_again(tmp_path):
    """MLflow writes conda.yaml with the model: the process runtime serves with this Python, so it
    says the environment is not rebuilt, and stages the model saved with it again (a new worker)."""
    running = Served("sklearn", tmp_path)
    said: list[str] = []
    running.engine.subscribe(lambda e: said.extend(r.text for r in e.records) if isinstance(e, Logs) else None)
    assert await running.engine.start() == SUCCEEDED
    try:
        conda = tmp_path / MODEL_FOLDER / "conda.yaml"
        save(conda, conda.read_text().replace("- pip:\n", "- pip:\n  - six\n"))
        await async_wait_for(lambda: any(r.ok and r.revision > 1 for r in running.reloads), 60,
                             message="a new revision after the conda.yaml change")
        assert any("conda.yaml" in line and "environment is not rebuilt" in line for line in said), said[-10:]
    finally:
        await running.engine.stop()


async def test_a_flavour_whose_library_is_missing_fails_the_revision_saying_which(tmp_path):
    """Before the model loads: the loader's library, at the version requirements.txt names."""
    make("sklearn", tmp_path)
    mlmodel = tmp_path / MODEL_FOLDER / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("loader_module: mlflow.sklearn", "loader_module: mlflow.xgboost"))
    (tmp_path / MODEL_FOLDER / "requirements.txt").write_text("mlflow==3.1.0\nxgboost==2.1.4\n")
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    engine = Engine(spec.load(tmp_path), tmp_path / "work", Launch(port=0, watch=False))
    failed: list[ReloadFinished] = []
    engine.subscribe(lambda e: isinstance(e, ReloadFinished) and failed.append(e))
    try:
        assert await engine.start() == "Failed"
        assert "mlflow.xgboost, which needs xgboost==2.1.4" in failed[0].traceback, failed[0].traceback
        assert "pip install 'xgboost==2.1.4'" in failed[0].traceback and "Traceback" not in failed[0].traceback
    finally:
        await engine.stop()


async def test_the_app_shows_the_model_and_answers_the_swagger_example(tmp_path):
    """The deployment panel shows the flavours, the signature and the input example; the Invoke
    tab is filled with the swagger's example, and ctrl+j gets the predictions."""
    import io as text_io

    from rich.console import Console

    from devtui.tui.app import DevtuiApp
    from devtui.tui.widgets import DeploymentPanel
    from helpers import running, until

    make("sklearn", tmp_path)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    app = DevtuiApp(Engine(spec.load(tmp_path), tmp_path / "work", Launch(port=0)), save_folder=tmp_path)
    async with running(app, size=(160, 45)) as pilot:
        await until(pilot, lambda: app.engine.serving_revision == 1, timeout=60, message="revision 1 serving")
        console = Console(width=200, record=True, file=text_io.StringIO())
        console.print(app.query_one("#deployment", DeploymentPanel).content)
        panel = " ".join(console.export_text().split())  # the values wrap at the panel's width
        assert "python_function, sklearn (loaded by mlflow.sklearn)" in panel and "age: double" in panel
        assert "input_example.json" in panel and "script" not in panel
        await until(pilot, lambda: "input_data" in app.invoke_panel.editor.text, timeout=30,
                    message="the Invoke tab filled with the swagger's example")
        await pilot.press("ctrl+j")
        answer = await until(pilot, lambda: app.invoke_panel.history and app.invoke_panel.history[-1], timeout=30,
                             message="the answer")
        assert answer.status == 200 and len(json.loads(answer.body)) == 2, answer
