"""run() decorated with inference-schema: the JSON object's keys become keyword arguments."""

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@input_schema("factor", StandardPythonParameterType(2))
@input_schema("label", StandardPythonParameterType("sample"))
@output_schema(StandardPythonParameterType({"result": [[2.0, 4.0, 6.0]], "label": "sample"}))
def run(data, label, factor=2):
    return {"result": (data * factor).tolist(), "label": label, "type": type(data).__name__}
