"""The deployment's `environment`: an image (with an optional conda file) or a Docker build
context, and the routes of a bring-your-own container, checked against local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checker import _Checker
from .conda import _check_conda
from .deployment import EnvironmentSpec, InferenceConfig, Route
from .messages import _EXAMPLES, _describe
from .models import _BuildYaml, _EnvironmentYaml, _InferenceConfigYaml
from .names import _is_registered
from .paths import _absolute


class _EnvironmentResolver(_Checker):
    """Resolves the environment section into an `EnvironmentSpec` a local runtime can build or pull."""

    def environment(self, environment: _EnvironmentYaml | None) -> EnvironmentSpec | None:
        if environment is None:
            if "environment" not in self.bad:
                self.problem(("environment",), (
                    f"missing: a local deployment needs an environment. Add `{_EXAMPLES['environment']}` "
                    "or `environment: {build: {path: ./docker}}`."
                ))
            return None
        if environment.string_form is not None:
            self._reference(environment.string_form)
            return None

        ok = self._image_or_build(environment)
        conda_file = self._conda_file(environment.conda_file)
        if environment.conda_file is not None and conda_file is None:
            ok = False

        build_path = dockerfile_path = None
        if environment.build is not None:
            build_path, dockerfile_path = self._build(environment.build)
            if build_path is None:
                ok = False

        inference_config = _inference_config(environment.inference_config)
        if not ok:
            return None
        return EnvironmentSpec(
            image=environment.image or None,
            conda_file=conda_file,
            build_path=build_path,
            dockerfile_path=dockerfile_path,
            inference_config=inference_config,
        )

    def _reference(self, reference: str) -> None:
        if _is_registered(reference):
            self.problem(("environment",), (
                f"{reference!r} is an environment registered in an Azure ML workspace; a local endpoint "
                f"builds from local files. Use `{_EXAMPLES['environment']}` (the image and conda file the "
                "registered environment was made from), or `environment: {build: {path: ./docker}}`."
            ))
        else:
            self.problem(("environment",), (
                f"a bare string ({reference!r}) is not a local environment. If it is a Docker image, write "
                f"`environment: {{image: {reference}}}`."
            ))

    def _image_or_build(self, environment: _EnvironmentYaml) -> bool:
        """Whether the environment gives exactly one of image and build (a problem when not)."""
        if environment.image and environment.build is not None:
            self.problem(("environment", "build"), "give either image (with conda_file) or build, not both. Remove one.")
            return False
        if not environment.image and environment.build is None:
            self.problem(("environment",), (
                f"needs an image or a build. Add `{_EXAMPLES['environment.image']}` (with an optional "
                "`conda_file: ./conda.yml`) or `build: {path: ./docker}`."
            ))
            return False
        return True

    def _conda_file(self, raw: Any) -> Path | None:
        where = ("environment", "conda_file")
        if raw is None:
            return None
        if isinstance(raw, dict):
            # The cloud accepts the conda spec inline; the runtimes here need a file to hash,
            # watch and copy into an image, so ask for one rather than writing it ourselves.
            self.problem(where, (
                "an inline conda specification is not supported locally. Move it to a file next to "
                f"{self.doc.file.name} and write `conda_file: ./conda.yml`."
            ))
            return None
        if not isinstance(raw, str):
            self.problem(where, f"expected the path of a conda YAML, found {_describe(raw)}. Write e.g. `conda_file: ./conda.yml`.")
            return None
        path = self._local_path(where, raw, "conda file")
        if path is None:
            return None
        if not path.is_file():
            state = "is a folder" if path.is_dir() else "not found"
            self.problem(where, (
                f"{path} {state} (conda_file {raw!r} is relative to {self.doc.folder}). "
                "Fix the path, or remove conda_file to use the image as it is."
            ))
            return None
        # Its content too, with its own file:line: an image build would be the first to read it.
        if _check_conda(path, self.problems) is None:
            return None
        return path

    def _build(self, build: _BuildYaml) -> tuple[Path | None, str | None]:
        where = ("environment", "build", "path")
        path = self._local_path(where, build.path, "Docker build context")
        if path is None:
            return None, None
        if not path.is_dir():
            state = "is a file; build.path is the folder holding the Dockerfile" if path.exists() else "not found"
            self.problem(where, (
                f"{path} {state} (build.path {build.path!r} is relative to {self.doc.folder}). "
                "Fix the path to the Docker build context folder."
            ))
            return None, None
        dockerfile = _absolute(path / build.dockerfile_path)
        if not dockerfile.is_file():
            self.problem(("environment", "build", "dockerfile_path"), (
                f"{dockerfile} not found (dockerfile_path {build.dockerfile_path!r} is relative to the build "
                f"folder {path}). Create it, or set `dockerfile_path:` to the Dockerfile's name in that folder."
            ))
            return None, None
        return path, build.dockerfile_path


def _inference_config(routes: _InferenceConfigYaml | None) -> InferenceConfig | None:
    if routes is None:
        return None
    return InferenceConfig(
        liveness_route=Route(routes.liveness_route.port, routes.liveness_route.path),
        readiness_route=Route(routes.readiness_route.port, routes.readiness_route.path),
        scoring_route=Route(routes.scoring_route.port, routes.scoring_route.path),
    )
