"""What the spec tests share: a good deployment YAML, writing files into a test's folder, and the
table of deployments with one thing wrong."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


GOOD = textwrap.dedent("""
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
    name: blue
    endpoint_name: my-endpoint
    model:
      path: ./model
    code_configuration:
      code: ./src
      scoring_script: score.py
    environment:
      image: python:3.11-slim
      conda_file: ./conda.yml
""").lstrip("\n")


# Every key the cloud accepts in a deployment and an endpoint, local or not: none is warned about.
CLOUD_KEYS_DEPLOYMENT = textwrap.dedent("""
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
    name: blue
    endpoint_name: my-endpoint
    description: the blue one
    type: managed
    tags: {team: ml}
    properties: {owner: me}
    model:
      name: regression
      version: 3
      type: custom_model
      description: a model
      tags: {stage: dev}
      properties: {accuracy: "0.9"}
      path: ./model
    code_configuration: {code: ./src, scoring_script: score.py}
    environment:
      name: my-env
      version: 1
      description: an environment
      os_type: linux
      image: python:3.11-slim
      conda_file: ./conda.yml
    instance_type: Standard_DS3_v2
    instance_count: 2
    app_insights_enabled: true
    egress_public_network_access: disabled
    private_network_connection: false
    model_mount_path: /var/models
    scale_settings: {type: default}
    data_collector:
      collections: {model_inputs: {enabled: "true"}}
    request_settings: {request_timeout_ms: 3000, max_queue_wait_ms: 500}
    liveness_probe: {period: 5}
""").lstrip("\n")
CLOUD_KEYS_ENDPOINT = textwrap.dedent("""
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
    name: my-endpoint
    description: an endpoint
    auth_mode: key
    tags: {team: ml}
    properties: {owner: me}
    traffic: {blue: 100}
    mirror_traffic: {}
    identity: {type: system_assigned}
    public_network_access: enabled
    kind: managed
""").lstrip("\n")


@dataclass(frozen=True)
class Broken:
    """Files with one thing wrong, and where and how that problem must be reported."""

    deployment: str  # deployment.yml's text
    field: str | None  # the problem's field; None for the file as a whole
    line: int | None
    words: tuple[str, ...]  # each in the message; "<project>" stands for the test's folder
    file: str = "deployment.yml"  # the file the problem names
    endpoint: str | None = None  # endpoint.yml's text, when there is one
    folder: str = ""  # deployment.yml's folder under the project
    files: tuple[str, ...] = ()  # written first, empty: "a/b.py" a file, "a/" a folder
    name: str | None = None  # the CLI's -n
    alone: bool = False  # no other problem is reported


def broken(id: str, deployment: str, field: str | None, line: int | None, *words: str, **more):
    return pytest.param(Broken(deployment, field, line, words, **more), id=id)


NO_ENDPOINT_NAME = GOOD.replace("endpoint_name: my-endpoint\n", "")
NO_NAMES = NO_ENDPOINT_NAME.replace("name: blue\n", "")
ROUTES_WITHOUT_SCORING = GOOD + (
    "  inference_config:\n"
    "    liveness_route: {port: http, path: /health}\n"
    "    readiness_route: {port: 8080, path: /ready}\n"
)
BUILD = GOOD.split("environment:")[0] + "environment:\n  build:\n    path: ./docker\n"

# One row per problem. Missing keys point at the first line of the document, where they would go.
ONE_PROBLEM = [
    # names
    broken("name-missing", NO_NAMES, "name", 1, "missing", "name: blue"),
    broken("endpoint-name-missing", NO_NAMES, "endpoint_name", 1,
       "missing", "-n", "endpoint_name: my-endpoint"),
    broken("name-too-short", GOOD.replace("name: blue", "name: ab"), "name", 2, "'ab'", "at least 3", "3-32"),
    broken("name-too-long", GOOD.replace("name: blue", f"name: {'a' * 33}"), "name", 2,
       repr("a" * 33), "at most 32", "3-32"),
    broken("name-starts-with-a-digit", GOOD.replace("name: blue", "name: 1blue"), "name", 2,
       "'1blue'", "start with a letter", "3-32"),
    broken("name-ends-with-a-hyphen", GOOD.replace("name: blue", "name: blue-"), "name", 2,
       "'blue-'", "not end with a hyphen", "3-32"),
    broken("name-with-an-underscore", GOOD.replace("name: blue", "name: blue_green"), "name", 2,
       "'blue_green'", "'_'", "3-32"),
    broken("name-is-a-number", GOOD.replace("name: blue", "name: 123"), "name", 2,
       "expected text", "the number 123", "quote"),
    broken("endpoint-name-invalid", GOOD.replace("endpoint_name: my-endpoint", "endpoint_name: my_endpoint"),
       "endpoint_name", 3, "'my_endpoint'", "Rename it, e.g. 'my-endpoint'"),
    broken("endpoint-file-name-invalid", NO_ENDPOINT_NAME, "name", 1, "'-bad'", "start with a letter",
       file="endpoint.yml", endpoint="name: -bad\n"),
    broken("cli-name-invalid", NO_ENDPOINT_NAME, "-n/--name", None, "'x' is not a valid endpoint name", name="x"),
    broken("endpoint-name-mismatch", GOOD, "endpoint_name", 3, "'my-endpoint'", "'other-endpoint'", "endpoint.yml:2",
       "-n", endpoint="# the endpoint\nname: other-endpoint\nauth_mode: key\n"),
    # the file as a whole
    broken("yaml-syntax-error", "name: blue\nendpoint_name: my-endpoint\nmodel:\n  path: ./model\n bad: indent\n",
       None, 5, "YAML syntax error", "column", alone=True),
    broken("top-level-is-a-list", "# a list by mistake\n- name: blue\n- endpoint_name: x\n", None, 2,
       "top level is a list", "mapping", alone=True),
    broken("more-than-one-document", GOOD + "---\nname: green\n", None, 12, "more than one YAML document", alone=True),
    # values
    broken("request-timeout-over-the-cloud-limit", GOOD + "request_settings:\n  request_timeout_ms: 200000\n",
       "request_settings.request_timeout_ms", 13, "at most 180000", "200000"),
    broken("environment-variable-name-is-a-number", GOOD + "environment_variables:\n  1: one\n",
       "environment_variables.1", 13, "quotes"),
    broken("environment-variable-name-invalid", GOOD + "environment_variables:\n  OK: one\n  A=B: two\n",
       "environment_variables.A=B", 14, "not a valid environment variable name"),
    # model
    broken("model-as-a-plain-string", GOOD.replace("model:\n  path: ./model", "model: ./model"), "model", 4,
       "model: {path: ./model}"),
    broken("model-path-not-found", GOOD, "model.path", 5, "<project>/sub/model", "not found", folder="sub/"),
    broken("model-without-path", GOOD.replace("path: ./model", "name: my-model"), "model.path", 4,
       "missing", "model: {path: ./model}"),
    # code_configuration
    broken("code-folder-not-found", GOOD.replace("code: ./src", "code: ./scoring"), "code_configuration.code", 7,
       "<project>/scoring", "not found"),
    broken("scoring-script-not-found", GOOD.replace("scoring_script: score.py", "scoring_script: main.py"),
       "code_configuration.scoring_script", 8, "<project>/src/main.py", "not found"),
    broken("scoring-script-outside-the-code-folder",
       GOOD.replace("scoring_script: score.py", "scoring_script: ../elsewhere.py"),
       "code_configuration.scoring_script", 8, "outside the code folder", files=("elsewhere.py",)),
    broken("scoring-script-missing", GOOD.replace("  scoring_script: score.py\n", ""),
       "code_configuration.scoring_script", 6, "missing", "scoring_script: score.py"),
    broken("code-configuration-missing",
       GOOD.replace("code_configuration:\n  code: ./src\n  scoring_script: score.py\n", ""),
       "code_configuration", 1, "missing", "inference_config", "scoring_script: score.py"),
    # environment
    broken("registered-environment", GOOD.replace("environment:\n  image: python:3.11-slim\n  conda_file: ./conda.yml",
                                              "environment: azureml:sklearn-env:4"),
       "environment", 9, "azureml:sklearn-env:4", "local", "image:", "conda_file:"),
    broken("environment-missing", GOOD.split("environment:")[0], "environment", 1, "missing", "image:"),
    broken("environment-without-image-or-build", GOOD.replace("  image: python:3.11-slim\n", ""), "environment", 9,
       "image", "build"),
    broken("conda-file-not-found", GOOD.replace("./conda.yml", "./env/conda.yml"), "environment.conda_file", 11,
       "<project>/env/conda.yml", "not found"),
    broken("build-path-not-found", BUILD, "environment.build.path", 11, "<project>/docker", "not found"),
    broken("dockerfile-not-found", BUILD + "    dockerfile_path: serve.Dockerfile\n",
       "environment.build.dockerfile_path", 12, "<project>/docker/serve.Dockerfile", "not found", files=("docker/",)),
    broken("image-and-build-together", GOOD + "  build: {path: ./docker}\n", "environment.build", 12, "not both",
       files=("docker/Dockerfile",)),
    broken("inference-config-port-not-a-number", ROUTES_WITHOUT_SCORING,
       "environment.inference_config.liveness_route.port", 13, "whole number", "'http'", "port: 8080"),
    broken("inference-config-scoring-route-missing", ROUTES_WITHOUT_SCORING,
       "environment.inference_config.scoring_route", 12, "missing", "scoring_route: {port: 8080, path: /score}"),
    # duplicate keys: PyYAML keeps the last one silently, so the file "works" here and means something else to a reader
    broken("duplicate-key", GOOD + "name: green\n", "name", 12, "duplicate", "line 2"),
    broken("duplicate-nested-key", GOOD + "request_settings:\n  request_timeout_ms: 3000\n"
       "  max_concurrent_requests_per_instance: 2\n  request_timeout_ms: 90000\n",
       "request_settings.request_timeout_ms", 15, "duplicate", "line 13"),
    broken("duplicate-key-in-the-endpoint-file", GOOD, "auth_mode", 3, "duplicate", "line 2", file="endpoint.yml",
       endpoint="name: my-endpoint\nauth_mode: key\nauth_mode: aml_token\n"),
    broken("duplicate-inside-an-anchor", GOOD + "tags: &shared {team: ml, team: ai}\nenvironment_variables: *shared\n",
       "tags.team", 12, "duplicate"),
]
