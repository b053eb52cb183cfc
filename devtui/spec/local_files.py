"""The deployment's own files: `model.path` and `code_configuration` (code folder and scoring
script), resolved against the deployment YAML and checked on disk."""

from __future__ import annotations

import os
from pathlib import Path

from .checker import _Checker
from .deployment import PROMPTFLOW_RUNTIME_IMAGE, ModelSpec
from .flow import FLOW_FILE_NAMES
from .models import _CodeConfigurationYaml, _EnvironmentYaml, _ModelYaml
from .names import _is_registered
from .paths import _absolute, _posix_relative


class _LocalFilesResolver(_Checker):
    """Resolves the model and the code a local deployment mounts; both must be files on this machine."""

    def model(self, model: _ModelYaml | None, deployment_name: str | None) -> ModelSpec | None:
        if model is None:
            return None
        if model.string_form is not None:
            self._model_reference(model.string_form)
            return None
        if model.path is None:
            self.problem(("model", "path"), (
                "missing: a local model needs the path of its file or folder. Add `model: {path: ./model}`."
            ))
            return None
        path = self._local_path(("model", "path"), model.path, "model")
        if path is None:
            return None
        if not path.exists():
            self.problem(("model", "path"), (
                f"{path} not found (model.path {model.path!r} is relative to {self.doc.folder}). "
                "Fix the path, or put the model file or folder there."
            ))
            return None
        return ModelSpec(
            path=path,
            name=model.name or f"{deployment_name}-model",
            version=model.version if model.version else "1",
        )

    def _model_reference(self, reference: str) -> None:
        if _is_registered(reference):
            self.problem(("model",), (
                f"{reference!r} is a model registered in an Azure ML workspace; a local endpoint needs "
                "local files. Point at the model on disk instead: `model: {path: ./model}`."
            ))
        else:
            # The cloud reads a bare string as an asset reference, so do not guess it is a path.
            self.problem(("model",), (
                f"a bare string ({reference!r}) is not a local model. Write `model: {{path: {reference}}}`."
            ))

    def code(self, code: _CodeConfigurationYaml | None,
             environment: _EnvironmentYaml | None) -> tuple[Path | None, str | None]:
        """(code folder, scoring script relative to it), or (None, None) with a problem."""
        if code is None:
            self._missing_code(environment)
            return None, None
        code_dir = self._code_dir(code)
        if code_dir is None:
            return None, None
        scoring_script = self._scoring_script(code, code_dir)
        if scoring_script is None:
            return None, None
        return code_dir, scoring_script

    def _missing_code(self, environment: _EnvironmentYaml | None) -> None:
        # Only claim it is missing when we can tell the environment brings no server of its
        # own: not when the environment section was unreadable or names a registered asset.
        unknown = "environment" in self.bad or (environment is not None and environment.string_form is not None)
        byoc = environment is not None and environment.inference_config is not None
        if not (unknown or byoc) and "code_configuration" not in self.bad:
            message = (
                "missing: a local deployment needs a scoring script. Add "
                "`code_configuration: {code: ./src, scoring_script: score.py}`, use a bring-your-own "
                "container with `environment.inference_config`, or serve a prompt flow: point model.path at a "
                f"folder holding {FLOW_FILE_NAMES}, with `image: {PROMPTFLOW_RUNTIME_IMAGE}:latest`, or an MLflow "
                "model folder with no code at all: `model: {path: ./model, type: mlflow_model}`."
            )
            self.problem(("code_configuration",), message)

    def _code_dir(self, code: _CodeConfigurationYaml) -> Path | None:
        where = ("code_configuration", "code")
        code_dir = self._local_path(where, code.code, "code")
        if code_dir is None:
            return None
        if not code_dir.exists():
            self.problem(where, (
                f"folder {code_dir} not found (code {code.code!r} is relative to {self.doc.folder}). "
                "Fix the path, or create the folder with your scoring script in it."
            ))
            return None
        if not code_dir.is_dir():
            self.problem(where, (
                f"{code_dir} is a file; code must be the folder holding the scoring script. "
                f"Write `code: {_posix_relative(code_dir.parent, self.doc.folder)}`."
            ))
            return None
        return code_dir

    def _scoring_script(self, code: _CodeConfigurationYaml, code_dir: Path) -> str | None:
        """The scoring script as a posix path relative to CODE_DIR, or None with a problem."""
        where = ("code_configuration", "scoring_script")
        raw_script = code.scoring_script.replace("\\", "/")
        if not raw_script.strip():
            self.problem(where, f"is empty. Name the script inside {code_dir}, e.g. `scoring_script: score.py`.")
            return None
        script = _absolute(code_dir / raw_script)
        if os.path.commonpath([script, code_dir]) != str(code_dir):
            self.problem(where, (
                f"{script} is outside the code folder {code_dir}; only the code folder is deployed. "
                "Move the script into it, or point code at a folder that contains it."
            ))
            return None
        if not script.is_file():
            state = "is a folder" if script.is_dir() else "not found"
            self.problem(where, (
                f"{script} {state} (scoring_script {code.scoring_script!r} is relative to the code folder {code_dir}). "
                "Fix the name, or create the script there."
            ))
            return None
        return script.relative_to(code_dir).as_posix()
