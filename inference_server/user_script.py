"""The user's score.py: loading it, reading how run() wants its input, calling init() and run().

Mirrors the reference server (azureml-inference-server-http) so scripts run unchanged: an
undecorated ``run(raw)`` gets the body as a str, an ``@input_schema`` run gets the JSON object's
keys as keyword arguments, a ``@rawhttp`` run gets the request object, and a ``request_headers``
parameter receives the headers.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import amlapi
from .fresh_import import FreshLoader, OnLoad

logger = logging.getLogger("azmlinfsrv.user_script")


class ScriptError(Exception):
    """The script cannot be served; the message says why."""


class InputError(Exception):
    """The request does not fit what run() takes; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class MethodNotAllowed(Exception):
    """run() is not called for this method (OPTIONS and HEAD on a non-raw script)."""


RAW, SCHEMA, STRING = "raw", "schema", "string"


@dataclass
class UserScript:
    path: str
    module: ModuleType
    init: Callable[[], Any]
    run: Callable[..., Any]
    kind: str
    parameters: list[inspect.Parameter]
    wants_headers: bool

    @property
    def first_parameter(self) -> str:
        return self.parameters[0].name

    def arguments(self, method: str, query: Iterable[tuple[str, str]], body: bytes,
                  content_type: str, raw_request: Callable[[], Any]) -> dict[str, Any]:
        """The keyword arguments for run(), or InputError / MethodNotAllowed."""
        if self.kind == RAW:
            return {self.first_parameter: raw_request()}
        if method == "GET":
            parsed = _query_as_json(query)
            if self.kind == STRING:
                return {self.first_parameter: json.dumps(parsed)}
            return self._extract(parsed)
        if method != "POST":
            raise MethodNotAllowed(method)
        if self.kind == STRING:
            if _is_form(content_type):
                # Flask parses a form body and leaves request.data empty; scripts get "" there.
                return {self.first_parameter: ""}
            try:
                return {self.first_parameter: str(body, "utf-8")}
            except UnicodeDecodeError as ex:
                raise InputError(400, f"Input cannot be decoded as UTF-8: {ex}") from None
        if not _is_json(content_type):
            raise InputError(415, "Expects Content-Type to be application/json")
        try:
            document = json.loads(body)
        except json.JSONDecodeError as ex:  # not UnicodeDecodeError: the reference answers that with 500
            if body:
                raise InputError(400, f"POST body could not be decoded as JSON: {ex}") from None
            raise InputError(400, "POST body is empty. Expecting a JSON dictionary.") from None
        if not isinstance(document, dict):
            raise InputError(400, "POST body should be a JSON dictionary.")
        return self._extract(document)

    def _extract(self, document: dict[str, Any]) -> dict[str, Any]:
        values = {}
        for parameter in self.parameters:
            value = document.get(parameter.name, parameter.default)
            if value is inspect.Parameter.empty:
                raise InputError(400, f"A value is not provided for the {parameter.name!r} parameter.")
            values[parameter.name] = value
        return values

    def call_run(self, arguments: dict[str, Any], headers: dict[str, str]) -> Any:
        if self.wants_headers:
            return self.run(**arguments, request_headers=headers)
        return self.run(**arguments)


def load(path: str, on_load: OnLoad | None = None) -> UserScript:
    """Import the script at ``path`` and inspect its run(). Raises whatever the import raises,
    or ScriptError when the script's shape is wrong. ``on_load`` is told the source it compiled
    (see ``fresh_import``)."""
    module = _import_entry_module(path, on_load)
    if not hasattr(module, "init"):
        raise ScriptError(f"User script at {module.__file__} does not have a init() function defined.")
    if not hasattr(module, "run"):
        raise ScriptError(f"User script at {module.__file__} does not have a run() function defined.")
    run = _find_run(module)
    parameters, wants_headers = _run_parameters(run)
    kind = _input_kind(run, parameters)
    return UserScript(path, module, module.init, run, kind, parameters, wants_headers)


def _import_entry_module(path: str, on_load: OnLoad | None) -> ModuleType:
    amlapi.install()
    amlapi.reset()
    spec = importlib.util.spec_from_file_location("entry_module", path,
                                                  loader=FreshLoader("entry_module", path, on_load))
    if spec is None or spec.loader is None:
        raise ScriptError(f"Cannot load a Python module from {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules["entry_module"] = module
    spec.loader.exec_module(module)
    return module


def _find_run(module: ModuleType) -> Callable:
    # Some SDKs generate a driver module that forwards to the real script; calling the real run()
    # keeps inference-schema's keyword arguments intact, as the reference server does.
    driver = getattr(module, "driver_module", None)
    if isinstance(driver, ModuleType) and hasattr(driver, "run"):
        logger.info(f"Found driver script at {module.__file__} and the score script at {driver.__file__}")
        return driver.run
    logger.info(f"Found user script at {module.__file__}")
    return module.run


def _run_parameters(run: Callable) -> tuple[list[inspect.Parameter], bool]:
    """run()'s input parameters, and whether it also takes ``request_headers``."""
    parameters = list(inspect.signature(run).parameters.values())
    if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters):
        raise ScriptError("run() cannot accept positional-only arguments, *args, or **kwargs.")
    wants_headers = any(p.name == "request_headers" for p in parameters)
    parameters = [p for p in parameters if p.name != "request_headers"]
    if not parameters:
        if wants_headers:
            raise ScriptError('run() needs to accept an argument other than "request_headers".')
        raise ScriptError("run() needs to accept an argument for input data.")
    return parameters, wants_headers


def _input_kind(run: Callable, parameters: list[inspect.Parameter]) -> str:
    """How run() takes its input, from its decorators."""
    schema = is_schema_decorated(run)
    if amlapi.raw_requested() and schema:
        raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema")
    if amlapi.raw_requested():
        logger.info("run() is decorated with @rawhttp. Server will invoke it with the request object.")
        return RAW
    if schema:
        logger.info("run() is decorated with @input_schema. Server will invoke it with the following "
                    f"arguments: {', '.join(p.name for p in parameters)}.")
        return SCHEMA
    logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")
    return STRING


def is_schema_decorated(func: Callable) -> bool:
    # Only a script that imported inference-schema can be decorated with it; don't import it otherwise.
    schema_util = sys.modules.get("inference_schema.schema_util")
    return bool(schema_util and schema_util.is_schema_decorated(func))


_SERVER = os.path.dirname(os.path.abspath(__file__))
_STDLIB = sysconfig.get_paths()["stdlib"]


def user_traceback() -> str:
    """The current exception's traceback from the user's first frame on.

    The frames before it (this server, importlib, the thread pool) say nothing about the
    script; when no frame is the user's, the whole traceback is kept. An error the server raised
    to say something plainly (``said_plainly``: a model's library is missing) is its message alone."""
    _, error, tb = sys.exc_info()
    if getattr(error, "said_plainly", False):
        return f"{error}\n"
    first = tb
    while first is not None:
        filename = first.tb_frame.f_code.co_filename
        if not (filename.startswith((_SERVER, _STDLIB)) or filename.startswith("<frozen ")):
            break
        first = first.tb_next
    if first is None and not isinstance(error, SyntaxError):
        first = tb
    return "".join(traceback.format_exception(type(error), error, first))


# Folders deeper than this are not opened in the model tree: a model is never laid out so deep,
# and a hostile folder a thousand levels deep would fill the log with indentation.
TREE_DEPTH = 32


def walk_tree(path: str) -> Iterator[str]:
    """The model folder as an indented tree, for the log when init() fails. Lazy (the log shows
    the first lines) and walked without recursion, so no depth of folders breaks it."""
    pending = [(path, 0)]  # (path, depth): a stack, children pushed in reverse to come out sorted
    while pending:
        current, depth = pending.pop()
        indent = " " * 4 * depth
        name = os.path.basename(os.path.normpath(current))
        if not os.path.isdir(current):
            yield f"{indent}{name}"
            continue
        yield f"{indent}{name}{os.sep}"
        if depth == TREE_DEPTH:
            yield f"{indent}    ... (folders more than {TREE_DEPTH} levels deep are not shown)"
            continue
        try:
            children = sorted(os.listdir(current))
        except OSError:  # unreadable: its name is shown, not what it holds
            continue
        pending.extend((os.path.join(current, child), depth + 1) for child in reversed(children))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _query_as_json(query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as if they were a JSON body: values parsed as JSON where they are JSON,
    a repeated key becomes a list."""
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    return {key: _parse_value(values[0]) if len(values) == 1 else [_parse_value(v) for v in values]
            for key, values in grouped.items()}


def _is_form(content_type: str) -> bool:
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def _is_json(content_type: str) -> bool:
    # werkzeug's Request.is_json rule: application/json or application/*+json.
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))
