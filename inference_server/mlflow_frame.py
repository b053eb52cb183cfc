"""The DataFrame a no-code MLflow deployment's model is given: read as the cloud's script reads it,
without the cost of pandas' ``read_json`` where the request is plain.

The cloud's script declares ``input_data`` with inference-schema's ``PandasParameterType``
(orient split), which runs ``pd.read_json(json.dumps(value), orient="split", dtype=False)`` and
then casts each column to the sample's dtype. ``read_json`` spends most of its time proving that
nothing needs converting: that the column names are not dates or numbers, that the index is not
epoch times, that no column has a null to fill. For a request whose columns are the model's, in
its order, whose index is integers not all past 1971 in epoch seconds, and whose values are all
numbers, every one of those steps is known to leave the frame as it is, so the frame is built by
the same constructor, from the same values, and cast the same way:

- The values are parsed from the same text (``json.dumps`` of the request's value) by the parser
  ``read_json`` calls (pandas' ujson, ``precise_float=False``). Python's ``json`` reads some
  floats one bit differently, so the values the server already decoded cannot be used.
- The column names' conversion (to numbers, to dates) depends on the names alone: it is run once
  per worker on the model's names, by ``read_json`` itself, and the plain path is only taken if it
  left them as they were.
- The index is converted to dates only when every value is past ``min_stamp`` (1971 in seconds);
  one at or under it keeps the integers as they are, and the split orient keeps them int64.
- With ``dtype=False`` a column without nulls is kept as it is.
- The cast to the sample's dtypes (``astype`` with a dict: a Series per column, concatenated) is
  skipped when every column already has its dtype and the frame is rebuilt column by column before
  the model sees it (``rebuilt``: mlflow's schema enforcement of named columns makes a new frame
  from each column, and a column's values, dtype and index are the same either way). Otherwise
  the cast is made as the cloud makes it.

Anything else (other or reordered columns, nulls, text, no index) is read by ``read_json``, as the
cloud reads it, with its errors. Nothing is kept between requests: each is parsed and built afresh.
The shape of ``read_json`` this relies on is pandas 3's; with another pandas every request takes
the cloud's path.
"""

from __future__ import annotations

import json
import math
from io import StringIO

import numpy as np
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

try:  # private: the name read_json itself calls to parse its text (tests/test_private_api.py pins it)
    from pandas.io.json._json import ujson_loads
except ImportError:  # a pandas before 2.1: every request takes read_json
    ujson_loads = None

SPLIT_KEYS = frozenset(("columns", "index", "data"))
# read_json's smallest epoch (unit "s"): an index with a value at or under it is never read as dates.
MIN_STAMP = 31536000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
PANDAS_MAJOR = int(pd.__version__.split(".", 1)[0])


class SplitFrameType(PandasParameterType):
    """``PandasParameterType(sample, enforce_shape=False, orient="split")``, as the cloud declares
    it, reading a plain request without ``read_json``."""

    def __init__(self, sample: pd.DataFrame, rebuilt: bool = False):
        super().__init__(sample, enforce_shape=False, orient="split")
        self.rebuilt = rebuilt
        self.types = sample.dtypes.to_dict()
        # Only numbers cast to numbers: the cast of other types has errors of its own to say.
        numeric = all(isinstance(t, np.dtype) and t.kind in ("b", "i", "u", "f") for t in self.types.values())
        self.columns = plain_columns(sample) if numeric else None

    def deserialize_input(self, input_data):
        frame = self.plain_frame(input_data) if self.columns is not None else None
        return super().deserialize_input(input_data) if frame is None else frame

    def plain_frame(self, value) -> pd.DataFrame | None:
        """The frame ``read_json`` and the cast would make, or None when the request is not plain."""
        if type(value) is not dict or value.keys() != SPLIT_KEYS:
            return None
        try:
            decoded = ujson_loads(json.dumps(value), precise_float=False)
        except (TypeError, ValueError, OverflowError):  # read_json says what is wrong
            return None
        if decoded["columns"] != self.columns or not plain_index(decoded["index"]):
            return None
        if not plain_rows(decoded["data"], len(decoded["index"]), len(self.columns)):
            return None
        frame = pd.DataFrame(dtype=None, columns=decoded["columns"], index=decoded["index"], data=decoded["data"])
        if self.rebuilt and frame.dtypes.to_dict() == self.types:
            return frame
        return frame.astype(dtype=self.types)


def plain_columns(sample: pd.DataFrame) -> list[str] | None:
    """The sample's column names, when ``read_json`` keeps them as they are (unique text that reads
    as neither numbers nor dates); else None, and every request takes ``read_json``."""
    names = list(sample.columns)
    if PANDAS_MAJOR != 3 or ujson_loads is None or not names or len(set(names)) != len(names) or not all(type(n) is str for n in names):
        return None
    text = json.dumps({"columns": names, "index": [0], "data": [[0] * len(names)]})
    read = pd.read_json(StringIO(text), orient="split", dtype=False).columns
    built = pd.DataFrame(columns=names).columns
    return names if read.equals(built) and read.dtype == built.dtype and list(read) == names else None


def plain_index(index) -> bool:
    """Integers of int64, at least one at or under ``MIN_STAMP``: kept as they are."""
    if type(index) is not list or not index:
        return False
    if not all(type(i) is int and INT64_MIN < i <= INT64_MAX for i in index):
        return False
    return min(index) <= MIN_STAMP


def plain_rows(rows, height: int, width: int) -> bool:
    """``height`` rows of ``width`` numbers (floats that are not NaN, int64 integers): no column
    has a null for ``read_json`` to fill."""
    if type(rows) is not list or len(rows) != height:
        return False
    for row in rows:
        if type(row) is not list or len(row) != width:
            return False
        for v in row:
            kind = type(v)
            if kind is float:
                if math.isnan(v):
                    return False
            elif kind is not int or not INT64_MIN < v <= INT64_MAX:
                return False
    return True
