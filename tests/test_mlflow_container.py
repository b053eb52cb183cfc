"""No-code MLflow deployments in the container runtime, against a real Docker engine: the image is
built from the model's conda.yaml (runtimes/container/mlflow_image.py), the answers are the ones the
cloud's MLflow scoring script gave under azmlinfsrv (tests/data/mlflow_reference_sklearn.json, as
tests/test_mlflow_serving.py checks them in the process runtime), a retrained model is swapped in
without a restart, and a model saved with another Python than the image's warns, or fails with
both versions named where its wheels do not resolve.

Each test runs its own endpoint, under this run's prefix (the ``endpoint`` fixture, which then proves
that nothing labelled with it is left). The images are shared by content hash: the first test
builds them (about a minute), the rest reuse them.
"""

from __future__ import annotations

import json

import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.engine.watch import Action, classify
from devtui.events import FAILED, SUCCEEDED, Logs, ReloadFinished, StateChanged
from devtui.runtimes.container.images import SERVER_LAYER_LABEL, python_differs
from devtui.runtimes.container.mlflow_image import scoring_requirements
from helpers import async_wait_for, save
from mlflow_models import MODEL_FOLDER, make
from test_mlflow_reference import exchange, reference
from test_mlflow_serving import DEPLOYMENT, EXAMPLE_SHAPES, HEADERS, Served, flat, retrain

pytestmark = pytest.mark.anyio  # end to end (tests/conftest.py, KINDS), but for the unit tests marked so

# The python:3.11-slim base (scripts/build-base-image.sh) runs Python 3.11.
IMAGE_PYTHON = "3.11"


class InContainer(Served):
    """The sklearn model of the reference answers, its conda.yaml edited first (``conda``: (old,
    new) pairs), served by the container runtime as NAME; its log lines, states and reloads are
    kept for the test to read. ``send`` is Served's."""

    def __init__(self, folder, name: str, conda: tuple[tuple[str, str], ...] = ()):
        make("sklearn", folder)
        (folder / "deployment.yml").write_text(DEPLOYMENT)
        self.conda_file = folder / MODEL_FOLDER / "conda.yaml"
        for old, new in conda:
            self.edit_conda(old, new)
        self.reloads: list[ReloadFinished] = []
        self.lines: list[str] = []
        self.states: list[StateChanged] = []
        self.engine = Engine(spec.load(folder / "deployment.yml", None, name), folder / "work",
                             Launch(port=0, runtime="container", name=name))
        self.engine.subscribe(self._heard)

    def _heard(self, event) -> None:
        if isinstance(event, Logs):
            self.lines.extend(record.text for record in event.records)
        elif isinstance(event, StateChanged):
            self.states.append(event)
        elif isinstance(event, ReloadFinished):
            self.reloads.append(event)

    def edit_conda(self, old: str, new: str) -> None:
        text = self.conda_file.read_text()
        assert old in text, text
        save(self.conda_file, text.replace(old, new))

    def image_labels(self, docker_client) -> dict[str, str]:
        return docker_client.images.get(self.engine.placement.image).labels


def model_python(tmp_path) -> str:
    """The python= pin MLflow writes into a model's conda.yaml (the Python that saved it)."""
    folder = make("sklearn", tmp_path / "probe")
    line = next(line.strip() for line in (folder / "conda.yaml").read_text().splitlines()
                if line.strip().startswith("- python="))
    return line.removeprefix("- python=")


async def test_the_clouds_answers_from_an_image_of_the_models_conda_yaml_and_a_retrain_is_swapped_in(
        tmp_path, endpoint, docker_client):
    running = InContainer(tmp_path, endpoint("mlc-answers"))
    try:
        assert await running.engine.start() == SUCCEEDED, running.lines[-20:]
        placement = running.engine.placement
        assert placement.image.startswith("devtui-env:") and len(placement.container_ids) == 2
        requirements = " ".join(line for line in running.lines if line.startswith("Building image"))
        # The image holds the model's pip section, mlflow as mlflow-skinny (unless it was built earlier).
        assert not requirements or ("mlflow-skinny==" in requirements and "scikit-learn==" in requirements)

        for recorded in reference("sklearn")["exchanges"]:
            request, expected = recorded["request"], recorded["response"]
            if request["name"] in EXAMPLE_SHAPES:
                continue
            answer = await running.send(request)
            got = {"status": answer.status_code, "body": answer.text,
                   "headers": {name: answer.headers.get(name) for name in HEADERS}}
            assert got == {**expected, "headers": {n: expected["headers"].get(n) for n in HEADERS}}, request["name"]

        swagger = (await running.send({"method": "GET", "path": "/swagger.json", "headers": {}, "body": ""})).json()
        example = swagger["definitions"]["ServiceInput"]["example"]
        saved = json.loads(running.engine.deployment.mlflow.input_example.read_text())
        assert example["input_data"]["columns"] == saved["columns"]
        good = exchange(reference("sklearn"), "good")
        answer = await running.send({"method": "POST", "path": "/score",
                                     "headers": {"content-type": "application/json"}, "body": json.dumps(example)})
        assert answer.status_code == 200, answer.text
        assert flat(answer.json()) == pytest.approx(flat(json.loads(good["response"]["body"])[:len(answer.json())]))

        # A retrained model.pkl: staged into the model volume again and swapped in, in the same container.
        before = (await running.send(good["request"])).json()
        retrain(tmp_path / MODEL_FOLDER / "model.pkl")
        await async_wait_for(lambda: any(r.ok and r.revision > 1 for r in running.reloads), 120,
                             message="a new revision from the saved model")
        after = (await running.send(good["request"])).json()
        assert after != before
        assert running.engine.placement.container_ids[0] in placement.container_ids  # the same server
        assert not any("applying environment change" in state.detail for state in running.states)
        # Why this base image is said with a build, once, not at each save that checks the image.
        said = [line for line in running.lines if line.startswith("No-code MLflow deployment: the cloud serves it")]
        assert len(said) == (1 if requirements else 0), said
    finally:
        await running.engine.stop()


async def test_a_changed_conda_yaml_rebuilds_its_layer_only_and_restarts_on_the_new_image(
        tmp_path, endpoint, docker_client):
    running = InContainer(tmp_path, endpoint("mlc-conda"))
    try:
        assert await running.engine.start() == SUCCEEDED, running.lines[-20:]
        first = running.engine.placement.image
        layer = running.image_labels(docker_client)[SERVER_LAYER_LABEL]
        revision = running.engine.serving_revision
        heard = len(running.lines)
        running.edit_conda("- pip:\n", "- pip:\n  - six\n")
        await async_wait_for(lambda: running.engine.serving_revision not in (None, revision)
                             and running.engine.placement.image != first, 600,
                             message="a revision on the rebuilt image")
        # The environment image only: on the same server layer, which was not built again (the
        # image itself may be there already, from an earlier run: it is shared by content hash).
        assert running.image_labels(docker_client)[SERVER_LAYER_LABEL] == layer
        since = running.lines[heard:]
        assert not any(line.startswith("Building server layer") for line in since), since
        assert any(line.startswith(("Building image", "Image devtui-env:")) for line in since), since
        answer = await running.send(exchange(reference("sklearn"), "good")["request"])
        assert answer.status_code == 200, answer.text
    finally:
        await running.engine.stop()


async def test_a_model_saved_with_another_python_warns_and_is_served_where_its_wheels_resolve(
        tmp_path, endpoint):
    # The model's packages have wheels for the image's Python too: a warning, then the deployment.
    pin = model_python(tmp_path)
    running = InContainer(tmp_path, endpoint("mlc-py-warn"), conda=((f"python={pin}\n", "python=3.12\n"),))
    try:
        assert await running.engine.start() == SUCCEEDED, running.lines[-20:]
        warning = next((line for line in running.lines if "pins python=3.12" in line), None)
        assert warning and f"Python {IMAGE_PYTHON}" in warning, running.lines[-20:]
        answer = await running.send(exchange(reference("sklearn"), "good")["request"])
        assert answer.status_code == 200, answer.text
    finally:
        await running.engine.stop()


async def test_a_model_whose_wheels_do_not_resolve_for_the_images_python_fails_naming_both(
        tmp_path, endpoint):
    # numpy 1.21.6 has wheels up to Python 3.10 only: nothing to install on the image's 3.11.
    pin = model_python(tmp_path)
    running = InContainer(tmp_path, endpoint("mlc-py-fail"), conda=((f"python={pin}\n", "python=3.9\n"),
                                                                     ("- pip:\n", "- pip:\n  - numpy==1.21.6\n")))
    try:
        assert await running.engine.start() == FAILED
        failure = running.states[-1].detail
        assert "\n" not in failure and "Traceback" not in failure, failure
        assert "Python 3.9" in failure and f"Python {IMAGE_PYTHON}" in failure, failure
        assert "numpy==1.21.6" in failure, failure
    finally:
        await running.engine.stop()


# -- unit: what goes into the image, and what a save of conda.yaml is ---------------------------------


@pytest.mark.unit
def test_mlflow_is_installed_as_mlflow_skinny_with_what_pyfunc_imports():
    assert scoring_requirements(["mlflow==3.18.0", "scikit-learn==1.9.1"], "3.18.0") == [
        "mlflow-skinny==3.18.0", "scikit-learn==1.9.1", "numpy", "pandas"]
    assert scoring_requirements(["mlflow[extras]>=2.1,<3", "pandas==2.2.3", "numpy<2"], None) == [
        "mlflow-skinny>=2.1,<3", "pandas==2.2.3", "numpy<2"]
    # No mlflow named: the version that saved the model (the MLmodel's mlflow_version).
    assert scoring_requirements(["lightgbm==4.6.0"], "3.1.0") == ["lightgbm==4.6.0", "mlflow-skinny==3.1.0",
                                                                  "numpy", "pandas"]
    assert scoring_requirements(["mlflow-skinny==3.2.0"], "3.1.0") == ["mlflow-skinny==3.2.0", "numpy", "pandas"]


@pytest.mark.unit
def test_a_python_pin_differs_when_its_minor_version_does():
    assert python_differs("3.12", "3.11") and python_differs("3.9.18", "3.11")
    assert not python_differs("3.11.7", "3.11") and not python_differs("3.11.*", "3.11")
    assert not python_differs(None, "3.11") and not python_differs("3.11", "3.11")


@pytest.mark.unit
def test_a_conda_yaml_rewritten_unchanged_is_a_model_save_and_a_changed_one_a_rebuild(tmp_path):
    model = make("sklearn", tmp_path)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    deployment = spec.load(tmp_path)
    conda = model / "conda.yaml"
    assert deployment.mlflow.environment_file == conda
    save(conda, conda.read_text())  # MLflow writes the whole folder when it saves a model
    assert classify(deployment, conda) == Action.RESTAGE
    save(conda, conda.read_text().replace("- pip:\n", "- pip:\n  - six\n"))
    assert classify(deployment, conda) == Action.REBUILD
    assert classify(deployment, model / "model.pkl") == Action.RESTAGE
