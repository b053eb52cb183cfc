"""`load`: find the spec files, read them, resolve them, and raise every problem at once, sorted
by file and line."""

from __future__ import annotations

from pathlib import Path

from .deployment import LocalDeployment
from .files import find_files
from .problems import Problem, SpecError
from .resolver import _Resolver
from .yaml_lines import _read_yaml


def load(path: Path | str, endpoint_file: Path | str | None = None, name: str | None = None) -> LocalDeployment:
    """Read and check the deployment (and endpoint) YAML. NAME (the CLI's -n) overrides the
    endpoint name of both files. Collects ALL problems before raising one SpecError."""
    deployment_file, endpoint_path = find_files(Path(path), Path(endpoint_file) if endpoint_file is not None else None)
    problems: list[Problem] = []
    deployment_doc = _read_yaml(deployment_file, problems)
    endpoint_doc = _read_yaml(endpoint_path, problems) if endpoint_path is not None else None
    if deployment_doc is None:
        raise SpecError(problems)
    resolver = _Resolver(deployment_doc, endpoint_doc, name, problems)
    result = resolver.resolve()
    if problems or result is None:
        order = {deployment_file: 0, endpoint_path: 1}
        raise SpecError(sorted(problems, key=lambda p: (order.get(p.file, 2), p.line or 0)), resolver.warnings)
    return result
