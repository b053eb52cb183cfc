"""The typed result of reading a spec: `LocalDeployment` and the settings it is made of. These are
what the engine and the runtimes consume; nothing here reads a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .paths import _absolute
from .problems import Problem


@dataclass(frozen=True)
class RequestSettings:
    request_timeout_ms: int = 5000
    max_concurrent_requests_per_instance: int = 1
    max_queue_wait_ms: int | None = None


@dataclass(frozen=True)
class Probe:
    initial_delay: int = 10
    period: int = 10
    timeout: int = 2
    failure_threshold: int = 30
    success_threshold: int = 1


@dataclass(frozen=True)
class Route:
    port: int
    path: str


@dataclass(frozen=True)
class InferenceConfig:
    liveness_route: Route
    readiness_route: Route
    scoring_route: Route


@dataclass(frozen=True)
class ModelSpec:
    path: Path  # absolute; a folder or a single file
    name: str  # from the YAML, or f"{deployment_name}-model"
    version: str  # "1" when the YAML gives none


@dataclass(frozen=True)
class EnvironmentSpec:
    image: str | None
    conda_file: Path | None  # absolute
    build_path: Path | None  # absolute
    dockerfile_path: str | None  # relative to build_path; "Dockerfile" when build is given
    inference_config: InferenceConfig | None  # set for a bring-your-own container

    @property
    def dockerfile(self) -> Path | None:
        if self.build_path is None or self.dockerfile_path is None:
            return None
        return _absolute(self.build_path / self.dockerfile_path)


@dataclass(frozen=True)
class LocalDeployment:
    endpoint_name: str
    deployment_name: str
    auth_mode: str
    deployment_file: Path  # absolute
    endpoint_file: Path | None  # absolute
    model: ModelSpec | None
    code_dir: Path | None
    scoring_script: str | None  # posix path relative to code_dir
    environment: EnvironmentSpec
    environment_variables: dict[str, str]
    request_settings: RequestSettings
    liveness_probe: Probe
    readiness_probe: Probe
    instance_type: str | None
    instance_count: int
    tags: dict[str, str]  # the deployment's tags
    endpoint_tags: dict[str, str] = field(default_factory=dict)  # the endpoint file's tags
    # What loads but deserves a look (a key nobody knows, most likely misspelled). Not part of
    # what runs, so two deployments differing only in their warnings are equal.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def scoring_script_path(self) -> Path | None:
        if self.code_dir is None or self.scoring_script is None:
            return None
        return self.code_dir / self.scoring_script

    @property
    def watched_files(self) -> list[Path]:
        """Spec files whose change means a restart or a rebuild (code and model are watched as folders)."""
        files = [self.deployment_file, self.endpoint_file, self.environment.conda_file, self.environment.dockerfile]
        return [f for f in files if f is not None]
