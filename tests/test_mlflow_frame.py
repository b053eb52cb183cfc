"""The DataFrame a no-code MLflow deployment reads from a request (inference_server/mlflow_frame.py)
is the one the cloud's script reads: inference-schema's PandasParameterType with orient split,
which runs pandas' read_json. Every input below goes through both, in-process, and the frames (or
the errors) must be the same, down to each float's bits, dtypes and layout; the plain ones must
also have taken the path without read_json, or the comparison proves nothing."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

from inference_server.mlflow_frame import SplitFrameType, plain_columns

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
# Floats whose shortest text pandas' ujson (precise_float=False, as read_json parses) reads to
# another float than Python's json does: a frame built from the values the server decoded would
# answer other last digits.
UJSON_READS_OTHERWISE = [-7.312715117751976e-05, 0.003031859454455259, -1.3446586418989328e-06,
                         0.0391665733536887, 0.004430800646815652, 8.028549152229673e-06]
ROW = [0.038075906433423026, 0.05068011873981862, 0.061696206518683294, 0.0218723855140367, -0.04422349842444599,
       -0.03482076283769895, -0.04340084565202491, -0.002592261998183278, 0.019907486170462722, -0.01764612515980379]


def split(data, columns=COLUMNS, index=None) -> dict:
    return {"columns": list(columns), "index": list(range(len(data))) if index is None else index, "data": data}


# Read without read_json: each must come out exactly as read_json reads it.
PLAIN = {
    "17 significant digits": split([ROW, ROW[::-1]]),
    "floats ujson reads otherwise": split([UJSON_READS_OTHERWISE + ROW[:4], ROW[4:] + UJSON_READS_OTHERWISE[:4]]),
    "whole floats": split([[1.0] * 10, [2.0] * 10]),
    "integers (an int64 column, then cast)": split([list(range(10)), list(range(10, 20))]),
    "integers and floats in one column": split([[1] * 10, [1.5] * 10]),
    "integers past 2**53": split([[2**53 + 1] * 10, [-(2**62)] * 10]),
    "tiny, huge, signed zeros and infinities": split([[5e-324, 1.7976931348623157e308, -0.0, 0.0, 1e-310,
                                                       float("inf"), float("-inf"), 1e22, 123456789.123, -1.0]]),
    "one row, index not from 0": split([ROW], index=[7]),
    "an index with one epoch-sized value": split([ROW, ROW], index=[5, 1600000000]),
    "a negative index": split([ROW, ROW], index=[-3, -1]),
    "many rows": split([ROW] * 300),
}

# Read by read_json (the plain path declines them): the outcome must still be the same.
OTHER = {
    "reordered columns": split([ROW[::-1]], columns=COLUMNS[::-1]),
    "a missing column": split([ROW[:9]], columns=COLUMNS[:9]),
    "an extra column": split([ROW + [1.0]], columns=COLUMNS + ["extra"]),
    "a duplicated column": split([ROW], columns=COLUMNS[:9] + ["age"]),
    "no index": {"columns": COLUMNS, "data": [ROW]},
    "an extra key": {**split([ROW]), "dtype": "float64"},
    "nulls": split([[None] * 10, ROW]),
    "a NaN": split([[float("nan")] + ROW[1:]]),
    "text": split([["a lot"] * 10]),
    "numbers as text": split([["1.5"] * 10]),
    "booleans": split([[True] * 10]),
    "mixed types": split([[1.0, "a", None, True, 2, [1], {"a": 1}, 3.5, -1, 0]]),
    "an integer past int64": split([[2**63] + ROW[1:]]),
    "an index of epoch times": split([ROW, ROW], index=[1600000000, 1600000001]),
    "an index of text": split([ROW, ROW], index=["a", "b"]),
    "an index of floats": split([ROW, ROW], index=[0.5, 1.5]),
    "an index of booleans": split([ROW, ROW], index=[True, False]),
    "an index too short": split([ROW, ROW], index=[0]),
    "no rows": split([], index=[]),
    "a short row": split([ROW[:9]]),
    "rows not a list": split({"a": 1}, index=[0]),
    "a row not a list": split([ROW, 1.0]),
    "columns not a list": {"columns": "age", "index": [0], "data": [ROW]},
    "a list": [ROW],
}


def samples() -> dict[str, pd.DataFrame]:
    """The two samples the decorator is built from: the input example's rows, or the signature's
    empty frame of its column types."""
    return {"example": pd.DataFrame([ROW, ROW], columns=COLUMNS),
            "signature": pd.DataFrame(columns=COLUMNS).astype(dict.fromkeys(COLUMNS, "float64"))}


def outcome(read, value):
    try:
        return read(copy.deepcopy(value))
    except Exception as ex:  # noqa: BLE001 (any error: the same one, with the same words)
        return (type(ex), str(ex))


def bits(array: np.ndarray):
    """An array's values exactly: its bytes, or each object's type and repr (floats' repr is exact)."""
    if array.dtype.kind in "biufcmM":
        return array.dtype, array.tobytes()
    return array.dtype, [(type(v), repr(v)) for v in array.ravel().tolist()]


def assert_same_frame(ours, clouds, whole: bool = True) -> None:
    """Same values bit for bit, dtypes, index and columns; ``whole``: the same array for a model
    that takes the frame as it is (order, strides, writeable)."""
    if isinstance(clouds, tuple):
        assert ours == clouds
        return
    pd.testing.assert_frame_equal(ours, clouds, check_exact=True, check_index_type=True, check_column_type=True)
    assert ours.index.dtype == clouds.index.dtype and ours.columns.dtype == clouds.columns.dtype
    for name in clouds.columns:
        assert bits(ours[name].to_numpy()) == bits(clouds[name].to_numpy()), name
    if whole:
        mine, theirs = np.asarray(ours), np.asarray(clouds)
        assert (mine.dtype, mine.strides, mine.flags.writeable) == (theirs.dtype, theirs.strides,
                                                                     theirs.flags.writeable)
        assert bits(mine) == bits(theirs)


@pytest.mark.parametrize("rebuilt", [False, True], ids=["taken-as-is", "rebuilt-by-schema"])
@pytest.mark.parametrize("sample", ["example", "signature"])
@pytest.mark.parametrize("name", list(PLAIN) + list(OTHER))
def test_a_request_is_read_as_the_clouds_script_reads_it(name, sample, rebuilt):
    frame = samples()[sample]
    ours = SplitFrameType(frame, rebuilt=rebuilt)
    clouds = PandasParameterType(frame, enforce_shape=False, orient="split")
    value = PLAIN.get(name, OTHER.get(name))
    assert (ours.plain_frame(copy.deepcopy(value)) is not None) == (name in PLAIN)
    # A frame rebuilt column by column (mlflow's schema enforcement) before the model sees it
    # needs the same columns only; one the model takes as it is, the same array too.
    assert_same_frame(outcome(ours.deserialize_input, value), outcome(clouds.deserialize_input, value),
                      whole=not rebuilt)


def test_the_values_are_not_pythons_floats():
    """The point of parsing again: Python's json and read_json disagree on these floats."""
    frame = SplitFrameType(samples()["example"]).deserialize_input(PLAIN["floats ujson reads otherwise"])
    assert frame["age"].tolist()[0] != UJSON_READS_OTHERWISE[0]


@pytest.mark.parametrize("columns, converted", [
    (["2020-01-01", "2021-06-30"], True), (["1", "2"], True), (["0.5", "1.5"], True), ([], True), (["a", "a"], True),
    (["2020-01-01", "b"], False), (["0.5", "x"], False), (["created_at", "timestamp", "date"], False),
])
def test_column_names_read_json_would_convert_or_rename_take_read_json(columns, converted):
    """Names read as dates or numbers (all of them, or read_json keeps them all), or renamed as
    duplicates: read_json reads every request. Either way the frames are the same."""
    frame = pd.DataFrame(columns=columns, dtype="float64")
    assert (plain_columns(frame) is None) == converted
    value = split([[1.0] * len(columns)], columns=columns)
    ours = SplitFrameType(frame)
    clouds = PandasParameterType(frame, enforce_shape=False, orient="split")
    assert_same_frame(outcome(ours.deserialize_input, value), outcome(clouds.deserialize_input, value))


def test_columns_that_are_not_numbers_take_read_json():
    frame = pd.DataFrame({"when": pd.to_timedelta([1], unit="s"), "x": [1.0]})
    assert SplitFrameType(frame).columns is None
    frame = pd.DataFrame({"name": ["a"], "x": [1.0]})
    assert SplitFrameType(frame).columns is None


@pytest.mark.e2e  # mlflow's import and two model saves: seconds on 2 cores
@pytest.mark.parametrize("kind", ["sklearn", "lightgbm"])
def test_the_models_answer_the_same_bits_to_either_frame(kind, tmp_path):
    """What the model answers, through mlflow.pyfunc as the worker calls it, to the frame read
    either way: the plain inputs, on both reference models."""
    pytest.importorskip("mlflow.pyfunc", reason="devtui's mlflow extra (make install-dev installs it)")
    if kind == "lightgbm":
        pytest.importorskip("lightgbm", reason="the test extra's lightgbm (make install-dev installs it)")
    import mlflow.pyfunc
    from mlflow.models import Model
    from mlflow_models import make

    folder = make(kind, tmp_path)
    model = mlflow.pyfunc.load_model(str(folder))
    columns = Model.load(str(folder)).signature.inputs.input_names()
    sample = pd.DataFrame(columns=columns).astype(dict.fromkeys(columns, "float64"))
    ours = SplitFrameType(sample, rebuilt=True)
    clouds = PandasParameterType(sample, enforce_shape=False, orient="split")
    width = len(columns)
    for name, value in PLAIN.items():
        # The model's own columns; infinities (refused by the model either way) and values whose
        # products overflow are left out.
        value = {**value, "columns": columns,
                 "data": [[v if abs(v) < 1e300 else 1.0 for v in row[:width]] for row in value["data"]]}
        assert ours.plain_frame(copy.deepcopy(value)) is not None, name
        mine = model.predict(ours.deserialize_input(copy.deepcopy(value)))
        theirs = model.predict(clouds.deserialize_input(copy.deepcopy(value)))
        assert json.dumps(np.asarray(mine).tolist()) == json.dumps(np.asarray(theirs).tolist()), name
        assert np.asarray(mine).tobytes() == np.asarray(theirs).tobytes(), name
