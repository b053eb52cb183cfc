"""devtui.spec against hostile input: files too large to be a deployment, YAML that expands
without limit, conda files of the wrong shape. Each is refused with one clear Problem, fast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtui.spec import Problem, SpecError, find_files, load
from spec_data import GOOD, write

MIB = 1024 * 1024


def problems_of(*args, **kwargs) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        load(*args, **kwargs)
    return caught.value.problems


# --------------------------------------------------------------------------- oversized files


@pytest.mark.timeout(10)
def test_an_oversized_deployment_is_refused_before_parsing(project: Path) -> None:
    # 50 MB of valid YAML took 182 s and 1 GB to validate.
    deployment = project / "deployment.yml"
    deployment.write_text(GOOD + "environment_variables:\n" + "".join(
        f"  VAR_{i}: value-{i}-xxxxxxxxxxxxxxxxxxxxxxxx\n" for i in range(60_000)))
    size = deployment.stat().st_size
    assert size > MIB

    problems = problems_of(deployment)

    assert len(problems) == 1, problems
    text = str(problems[0])
    assert problems[0].file == deployment and text.startswith(f"{deployment}: is "), text
    assert f"{size / MIB:.1f} MiB" in text and "1 MiB" in text, text


@pytest.mark.timeout(10)
def test_an_oversized_endpoint_file_is_refused(project: Path) -> None:
    write(project, "deployment.yml", GOOD)
    endpoint = project / "endpoint.yml"
    endpoint.write_text("name: my-endpoint\nauth_mode: key\n" + "#" * (2 * MIB) + "\n")
    problems = problems_of(project / "deployment.yml", endpoint)
    assert len(problems) == 1 and problems[0].file.name == "endpoint.yml", problems
    assert "2.0 MiB" in str(problems[0]), problems


@pytest.mark.timeout(10)
def test_an_oversized_yaml_in_the_folder_is_not_read_to_classify_it(project: Path) -> None:
    write(project, "deployment.yml", GOOD)
    (project / "huge.yml").write_text("items:\n" + "  - a\n" * 400_000)
    deployment, _ = find_files(project)
    assert deployment.name == "deployment.yml"


@pytest.mark.timeout(10)
def test_an_oversized_yaml_alone_in_the_folder_says_why(project: Path) -> None:
    (project / "deployment.yml").write_text(GOOD + "#" * (2 * MIB))
    with pytest.raises(SpecError) as caught:
        find_files(project)
    assert any("2.0 MiB" in str(p) and p.file.name == "deployment.yml" for p in caught.value.problems), caught.value


# --------------------------------------------------------------------------- YAML that expands

BILLION_LAUGHS = "\n".join([
    'lol0: &lol0 "lol"',
    *(f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(1, 10)),
]) + "\n"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("where", ["top level", "unknown key", "tags", "environment_variables"])
def test_a_billion_laughs_is_refused_at_once(project: Path, where: str) -> None:
    # validate ran 120 s at 8.8 GB on this before it was killed: the line indexer expanded every alias.
    bomb = {
        "top level": GOOD + BILLION_LAUGHS,
        "unknown key": GOOD + "x-anchors:\n" + "".join(f"  {line}\n" for line in BILLION_LAUGHS.splitlines()),
        "tags": GOOD + BILLION_LAUGHS + "tags: {a: *lol9}\n",
        "environment_variables": GOOD + BILLION_LAUGHS + "environment_variables: *lol9\n",
    }[where]
    deployment = write(project, "deployment.yml", bomb)

    problems = problems_of(deployment)

    assert len(problems) == 1, problems
    assert problems[0].file == deployment and problems[0].line is not None, problems
    text = str(problems[0])
    assert "alias" in text and "10,000" in text, text


@pytest.mark.timeout(10)
def test_a_billion_laughs_in_a_folder_is_refused_at_once(project: Path) -> None:
    write(project, "deployment.yml", GOOD + BILLION_LAUGHS)
    problems = problems_of(project)
    assert any("alias" in str(p) and p.line for p in problems), problems


def test_a_few_aliases_are_fine(project: Path) -> None:
    deployment = write(project, "deployment.yml", GOOD + (
        "tags: &shared {team: ml, cost-center: '42'}\n"
        "environment_variables: *shared\n"
        "liveness_probe: &probe {period: 5}\n"
        "readiness_probe: *probe\n"
    ))
    loaded = load(deployment)
    assert loaded.environment_variables == {"team": "ml", "cost-center": "42"} == loaded.tags
    assert loaded.readiness_probe.period == 5


@pytest.mark.timeout(10)
def test_too_many_values_are_refused_while_parsing(project: Path) -> None:
    # Under the size limit, but PyYAML would need 10+ s to compose 450,000 values.
    deployment = write(project, "deployment.yml", GOOD + "tags: [" + "1," * 450_000 + "]\n")
    assert deployment.stat().st_size < MIB
    problems = problems_of(deployment)
    assert len(problems) == 1 and "10,000" in str(problems[0]), problems


@pytest.mark.timeout(10)
@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_one_problem_not_a_recursion_error(project: Path, depth: int) -> None:
    deployment = write(project, "deployment.yml", GOOD + "tags: " + "[" * depth + "]" * depth + "\n")
    problems = problems_of(deployment)
    assert len(problems) == 1 and "deep" in str(problems[0]), problems
    assert problems[0].line == GOOD.count("\n") + 1


@pytest.mark.timeout(10)
def test_nesting_deep_through_aliases_is_refused(project: Path) -> None:
    chain = "a0: &a0 x\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 3000))
    problems = problems_of(write(project, "deployment.yml", GOOD + chain))
    assert len(problems) == 1 and "deep" in str(problems[0]), problems


def test_a_recursive_alias_is_refused(project: Path) -> None:
    problems = problems_of(write(project, "deployment.yml", GOOD + "tags: &loop {self: *loop}\n"))
    assert len(problems) == 1, problems
    assert "contains itself" in str(problems[0]), problems


# --------------------------------------------------------------------------- the conda file's shape


def conda_problems(project: Path, conda: str) -> list[Problem]:
    write(project, "conda.yml", conda)
    return problems_of(write(project, "deployment.yml", GOOD))


def test_string_dependencies_are_refused_not_read_letter_by_letter(project: Path) -> None:
    # pip was asked for the packages j, u, s, t, ...: a typo-squatting hazard.
    (problem,) = conda_problems(project, 'name: env\ndependencies: "just-a-string"\n')
    assert str(problem).startswith(f"{project / 'conda.yml'}:2: dependencies: "), problem
    assert "list" in problem.message and "'just-a-string'" in problem.message, problem


@pytest.mark.parametrize("conda, where, words", [
    ("dependencies:\n  - numpy\n  - pip: requests\n", (3, "dependencies.1.pip"), ("list", "'requests'")),
    ("dependencies:\n  - numpy\n  - 3\n", (3, "dependencies.1"), ("number 3",)),
    ("dependencies:\n  - [numpy, scipy]\n", (2, "dependencies.0"), ("a list",)),
    ("dependencies:\n  - pip: [requests, 2]\n", (2, "dependencies.0.pip.1"), ("number 2",)),
    ("dependencies:\n  - pip: [requests]\n    conda: [numpy]\n", (3, "dependencies.0.conda"), ("pip",)),
    ("channels: conda-forge\ndependencies: [numpy]\n", (1, "channels"), ("list", "'conda-forge'")),
    ("name: [a, b]\ndependencies: [numpy]\n", (1, "name"), ("text",)),
    ("dependencies: [numpy]\ndependencies: [scipy]\n", (2, "dependencies"), ("duplicate",)),
])
def test_conda_file_shape_problems_have_file_line_and_field(project: Path, conda: str, where: tuple, words: tuple) -> None:
    (problem,) = conda_problems(project, conda)
    assert (problem.file.name, problem.line, problem.field) == ("conda.yml", *where), problem
    for word in words:
        assert word in problem.message, problem


def test_a_conda_file_that_is_not_a_mapping(project: Path) -> None:
    (problem,) = conda_problems(project, "- numpy\n- scipy\n")
    assert (problem.file.name, problem.line, problem.field) == ("conda.yml", 1, None), problem
    assert "dependencies" in problem.message


def test_a_conda_file_with_a_syntax_error(project: Path) -> None:
    (problem,) = conda_problems(project, "dependencies:\n  - numpy\n - scipy\n")
    assert problem.file.name == "conda.yml" and problem.line == 3 and "syntax" in problem.message, problem


@pytest.mark.timeout(10)
def test_a_conda_file_alias_bomb_is_refused_at_once(project: Path) -> None:
    (problem,) = conda_problems(project, BILLION_LAUGHS + "dependencies: *lol9\n")
    assert problem.file.name == "conda.yml" and "alias" in problem.message, problem


def test_a_good_conda_file_with_pip_loads(project: Path) -> None:
    write(project, "conda.yml", (
        "name: env\nchannels: [conda-forge]\n"
        "dependencies:\n  - python=3.11\n  - numpy=1.26\n  - pip\n  - pip:\n    - requests==2.32.3\n"
    ))
    assert load(write(project, "deployment.yml", GOOD)).environment.conda_file == project / "conda.yml"


def test_read_conda_refuses_string_dependencies_without_docker(tmp_path: Path) -> None:
    from devtui.runtimes.container.images import ImageError, read_conda

    conda = write(tmp_path, "conda.yml", "dependencies:\n  - pip: requests\n")
    with pytest.raises(ImageError) as caught:
        read_conda(conda)
    assert f"{conda}:2: dependencies.0.pip: " in str(caught.value), caught.value

    good = write(tmp_path, "good.yml", "dependencies:\n  - python=3.11\n  - numpy=1.26\n  - pip: [requests]\n")
    environment = read_conda(good)
    assert environment.python == "3.11" and environment.requirements == ["numpy==1.26.*", "requests"]


# --------------------------------------------------------------------------- names the cloud accepts

# Docker's reference grammar for a repository path component and a tag.
DOCKER_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
DOCKER_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


def test_an_uppercase_endpoint_name_builds_an_image_with_a_valid_tag(project: Path) -> None:
    # The cloud accepts `Rel-ICU` (names are letters, digits and hyphens, and case-insensitive), so
    # it must run here too; Docker refused `devtui-user-Rel-ICU-blue:latest`.
    from devtui.runtimes.container.images import user_image_tag

    write(project, "docker/Dockerfile", "FROM python:3.11-slim\n")
    deployment = write(project, "deployment.yml", GOOD.replace("endpoint_name: my-endpoint", "endpoint_name: Rel-ICU")
                       .replace("name: blue", "name: Blue-2").replace(
                           "  image: python:3.11-slim\n  conda_file: ./conda.yml\n", "  build: {path: ./docker}\n"))
    loaded = load(deployment)
    assert (loaded.endpoint_name, loaded.deployment_name) == ("Rel-ICU", "Blue-2")

    tag = user_image_tag(loaded)
    repository, _, version = tag.partition(":")
    assert DOCKER_REPOSITORY.match(repository) and DOCKER_TAG.match(version), tag
    from devtui.registry import home_label

    assert tag == f"devtui-user-rel-icu-blue-2:{home_label()}"


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_neither_a_deployment_nor_a_folder(device: str) -> None:
    with pytest.raises(SpecError) as caught:
        find_files(Path(device))
    (problem,) = caught.value.problems
    assert "not a file or a folder" in str(problem), problem

    with pytest.raises(SpecError) as caught:
        find_files(Path(__file__), Path(device))
    (problem,) = caught.value.problems
    assert "is not a file; pass the endpoint YAML" in str(problem), problem
