"""The cloud's ignore files and the default litter (issue 12): ``.amlignore``, else ``.gitignore``,
at the root of the code or model folder, with gitignore's syntax; ``__pycache__``, ``*.pyc``,
``.ipynb_checkpoints``, ``*.swp``, ``4913`` and ``*~`` always. The rules decide what the watcher
acts on, what the storage-initializer copies, and what a sync pushes (the container side is in
test_container.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

import pytest

from devtui import spec
from devtui.ignore import IgnoreRules, kept_files
from devtui.runtimes.staging import mirror
from devtui.runtimes.container.storage import manifest
from devtui.engine.watch import Action, batches, classify
from helpers import save

LITTER = ["__pycache__/score.cpython-311.pyc", "helpers/__pycache__/x.cpython-311.pyc", "old.pyc",
          ".ipynb_checkpoints/score-checkpoint.py", ".score.py.swp", "4913", "score.py~", "sub/4913",
          ".score.py.tmp", "score.py___jb_tmp___", "score.py___jb_old___", ".#score.py", "#score.py#"]


def tree(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return root


def relative(root: Path, paths: list[Path]) -> set[str]:
    return {p.relative_to(root).as_posix() for p in paths}


def test_litter_is_ignored_without_an_ignore_file(tmp_path):
    root = tree(tmp_path, "score.py", "helpers/util.py", *LITTER)
    assert relative(root, kept_files(root)) == {"score.py", "helpers/util.py"}
    rules = IgnoreRules(root)
    assert rules.source is None
    for name in LITTER:
        assert rules.ignored(root / name), name
    assert not rules.ignored(root / "score.py")


def test_amlignore_wins_over_gitignore(tmp_path):
    root = tree(tmp_path, "score.py", "data/big.csv", "notes.md", "secret.env")
    (root / ".amlignore").write_text("data/\n*.env\n")
    (root / ".gitignore").write_text("notes.md\n")
    assert IgnoreRules(root).source == root / ".amlignore"
    # The ignore files themselves are uploaded, as the cloud does.
    assert relative(root, kept_files(root)) == {"score.py", "notes.md", ".amlignore", ".gitignore"}


def test_gitignore_applies_without_an_amlignore(tmp_path):
    root = tree(tmp_path, "score.py", "build/out.bin", "logs/a.log", "keep.log")
    (root / ".gitignore").write_text("# comments and blank lines are fine\n\n/build\n*.log\n!keep.log\n")
    assert relative(root, kept_files(root)) == {"score.py", "keep.log", ".gitignore"}


def test_ignore_file_can_bring_a_default_back(tmp_path):
    root = tree(tmp_path, "score.py", "vendored.pyc")
    (root / ".amlignore").write_text("!vendored.pyc\n")
    assert relative(root, kept_files(root)) == {"score.py", "vendored.pyc", ".amlignore"}


def test_a_path_under_an_ignored_folder_or_outside_is_judged_right(tmp_path):
    root = tree(tmp_path / "code", "score.py")
    (root / ".amlignore").write_text("data/\n")
    rules = IgnoreRules(root)
    assert rules.ignored(root / "data" / "deep" / "file.txt")  # does not exist: its folder is ignored
    assert rules.ignored(root / "data")  # a deleted folder, as the watcher reports it
    assert not rules.ignored(tmp_path / "elsewhere.txt")
    assert not rules.ignored(root)


def test_a_single_file_is_itself(tmp_path):
    model = tree(tmp_path, "model.pkl") / "model.pkl"
    assert kept_files(model) == [model]


def test_manifest_and_process_staging_leave_ignored_files_out(tmp_path):
    root = tree(tmp_path / "model", "weights.bin", "checkpoints/step1.bin", *LITTER)
    (root / ".amlignore").write_text("checkpoints/\n")
    listing = manifest(root, "model", PurePosixPath("m/1/model"))
    assert set(listing["files"]) == {"m/1/model/weights.bin", "m/1/model/.amlignore"}
    staged = tmp_path / "staged"
    assert {name for name, _, _ in mirror(root, staged)} == {"weights.bin", ".amlignore"}
    assert relative(staged, [p for p in staged.rglob("*") if p.is_file()]) == {"weights.bin", ".amlignore"}


def test_classify_skips_ignored_files(sample):
    folder = sample("sklearn-regression")
    (folder / "onlinescoring" / ".amlignore").write_text("scratch/\n")
    (folder / "model" / ".gitignore").write_text("*.tmp\n")
    d = spec.load(folder)
    code, model = d.code_dir, d.model.path
    assert classify(d, code / "score.py") == Action.SWAP
    assert classify(d, model / "sklearn_regression_model.pkl") == Action.RESTAGE
    for ignored in (code / "scratch" / "x.py", code / "__pycache__" / "score.cpython-311.pyc", code / "4913",
                    code / ".score.py.swp", model / "weights.tmp", model / ".ipynb_checkpoints" / "a.ipynb"):
        assert classify(d, ignored) is None, ignored


@pytest.mark.anyio
async def test_a_save_of_an_ignored_file_triggers_nothing(sample):
    """Once the watcher is seen to watch (a real file is saved until a batch comes), ignored saves
    come first and a real one last: no batch up to the real one names an ignored file."""
    folder = sample("sklearn-regression")
    code = folder / "onlinescoring"
    (code / ".amlignore").write_text("scratch/\n")
    d = spec.load(folder)
    stop = asyncio.Event()
    watcher = batches(d, stop)
    try:
        warm = asyncio.ensure_future(anext(watcher))
        while not warm.done():  # watchfiles sets its watches up in the background: poll until it sees
            save(code / "warm.py", "x = 1\n")
            await asyncio.wait({warm}, timeout=0.2)
        (code / "scratch").mkdir()
        (code / "scratch" / "notes.py").write_text("x = 1\n")
        (code / "score.py~").write_text("backup\n")
        (code / "4913").write_text("")
        (code / "__pycache__").mkdir(exist_ok=True)
        (code / "__pycache__" / "score.cpython-311.pyc").write_bytes(b"\0")
        save(code / "score.py", (code / "score.py").read_text() + "\n# saved\n")
        seen: list[Path] = []
        while (code / "score.py").resolve() not in seen:
            batch = await asyncio.wait_for(anext(watcher), 30)
            assert batch.action == Action.SWAP
            seen += batch.files
    finally:
        stop.set()
        await watcher.aclose()
    # save() writes .NAME.tmp and renames it over NAME: those two are the saves' own.
    ours = {(code / name).resolve() for name in ("score.py", ".score.py.tmp", "warm.py", ".warm.py.tmp")}
    assert set(seen) <= ours, seen
