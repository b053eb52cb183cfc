"""How a problem is worded: an example line for every field, a description of a found value, and
the `Problem` made from one pydantic validation error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .deployment import Probe
from .models import _STRING_FORM
from .problems import Problem

if TYPE_CHECKING:
    from .yaml_lines import _Document


_EXAMPLE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
_ROUTE_EXAMPLES = {"liveness_route": "/health", "readiness_route": "/ready", "scoring_route": "/score"}
_EXAMPLES = {
    "name": "name: blue",
    "endpoint_name": "endpoint_name: my-endpoint",
    "auth_mode": "auth_mode: key",
    "model": "model: {path: ./model}",
    "model.path": "path: ./model",
    "model.name": "name: my-model",
    "model.version": "version: 1",
    "code_configuration": "code_configuration: {code: ./src, scoring_script: score.py}",
    "code_configuration.code": "code: ./src",
    "code_configuration.scoring_script": "scoring_script: score.py",
    "environment": f"environment: {{image: {_EXAMPLE_IMAGE}, conda_file: ./conda.yml}}",
    "environment.image": f"image: {_EXAMPLE_IMAGE}",
    "environment.conda_file": "conda_file: ./conda.yml",
    "environment.build": "build: {path: ./docker, dockerfile_path: Dockerfile}",
    "environment.build.path": "path: ./docker",
    "environment.build.dockerfile_path": "dockerfile_path: Dockerfile",
    "environment.inference_config": (
        "inference_config: {liveness_route: {port: 8080, path: /health}, "
        "readiness_route: {port: 8080, path: /ready}, scoring_route: {port: 8080, path: /score}}"
    ),
    "environment_variables": "environment_variables: {LOG_LEVEL: INFO}",
    "request_settings": "request_settings: {request_timeout_ms: 5000, max_concurrent_requests_per_instance: 1}",
    "request_settings.request_timeout_ms": "request_timeout_ms: 5000",
    "request_settings.max_concurrent_requests_per_instance": "max_concurrent_requests_per_instance: 1",
    "request_settings.max_queue_wait_ms": "max_queue_wait_ms: 500",
    "instance_type": "instance_type: Standard_DS3_v2",
    "instance_count": "instance_count: 1",
    "tags": "tags: {team: ml}",
}


def _example(path: tuple[Any, ...]) -> str:
    parts = [str(p) for p in path if p != "[key]"]
    dotted = ".".join(parts)
    if dotted in _EXAMPLES:
        return _EXAMPLES[dotted]
    leaf = parts[-1] if parts else ""
    if parts[:1] in (["liveness_probe"], ["readiness_probe"]):
        if len(parts) == 1:
            return f"{leaf}: {{initial_delay: 10, period: 10, timeout: 2}}"
        return f"{leaf}: {getattr(Probe(), leaf, 10)}"
    if parts[:2] == ["environment", "inference_config"] and len(parts) >= 3:
        route = parts[2]
        example_path = _ROUTE_EXAMPLES.get(route, "/score")
        if len(parts) == 3:
            return f"{route}: {{port: 8080, path: {example_path}}}"
        return "port: 8080" if leaf == "port" else f"path: {example_path}"
    if parts[:1] in (["environment_variables"], ["tags"]) and len(parts) == 2:
        return f'{leaf}: "value"'
    return f"{leaf}: ..."


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path if part != "[key]")


def _problem_from_error(doc: _Document, detail: Any) -> Problem:
    loc = tuple(part for part in detail["loc"] if part != _STRING_FORM)
    return Problem(doc.file, doc.line(loc), _dotted(loc), _error_message(detail, loc))


def _error_message(detail: Any, loc: tuple[Any, ...]) -> str:
    """What is wrong at LOC and what to write instead, for one pydantic error DETAIL."""
    kind, value = detail["type"], detail.get("input")
    example = _example(loc)
    found = _describe(value)
    if detail["loc"][-1] == "[key]":
        return f"the key {value!r} must be text. Put it in quotes: `\"{value}\": ...`."
    if kind == "missing":
        return f"missing. Add `{example}`."
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, found {found}. Write e.g. `{example}`."
    if kind == "string_type":
        message = f"expected text, found {found}. Write e.g. `{example}`"
        return message + (" (quote it if it looks like a number or true/false)." if value is not None else ".")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of `key: value` lines, found {found}. Write e.g. `{example}`."
    if kind == "single_value_type":
        return f"expected a single value (text, number or true/false), found {found}. Write e.g. `{example}`."
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return _bound_message(kind, detail.get("ctx") or {}, value, loc, example)
    return f"{detail['msg']} (found {found}). Write e.g. `{example}`."


def _bound_message(kind: str, ctx: dict[str, Any], value: Any, loc: tuple[Any, ...], example: str) -> str:
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        word = "at least" if kind == "greater_than_equal" else "more than"
        return f"must be {word} {bound}, found {value!r}. Write e.g. `{example}`."
    bound = ctx.get("le", ctx.get("lt"))
    word = "at most" if kind == "less_than_equal" else "less than"
    limit = " (the cloud's limit)" if loc[-1:] == ("request_timeout_ms",) else ""
    return f"must be {word} {bound}{limit}, found {value!r}. Lower it."
