"""devtui.spec against hostile input: files too large to be a deployment, YAML that expands
without limit, conda files of the wrong shape. Each is refused with one clear Problem, fast."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devtui.spec import Problem, SpecError, find_files, load
from test_spec import GOOD, project, write  # noqa: F401  (project is a fixture)

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

    started = time.perf_counter()
    problems = problems_of(deployment)
    assert time.perf_counter() - started < 1

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
    started = time.perf_counter()
    deployment, _ = find_files(project)
    assert time.perf_counter() - started < 1
    assert deployment.name == "deployment.yml"


@pytest.mark.timeout(10)
def test_an_oversized_yaml_alone_in_the_folder_says_why(project: Path) -> None:
    (project / "deployment.yml").write_text(GOOD + "#" * (2 * MIB))
    with pytest.raises(SpecError) as caught:
        find_files(project)
    assert any("2.0 MiB" in str(p) and p.file.name == "deployment.yml" for p in caught.value.problems), caught.value
