"""The recorded answers of the cloud's MLflow scoring script under azmlinfsrv
(tests/data/mlflow_reference_*.json, written by tests/mlflow_record.py) are what the side-by-side
tests of no-code MLflow deployments will compare devtui with: each file says how it was recorded,
holds every request shape of issue 22, and names a model that tests/mlflow_models.py makes again
with the same predictions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlflow_models import KINDS, MODEL_FOLDER, make

DATA = Path(__file__).resolve().parent / "data"
SHAPES = {
    "good", "reordered-columns", "list", "named-tensors", "split-without-index", "params", "params-not-an-object",
    "missing-input", "empty-object", "get-query", "get-no-query", "swagger", "swagger-v3", "swagger-example",
    "bad-unknown-columns", "bad-missing-column", "bad-text-values", "bad-input-is-text", "bad-not-json",
    "bad-json-array", "bad-content-type",
}


def reference(kind: str) -> dict:
    return json.loads((DATA / f"mlflow_reference_{kind}.json").read_text(encoding="utf-8"))


def exchange(data: dict, name: str) -> dict:
    return next(e for e in data["exchanges"] if e["request"]["name"] == name)


@pytest.mark.parametrize("kind", KINDS)
def test_a_reference_file_says_how_it_was_recorded(kind):
    recorded = reference(kind)["recorded"]
    assert "azmlinfsrv" in recorded["how"] and "MLFLOW_MODEL_FOLDER" in recorded["how"]
    script = recorded["script"]
    assert script["repository"] == "Azure/azureml-assets" and script["path"].endswith("/mlflow_score_script.py")
    assert re.fullmatch(r"[0-9a-f]{40}", script["commit"]) and re.fullmatch(r"[0-9a-f]{64}", script["sha256"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", recorded["date"])
    assert recorded["packages"]["azureml-inference-server-http"] == "1.5.1"
    assert recorded["packages"]["mlflow-skinny"] and recorded["packages"][
        "scikit-learn" if kind == "sklearn" else "lightgbm"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_reference_file_holds_every_request_shape_once(kind):
    data = reference(kind)
    assert data["model"]["kind"] == kind and data["model"]["folder"] == MODEL_FOLDER
    names = [e["request"]["name"] for e in data["exchanges"]]
    assert sorted(names) == sorted(SHAPES)
    for e in data["exchanges"]:
        request, response = e["request"], e["response"]
        assert request["method"] in ("GET", "POST") and request["path"].startswith(("/score", "/swagger.json"))
        assert isinstance(request["headers"], dict) and isinstance(request["body"], str)
        assert isinstance(response["status"], int) and isinstance(response["body"], str)
        assert set(response["headers"]) <= {"content-type", "x-ms-run-function-failed"}
        if response["headers"].get("content-type") == "application/json":
            json.loads(response["body"])  # well-formed


@pytest.mark.parametrize("kind", KINDS)
def test_the_recorded_contract(kind):
    """What the reference answered, in a few facts the MLflow worker must reproduce."""
    data = reference(kind)
    good = exchange(data, "good")["response"]
    assert good["status"] == 200 and isinstance(json.loads(good["body"]), list)  # no {"predictions": ...}
    for same in ("reordered-columns", "get-query", "params"):
        assert exchange(data, same)["response"] == good, same
    assert exchange(data, "missing-input")["response"]["status"] == 400
    assert "A value is not provided for the 'input_data' parameter." in exchange(data, "missing-input")["response"]["body"]
    failed = exchange(data, "list")["response"]
    assert failed["status"] == 500 and failed["headers"]["x-ms-run-function-failed"] == "True"
    assert exchange(data, "bad-content-type")["response"]["status"] == 415


@pytest.mark.e2e  # mlflow's import and a model save: 10-20 s on 2 cores, too slow for make test-fast
@pytest.mark.parametrize("kind", KINDS)
def test_the_named_model_is_made_again_with_the_recorded_answers(kind, tmp_path):
    pytest.importorskip("mlflow.pyfunc", reason="devtui's mlflow extra (make install-dev installs it)")
    if kind == "lightgbm":
        pytest.importorskip("lightgbm", reason="the test extra's lightgbm (make install-dev installs it)")
    import mlflow.pyfunc
    import pandas as pd
    import yaml

    data = reference(kind)
    folder = make(kind, tmp_path)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert sorted(mlmodel["flavors"]) == data["model"]["flavors"]
    assert mlmodel["signature"] == data["model"]["signature"]
    assert json.loads((folder / "input_example.json").read_text()) == data["model"]["input_example"]

    frame = json.loads(exchange(data, "good")["request"]["body"])["input_data"]
    predictions = mlflow.pyfunc.load_model(str(folder)).predict(
        pd.DataFrame(frame["data"], columns=frame["columns"], index=frame["index"]))
    # The same libraries give the same bits; another version of one may move the last digits.
    recorded = json.loads(exchange(data, "good")["response"]["body"])
    assert predictions.shape == _shape(recorded)
    assert predictions.ravel().tolist() == pytest.approx(list(_flat(recorded)), rel=1e-9)


def _shape(value) -> tuple[int, ...]:
    return (len(value), *_shape(value[0])) if isinstance(value, list) else ()


def _flat(value):
    if isinstance(value, list):
        for item in value:
            yield from _flat(item)
    else:
        yield value
