"""Scoring script whose run() declares its inputs with inference-schema.

Because run() is decorated, the server parses the JSON body itself and passes
its keys as keyword arguments ("data", "round_digits"), converting "data" to a
numpy array. The same decorators describe the API in GET /swagger.json.
"""

import json
import logging
import os

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

coefficients = None
intercept = 0.0

# One example row of the 10 diabetes features. The schema takes its shape and
# dtype from it: any number of rows is accepted, but each must have 10 floats.
SAMPLE_DATA = np.array(
    [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]
)
SAMPLE_OUTPUT = {"predictions": [199.85]}


def init():
    """Read the coefficients once per worker."""
    global coefficients, intercept
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "linear_model.json")
    with open(path) as f:
        doc = json.load(f)
    coefficients = np.array(doc["coefficients"], dtype=float)
    intercept = float(doc["intercept"])
    logger.info("loaded %d coefficients from %s", len(coefficients), path)


@input_schema("data", NumpyParameterType(SAMPLE_DATA))
# A body without "round_digits" gets the Python default below.
@input_schema("round_digits", StandardPythonParameterType(2))
@output_schema(StandardPythonParameterType(SAMPLE_OUTPUT))
def run(data, round_digits=2):
    """data arrives as a numpy array of shape (n, 10)."""
    logger.info("scoring %d row(s)", data.shape[0])
    predictions = data @ coefficients + intercept
    # Return plain Python types: the server serialises the answer with json.
    return {"predictions": [round(float(p), round_digits) for p in predictions]}
