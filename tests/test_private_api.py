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
  (inference_server/mlflow_score.py).
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
