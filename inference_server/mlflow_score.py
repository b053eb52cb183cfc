"""The scoring script of a no-code MLflow deployment: what the cloud generates for a model folder
with an ``MLmodel`` and no code, served by the script worker like any ``score.py``.

The contract is the cloud's (its MLflow image runs a generated script under azmlinfsrv, with
``AZUREML_MODEL_DIR`` and ``MLFLOW_MODEL_FOLDER`` set); this module is written from that contract:

- ``run(input_data, params=None)`` is declared with inference-schema, so the server parses the
  request as it parses any decorated script: ``input_data`` (required) and ``params`` (optional)
  from the JSON body or the query string, the swagger's examples from the same types, and the same
  400 answers for a body that does not fit.
- The types come from the model's input example when it saved one, else from its signature: a
  split-orient DataFrame for columns, arrays for tensors (a dict of arrays when named), and the
  value as it is for a model with neither.
- What a type does not turn into a DataFrame or arrays is read as the cloud reads it: a list is an
  array, a split dict a DataFrame, any other dict named tensors.
- The answer is the predictions as JSON (records for a DataFrame), with no wrapper.

Only the model's metadata is read at import (for the decorators); the model itself is loaded in
``init()``, by ``mlflow.pyfunc``, so a save over it is a new worker's load. Nothing else of devtui
imports mlflow.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import logging
import os

import numpy as np
from inference_schema.parameter_types.abstract_parameter_type import AbstractParameterType
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema
from mlflow.models import Model
from mlflow.types import DataType
from mlflow.types.schema import ColSpec

try:
    import pandas as pd
    from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

    from inference_server.mlflow_frame import SplitFrameType
except ImportError:  # a tensor model may run without pandas
    pd = None

logger = logging.getLogger("azmlinfsrv.mlflow")

MODEL_PATH = os.path.join(os.environ.get("AZUREML_MODEL_DIR", ""), os.environ.get("MLFLOW_MODEL_FOLDER", ""))

# A value of each type, for a sample the signature alone describes (as the cloud fills them in).
_SAMPLE_VALUES = {DataType.boolean: True, DataType.string: "sample string", DataType.integer: 42,
                  DataType.long: 42, DataType.float: 0.15, DataType.double: 0.15}

# The libraries each flavour's loader needs besides mlflow: its import name, and its name on PyPI.
_FLAVOUR_LIBRARIES = {"mlflow.sklearn": ("sklearn", "scikit-learn"), "mlflow.lightgbm": ("lightgbm", "lightgbm"),
                      "mlflow.xgboost": ("xgboost", "xgboost"), "mlflow.catboost": ("catboost", "catboost"),
                      "mlflow.pytorch": ("torch", "torch"), "mlflow.tensorflow": ("tensorflow", "tensorflow"),
                      "mlflow.keras": ("keras", "keras"), "mlflow.statsmodels": ("statsmodels", "statsmodels"),
                      "mlflow.prophet": ("prophet", "prophet"), "mlflow.onnx": ("onnxruntime", "onnxruntime")}


class Passthrough(AbstractParameterType):
    """A value taken as it comes: a model without a sample, or a sample no type describes."""

    def __init__(self):
        super().__init__(None)

    def deserialize_input(self, input_data):
        return input_data

    def input_to_swagger(self):
        return {"type": "object", "example": {}}


class MissingLibrary(ImportError):
    """The model's flavour needs a library this environment does not have: said as a message, not
    as a traceback through this script (``user_script.user_traceback``)."""

    said_plainly = True


def check_flavour_library(model: Model) -> None:
    """Before the model is loaded: its loader's library is installed, or say which, at the version
    the model's requirements.txt names."""
    loader = model.flavors.get("python_function", {}).get("loader_module", "")
    library, package = _FLAVOUR_LIBRARIES.get(loader, (None, None))
    if library is None or importlib.util.find_spec(library) is not None:
        return
    wanted = _required_version(package) or package
    raise MissingLibrary(f"the model is loaded by {loader}, which needs {wanted} (the model's requirements.txt), "
                         f"and {library} is not installed in this environment: pip install '{wanted}'")


def _required_version(package: str) -> str | None:
    try:
        with open(os.path.join(MODEL_PATH, "requirements.txt"), encoding="utf-8") as f:
            lines = [line.split("#")[0].strip() for line in f]
    except OSError:
        return None
    name = package.lower().replace("_", "-")
    return next((line for line in lines if line.lower().replace("_", "-").startswith(name)
                 and line[len(name):len(name) + 1] in ("=", "<", ">", "~", "!", "[", "")), None)


# -- the samples the decorators are built from ------------------------------------------------------


def example_sample(model: Model):
    """The model's saved input example, as a DataFrame or arrays; None when it saved none (or it
    cannot be read: the signature is used then)."""
    info = model.saved_input_example_info
    if not info:
        return None
    try:
        with open(os.path.join(MODEL_PATH, info["artifact_path"]), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError, KeyError) as ex:
        logger.warning(f"The model's input example cannot be read ({ex}); its signature describes the input")
        return None
    if info.get("type") == "dataframe" and pd is not None:
        return _frame(saved, "split" if "columns" in saved else "values")
    if info.get("type") == "ndarray":
        inputs = saved["inputs"]
        return {k: np.asarray(v) for k, v in inputs.items()} if isinstance(inputs, dict) else np.asarray(inputs)
    return saved


def _frame(value, orient: str):
    # A file-like object: pandas 3 no longer takes JSON text itself for a path.
    return pd.read_json(io.StringIO(json.dumps(value)), orient=orient, dtype=False)


def schema_sample(schema):
    """A value of the shape a signature's inputs or outputs describe: zeros for tensors (a batch of
    one), an empty typed DataFrame for columns, else a plain Python value."""
    if schema is None or not schema.inputs:
        return None
    if schema.is_tensor_spec():
        def zeros(spec):
            shape = tuple(1 if n == 0 and size == -1 else size for n, size in enumerate(spec.shape or ()))
            return np.zeros(shape, dtype=spec.type)
        if schema.has_input_names():
            return {spec.name: zeros(spec) for spec in schema.inputs}
        return zeros(schema.inputs[0])
    if pd is not None:
        try:
            return pd.DataFrame(columns=schema.input_names()).astype(dict(zip(schema.input_names(),
                                                                              schema.pandas_types())))
        except Exception:  # column types pandas cannot hold: a plain value describes them
            pass
    first = schema.inputs[0]
    if isinstance(first, ColSpec) and first.name is not None:
        return {spec.name: _SAMPLE_VALUES.get(spec.type) for spec in schema.inputs}
    return ["sample string"] if first.type == DataType.string else []


def params_sample(signature) -> dict | None:
    params = getattr(signature, "params", None) if signature is not None else None
    if not params:
        return None
    return {p.name: p.default if p.default is not None else _SAMPLE_VALUES.get(p.dtype) for p in params.params}


def input_type(sample, metadata: Model) -> AbstractParameterType:
    if isinstance(sample, np.ndarray):
        return NumpyParameterType(sample, enforce_shape=False)
    if pd is not None and isinstance(sample, pd.DataFrame):
        return SplitFrameType(sample, rebuilt=rebuilt_by_schema(metadata))
    if isinstance(sample, dict):
        return StandardPythonParameterType({k: NumpyParameterType(np.asarray(v), enforce_shape=False)
                                            for k, v in sample.items()})
    return Passthrough()


def rebuilt_by_schema(metadata: Model) -> bool:
    """Whether mlflow.pyfunc makes a new frame, column by column, before the model sees it: it does
    when it enforces a signature of named columns, which it leaves to the model when the signature
    came from a PythonModel's type hints (private in mlflow: tests/test_private_api.py; without it,
    the frame is taken to reach the model as it is)."""
    inputs = metadata.signature.inputs if metadata.signature is not None else None
    from_type_hints = getattr(metadata, "_is_signature_from_type_hint", None)
    return bool(inputs is not None and inputs.has_input_names() and not inputs.is_tensor_spec()
                and from_type_hints is not None and not from_type_hints())


def output_type(sample) -> AbstractParameterType:
    if sample is None:
        return Passthrough()
    if isinstance(sample, np.ndarray):
        return NumpyParameterType(sample, enforce_shape=False)
    if isinstance(sample, dict):
        return StandardPythonParameterType({k: NumpyParameterType(v, enforce_shape=False) for k, v in sample.items()})
    return PandasParameterType(sample, enforce_shape=False, orient="records")


# -- the script ---------------------------------------------------------------------------------------

metadata = Model.load(MODEL_PATH)
check_flavour_library(metadata)
_signature = metadata.signature
_input_sample = example_sample(metadata)
if _input_sample is None and _signature is not None:
    _input_sample = schema_sample(_signature.inputs)
_params_sample = params_sample(_signature)
model = None
takes_params = False


def init():
    global model, takes_params
    from mlflow.pyfunc import load_model

    logger.info(f"Loading the MLflow model in {MODEL_PATH}")
    model = load_model(MODEL_PATH)
    # The cloud's script asks this of every request; the loaded model's predict does not change.
    takes_params = "params" in inspect.signature(model.predict).parameters


@input_schema("input_data", input_type(_input_sample, metadata))
@input_schema("params", Passthrough() if _params_sample is None else StandardPythonParameterType(_params_sample),
              optional=True)
@output_schema(output_type(schema_sample(_signature.outputs) if _signature is not None else None))
def run(input_data, params=None):
    from mlflow.pyfunc.scoring_server import _get_jsonable_obj

    predictions = predict(as_model_input(input_data), params)
    return _get_jsonable_obj(predictions, pandas_orient="records")


def as_model_input(value):
    """What the model is given: a DataFrame or arrays as the types made them; else the request's
    value read the way the cloud reads it."""
    if isinstance(value, np.ndarray) or (pd is not None and isinstance(value, pd.DataFrame)):
        return value
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), np.ndarray):
        return value
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict) and "input_data" in value:
        value = value["input_data"]
    if isinstance(value, list):
        return np.asarray(value)
    if isinstance(value, dict) and pd is not None and {"columns", "index", "data"} <= value.keys():
        return _frame(value, "split")
    return {name: np.asarray(item) for name, item in value.items()}


def predict(model_input, params):
    if takes_params:
        return model.predict(model_input, params=params)
    return model.predict(model_input)
