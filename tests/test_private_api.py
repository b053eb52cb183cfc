"""Each private internal of a dependency that devtui relies on, named once, so that an upgrade
that moves one fails here, in CI, rather than in a user's terminal. pyproject.toml holds each of
these dependencies below its next release (uvicorn, textual, debugpy).

Where a public API exists, devtui uses it; these are the places where none does:
- uvicorn: the httptools protocol's request state (``cycle``, ``pipeline``, the parser callbacks)
  and the server's open connections, to drain a worker and hand its idle connections over
  (inference_server/serving.py).
- textual: the footer's ``FooterKey`` widget, to pin Help and Quit (devtui/tui/widgets/_app_footer.py).
- debugpy (pydevd): a thread's ``additional_info.pydev_state`` (2: suspended at a breakpoint) and the
  ``is_pydev_daemon_thread`` mark that keeps a helper thread running under the debugger
  (inference_server/serving.py).
- mlflow: ``mlflow.pyfunc.scoring_server._get_jsonable_obj``, which turns predictions into the JSON
  the cloud's MLflow scoring script answers with (records for a DataFrame)
  (inference_server/mlflow_score.py); ``Model._is_signature_from_type_hint``, which says whether
  ``mlflow.pyfunc`` enforces the signature itself (making a new frame column by column) or leaves
  it to the model (inference_server/mlflow_score.py).
- pandas: ``pandas.io.json._json.ujson_loads``, the parser ``read_json`` reads a split frame's
  text with, and the steps of ``read_json`` that leave a plain frame as it is (an index at or under
  the smallest epoch stays integers, a column without nulls stays as it is with ``dtype=False``),
  so that a no-code MLflow deployment reads a plain request as the cloud's script does without
  ``read_json``'s cost (inference_server/mlflow_frame.py).
"""

from __future__ import annotations

import inspect

import uvicorn
from uvicorn.protocols.http import httptools_impl


def test_uvicorn_httptools_protocol_keeps_its_request_state_where_devtui_reads_it():
    protocol = httptools_impl.HttpToolsProtocol
    for hook in ("connection_made", "connection_lost", "on_message_begin", "on_headers_complete", "shutdown",
                 "on_response_complete"):
        assert callable(getattr(protocol, hook, None)), hook
    source = inspect.getsource(protocol)
    for state in ("self.cycle", "self.pipeline", "self.transport", "self.scope", "self.url", "self.connections"):
        assert state in source, state
    assert inspect.signature(protocol.__init__).parameters.keys() >= {"config", "server_state", "app_state"}
    cycle = inspect.getsource(httptools_impl.RequestResponseCycle)
    for state in ("self.keep_alive", "self.response_complete", "self.scope"):
        assert state in cycle, state


def test_uvicorn_server_keeps_its_connections_and_listeners_where_devtui_reads_them():
    server = uvicorn.Server(uvicorn.Config(app=lambda *_: None))
    assert isinstance(server.server_state.connections, set)
    assert callable(server.handle_exit)
    source = inspect.getsource(uvicorn.Server)
    assert "self.servers" in source and "self.lifespan" in source
    config = uvicorn.Config(app=lambda *_: None, http=httptools_impl.HttpToolsProtocol, lifespan="off")
    config.load()
    assert config.http_protocol_class is httptools_impl.HttpToolsProtocol


def test_textual_footer_key():
    from textual.widgets._footer import FooterKey

    parameters = inspect.signature(FooterKey.__init__).parameters
    assert list(parameters)[1:5] == ["key", "key_display", "description", "action"], list(parameters)
    assert "tooltip" in parameters


def test_pydevd_marks_a_suspended_thread_with_state_2_and_skips_its_own_daemon_threads():
    from pathlib import Path

    import debugpy

    # pydevd is vendored inside debugpy and imported only in a debugged process: read its source.
    pydevd = Path(debugpy.__file__).parent / "_vendored" / "pydevd"
    constants = (pydevd / "_pydevd_bundle" / "pydevd_constants.py").read_text()
    assert "STATE_SUSPEND = 2" in constants
    info = (pydevd / "_pydevd_bundle" / "pydevd_additional_thread_info_regular.py").read_text()
    assert "self.pydev_state = STATE_RUN" in info
    assert "is_pydev_daemon_thread" in (pydevd / "pydevd.py").read_text()


def test_mlflow_turns_predictions_into_json_with_get_jsonable_obj():
    import numpy as np
    import pandas as pd
    from mlflow.pyfunc.scoring_server import _get_jsonable_obj

    assert _get_jsonable_obj(np.array([1.5, 2.5]), pandas_orient="records") == [1.5, 2.5]
    frame = pd.DataFrame({"a": [1], "b": [2]})
    assert _get_jsonable_obj(frame, pandas_orient="records") == [{"a": 1, "b": 2}]


def test_pandas_read_json_parses_a_split_frame_with_ujson_loads_and_leaves_a_plain_one_as_it_is():
    import pandas as pd
    from pandas.io.json import _json

    if int(pd.__version__.split(".")[0]) != 3:
        return  # mlflow_frame reads every request with read_json on another pandas
    assert callable(_json.ujson_loads)
    parse = inspect.getsource(_json.FrameParser._parse)
    assert "ujson_loads(json, precise_float=self.precise_float)" in parse and "DataFrame(dtype=None, **decoded)" in parse
    convert = inspect.getsource(_json.Parser._try_convert_data)
    assert "if all(notna(data)):\n                    return data, False" in convert
    assert 'if name == "index" and len(data):\n            if self.orient == "split":' in convert
    assert "(new_data > self.min_stamp)" in inspect.getsource(_json.Parser._try_convert_to_date)
    assert _json.Parser._MIN_STAMPS["s"] == 31536000


def test_mlflow_says_whether_a_signature_came_from_type_hints():
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel

    assert Model()._is_signature_from_type_hint() is False
    source = inspect.getsource(PyFuncModel._predict)
    assert "self.metadata._is_signature_from_type_hint()" in source and "_validate_prediction_input(" in source
    # Named columns are enforced one by one into a new frame (so the frame it was given is not the model's).
    from mlflow.models import utils

    named = inspect.getsource(utils._enforce_named_col_schema)
    assert "pf_input[name]" in named and "return pd.DataFrame(new_pf_input)" in named
