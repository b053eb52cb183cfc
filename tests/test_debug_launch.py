"""Writing devtui's attach configuration into .vscode/launch.json (devtui/debug.py).

The merge keeps what people have there (their configurations, their comments); and the write never
goes through a symbolic link that leads out of the folder (issue 13, item 3): a cloned project with
``.vscode/launch.json -> ~/.bashrc`` must not get devtui to create or rewrite that file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from devtui.debug import LaunchJsonError, attach_configuration, merge_launch_json, strip_jsonc

MINE = ('{\n  // mine\n  "version": "0.2.0",\n  "configurations": [\n'
        '    {"name": "Python: file", "type": "debugpy", "request": "launch", "program": "${file}"}\n  ]\n}\n')


def configuration(port: int = 5678, endpoint: str = "my-endpoint") -> dict:
    return attach_configuration(endpoint, "127.0.0.1", port, "/code", "/var/azureml-app/code")


def configurations(path: Path) -> list[dict]:
    return json.loads(strip_jsonc(path.read_text()))["configurations"]


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder that is not the project's, as the target of links that leave it."""
    return tmp_path_factory.mktemp("outside")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and its modification time, to prove nothing changed."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the merge ---------------------------------------------------------------------------------


def test_a_new_launch_json_has_the_configuration(project):
    path = merge_launch_json(project, configuration())
    assert path == project / ".vscode" / "launch.json"
    document = json.loads(path.read_text())
    assert document["version"] == "0.2.0" and document["configurations"] == [configuration()]


def test_the_configuration_joins_the_users_own_and_their_comments_stay(project):
    (project / ".vscode").mkdir()
    path = project / ".vscode" / "launch.json"
    path.write_text(MINE)
    merge_launch_json(project, configuration())
    assert "// mine" in path.read_text()
    assert [c["name"] for c in configurations(path)] == ["Python: file", "devtui: attach to my-endpoint"]

    # Again with a new port: replaced in place, not added.
    merge_launch_json(project, configuration(port=6000))
    assert [c["name"] for c in configurations(path)] == ["Python: file", "devtui: attach to my-endpoint"]
    assert configurations(path)[1]["connect"]["port"] == 6000
    assert "// mine" in path.read_text()


def test_writing_the_same_configuration_twice_leaves_the_file_alone(project):
    path = merge_launch_json(project, configuration())
    before = path.stat()
    merge_launch_json(project, configuration())
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("text", ['{"version": "0.2.0"}\n', '{\n  "version": "0.2.0",\n  "configurations": []\n}\n',
                                  "", '{"configurations": [{"name": "other"},]}'])
def test_a_launch_json_without_configurations_gets_one(project, text):
    (project / ".vscode").mkdir()
    path = project / ".vscode" / "launch.json"
    path.write_text(text)
    merge_launch_json(project, configuration())
    assert configurations(path)[-1] == configuration()


@pytest.mark.parametrize("text, expected", [('{\n  "configurations": [\n', "launch.json:3: not valid JSON"),
                                            ("[]", "the top level is not an object")])
def test_a_launch_json_that_cannot_be_read_is_left_alone(project, text, expected):
    (project / ".vscode").mkdir()
    path = project / ".vscode" / "launch.json"
    path.write_text(text)
    with pytest.raises(LaunchJsonError, match=expected):
        merge_launch_json(project, configuration())
    assert path.read_text() == text


def test_the_write_is_atomic_and_keeps_the_files_mode(project):
    (project / ".vscode").mkdir()
    path = project / ".vscode" / "launch.json"
    path.write_text(MINE)
    path.chmod(0o640)
    before = path.stat().st_ino
    merge_launch_json(project, configuration())
    # A new file renamed over the old one (a reader sees the old or the new, never half), in the
    # same folder, with nothing left beside it.
    assert path.stat().st_ino != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["launch.json"]


# -- symbolic links ----------------------------------------------------------------------------


def test_a_dangling_link_out_of_the_folder_is_refused_and_nothing_is_created(project, outside):
    (project / ".vscode").mkdir()
    link = project / ".vscode" / "launch.json"
    link.symlink_to(outside / "x")
    with pytest.raises(LaunchJsonError) as refused:
        merge_launch_json(project, configuration())
    message = str(refused.value)
    assert str(link) in message and str(outside / "x") in message and "outside" in message
    assert not (outside / "x").exists()
    assert list(outside.iterdir()) == []
    assert link.is_symlink() and os.readlink(link) == str(outside / "x")


def test_a_link_to_a_json_file_out_of_the_folder_is_refused_and_the_file_is_unchanged(project, outside):
    target = outside / "launch.json"
    target.write_text(MINE)
    before = snapshot(outside)
    (project / ".vscode").mkdir()
    link = project / ".vscode" / "launch.json"
    link.symlink_to(target)
    with pytest.raises(LaunchJsonError, match="symbolic link") as refused:
        merge_launch_json(project, configuration())
    assert str(target) in str(refused.value)
    assert snapshot(outside) == before
    assert link.is_symlink()


def test_a_relative_link_that_climbs_out_is_refused(project, outside):
    target = outside / "launch.json"
    target.write_text(MINE)
    before = snapshot(outside)
    (project / ".vscode").mkdir()
    (project / ".vscode" / "launch.json").symlink_to(os.path.relpath(target, project / ".vscode"))
    with pytest.raises(LaunchJsonError, match="outside"):
        merge_launch_json(project, configuration())
    assert snapshot(outside) == before


@pytest.mark.parametrize("with_file", [False, True])
def test_a_vscode_folder_linked_out_of_the_folder_is_refused(project, outside, with_file):
    if with_file:
        (outside / "launch.json").write_text(MINE)
    before = snapshot(outside)
    (project / ".vscode").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LaunchJsonError) as refused:
        merge_launch_json(project, configuration())
    assert str(project / ".vscode") in str(refused.value) and str(outside) in str(refused.value)
    assert snapshot(outside) == before
    assert (outside / "launch.json").exists() == with_file


def test_a_dangling_vscode_link_out_of_the_folder_is_refused(project, outside):
    (project / ".vscode").symlink_to(outside / "missing", target_is_directory=True)
    with pytest.raises(LaunchJsonError, match="outside"):
        merge_launch_json(project, configuration())
    assert list(outside.iterdir()) == []


def test_a_link_loop_is_refused_with_a_message(project):
    (project / ".vscode").mkdir()
    link = project / ".vscode" / "launch.json"
    link.symlink_to(link)
    with pytest.raises(LaunchJsonError, match="launch.json"):
        merge_launch_json(project, configuration())


def test_a_link_that_stays_in_the_folder_is_followed(project):
    shared = project / "config" / "launch.json"
    shared.parent.mkdir()
    shared.write_text(MINE)
    (project / ".vscode").mkdir()
    link = project / ".vscode" / "launch.json"
    link.symlink_to(Path("..") / "config" / "launch.json")
    merge_launch_json(project, configuration())
    assert link.is_symlink()  # still a link, to the file that now has the configuration
    assert [c["name"] for c in configurations(shared)] == ["Python: file", "devtui: attach to my-endpoint"]
    assert sorted(p.name for p in shared.parent.iterdir()) == ["launch.json"]


def test_a_dangling_link_that_stays_in_the_folder_creates_its_target(project):
    (project / "config").mkdir()
    (project / ".vscode").mkdir()
    link = project / ".vscode" / "launch.json"
    link.symlink_to(project / "config" / "launch.json")
    merge_launch_json(project, configuration())
    assert link.is_symlink()
    assert configurations(project / "config" / "launch.json") == [configuration()]


def test_a_vscode_folder_linked_inside_the_folder_is_followed(project):
    (project / "settings" / "vscode").mkdir(parents=True)
    (project / ".vscode").symlink_to(project / "settings" / "vscode", target_is_directory=True)
    merge_launch_json(project, configuration())
    assert configurations(project / "settings" / "vscode" / "launch.json") == [configuration()]


def test_a_project_reached_through_a_link_is_written(tmp_path, project):
    """The folder itself may be a link (a checkout under a linked home): only links below it count."""
    alias = tmp_path / "alias"
    alias.symlink_to(project, target_is_directory=True)
    merge_launch_json(alias, configuration())
    assert configurations(project / ".vscode" / "launch.json") == [configuration()]
