"""The request/response API that scoring scripts import from Azure ML.

Scripts written for the cloud import ``AMLRequest``, ``AMLResponse`` and ``rawhttp`` from
``azureml.contrib.services.aml_request`` / ``aml_response`` (or from
``azureml_inference_server_http.api``). This module provides them on top of werkzeug, whose
request API is the contract, and :func:`install` makes those import paths resolve to it without
any azureml package installed.
"""

from __future__ import annotations

import importlib
import json
import sys
import types

from werkzeug.wrappers import Request, Response

# Set by @rawhttp. Like the reference server, the flag is per process, not per function: a script
# that applies the decorator anywhere gets the raw request in run(). Workers start from a parent
# that never loads user code, so every revision starts with it cleared.
_rawHttpRequested = False


def rawhttp(func):
    """Ask for the raw HTTP request object in ``run(request)``."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


class AMLRequest(Request):
    """The request ``run()`` receives under ``@rawhttp``: a werkzeug request."""


class AMLResponse(Response):
    """A response ``run()`` may return as it is: body, status and headers."""

    # Flask's default, which the reference server's AMLResponse inherits.
    default_mimetype = "text/html"

    def __init__(self, message, status_code, response_headers=None, json_str=False, run_function_failed=False):
        response_headers = response_headers or {}
        if message is None:
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
            if "Content-Type" in response_headers:
                # The loop below adds the caller's; two would confuse clients.
                self.headers.remove("Content-Type")
        self.headers["x-ms-run-function-failed"] = str(run_function_failed)
        # A repeated header is given as one comma-separated value, as HTTP allows.
        for header, value in response_headers.items():
            for part in str(value).split(","):
                self.headers.add_header(header, part.strip())


def reset() -> None:
    global _rawHttpRequested
    _rawHttpRequested = False


def raw_requested() -> bool:
    return _rawHttpRequested


def install() -> None:
    """Make the azureml import paths scripts use resolve to this module."""
    this = sys.modules[__name__]
    for package in ("azureml", "azureml.contrib", "azureml.contrib.services"):
        try:
            # A real azureml package keeps working for everything else the script imports.
            importlib.import_module(package)
        except ImportError:
            _stub_package(package)
    for package in ("azureml_inference_server_http", "azureml_inference_server_http.api"):
        # Never the real one: importing it changes sys.path and pulls in Flask.
        if package not in sys.modules:
            _stub_package(package)
    for name in ("azureml.contrib.services.aml_request", "azureml.contrib.services.aml_response",
                 "azureml_inference_server_http.api.aml_request",
                 "azureml_inference_server_http.api.aml_response"):
        sys.modules[name] = this
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, this)


def _stub_package(name: str) -> None:
    module = types.ModuleType(name)
    module.__path__ = []
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
