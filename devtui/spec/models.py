"""The pydantic models of the deployment and endpoint YAML: which keys each section has, their
types and bounds, and which other keys the cloud's schema accepts there. Unknown keys are kept,
since a file written for the cloud must load here; the ones the cloud does not know either are
warned about (`unknown_keys`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


def _whole_number(value: Any) -> Any:
    # YAML `true` is a Python bool, which pydantic would quietly accept as 1.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _single_value(value: Any) -> str:
    # Environment variables and tags are strings in the cloud; YAML gives ints, floats, dates
    # and booleans, which become the text a shell user would expect ("true", not "True").
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise PydanticCustomError("single_value_type", "Input should be a single value")
    return str(value)


_WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
_SingleValue = Annotated[str, BeforeValidator(_single_value)]
_Port = Annotated[_WholeNumber, Field(ge=1, le=65535)]
# The key that carries the string spelling (`model: azureml:name:1`) inside the mapping model;
# it cannot be written in YAML by accident.
_STRING_FORM = "<string form>"


class _Section(BaseModel):
    # A YAML that deploys to the cloud must run locally unchanged, so unknown keys are kept.
    model_config = ConfigDict(extra="allow", populate_by_name=False)
    # Keys the cloud's schema (azure-ai-ml's marshmallow schemas, which reject any other) accepts
    # in this section and devtui does not use: accepted without a warning.
    cloud_keys: ClassVar[frozenset[str]] = frozenset()


class _StringOrMapping(_Section):
    """A section the cloud accepts as a string (an asset reference) or as an inline mapping."""

    string_form: str | None = Field(default=None, alias=_STRING_FORM)

    @model_validator(mode="before")
    @classmethod
    def _wrap_string(cls, value: Any) -> Any:
        return {_STRING_FORM: value} if isinstance(value, str) else value


class _ModelYaml(_StringOrMapping):
    cloud_keys = frozenset({
        "id", "type", "description", "tags", "properties", "flavors", "stage", "datastore", "utc_time_created",
        "job_name", "latest_version", "creation_context",
    })
    path: str | None = None
    name: str | None = None
    version: _SingleValue | None = None


class _CodeConfigurationYaml(_Section):
    code: str
    scoring_script: str


class _BuildYaml(_Section):
    path: str
    dockerfile_path: str = "Dockerfile"


class _RouteYaml(_Section):
    port: _Port
    path: str


class _InferenceConfigYaml(_Section):
    liveness_route: _RouteYaml
    readiness_route: _RouteYaml
    scoring_route: _RouteYaml


class _EnvironmentYaml(_StringOrMapping):
    cloud_keys = frozenset({
        "name", "version", "id", "description", "tags", "properties", "os_type", "datastore", "latest_version",
        "creation_context", "auto_delete_setting",
    })
    image: str | None = None
    # A path, or (cloud-only) an inline conda mapping: checked by hand below.
    conda_file: Any = None
    build: _BuildYaml | None = None
    inference_config: _InferenceConfigYaml | None = None


class _RequestSettingsYaml(_Section):
    # 180000 ms is the cloud's ceiling for request_timeout_ms; catching it here is the point.
    request_timeout_ms: Annotated[_WholeNumber, Field(ge=1, le=180_000)] = 5000
    max_concurrent_requests_per_instance: Annotated[_WholeNumber, Field(ge=1)] = 1
    max_queue_wait_ms: Annotated[_WholeNumber, Field(ge=0)] | None = None


class _ProbeYaml(_Section):
    initial_delay: Annotated[_WholeNumber, Field(ge=0)] = 10
    period: Annotated[_WholeNumber, Field(ge=1)] = 10
    timeout: Annotated[_WholeNumber, Field(ge=1)] = 2
    failure_threshold: Annotated[_WholeNumber, Field(ge=1)] = 30
    success_threshold: Annotated[_WholeNumber, Field(ge=1)] = 1


class _DeploymentYaml(_Section):
    cloud_keys = frozenset({
        "$schema", "id", "type", "description", "properties", "app_insights_enabled", "scale_settings",
        "egress_public_network_access", "private_network_connection", "data_collector", "model_mount_path",
        "provisioning_state", "creation_context",
        "resources",  # a Kubernetes online deployment's
    })
    # Required keys are Optional here and checked by hand: their absence depends on the
    # endpoint file and on -n, and should not hide the other sections' problems.
    name: str | None = None
    endpoint_name: str | None = None
    model: _ModelYaml | None = None
    code_configuration: _CodeConfigurationYaml | None = None
    environment: _EnvironmentYaml | None = None
    environment_variables: dict[str, _SingleValue] | None = None
    request_settings: _RequestSettingsYaml | None = None
    liveness_probe: _ProbeYaml | None = None
    readiness_probe: _ProbeYaml | None = None
    instance_type: str | None = None
    instance_count: Annotated[_WholeNumber, Field(ge=1)] | None = None
    tags: dict[str, _SingleValue] | None = None


class _EndpointYaml(_Section):
    cloud_keys = frozenset({
        "$schema", "id", "description", "properties", "traffic", "mirror_traffic", "identity",
        "public_network_access", "kind", "location", "provisioning_state", "scoring_uri", "openapi_uri",
        "compute",  # a Kubernetes online endpoint's
    })
    name: str | None = None
    auth_mode: str | None = None
    tags: dict[str, _SingleValue] | None = None
