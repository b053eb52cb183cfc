"""devtui.spec on no-code deployments: an MLflow model folder (type: mlflow_model, no
code_configuration) recognised and its MLmodel read without mlflow; every broken part one message
with file, field and line, exit 2; `up` saying it cannot serve one yet; Triton models told what
runs them. The model folders are written here as MLflow 3 writes them, so no mlflow is needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devtui.spec import SpecError, load
from devtui.spec.mlflow import NO_CODE_ENVIRONMENT

from helpers import devtui
from spec_data import write

DEPLOYMENT = """
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: sklearn-deployment
endpoint_name: my-endpoint
model:
  name: mir-sample-sklearn-ncd-model
  version: 1
  path: sklearn-diabetes/model
  type: mlflow_model
instance_type: Standard_DS3_v2
instance_count: 1
"""

MLMODEL = """
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.12.3
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.1
mlflow_version: 2.15.0
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "age", "required": true}, {"type": "double",
    "name": "bmi", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
  params: '[{"name": "round", "type": "long", "default": 2, "shape": null}]'
utc_time_created: '2024-08-01 10:00:00.000000'
"""
CONDA = """
channels:
- conda-forge
dependencies:
- python=3.12.3
- pip<=24.0
- pip:
  - mlflow==2.15.0
  - scikit-learn==1.5.1
name: mlflow-env
"""
MODEL = "sklearn-diabetes/model"


def mlflow_model(folder: Path, mlmodel: str = MLMODEL, conda: str | None = CONDA, **files: str) -> Path:
    """FOLDER/sklearn-diabetes/model as mlflow.sklearn.save_model writes it (FILES replace or add
    files; a value of None leaves that file out), and FOLDER/deployment.yml naming it."""
    contents = {
        "MLmodel": mlmodel, "conda.yaml": conda, "model.pkl": "pickle",
        "python_env.yaml": "python: 3.12.3\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n",
        "requirements.txt": "mlflow==2.15.0\n# a comment\nscikit-learn==1.5.1\n",
        "input_example.json": '{"columns": ["age", "bmi"], "data": [[0.03, 0.06]]}',
        **files,
    }
    for name, text in contents.items():
        if text is not None:
            write(folder, f"{MODEL}/{name}", text)
    return write(folder, "deployment.yml", DEPLOYMENT)


def refused(deployment: Path) -> str:
    """`devtui validate` exits 2 with one message (and nothing else): that message."""
    result = devtui("validate", str(deployment), check=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- recognised and read ---------------------------------------------------------------------------


def test_a_no_code_mlflow_deployment_is_read_from_its_mlmodel(tmp_path):
    deployment = load(mlflow_model(tmp_path))
    model = deployment.mlflow
    folder = tmp_path / MODEL
    assert model is not None and deployment.code_dir is None and deployment.flow is None
    assert model.folder == folder and model.mlmodel == folder / "MLmodel"
    assert model.flavors == ("python_function", "sklearn") and model.flavor_library == "sklearn"
    assert model.loader_module == "mlflow.sklearn" and model.model_file == folder / "model.pkl"
    assert model.input_example == folder / "input_example.json"
    assert model.environment_file == folder / "conda.yaml" and model.python_env == folder / "python_env.yaml"
    assert model.python_version == "3.12.3" and model.mlflow_version == "2.15.0"
    assert model.requirements_file == folder / "requirements.txt"
    assert model.requirements == ("mlflow==2.15.0", "scikit-learn==1.5.1")
    signature = model.signature
    assert signature is not None and signature.kind == "columns"
    assert [str(field) for field in signature.inputs] == ["age: double", "bmi: double (optional)"]
    assert [str(field) for field in signature.outputs] == ["tensor float64[?]"]
    assert [(p.name, p.type, p.default) for p in signature.params] == [("round", "long", 2)]
    # No environment in the YAML: the cloud's own image, nothing of the user's.
    assert deployment.environment == NO_CODE_ENVIRONMENT
    assert deployment.model is not None and deployment.model.name == "mir-sample-sklearn-ncd-model"


def test_validate_prints_flavours_signature_input_example_and_environment(tmp_path):
    out = devtui("validate", str(mlflow_model(tmp_path))).stdout
    folder = tmp_path / MODEL
    assert f"MLflow model:    {folder / 'MLmodel'} (flavours: python_function, sklearn; loaded by mlflow.sklearn; " \
           "model.pkl)" in out
    assert "signature:       inputs (columns): age: double, bmi: double (optional)" in out
    assert "outputs: tensor float64[?]" in out and "params: round: long" in out
    assert "input example:   input_example.json" in out
    assert f"environment:     {folder / 'conda.yaml'} (the model's own; no environment in the YAML)" in out


def test_without_signature_or_input_example_or_python_env(tmp_path):
    mlmodel = MLMODEL.split("saved_input_example_info:")[0].replace("      virtualenv: python_env.yaml\n", "")
    deployment = load(mlflow_model(tmp_path, mlmodel=mlmodel, **{"input_example.json": None}))
    assert deployment.mlflow is not None
    assert deployment.mlflow.signature is None and deployment.mlflow.input_example is None
    assert deployment.mlflow.python_env is None and deployment.mlflow.python_version == "3.12.3"
    out = devtui("validate", str(deployment.deployment_file)).stdout
    assert "signature:       none" in out and "input example:   none" in out


def test_a_named_input_example_that_is_missing_is_none(tmp_path):
    # The cloud then builds the swagger's example from the signature: no error.
    deployment = load(mlflow_model(tmp_path, **{"input_example.json": None}))
    assert deployment.mlflow is not None and deployment.mlflow.input_example is None


def test_lightgbm_and_mlflow_1_layouts(tmp_path):
    mlmodel = """
    flavors:
      lightgbm:
        data: model.lgb
        lgb_version: 3.3.5
        model_class: lightgbm.basic.Booster
      python_function:
        data: model.lgb
        env: conda.yaml
        loader_module: mlflow.lightgbm
        python_version: 3.8.10
    signature:
      inputs: '[{"name": "x", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'
    """
    deployment = load(mlflow_model(tmp_path, mlmodel=mlmodel, **{"model.lgb": "tree", "model.pkl": None}))
    model = deployment.mlflow
    assert model is not None and model.flavors == ("lightgbm", "python_function")
    assert model.flavor_library == "lightgbm" and model.loader_module == "mlflow.lightgbm"
    assert model.model_file == tmp_path / MODEL / "model.lgb"
    assert model.environment_file == tmp_path / MODEL / "conda.yaml" and model.python_env is None
    assert model.signature is not None and model.signature.kind == "tensors"
    assert [str(field) for field in model.signature.inputs] == ["x: tensor float32[?x4]"]


def test_with_an_environment_it_stays_no_code(tmp_path):
    # azureml-examples' ncd/sklearn-deployment-with-image.yaml: image and conda file, no script.
    deployment_file = mlflow_model(tmp_path)
    write(tmp_path, "environment/conda.yaml", CONDA)
    write(tmp_path, "deployment.yml", DEPLOYMENT + (
        "environment:\n  image: mcr.microsoft.com/azureml/mlflow-ubuntu20.04-py38-cpu-inference\n"
        "  conda_file: environment/conda.yaml\nenvironment_variables:\n  MLFLOW_MODEL_FOLDER: model\n"))
    deployment = load(deployment_file)
    assert deployment.mlflow is not None and deployment.code_dir is None
    assert deployment.environment.image == "mcr.microsoft.com/azureml/mlflow-ubuntu20.04-py38-cpu-inference"
    assert deployment.environment.conda_file == tmp_path / "environment/conda.yaml"
    out = devtui("validate", str(deployment_file)).stdout
    assert f"the model's own: {tmp_path / MODEL / 'conda.yaml'}" in out


def test_with_code_configuration_it_stays_low_code(tmp_path):
    # azureml-examples' ncd/sklearn-deployment-with-script.yaml: the script loads the model itself.
    deployment_file = mlflow_model(tmp_path, mlmodel="not: [an MLmodel")  # never read
    write(tmp_path, "src/score.py", "def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    write(tmp_path, "deployment.yml", DEPLOYMENT + (
        "code_configuration:\n  code: src\n  scoring_script: score.py\n"
        "environment:\n  image: python:3.11-slim\n  conda_file: sklearn-diabetes/model/conda.yaml\n"))
    deployment = load(deployment_file)
    assert deployment.mlflow is None and deployment.scoring_script == "score.py"


def test_with_inference_config_it_is_a_bring_your_own_container(tmp_path):
    deployment_file = mlflow_model(tmp_path, mlmodel="not: [an MLmodel")  # never read
    write(tmp_path, "deployment.yml", DEPLOYMENT + (
        "environment:\n  image: my-mlflow-server:1\n  inference_config:\n"
        "    liveness_route: {port: 8080, path: /health}\n    readiness_route: {port: 8080, path: /health}\n"
        "    scoring_route: {port: 8080, path: /invocations}\n"))
    deployment = load(deployment_file)
    assert deployment.mlflow is None and deployment.environment.inference_config is not None


def test_the_sample_is_a_no_code_mlflow_deployment():
    from helpers import SAMPLES

    sample = SAMPLES / "mlflow-sklearn"
    if not (sample / "model" / "MLmodel").is_file():
        pytest.skip("the sample's model is made by `make install` (samples/mlflow-sklearn/make_model.py)")
    deployment = load(sample)
    assert deployment.mlflow is not None and deployment.mlflow.flavor_library == "sklearn"
    assert deployment.mlflow.signature is not None and deployment.mlflow.signature.kind == "columns"
    assert deployment.mlflow.input_example is not None and deployment.mlflow.environment_file is not None


# -- each broken part: one message, file, field and line, exit 2 -----------------------------------


def test_no_mlmodel(tmp_path):
    message = refused(mlflow_model(tmp_path, MLmodel=None))
    assert message.startswith(f"error: {tmp_path / 'deployment.yml'}:7: model.path: there is no MLmodel file in "
                              f"{tmp_path / MODEL}"), message
    assert "type: mlflow_model" in message


def test_a_model_path_that_is_a_file(tmp_path):
    deployment_file = mlflow_model(tmp_path)
    write(tmp_path, "deployment.yml", DEPLOYMENT.replace(MODEL, f"{MODEL}/model.pkl"))
    message = refused(deployment_file)
    assert f"deployment.yml:7: model.path: {tmp_path / MODEL / 'model.pkl'} is a file" in message


@pytest.mark.parametrize("mlmodel, line, what", [
    ("flavors:\n  python_function: {loader_module: mlflow.sklearn\n", 3, "YAML syntax error"),
    ("flavors:\n\tpython_function: {}\n", 2, "YAML syntax error"),
    ("- flavors\n- signature\n", 1, "the MLmodel is a list, not a mapping"),
], ids=["unclosed", "tab", "list"])
def test_an_mlmodel_that_is_not_yaml(tmp_path, mlmodel, line, what):
    message = refused(mlflow_model(tmp_path, mlmodel=mlmodel))
    assert message.startswith(f"error: {tmp_path / MODEL / 'MLmodel'}:{line}: {what}"), message


def test_no_python_function_flavour(tmp_path):
    mlmodel = "artifact_path: model\nflavors:\n  sklearn:\n    pickled_model: model.pkl\n"
    message = refused(mlflow_model(tmp_path, mlmodel=mlmodel))
    assert message.startswith(f"error: {tmp_path / MODEL / 'MLmodel'}:2: flavors: no python_function flavour "
                              "(the MLmodel has sklearn)"), message
    assert "code_configuration" in message


def test_no_flavours(tmp_path):
    message = refused(mlflow_model(tmp_path, mlmodel="artifact_path: model\n"))
    assert "MLmodel:1: flavors: missing: an MLmodel names at least one flavour" in message


def test_a_missing_model_file(tmp_path):
    message = refused(mlflow_model(tmp_path, **{"model.pkl": None}))
    # Named twice (python_function's model_path, sklearn's pickled_model): said once, at the first.
    assert message.startswith(f"error: {tmp_path / MODEL / 'MLmodel'}:8: flavors.python_function.model_path: "
                              f"{tmp_path / MODEL / 'model.pkl'} not found"), message


def test_a_model_file_outside_the_folder(tmp_path):
    message = refused(mlflow_model(tmp_path, mlmodel=MLMODEL.replace("model_path: model.pkl", "model_path: ../x.pkl")))
    assert "MLmodel:8: flavors.python_function.model_path: '../x.pkl' is outside the model folder" in message


def test_no_loader_module(tmp_path):
    message = refused(mlflow_model(tmp_path, mlmodel=MLMODEL.replace("    loader_module: mlflow.sklearn\n", "")))
    assert "MLmodel:3: flavors.python_function.loader_module: missing: mlflow.pyfunc imports this module" in message


@pytest.mark.parametrize("conda, line, field", [
    ("dependencies: numpy\n", 1, "dependencies: expected a list of packages"),
    ("dependencies:\n- python=3.12\n- pip:\n  - 1.5\n", 4, "dependencies.1.pip.0: expected text"),
    ("- python=3.12\n", 1, "the top level is a list"),
], ids=["string", "number", "list"])
def test_a_conda_yaml_of_the_wrong_shape(tmp_path, conda, line, field):
    message = refused(mlflow_model(tmp_path, conda=conda))
    assert message.startswith(f"error: {tmp_path / MODEL / 'conda.yaml'}:{line}: {field}"), message


def test_a_missing_conda_yaml(tmp_path):
    message = refused(mlflow_model(tmp_path, conda=None))
    assert message.startswith(f"error: {tmp_path / MODEL / 'MLmodel'}:5: flavors.python_function.env.conda: "
                              f"{tmp_path / MODEL / 'conda.yaml'} not found"), message


def test_a_signature_that_is_not_json(tmp_path):
    mlmodel = MLMODEL.replace("""'[{"type": "tensor\"""", """'[{type: tensor""")
    message = refused(mlflow_model(tmp_path, mlmodel=mlmodel))
    assert "MLmodel:24: signature.outputs: cannot be read: it is not JSON" in message


def test_every_problem_is_said_at_once(tmp_path):
    deployment_file = mlflow_model(tmp_path, conda="dependencies: numpy\n", **{"model.pkl": None})
    with pytest.raises(SpecError) as raised:
        load(deployment_file)
    assert {(p.file.name, p.field) for p in raised.value.problems} == {
        ("MLmodel", "flavors.python_function.model_path"), ("conda.yaml", "dependencies")}


# -- Triton ------------------------------------------------------------------------------------------


def test_a_triton_model_is_told_what_runs_it(tmp_path):
    write(tmp_path, "models/model_1/densenet/config.pbtxt", "name: 'densenet'\n")
    deployment_file = write(tmp_path, "deployment.yml", DEPLOYMENT.replace("path: sklearn-diabetes/model", (
        "path: models/model_1")).replace("mlflow_model", "triton_model"))
    message = refused(deployment_file)
    assert message.startswith(f"error: {deployment_file}:8: model.type: a no-code Triton deployment is served by "
                              "NVIDIA's Triton Inference Server image (nvcr.io/nvidia/tritonserver)"), message
    for said in ("--runtime container", "bring-your-own container", "FROM nvcr.io/nvidia/tritonserver:<tag>-py3",
                 "tritonserver --model-repository=$AZUREML_MODEL_DIR/model_1",
                 "liveness_route: {port: 8000, path: /v2/health/live}",
                 "readiness_route: {port: 8000, path: /v2/health/ready}"):
        assert said in message


def test_a_triton_model_in_a_container_of_ones_own_runs_as_today(tmp_path):
    # azureml-examples' custom-container/triton: the user's image with Triton's routes.
    write(tmp_path, "models/model_1/densenet/config.pbtxt", "name: 'densenet'\n")
    deployment = load(write(tmp_path, "deployment.yml", DEPLOYMENT.replace("path: sklearn-diabetes/model", (
        "path: models/model_1")).replace("mlflow_model", "triton_model") + """
environment:
  image: my-triton:latest
  inference_config:
    liveness_route: {path: /v2/health/live, port: 8000}
    readiness_route: {path: /v2/health/ready, port: 8000}
    scoring_route: {path: /, port: 8000}
"""))
    assert deployment.mlflow is None and deployment.environment.inference_config is not None


def test_reading_an_mlmodel_imports_no_mlflow(tmp_path):
    code = (f"import sys; from devtui.spec import load; load({str(mlflow_model(tmp_path))!r}); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('mlflow', 'pandas', 'sklearn')], 'imported'")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
