"""Finding the spec files: a deployment YAML given directly, or the one deployment (and at most
one endpoint) YAML in a folder, told apart by their `$schema` or their keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .paths import _absolute, _display
from .problems import Problem, SpecError
from .yaml_lines import _parse, _read_text, _read_yaml

_Kind = Literal["deployment", "endpoint", "other", "unreadable"]

_YAML_SUFFIXES = (".yml", ".yaml")
# Keys only a deployment has; a folder also holds conda files and the like, which have none.
_DEPLOYMENT_KEYS = {"endpoint_name", "model", "code_configuration", "environment"}
# Keys an endpoint YAML may have besides auth_mode; "only name/description/tags" plus the
# cloud-only ones, so a real endpoint file without auth_mode is still recognised.
_ENDPOINT_ONLY_KEYS = {
    "$schema", "name", "description", "tags", "traffic", "mirror_traffic", "identity",
    "public_network_access", "kind",
}


def find_files(path: Path, endpoint_file: Path | None = None) -> tuple[Path, Path | None]:
    """PATH is a deployment YAML, or a folder holding exactly one deployment YAML and optionally
    one endpoint YAML (*.yml/*.yaml). Returns absolute (deployment file, endpoint file or None)."""
    path = Path(path)
    if endpoint_file is not None:
        endpoint_file = _checked_endpoint_file(Path(endpoint_file))

    if not path.exists():
        raise SpecError([Problem(path, None, None, (
            f"{_absolute(path)} not found. Pass a deployment YAML or the folder that holds it."
        ))])

    if path.is_file():
        if _classify(path) == "endpoint":
            raise SpecError([Problem(path, None, None, (
                "this is an endpoint YAML, not a deployment. Pass the deployment YAML "
                "(the one with model, code_configuration and environment), or the folder holding both."
            ))])
        return _absolute(path), endpoint_file
    if not path.is_dir():  # a device or a pipe: reading it may never end
        raise SpecError([Problem(path, None, None, (
            "is not a file or a folder. Pass a deployment YAML or the folder that holds it."
        ))])
    return _search_folder(path, endpoint_file)


def _checked_endpoint_file(endpoint_file: Path) -> Path:
    """The endpoint file named explicitly, made absolute; a SpecError when it is not a file."""
    if not endpoint_file.exists():
        raise SpecError([Problem(endpoint_file, None, None, (
            f"endpoint file {_absolute(endpoint_file)} not found. Check the path."
        ))])
    if not endpoint_file.is_file():
        what = "a folder" if endpoint_file.is_dir() else "not a file"
        raise SpecError([Problem(endpoint_file, None, None, f"is {what}; pass the endpoint YAML file itself.")])
    return _absolute(endpoint_file)


def _search_folder(folder: Path, endpoint_file: Path | None) -> tuple[Path, Path | None]:
    """The one deployment YAML in FOLDER, and its endpoint YAML unless ENDPOINT_FILE names it."""
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _YAML_SUFFIXES)
    found = _by_kind(candidates, skip=endpoint_file)
    deployment = _only_deployment(folder, candidates, found["deployment"], found["unreadable"])
    if endpoint_file is None:
        endpoint_file = _only_endpoint(folder, found["endpoint"])
    return _absolute(deployment), endpoint_file


def _by_kind(candidates: list[Path], skip: Path | None) -> dict[_Kind, list[Path]]:
    found: dict[_Kind, list[Path]] = {"deployment": [], "endpoint": [], "other": [], "unreadable": []}
    for candidate in candidates:
        if skip is not None and _absolute(candidate) == skip:
            continue
        found[_classify(candidate)].append(candidate)
    return found


def _only_deployment(folder: Path, candidates: list[Path], deployments: list[Path], unreadable: list[Path]) -> Path:
    if not deployments:
        # A file that does not parse is most likely the deployment: its error, with its line, is
        # the real one, and "no deployment YAML" before it would only mislead.
        problems: list[Problem] = []
        for broken in unreadable:
            _read_yaml(broken, problems)
        if not problems:
            message = f"no deployment YAML in {_display(folder)}"
            if candidates:
                message += f" (looked at {', '.join(p.name for p in candidates)})"
            problems = [Problem(folder, None, None, message + (
                ". A deployment YAML has endpoint_name, model, code_configuration and environment; "
                "pass its path, or a folder holding one."
            ))]
        raise SpecError(problems)
    if len(deployments) > 1:
        names = ", ".join(p.name for p in deployments)
        raise SpecError([Problem(folder, None, None, (
            f"{len(deployments)} deployment YAMLs in {_display(folder)}: {names}. A local endpoint runs exactly "
            f"one deployment; pass one file instead of the folder, e.g. {_display(deployments[0])}."
        ))])
    return deployments[0]


def _only_endpoint(folder: Path, endpoints: list[Path]) -> Path | None:
    if len(endpoints) > 1:
        names = ", ".join(p.name for p in endpoints)
        raise SpecError([Problem(folder, None, None, (
            f"{len(endpoints)} endpoint YAMLs in {_display(folder)}: {names}. Keep one, or pass the deployment "
            "file and name the endpoint file explicitly."
        ))])
    return _absolute(endpoints[0]) if endpoints else None


def _classify(file: Path) -> _Kind:
    # Read and parsed within the limits of a spec file: a file over them is "unreadable".
    text = _read_text(file, [])
    parsed = _parse(file, text, []) if text is not None else None
    if parsed is None:
        return "unreadable"
    data = parsed[0]
    if not isinstance(data, dict):
        return "other"
    schema = data.get("$schema")
    if isinstance(schema, str) and schema:
        lowered = schema.lower()
        if "onlinedeployment" in lowered:
            return "deployment"
        if "onlineendpoint" in lowered:
            return "endpoint"
        # Some other Azure ML asset (batch deployment, environment, model...): not ours,
        # even though a batch deployment has the same keys as an online one.
        return "other"
    keys = set(data)
    if keys & _DEPLOYMENT_KEYS:
        return "deployment"
    if "auth_mode" in keys or ("name" in keys and keys <= _ENDPOINT_ONLY_KEYS):
        return "endpoint"
    return "other"

