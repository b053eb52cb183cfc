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

from spec_data import CLOUD_KEYS_DEPLOYMENT, CLOUD_KEYS_ENDPOINT, GOOD, ONE_PROBLEM, Broken, write


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


def test_name_override_wins_over_both_files(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD)
    endpoint = write(project, "endpoint.yml", "name: other-endpoint\n")

    assert load(deployment, endpoint, name="cli-name").endpoint_name == "cli-name"


def test_name_override_supplies_a_missing_endpoint_name(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD.replace("endpoint_name: my-endpoint\n", ""))

    assert load(deployment, name="cli-name").endpoint_name == "cli-name"


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


# --------------------------------------------------------------------------- one thing wrong: where it is reported


@pytest.mark.parametrize("case", ONE_PROBLEM)
def test_a_problem_names_its_file_line_field_and_the_fix(project: Path, case: Broken) -> None:
    for name in case.files:
        folder = name if name.endswith("/") else str(Path(name).parent)
        (project / folder).mkdir(parents=True, exist_ok=True)
        if not name.endswith("/"):
            (project / name).touch()
    deployment = write(project, case.folder + "deployment.yml", case.deployment)
    endpoint = write(project, "endpoint.yml", case.endpoint) if case.endpoint is not None else None

    problems = problems_of(deployment, endpoint, name=case.name)

    problem = only(problems, case.field)
    if case.alone:
        assert problems == [problem], "\n".join(map(str, problems))
    words = (word.replace("<project>", str(project)) for word in case.words)
    assert_reported(problem, case.file, case.line, case.field, *words)


# --------------------------------------------------------------------------- YAML that does not parse


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

    expected = [
        (13, "instance_count", "whole number", "'two'", "instance_count: 1"),
        (15, "request_settings.request_timeout_ms", "whole number", "'fast'", "request_timeout_ms: 5000"),
        (16, "request_settings.max_concurrent_requests_per_instance", "whole number", "boolean true"),
        (17, "environment_variables", "mapping", "a list"),
        (20, "liveness_probe.period", "at least 1", "period: 10"),
        (21, "readiness_probe", "mapping", "'often'"),
        (23, "tags.nested", "single value", "a mapping"),
    ]
    for line, field, *words in expected:
        assert_reported(only(problems, field), "deployment.yml", line, field, *words)
    assert len(problems) == 7, "\n".join(map(str, problems))
    # One problem per line of the error, in file order.
    assert str(SpecError(problems)).splitlines() == [str(p) for p in problems]
    assert [p.line for p in problems] == sorted(p.line for p in problems)


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


def test_a_key_that_is_not_a_name_is_one_problem_and_the_rest_still_loads(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + "null: 1\n")

    problems = problems_of(deployment)

    assert len(problems) == 1, "\n".join(map(str, problems))
    assert problems[0].field == "null" and "a key must be a name" in problems[0].message
    assert problems[0].line == len(GOOD.splitlines()) + 1


# --------------------------------------------------------------------------- keys the cloud reads otherwise


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
    deployment = write(project, "deployment.yml", CLOUD_KEYS_DEPLOYMENT)
    endpoint = write(project, "endpoint.yml", CLOUD_KEYS_ENDPOINT)
    assert load(deployment, endpoint).warnings == ()


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parent.parent / "samples").iterdir() if p.is_dir()))
def test_the_samples_load_without_warnings(name: str) -> None:
    assert load(Path(__file__).parent.parent / "samples" / name).warnings == ()
