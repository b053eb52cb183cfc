"""Staging a folder deeper than Python's recursion limit (issue 19, item 10): `devtui up` said
only "maximum recursion depth exceeded". Staging walks without recursion, and a folder deeper
than devtui stages is refused with its name and the limit; an .amlignore line leaves it out."""

from __future__ import annotations

import json
import shutil
from pathlib import PurePosixPath

import pytest

from deep_folders import deep_folder
from devtui.ignore import MAX_DEPTH, FolderTooDeep, kept_files
from devtui.runtimes import RuntimeFailure
from devtui.runtimes.container.storage import manifest
from helpers import SAMPLES, devtui, unique_name


@pytest.mark.unit
def test_a_folder_deeper_than_the_limit_is_refused_by_name_unless_ignored(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(SAMPLES / "sklearn-regression" / "model", model)
    with deep_folder(model, "nested"):
        with pytest.raises(FolderTooDeep) as refused:
            kept_files(model)
        assert str(refused.value).startswith(f"{model} holds folders more than {MAX_DEPTH} levels deep (under nested/)")
        # The container runtime's copy says which of its folders it is.
        with pytest.raises(RuntimeFailure, match=f"^the model folder {model} holds folders more than {MAX_DEPTH}"):
            manifest(model, "model", PurePosixPath("model"))
        (model / ".amlignore").write_text("/nested/\n")  # the remedy the message gives
        assert [p.name for p in kept_files(model)] == [".amlignore", "sklearn_regression_model.pkl"]
    with deep_folder(model, "at-limit", levels=MAX_DEPTH) as deepest:  # staged
        (deepest / "weights.bin").write_text("w")
        assert deepest / "weights.bin" in kept_files(model)


@pytest.fixture
def deep_model(sample, run_id):
    """The sklearn sample with a model folder a thousand levels deep, and a name for it."""
    folder = sample("sklearn-regression")
    with deep_folder(folder / "model", "nested"):
        yield folder, unique_name(run_id, "deep")


def test_up_names_the_deep_model_folder_and_the_limit(deep_model):
    folder, name = deep_model
    try:
        result = devtui("up", str(folder), "-n", name, "--detach", check=None)
    finally:
        devtui("down", "-n", name, check=None)
    assert f"{folder / 'model'} holds folders more than {MAX_DEPTH} levels deep (under nested/)" in result.stderr
    assert "recursion" not in result.stderr, result.stderr


def test_up_refuses_a_deep_model_folder_before_anything_starts(deep_model):
    folder, name = deep_model
    try:
        result = devtui("up", str(folder), "-n", name, "--detach", check=None)
        listed = json.loads(devtui("list", "-o", "json").stdout)
    finally:
        devtui("down", "-n", name, check=None)
    assert result.returncode == 2, result.stderr
    assert f"{folder / 'model'} holds folders more than {MAX_DEPTH} levels deep" in result.stderr
    assert listed == []
