"""An MLflow model folder's `MLmodel` read into an `MlflowModel`, without importing mlflow (which
takes seconds and may not be installed where `validate` runs). Every problem names the MLmodel (or
conda file) and the line of the field; the folder's own absence is the resolver's to say, since
that problem belongs to the deployment YAML's model.path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .conda import _check_conda
from .messages import _describe, _dotted
from .mlflow_model import PYFUNC_FLAVOR, MlflowModel, MlflowSignature, SignatureField
from .paths import _absolute
from .problems import Problem
from .yaml_lines import _Document, _parse, _read_text

# Where a flavour names the file (or folder) it loads: python_function's model_path (sklearn),
# data (lightgbm, xgboost, ...) or python_model (a custom pyfunc); a flavour's own pickled_model.
_MODEL_FILE_KEYS = ("model_path", "data", "python_model", "pickled_model")
_RESAVE = "Save the model again (mlflow.<flavour>.save_model writes the folder whole), or fix the MLmodel."


class _MlflowReader:
    """Reads FOLDER/MLmodel; appends its problems to PROBLEMS and returns None when there are any."""

    def __init__(self, folder: Path, problems: list[Problem]):
        self.folder = folder
        self.problems = problems
        self.doc: _Document | None = None

    def problem(self, where: tuple[Any, ...], message: str) -> None:
        assert self.doc is not None
        self.problems.append(Problem(self.doc.file, self.doc.line(where), _dotted(where) or None, message))

    def read(self) -> MlflowModel | None:
        before = len(self.problems)
        data = self._document()
        if data is None:
            return None
        pyfunc = self._pyfunc(data.get("flavors"))
        if pyfunc is None:
            return None
        flavors = data["flavors"]
        loader_module = self._loader_module(pyfunc)
        model_file = self._model_files(flavors)
        conda, python_env = self._environment(pyfunc.get("env"))
        signature = self._signature(data.get("signature"))
        if len(self.problems) > before or loader_module is None:
            return None
        requirements_file = self.folder / "requirements.txt"
        return MlflowModel(
            folder=self.folder,
            flavors=tuple(str(name) for name in flavors),
            loader_module=loader_module,
            model_file=model_file,
            signature=signature,
            input_example=self._input_example(data.get("saved_input_example_info")),
            environment_file=conda,
            python_env=python_env,
            python_version=_text(pyfunc.get("python_version")) or _python_env_version(python_env),
            requirements_file=requirements_file if requirements_file.is_file() else None,
            requirements=_requirements(requirements_file),
            mlflow_version=_text(data.get("mlflow_version")),
            environment_digest=file_digest(conda),
        )

    def _document(self) -> dict[Any, Any] | None:
        file = self.folder / "MLmodel"
        text = _read_text(file, self.problems)
        parsed = _parse(file, text, self.problems) if text is not None else None
        if parsed is None:
            return None
        data, lines = parsed
        self.doc = _Document(file, data if isinstance(data, dict) else {}, lines or {(): 1})
        if not isinstance(data, dict):
            found = "empty" if not lines else f"{_describe(data)}, not a mapping"
            self.problem((), (
                f"the MLmodel is {found}: MLflow writes a mapping with `flavors:`, `signature:` and more. "
                + _RESAVE
            ))
            return None
        return data

    def _pyfunc(self, flavors: Any) -> dict[Any, Any] | None:
        if not isinstance(flavors, dict) or not flavors:
            found = "missing" if flavors is None else f"{_describe(flavors)}, not a mapping of flavours"
            self.problem(("flavors",), f"{found}: an MLmodel names at least one flavour. " + _RESAVE)
            return None
        pyfunc = flavors.get(PYFUNC_FLAVOR)
        if pyfunc is None:
            self.problem(("flavors",), (
                f"no {PYFUNC_FLAVOR} flavour (the MLmodel has {', '.join(map(str, flavors))}). A no-code deployment "
                "loads the model with mlflow.pyfunc, so the cloud can only serve a model that has it. Save the model "
                "with a flavour that adds it (mlflow.sklearn, mlflow.lightgbm, ... do), or add code_configuration "
                "with a scoring script that loads the model itself."
            ))
            return None
        if not isinstance(pyfunc, dict):
            self.problem(("flavors", PYFUNC_FLAVOR), (
                f"is {_describe(pyfunc)}; MLflow writes a mapping here (loader_module:, env:, ...). " + _RESAVE
            ))
            return None
        return pyfunc

    def _loader_module(self, pyfunc: dict[Any, Any]) -> str | None:
        loader = pyfunc.get("loader_module")
        if isinstance(loader, str) and loader.strip():
            return loader
        found = "missing" if loader is None else f"{_describe(loader)}, not a module name"
        self.problem(("flavors", PYFUNC_FLAVOR, "loader_module"), (
            f"{found}: mlflow.pyfunc imports this module to load the model (e.g. `loader_module: mlflow.sklearn`). "
            + _RESAVE
        ))
        return None

    def _model_files(self, flavors: dict[Any, Any]) -> Path | None:
        """The file python_function loads; every model file any flavour names must be in the folder."""
        seen: set[Path] = set()
        pyfunc_file = None
        for flavor, settings in flavors.items():
            if not isinstance(settings, dict):
                continue
            for key in _MODEL_FILE_KEYS:
                value = settings.get(key)
                if not isinstance(value, str):
                    continue
                path = self._model_file((flavor, key), value)
                if flavor == PYFUNC_FLAVOR and pyfunc_file is None:
                    pyfunc_file = path
                if path is not None and not path.exists() and path not in seen:
                    seen.add(path)
                    self.problem(("flavors", flavor, key), (
                        f"{path} not found: the {flavor} flavour loads the model from it. Put the model file "
                        f"there, or save the model again."
                    ))
        return pyfunc_file

    def _model_file(self, where: tuple[Any, ...], value: str) -> Path | None:
        path = _absolute(self.folder / value)
        if os.path.commonpath([path, self.folder]) != str(self.folder):
            self.problem(("flavors", *where), (
                f"{value!r} is outside the model folder {self.folder}; only that folder is deployed. "
                "Keep the model file in the folder, as MLflow saves it."
            ))
            return None
        return path

    def _environment(self, env: Any) -> tuple[Path | None, Path | None]:
        """(conda file, python_env file) that python_function's `env` names; the conda file's shape
        is checked, as the cloud installs it when the container starts."""
        where: tuple[Any, ...] = ("flavors", PYFUNC_FLAVOR, "env")
        if env is None:
            return None, None
        if isinstance(env, str):  # MLflow 1.x: `env: conda.yaml`
            return self._environment_file(where, env, conda=True), None
        if not isinstance(env, dict):
            self.problem(where, f"is {_describe(env)}; MLflow writes `env: {{conda: conda.yaml, virtualenv: python_env.yaml}}`.")
            return None, None
        conda = python_env = None
        if isinstance(env.get("conda"), str):
            conda = self._environment_file(where + ("conda",), env["conda"], conda=True)
        if isinstance(env.get("virtualenv"), str):
            python_env = self._environment_file(where + ("virtualenv",), env["virtualenv"], conda=False)
        return conda, python_env

    def _environment_file(self, where: tuple[Any, ...], value: str, conda: bool) -> Path | None:
        path = _absolute(self.folder / value)
        if not path.is_file():
            state = "is a folder" if path.is_dir() else "not found"
            self.problem(where, (
                f"{path} {state}: the MLmodel names it as the model's environment, which the cloud installs "
                "before it serves the model. Put the file there, or save the model again."
            ))
            return None
        if conda and _check_conda(path, self.problems) is None:
            return None
        return path

    def _signature(self, signature: Any) -> MlflowSignature | None:
        if signature is None:
            return None
        if not isinstance(signature, dict):
            self.problem(("signature",), f"is {_describe(signature)}; MLflow writes `inputs:` and `outputs:` here.")
            return None
        parts = {part: self._fields(part, signature.get(part)) for part in ("inputs", "outputs", "params")}
        if any(fields is None for fields in parts.values()):
            return None
        return MlflowSignature(**parts)

    def _fields(self, part: str, raw: Any) -> tuple[SignatureField, ...] | None:
        """The signature's PART, which MLflow stores as a JSON text inside the YAML."""
        if raw is None or raw == "":
            return ()
        try:
            items = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError as error:
            items, why = None, f"it is not JSON ({error.msg})"
        else:
            why = "it is not the JSON list MLflow writes"
        if isinstance(items, list) and all(isinstance(item, dict) for item in items):
            return tuple(_field(item) for item in items)
        self.problem(("signature", part), (
            f"cannot be read: {why}. MLflow writes e.g. `{part}: '[{{\"type\": \"double\", \"name\": \"age\"}}]'`. "
            "Save the model again with its signature (mlflow.models.infer_signature)."
        ))
        return None

    def _input_example(self, info: Any) -> Path | None:
        if not isinstance(info, dict) or not isinstance(info.get("artifact_path"), str):
            return None
        # A named example that is missing is no error: the cloud then builds the swagger's
        # example from the signature.
        path = _absolute(self.folder / info["artifact_path"])
        return path if path.is_file() else None


def _field(item: dict[Any, Any]) -> SignatureField:
    spec = item.get("tensor-spec") if isinstance(item.get("tensor-spec"), dict) else {}
    shape = spec.get("shape", item.get("shape"))
    return SignatureField(
        name=_text(item.get("name")),
        type=_text(item.get("type")) or "?",
        dtype=_text(spec.get("dtype")),
        shape=tuple(shape) if isinstance(shape, list) else None,
        required=item.get("required", True) is not False,
        default=item.get("default"),
    )


def file_digest(file: Path | None) -> str | None:
    """sha256 of FILE's bytes; None when there is no file, or it cannot be read."""
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest() if file is not None else None
    except OSError:
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _python_env_version(python_env: Path | None) -> str | None:
    """python_env.yaml's `python:`; unreadable or odd, it says nothing (the MLmodel has the version too)."""
    if python_env is None:
        return None
    text = _read_text(python_env, [])
    parsed = _parse(python_env, text, []) if text is not None else None
    data = parsed[0] if parsed is not None else None
    return _text(data.get("python")) if isinstance(data, dict) else None


def _requirements(file: Path) -> tuple[str, ...]:
    """The requirement lines of FILE (none if it is missing): comments, blank lines and pip options left out."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ()
    stripped = (line.split("#", 1)[0].strip() for line in lines)
    return tuple(line for line in stripped if line and not line.startswith("-"))
