"""devtui.spec: real YAML files in a temporary folder, read back into a LocalDeployment or a SpecError."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devtui.spec import (
    EnvironmentSpec,
    InferenceConfig,
    ModelSpec,
    Probe,
    Problem,
    RequestSettings,
    Route,
    SpecError,
    find_files,
    load,
)

from spec_data import GOOD, write


def problems_of(*args, **kwargs) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        load(*args, **kwargs)
    return caught.value.problems


def only(problems: list[Problem], field: str | None) -> Problem:
    matching = [p for p in problems if p.field == field]
    assert len(matching) == 1, "\n".join(map(str, problems))
    return matching[0]


def assert_reported(problem: Problem, file_name: str, line: int | None, field: str | None, *words: str) -> None:
    text = str(problem)
    where = file_name if line is None else f"{file_name}:{line}"
    assert f"{where}: {field}: " in text if field else f"{where}: " in text, text
    assert problem.file.name == file_name and problem.line == line and problem.field == field, text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


# --------------------------------------------------------------------------- a good deployment


def test_good_deployment_resolves_every_field(tmp_path: Path) -> None:
    write(tmp_path, "shared/model-1/model/sklearn_regression_model.pkl", "weights")
    write(tmp_path, "app/onlinescoring/sub/score.py", "def init(): pass\ndef run(raw): return raw\n")
    write(tmp_path, "app/env/conda.yaml", "name: env\n")
    deployment = write(tmp_path, "app/blue-deployment.yml", """
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
        name: blue
        description: the blue one
        endpoint_name: my-endpoint
        model:
          name: regression
          version: 3
          path: ../shared/model-1/model/
        code_configuration:
          code: onlinescoring
          scoring_script: ./sub/score.py
        environment:
          image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
          conda_file: env/conda.yaml
        environment_variables:
          LOG_LEVEL: INFO
          WORKERS: 2
          RATIO: 0.5
          VERBOSE: true
          QUIET: false
          EMPTY:
        request_settings:
          request_timeout_ms: 3000
        liveness_probe:
          initial_delay: 5
          failure_threshold: 3
        instance_type: Standard_DS3_v2
        instance_count: 3
        app_insights_enabled: true
        scale_settings:
          type: default
        tags:
          team: ml
          build: 42
    """)

    spec = load(deployment)
    app = tmp_path / "app"

    assert spec.endpoint_name == "my-endpoint"
    assert spec.deployment_name == "blue"
    assert spec.auth_mode == "key"
    assert spec.deployment_file == deployment
    assert spec.deployment_file.is_absolute()
    assert spec.endpoint_file is None
    # Relative paths are resolved against the YAML's folder; the model keeps its folder name.
    assert spec.model == ModelSpec(path=tmp_path / "shared/model-1/model", name="regression", version="3")
    assert spec.code_dir == app / "onlinescoring"
    assert spec.scoring_script == "sub/score.py"
    assert spec.scoring_script_path == app / "onlinescoring/sub/score.py"
    assert spec.environment == EnvironmentSpec(
        image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest",
        conda_file=app / "env/conda.yaml",
        build_path=None,
        dockerfile_path=None,
        inference_config=None,
    )
    assert spec.environment_variables == {
        "LOG_LEVEL": "INFO", "WORKERS": "2", "RATIO": "0.5", "VERBOSE": "true", "QUIET": "false", "EMPTY": "",
    }
    assert spec.request_settings == RequestSettings(request_timeout_ms=3000, max_concurrent_requests_per_instance=1)
    assert spec.liveness_probe == Probe(initial_delay=5, period=10, timeout=2, failure_threshold=3, success_threshold=1)
    assert spec.readiness_probe == Probe()
    assert spec.instance_type == "Standard_DS3_v2"
    assert spec.instance_count == 3
    assert spec.tags == {"team": "ml", "build": "42"}
    assert spec.watched_files == [deployment, app / "env/conda.yaml"]


def test_defaults_when_sections_are_absent(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD)

    spec = load(str(deployment))  # a str path works too

    assert spec.request_settings == RequestSettings(5000, 1, None)
    assert spec.liveness_probe == Probe(10, 10, 2, 30, 1) == spec.readiness_probe
    assert spec.model == ModelSpec(path=project / "model", name="blue-model", version="1")
    assert spec.environment_variables == {}
    assert spec.tags == {}
    assert spec.instance_count == 1
    assert spec.instance_type is None


def test_model_may_be_a_single_file_and_is_optional(project: Path) -> None:
    with_file = write(project, "with-file.yml", GOOD.replace("path: ./model", "path: ./model/weights.pkl"))
    assert load(with_file).model.path == project / "model/weights.pkl"

    without = write(project, "without.yml", GOOD.replace("model:\n  path: ./model\n", ""))
    assert load(without).model is None


def test_build_environment_defaults_to_dockerfile_and_is_watched(project: Path) -> None:
    write(project, "docker/Dockerfile", "FROM python:3.11-slim\n")
    deployment = write(project, "deployment.yml", """
        name: blue
        endpoint_name: my-endpoint
        code_configuration: {code: ./src, scoring_script: score.py}
        environment:
          build:
            path: ./docker
    """)

    spec = load(deployment)

    assert spec.environment.image is None
    assert spec.environment.build_path == project / "docker"
    assert spec.environment.dockerfile_path == "Dockerfile"
    assert spec.watched_files == [deployment, project / "docker/Dockerfile"]


def test_bring_your_own_container_needs_no_code_configuration(project: Path) -> None:
    deployment = write(project, "deployment.yml", """
        name: blue
        endpoint_name: my-endpoint
        model: {path: ./model}
        environment:
          image: my-registry/my-server:1
          inference_config:
            liveness_route: {port: 8080, path: /health}
            readiness_route: {port: 8080, path: /ready}
            scoring_route: {port: 8081, path: /score}
    """)

    spec = load(deployment)

    assert spec.code_dir is None and spec.scoring_script is None and spec.scoring_script_path is None
    assert spec.environment.inference_config == InferenceConfig(
        liveness_route=Route(8080, "/health"), readiness_route=Route(8080, "/ready"), scoring_route=Route(8081, "/score"),
    )


# --------------------------------------------------------------------------- endpoint file and names


def test_endpoint_file_gives_auth_mode_tags_and_the_endpoint_name(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("endpoint_name: my-endpoint\n", ""))
    endpoint = write(project, "endpoint.yml", """
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
        name: from-endpoint
        auth_mode: aml_token
        tags: {owner: me}
    """)

    spec = load(deployment, endpoint)

    assert spec.endpoint_name == "from-endpoint"
    assert spec.auth_mode == "aml_token"
    assert spec.endpoint_file == endpoint
    assert spec.endpoint_tags == {"owner": "me"}
    assert spec.watched_files[:2] == [deployment, endpoint]


def test_endpoint_name_mismatch_names_both_files_and_lines(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD)
    endpoint = write(project, "endpoint.yml", "# the endpoint\nname: other-endpoint\nauth_mode: key\n")

    problem = only(problems_of(deployment, endpoint), "endpoint_name")

    assert_reported(problem, "deployment.yml", 3, "endpoint_name", "'my-endpoint'", "'other-endpoint'", "endpoint.yml:2", "-n")


def test_name_override_wins_over_both_files(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD)
    endpoint = write(project, "endpoint.yml", "name: other-endpoint\n")

    assert load(deployment, endpoint, name="cli-name").endpoint_name == "cli-name"


def test_name_override_supplies_a_missing_endpoint_name(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("endpoint_name: my-endpoint\n", ""))

    assert load(deployment, name="cli-name").endpoint_name == "cli-name"


def test_missing_name_and_endpoint_name(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("name: blue\n", "").replace("endpoint_name: my-endpoint\n", ""))

    problems = problems_of(deployment)

    # Missing keys point at the first line of the document, where they would go.
    assert_reported(only(problems, "name"), "deployment.yml", 1, "name", "missing", "name: blue")
    assert_reported(only(problems, "endpoint_name"), "deployment.yml", 1, "endpoint_name", "missing", "-n", "endpoint_name: my-endpoint")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ab", "at least 3"),
        ("a" * 33, "at most 32"),
        ("1blue", "start with a letter"),
        ("blue-", "not end with a hyphen"),
        ("blue_green", "'_'"),
    ],
)
def test_invalid_deployment_names(project: Path, name: str, why: str) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("name: blue", f"name: {name}"))

    assert_reported(only(problems_of(deployment), "name"), "deployment.yml", 2, "name", repr(name), why, "3-32")


def test_invalid_endpoint_name_from_each_source(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("endpoint_name: my-endpoint", "endpoint_name: my_endpoint"))
    assert_reported(only(problems_of(deployment), "endpoint_name"), "deployment.yml", 3, "endpoint_name", "'my_endpoint'", "Rename it, e.g. 'my-endpoint'")

    deployment = write(project, "deployment.yml", GOOD.replace("endpoint_name: my-endpoint\n", ""))
    endpoint = write(project, "endpoint.yml", "name: -bad\n")
    assert_reported(only(problems_of(deployment, endpoint), "name"), "endpoint.yml", 1, "name", "'-bad'", "start with a letter")

    problem = only(problems_of(deployment, name="x"), "-n/--name")
    assert "'x' is not a valid endpoint name" in str(problem)


# --------------------------------------------------------------------------- finding the files


def test_folder_with_one_deployment_and_one_endpoint(project: Path) -> None:
    deployment = write(project, "blue-deployment.yaml", GOOD)
    endpoint = write(project, "endpoint.yml", "$schema: https://x/managedOnlineEndpoint.schema.json\nname: my-endpoint\n")
    write(project, "sample-request.yml", "data: [[1, 2]]\n")  # neither: ignored
    # conda.yml (from the fixture) has a `name` too, but is no endpoint.

    assert find_files(project) == (deployment, endpoint)
    spec = load(project)
    assert spec.deployment_file == deployment and spec.endpoint_file == endpoint


def test_folder_classifies_by_keys_without_schema(project: Path) -> None:
    deployment = write(project, "d.yml", GOOD.replace("$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n", ""))
    endpoint = write(project, "e.yml", "name: my-endpoint\ndescription: only name, description and tags\n")

    assert find_files(project) == (deployment, endpoint)


def test_folder_with_two_deployments_is_an_error(project: Path) -> None:
    write(project, "blue.yml", GOOD)
    write(project, "green.yml", GOOD.replace("name: blue", "name: green"))

    with pytest.raises(SpecError) as caught:
        find_files(project)

    text = str(caught.value)
    assert "2 deployment YAMLs" in text and "blue.yml" in text and "green.yml" in text
    assert "pass one file" in text


def test_folder_without_deployment_is_an_error(project: Path) -> None:
    write(project, "endpoint.yml", "name: my-endpoint\nauth_mode: key\n")

    with pytest.raises(SpecError) as caught:
        load(project)

    assert "no deployment YAML" in str(caught.value) and "endpoint.yml" in str(caught.value)


def test_folder_whose_deployment_does_not_parse_shows_the_syntax_error(project: Path) -> None:
    write(project, "deployment.yml", "name: blue\nmodel: [./model\n")

    with pytest.raises(SpecError) as caught:
        load(project)

    assert "no deployment YAML" not in str(caught.value)  # only the real error
    assert any(p.file.name == "deployment.yml" and p.line == 3 for p in caught.value.problems), str(caught.value)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load(tmp_path / "nope.yml")
    assert "nope.yml" in str(caught.value) and "not found" in str(caught.value)

    write(tmp_path, "deployment.yml", GOOD)
    with pytest.raises(SpecError) as caught:
        load(tmp_path / "deployment.yml", tmp_path / "missing-endpoint.yml")
    assert "missing-endpoint.yml" in str(caught.value)


def test_an_endpoint_yaml_passed_as_path_is_explained(tmp_path: Path) -> None:
    endpoint = write(tmp_path, "endpoint.yml", "name: my-endpoint\nauth_mode: key\n")

    with pytest.raises(SpecError) as caught:
        load(endpoint)

    assert "endpoint YAML, not a deployment" in str(caught.value)


# --------------------------------------------------------------------------- YAML that does not parse


def test_yaml_syntax_error_has_the_line(project: Path) -> None:
    deployment = write(project, "deployment.yml", "name: blue\nendpoint_name: my-endpoint\nmodel:\n  path: ./model\n bad: indent\n")

    (problem,) = problems_of(deployment)

    assert_reported(problem, "deployment.yml", 5, None, "YAML syntax error", "column")


def test_syntax_error_in_the_endpoint_file_is_reported_with_the_deployment_problems(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("./src", "./missing-src"))
    endpoint = write(project, "endpoint.yml", 'name: "my-endpoint\n')

    problems = problems_of(deployment, endpoint)

    assert_reported(only(problems, "code_configuration.code"), "deployment.yml", 7, "code_configuration.code", "missing-src")
    assert any(p.file.name == "endpoint.yml" and "YAML syntax error" in p.message for p in problems)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n"])
def test_empty_file(project: Path, text: str) -> None:
    deployment = write(project, "deployment.yml", "")
    deployment.write_text(text)

    (problem,) = problems_of(deployment)

    assert problem.file == deployment and "empty" in problem.message


def test_top_level_must_be_a_mapping(project: Path) -> None:
    deployment = write(project, "deployment.yml", "# a list by mistake\n- name: blue\n- endpoint_name: x\n")

    (problem,) = problems_of(deployment)

    assert_reported(problem, "deployment.yml", 2, None, "top level is a list", "mapping")


def test_more_than_one_document(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + "---\nname: green\n")

    (problem,) = problems_of(deployment)

    assert "more than one YAML document" in str(problem) and problem.line == 12


# --------------------------------------------------------------------------- wrong types, all reported at once


def test_wrong_types_are_all_reported_with_lines_and_fields(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + textwrap.dedent("""
        instance_count: two
        request_settings:
          request_timeout_ms: fast
          max_concurrent_requests_per_instance: true
        environment_variables:
          - A=1
        liveness_probe:
          period: 0
        readiness_probe: often
        tags:
          nested: {a: 1}
    """))

    problems = problems_of(deployment)

    assert_reported(only(problems, "instance_count"), "deployment.yml", 13, "instance_count", "whole number", "'two'", "instance_count: 1")
    assert_reported(only(problems, "request_settings.request_timeout_ms"), "deployment.yml", 15,
                    "request_settings.request_timeout_ms", "whole number", "'fast'", "request_timeout_ms: 5000")
    assert_reported(only(problems, "request_settings.max_concurrent_requests_per_instance"), "deployment.yml", 16,
                    "request_settings.max_concurrent_requests_per_instance", "whole number", "boolean true")
    assert_reported(only(problems, "environment_variables"), "deployment.yml", 17, "environment_variables", "mapping", "a list")
    assert_reported(only(problems, "liveness_probe.period"), "deployment.yml", 20, "liveness_probe.period", "at least 1", "period: 10")
    assert_reported(only(problems, "readiness_probe"), "deployment.yml", 21, "readiness_probe", "mapping", "'often'")
    assert_reported(only(problems, "tags.nested"), "deployment.yml", 23, "tags.nested", "single value", "a mapping")
    assert len(problems) == 7, "\n".join(map(str, problems))
    # One problem per line of the error, in file order.
    assert str(SpecError(problems)).splitlines() == [str(p) for p in problems]
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_request_timeout_over_the_cloud_limit(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + "request_settings:\n  request_timeout_ms: 200000\n")

    problem = only(problems_of(deployment), "request_settings.request_timeout_ms")

    assert_reported(problem, "deployment.yml", 13, "request_settings.request_timeout_ms", "at most 180000", "200000")


def test_text_fields_reject_numbers(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("name: blue", "name: 123"))

    assert_reported(only(problems_of(deployment), "name"), "deployment.yml", 2, "name", "expected text", "the number 123", "quote")


def test_non_text_environment_variable_name(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + "environment_variables:\n  1: one\n")
    assert_reported(only(problems_of(deployment), "environment_variables.1"), "deployment.yml", 13,
                    "environment_variables.1", "quotes")

    deployment = write(project, "deployment.yml", GOOD + "environment_variables:\n  OK: one\n  A=B: two\n")
    assert_reported(only(problems_of(deployment), "environment_variables.A=B"), "deployment.yml", 14,
                    "environment_variables.A=B", "not a valid environment variable name")


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize(
    ("model", "line_text"),
    [
        ("model: azureml:my-model:1", "azureml:my-model:1"),
        ("model:\n  path: azureml:my-model:1", "azureml:my-model:1"),
        ("model:\n  path: azureml://registries/azureml/models/m/versions/1", "azureml://registries"),
    ],
)
def test_registered_model_is_rejected(project: Path, model: str, line_text: str) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("model:\n  path: ./model", model))

    problems = problems_of(deployment)

    (problem,) = [p for p in problems if p.field in ("model", "model.path")]
    expected_line = 4 if problem.field == "model" else 5
    assert_reported(problem, "deployment.yml", expected_line, problem.field, line_text, "local", "path: ./model")


def test_model_as_a_plain_string_is_rejected_with_the_mapping_form(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("model:\n  path: ./model", "model: ./model"))

    assert_reported(only(problems_of(deployment), "model"), "deployment.yml", 4, "model", "model: {path: ./model}")


def test_model_path_not_found_names_the_resolved_path(project: Path) -> None:
    deployment = write(project, "sub/deployment.yml", GOOD)

    problem = only(problems_of(deployment), "model.path")

    assert_reported(problem, "deployment.yml", 5, "model.path", str(project / "sub/model"), "not found")


def test_model_mapping_without_path(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("path: ./model", "name: my-model"))

    assert_reported(only(problems_of(deployment), "model.path"), "deployment.yml", 4, "model.path", "missing", "model: {path: ./model}")


# --------------------------------------------------------------------------- code_configuration


def test_code_folder_not_found(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("code: ./src", "code: ./scoring"))

    problem = only(problems_of(deployment), "code_configuration.code")

    assert_reported(problem, "deployment.yml", 7, "code_configuration.code", str(project / "scoring"), "not found")


def test_scoring_script_not_found(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("scoring_script: score.py", "scoring_script: main.py"))

    problem = only(problems_of(deployment), "code_configuration.scoring_script")

    assert_reported(problem, "deployment.yml", 8, "code_configuration.scoring_script", str(project / "src/main.py"), "not found")


def test_scoring_script_outside_the_code_folder(project: Path) -> None:
    write(project, "elsewhere.py", "def init(): pass\n")
    deployment = write(project, "deployment.yml", GOOD.replace("scoring_script: score.py", "scoring_script: ../elsewhere.py"))

    problem = only(problems_of(deployment), "code_configuration.scoring_script")

    assert_reported(problem, "deployment.yml", 8, "code_configuration.scoring_script", "outside the code folder")


def test_code_configuration_missing_keys(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("  scoring_script: score.py\n", ""))

    problem = only(problems_of(deployment), "code_configuration.scoring_script")

    assert_reported(problem, "deployment.yml", 6, "code_configuration.scoring_script", "missing", "scoring_script: score.py")


def test_code_configuration_required_without_inference_config(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("code_configuration:\n  code: ./src\n  scoring_script: score.py\n", ""))

    problem = only(problems_of(deployment), "code_configuration")

    assert_reported(problem, "deployment.yml", 1, "code_configuration", "missing", "inference_config", "scoring_script: score.py")


# --------------------------------------------------------------------------- environment


def test_registered_environment_is_rejected(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace(
        "environment:\n  image: python:3.11-slim\n  conda_file: ./conda.yml", "environment: azureml:sklearn-env:4"))

    problem = only(problems_of(deployment), "environment")

    assert_reported(problem, "deployment.yml", 9, "environment", "azureml:sklearn-env:4", "local", "image:", "conda_file:")


def test_environment_missing(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.split("environment:")[0])

    problem = only(problems_of(deployment), "environment")

    assert_reported(problem, "deployment.yml", 1, "environment", "missing", "image:")


def test_environment_without_image_or_build(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("  image: python:3.11-slim\n", ""))

    assert_reported(only(problems_of(deployment), "environment"), "deployment.yml", 9, "environment", "image", "build")


def test_conda_file_not_found(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("./conda.yml", "./env/conda.yml"))

    problem = only(problems_of(deployment), "environment.conda_file")

    assert_reported(problem, "deployment.yml", 11, "environment.conda_file", str(project / "env/conda.yml"), "not found")


def test_build_path_and_dockerfile_not_found(project: Path) -> None:
    build = "environment:\n  build:\n    path: ./docker\n"
    deployment = write(project, "deployment.yml", GOOD.split("environment:")[0] + build)
    assert_reported(only(problems_of(deployment), "environment.build.path"), "deployment.yml", 11,
                    "environment.build.path", str(project / "docker"), "not found")

    (project / "docker").mkdir()
    deployment = write(project, "deployment.yml", GOOD.split("environment:")[0] + build + "    dockerfile_path: serve.Dockerfile\n")
    assert_reported(only(problems_of(deployment), "environment.build.dockerfile_path"), "deployment.yml", 12,
                    "environment.build.dockerfile_path", str(project / "docker/serve.Dockerfile"), "not found")


def test_inference_config_routes_are_checked(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + (
        "  inference_config:\n"
        "    liveness_route: {port: http, path: /health}\n"
        "    readiness_route: {port: 8080, path: /ready}\n"
    ))

    problems = problems_of(deployment)

    assert_reported(only(problems, "environment.inference_config.liveness_route.port"), "deployment.yml", 13,
                    "environment.inference_config.liveness_route.port", "whole number", "'http'", "port: 8080")
    assert_reported(only(problems, "environment.inference_config.scoring_route"), "deployment.yml", 12,
                    "environment.inference_config.scoring_route", "missing", "scoring_route: {port: 8080, path: /score}")


# --------------------------------------------------------------------------- the Problem type


def test_problem_text_is_relative_to_the_working_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    problem = Problem(project / "sub/deployment.yml", 7, "code_configuration.code", "folder ./x not found. Create it.")

    assert str(problem) == "sub/deployment.yml:7: code_configuration.code: folder ./x not found. Create it."
    assert str(Problem(project / "d.yml", None, None, "empty.")) == "d.yml: empty."
    assert str(SpecError([problem, problem])).count("\n") == 1


def test_every_section_is_checked_even_when_another_fails(project: Path) -> None:
    deployment = write(project, "deployment.yml", """
        name: blue
        endpoint_name: my-endpoint
        model: {path: ./no-model}
        environment:
          image: python:3.11-slim
          conda_file: ./no-conda.yml
    """)

    problems = problems_of(deployment)

    assert [(p.field, p.line) for p in problems] == [
        ("code_configuration", 1), ("model.path", 3), ("environment.conda_file", 6),
    ], "\n".join(map(str, problems))


def test_image_and_build_together(project: Path) -> None:
    (project / "docker").mkdir()
    write(project, "docker/Dockerfile", "FROM python:3.11-slim\n")
    deployment = write(project, "deployment.yml", GOOD + "  build: {path: ./docker}\n")

    assert_reported(only(problems_of(deployment), "environment.build"), "deployment.yml", 12, "environment.build", "not both")


def test_a_key_that_is_not_a_name_is_one_problem_and_the_rest_still_loads(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + "null: 1\n")

    problems = problems_of(deployment)

    assert len(problems) == 1, "\n".join(map(str, problems))
    assert problems[0].field == "null" and "a key must be a name" in problems[0].message
    assert problems[0].line == len(GOOD.splitlines()) + 1


# --------------------------------------------------------------------------- keys the cloud reads otherwise


def test_a_duplicate_key_is_an_error_naming_both_lines(project: Path) -> None:
    # PyYAML keeps the last one silently, so the file "works" here and means something else to a reader.
    deployment = write(project, "deployment.yml", GOOD + "name: green\n")
    problem = only(problems_of(deployment), "name")
    assert_reported(problem, "deployment.yml", 12, "name", "duplicate", "line 2")


def test_a_duplicate_nested_key_is_an_error(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + (
        "request_settings:\n"
        "  request_timeout_ms: 3000\n"
        "  max_concurrent_requests_per_instance: 2\n"
        "  request_timeout_ms: 90000\n"
    ))
    problem = only(problems_of(deployment), "request_settings.request_timeout_ms")
    assert_reported(problem, "deployment.yml", 15, "request_settings.request_timeout_ms", "duplicate", "line 13")


def test_a_duplicate_key_in_the_endpoint_file_is_an_error(project: Path) -> None:
    write(project, "deployment.yml", GOOD)
    endpoint = write(project, "endpoint.yml", "name: my-endpoint\nauth_mode: key\nauth_mode: aml_token\n")
    problem = only(problems_of(project / "deployment.yml", endpoint), "auth_mode")
    assert_reported(problem, "endpoint.yml", 3, "auth_mode", "duplicate", "line 2")


def test_a_duplicate_inside_an_anchor_is_reported_once(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + (
        "tags: &shared {team: ml, team: ai}\n"
        "environment_variables: *shared\n"
    ))
    problem = only(problems_of(deployment), "tags.team")
    assert_reported(problem, "deployment.yml", 12, "tags.team", "duplicate")


def test_a_merge_key_overridden_is_not_a_duplicate(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + (
        "liveness_probe: &probe {period: 5, timeout: 3}\n"
        "readiness_probe:\n"
        "  <<: *probe\n"
        "  period: 7\n"
    ))
    loaded = load(deployment)
    assert loaded.readiness_probe.period == 7 and loaded.readiness_probe.timeout == 3


def test_a_misspelled_key_is_a_warning_with_the_closest_name(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + (
        "enviroment_variables: {LOG_LEVEL: debug}\n"
        "request_settings:\n"
        "  request_timout_ms: 90000\n"
    ))
    loaded = load(deployment)
    assert loaded.environment_variables == {} and loaded.request_settings.request_timeout_ms == 5000
    first, second = loaded.warnings
    assert_reported(first, "deployment.yml", 12, "enviroment_variables", "did you mean environment_variables?")
    assert_reported(second, "deployment.yml", 14, "request_settings.request_timout_ms",
                    "not a key of request_settings", "did you mean request_timeout_ms?")


def test_an_unknown_key_without_a_close_name_is_a_warning_too(project: Path) -> None:
    loaded = load(write(project, "deployment.yml", GOOD + "flavour: vanilla\n"))
    (warning,) = loaded.warnings
    assert_reported(warning, "deployment.yml", 12, "flavour", "not a key of a deployment", "ignores it")
    assert "did you mean" not in str(warning)


def test_an_unknown_key_in_the_endpoint_file_is_a_warning(project: Path) -> None:
    write(project, "deployment.yml", GOOD)
    endpoint = write(project, "endpoint.yml", "name: my-endpoint\nauth_mod: key\n")
    (warning,) = load(project / "deployment.yml", endpoint).warnings
    assert_reported(warning, "endpoint.yml", 2, "auth_mod", "not a key of an endpoint", "did you mean auth_mode?")


def test_a_misspelled_section_is_suggested_next_to_the_error_it_causes(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("code_configuration:", "code_configuraton:"))
    with pytest.raises(SpecError) as caught:
        load(deployment)
    only(caught.value.problems, "code_configuration")
    (warning,) = caught.value.warnings
    assert_reported(warning, "deployment.yml", 6, "code_configuraton", "did you mean code_configuration?")


def test_keys_the_cloud_accepts_are_not_warned_about(project: Path) -> None:
    deployment = write(project, "deployment.yml", textwrap.dedent("""
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
    """).lstrip("\n"))
    endpoint = write(project, "endpoint.yml", textwrap.dedent("""
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
    """).lstrip("\n"))
    assert load(deployment, endpoint).warnings == ()


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parent.parent / "samples").iterdir() if p.is_dir()))
def test_the_samples_load_without_warnings(name: str) -> None:
    assert load(Path(__file__).parent.parent / "samples" / name).warnings == ()
