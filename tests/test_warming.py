"""The warm parent before the first save (issue 9, part 2): the supervisor imports the script's
own third-party imports and the libraries its pickled model names before the first worker,
learns what workers import in init() and their first run(), and keeps that per deployment so the
next start is warm from its first save."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import pickle
import re
import shutil
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest

from contract_servers import base_env, ours_command, run_to_exit, start_ours
from deep_folders import deep_folder
from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import INFERENCE_SERVER, SUCCEEDED, Logs
from helpers import SAMPLES, free_port
from inference_server import model_scan
from inference_server.user_script import TREE_DEPTH, walk_tree
from inference_server.warming import Preloader, model_imports, static_imports

pytestmark = pytest.mark.anyio


def test_the_scripts_own_library_imports_are_read_from_its_syntax_tree(tmp_path):
    (tmp_path / "helper.py").write_text("X = 1\n")
    script = tmp_path / "score.py"
    script.write_text("import os, json\nimport numpy as np\nfrom sklearn.linear_model import Ridge\n"
                      "import helper\nfrom . import sibling\nimport not_installed_anywhere\n"
                      "def init():\n    import joblib\n")
    # Installed libraries only: not the user's modules, the standard library, relative or missing
    # imports, nor what init() imports (the workers report that).
    assert static_imports(str(script), [str(tmp_path)]) == ["numpy", "sklearn.linear_model"]


async def test_a_second_start_of_a_deployment_is_warm_before_its_first_worker(tmp_path):
    folder = tmp_path / "sklearn"
    shutil.copytree(SAMPLES / "sklearn-regression", folder)
    request = (folder / "sample-request.json").read_bytes()
    warm_file = tmp_path / "work" / "warm-imports.json"

    async def start_and_score() -> list[str]:
        engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0, watch=False))
        lines: list[str] = []
        engine.subscribe(lambda e: isinstance(e, Logs) and lines.extend(
            r.text for r in e.records if r.source == INFERENCE_SERVER))
        try:
            assert await engine.start() == SUCCEEDED
            async with httpx.AsyncClient(timeout=10) as client:
                assert (await client.post(engine.scoring_uri, content=request)).status_code == 200
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not (warm_file.exists() and any("sklearn" in n for n in json.loads(warm_file.read_text()))):
                assert loop.time() < deadline, "the warm file to hold what the worker imported"
                await asyncio.sleep(0.02)
        finally:
            await engine.stop()
        return lines

    def warmed(lines: list[str]) -> int:
        found = [re.search(r"Warm before the first worker: (\d+) modules", line) for line in lines]
        return next((int(m.group(1)) for m in found if m), 0)

    first = await start_and_score()
    learned = json.loads(warm_file.read_text())
    assert "joblib" in learned and any(name.startswith("sklearn.") for name in learned)
    second = await start_and_score()
    # The first start imports what score.py imports at its top (joblib, numpy); the second also
    # what init() and run() imported last time (scikit-learn's modules, to unpickle the model).
    assert 0 < warmed(first) < warmed(second), (first, second)


LAZY_SCRIPT = '''
import os
import time

LIBRARY = "_multiarray_umath"  # numpy's extension: in the parent's memory map once it imported numpy


def _parent_has_it() -> bool:
    with open(f"/proc/{os.getppid()}/maps") as f:
        return LIBRARY in f.read()


def init():
    global warm_during_init
    import numpy  # noqa: F401  (imported lazily, as many libraries import their parts)

    deadline = time.monotonic() + 20
    while not _parent_has_it() and time.monotonic() < deadline:
        time.sleep(0.02)
    warm_during_init = _parent_has_it()


def run(raw_data):
    return {"parent_warm_during_init": warm_during_init}
'''


async def test_the_parent_imports_what_init_imports_while_init_still_runs(tmp_path):
    """A first start, nothing learned before: the worker tells the parent what it has imported
    while init() runs, so the parent is warm about when the worker is ready (here init() waits
    for it; told only after init(), the parent would never be warm in time)."""
    assert await first_answer(tmp_path, LAZY_SCRIPT) == {"parent_warm_during_init": True}


async def first_answer(tmp_path, script: str) -> object:
    """The first answer of a deployment of the sklearn sample with ``script`` as its score.py,
    started for the first time (nothing learned before)."""
    folder = tmp_path / "sklearn"
    shutil.copytree(SAMPLES / "sklearn-regression", folder)
    (folder / "onlinescoring" / "score.py").write_text(script)
    engine = Engine(spec.load(folder), tmp_path / "work", Launch(port=0, watch=False))
    try:
        assert await engine.start() == SUCCEEDED
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.post(engine.scoring_uri, json={"data": []})).json()
    finally:
        await engine.stop()


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (open, ("UNPICKLED-MARKER", "w"))


def test_a_pickled_models_libraries_are_read_from_its_opcodes_never_unpickled(tmp_path, monkeypatch):
    import numpy

    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"
    shutil.copytree(SAMPLES / "sklearn-regression" / "model", model)
    # torch.save writes a zip whose data.pkl names the classes; a pickle here would run code if loaded.
    with zipfile.ZipFile(model / "weights.pt", "w") as archive:
        archive.writestr("weights/data.pkl", pickle.dumps([numpy.float64(1.5), _RunsCodeWhenUnpickled()]))
    # A compressed member, with the zip64 fields a file over 4 GiB has (the zip is read by hand).
    with zipfile.ZipFile(model / "large.pth", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("large/data/0", b"\0" * 1000)
        with archive.open("large/data.pkl", "w", force_zip64=True) as member:
            member.write(b"\x80\x02cscipy.sparse\ncsr_matrix\nq\x00.")
    (model / "notes.txt").write_text("not a pickle")
    (model / "broken.pkl").write_bytes(b"\x80\x05garbage")

    found = model_imports(str(model), [str(tmp_path / "code")])
    # joblib's file: scikit-learn's estimator module, read up to where joblib's raw arrays begin.
    assert "sklearn.linear_model._ridge" in found and "joblib.numpy_pickle" in found and "scipy.sparse" in found
    assert any(name.startswith("numpy") for name in found)
    assert not any(name.startswith(("builtins", "io", "test_warming")) for name in found)  # not installed libraries
    assert not (tmp_path / "UNPICKLED-MARKER").exists()


def test_a_pickled_class_of_the_users_own_package_is_never_imported(tmp_path, monkeypatch):
    """The code folder is on the supervisor's sys.path: looking a dotted name up there would run
    the package's __init__ in the warm parent, which may do anything (initialise CUDA, raise)."""
    code, model = tmp_path / "code", tmp_path / "model"
    (code / "mypkg").mkdir(parents=True)
    model.mkdir()
    (code / "mypkg" / "__init__.py").write_text("")
    (code / "mypkg" / "models.py").write_text("class Tokenizer:\n    pass\n")
    monkeypatch.syspath_prepend(str(code))
    from mypkg.models import Tokenizer

    (model / "tokenizer.pkl").write_bytes(pickle.dumps(Tokenizer()))
    for name in ("mypkg.models", "mypkg"):
        monkeypatch.delitem(sys.modules, name)
    marker = tmp_path / "IMPORTED"
    (code / "mypkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('boom')\n")

    assert model_imports(str(model), [str(code)]) == []
    assert not marker.exists() and "mypkg" not in sys.modules


# init() says whether scikit-learn was already loaded when it began: only the parent can have
# loaded it, since the script never imports it (joblib.load does, to unpickle the estimator).
INHERITS_SCRIPT = '''
import os
import sys

import joblib


def init():
    global inherited, model
    inherited = "sklearn.linear_model" in sys.modules
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))


def run(raw_data):
    return {"sklearn_loaded_before_init": inherited}
'''


async def test_the_first_worker_finds_the_models_libraries_loaded_by_the_parent(tmp_path):
    """A first start (nothing learned before): the parent imports scikit-learn, which the model's
    pickle names, before it forks the first worker, so the worker does not import it again."""
    assert await first_answer(tmp_path, INHERITS_SCRIPT) == {"sklearn_loaded_before_init": True}



# -- hostile model folders (issue 19, items 10 to 12) ----------------------------------------------


def _sklearn_models(tmp_path) -> Path:
    """AZUREML_MODEL_DIR as the sklearn sample's score.py reads it: the model folder inside."""
    models = tmp_path / "models"
    shutil.copytree(SAMPLES / "sklearn-regression" / "model", models / "model")
    return models


@pytest.mark.unit
def test_a_model_folder_deeper_than_the_recursion_limit_is_scanned_and_shown(tmp_path):
    """Walked without recursion: the scan still finds the model's libraries ("deep" is walked
    before "model", so a recursive walk met the depth first), and the tree that the log shows
    when init() fails stops at TREE_DEPTH levels."""
    models = _sklearn_models(tmp_path)
    with deep_folder(models) as deepest:
        (deepest / "weights.pkl").write_bytes(pickle.dumps(1.5))
        assert "sklearn.linear_model._ridge" in model_imports(str(models), [str(tmp_path / "code")])
        lines = list(walk_tree(str(models)))
    assert lines[-2:] == ["    model/", "        sklearn_regression_model.pkl"], lines[-3:]
    assert f"(folders more than {TREE_DEPTH} levels deep are not shown)" in "\n".join(lines)
    assert len(lines) == TREE_DEPTH + 4, lines  # models/, deep/ and d/ to the limit, the note, model/ and its file


def test_the_standalone_server_serves_with_a_model_folder_a_thousand_levels_deep(tmp_path):
    """The warm parent scans the model folder before the first worker: a recursive walk there
    ended the whole server with a RecursionError."""
    models = _sklearn_models(tmp_path)
    request = (SAMPLES / "sklearn-regression" / "sample-request.json").read_bytes()
    with deep_folder(models), start_ours(SAMPLES / "sklearn-regression" / "onlinescoring" / "score.py",
                                         models, tmp_path) as server:
        answer = httpx.post(server.url + "/score", content=request, timeout=30)
        assert answer.status_code == 200, answer.text
        assert "RecursionError" not in server.output()


def test_a_failed_init_shows_a_deep_model_folder_to_the_depth_limit(tmp_path):
    """The model tree the log shows when init() fails (the warm parent is left out, so that its
    scan of the folder is not what is tried)."""
    script = Path(__file__).resolve().parent / "contract_scripts" / "score_failing_init.py"
    models = tmp_path / "models"
    models.mkdir()
    with deep_folder(models):
        command = ours_command(script, models, free_port(), "--no-warm-imports")
        result = run_to_exit(command, {**base_env(script), "PYTHONPATH": ""}, script.parent)
    assert result.returncode == 3, result.stdout
    assert "CONTRACT-INIT-FAILURE" in result.stdout and "RecursionError" not in result.stdout
    assert f"(folders more than {TREE_DEPTH} levels deep are not shown)" in result.stdout, result.stdout


def _pickle_naming(module: str, name: str = "main") -> bytes:
    """A protocol 2 pickle whose GLOBAL opcode names ``module``: loading it imports that module."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."


PROGRAMS = ("flask.__main__", "numpy.f2py.__main__")  # `python -m flask`, `python -m numpy.f2py`


@pytest.mark.unit
def test_the_scan_never_imports_a_program_or_a_top_level_module(tmp_path):
    """What a pickle names is imported in the supervisor: a package's __main__ is its command
    line, and a top-level single-file module is where scripts installed as modules live. A
    library's submodules (scikit-learn's estimators) are still imported. six is imported first:
    once imported, it claims to be a package (its spec gains submodule_search_locations)."""
    import six  # noqa: F401
    models = _sklearn_models(tmp_path)
    for number, module in enumerate((*PROGRAMS, "six", "pip.__pip-runner__", "sklearn.__init__")):
        (models / f"{number}.pkl").write_bytes(_pickle_naming(module))
    found = model_imports(str(models), [str(tmp_path / "code")])
    assert "sklearn.linear_model._ridge" in found and "numpy" in found
    assert not [name for name in found if "__" in name or name == "six"], found


@pytest.mark.unit
def test_the_warm_parent_never_imports_a_program_whoever_names_it(monkeypatch, capfd):
    """A warm file or a worker's report names modules too: a __main__ among them is skipped.
    (Imported, each would parse this process's command line, say it is wrong and exit.)"""
    for module in PROGRAMS:
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(sys, "argv", ["azmlinfsrv", "--entry_script", "score.py"])
    preloader = Preloader(True)
    preloader.learn([*PROGRAMS, "json"])
    preloader.step(lambda: False)
    said = capfd.readouterr()
    assert "option" not in (said.out + said.err).lower(), said


def test_the_standalone_server_runs_no_program_a_pickle_names(tmp_path):
    """`python -m flask`'s command line ran inside the supervisor and said "No such option:
    --entry_script"; f2py's said "Unknown option"."""
    models = _sklearn_models(tmp_path)
    for module in PROGRAMS:
        (models / f"{module}.pkl").write_bytes(_pickle_naming(module))
    with start_ours(SAMPLES / "sklearn-regression" / "onlinescoring" / "score.py", models, tmp_path) as server:
        assert httpx.get(server.url + "/", timeout=30).status_code == 200
        output = server.output()
    assert "option" not in output.lower() and "Usage:" not in output, output


def _zip_of_many_entries(path: Path, entries: int, last: bytes) -> None:
    """A zip of ``entries`` empty members and a pickle member after them, written as bytes (the
    zipfile module takes seconds for this many)."""
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    names = [f"e{n:07d}".encode() for n in range(entries)]
    body = [local + name for name in names]
    offsets = list(itertools.accumulate((len(b) for b in body), initial=0))
    pickle_offset = offsets[-1]
    body.append(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, zlib.crc32(last), len(last),
                            len(last), len(b"archive/data.pkl"), 0) + b"archive/data.pkl" + last)
    directory = [struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0,
                             0, 0, 0, offset) + name for name, offset in zip(names, offsets)]
    directory.append(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, zlib.crc32(last),
                                 len(last), len(last), len(b"archive/data.pkl"), 0, 0, 0, 0, 0, pickle_offset)
                     + b"archive/data.pkl")
    start, size = sum(map(len, body)), sum(map(len, directory))
    count = min(entries + 1, 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, size, start, 0)
    path.write_bytes(b"".join([*body, *directory, end]))


@pytest.mark.unit
def test_the_scan_keeps_its_time_limit_inside_a_zip_of_300000_entries(tmp_path):
    """Reading the whole central directory took 1.6 to 3.5 s before the first worker."""
    models = tmp_path / "models"
    models.mkdir()
    _zip_of_many_entries(models / "weights.pt", 300_000, pickle.dumps([1.5]))
    started = time.monotonic()
    model_imports(str(models), [str(tmp_path / "code")])
    assert time.monotonic() - started < model_scan.MODEL_SCAN_S + 0.5


@pytest.mark.unit
@pytest.mark.parametrize("hostile", ["zip", "pickle"])
def test_a_scan_stopped_inside_a_file_says_so(tmp_path, monkeypatch, caplog, hostile):
    """The limit holds inside a file (a zip's entries, a big pickle's opcodes), and the log says
    where the scan stopped rather than leave the first worker waiting with nothing said."""
    models = tmp_path / "models"
    models.mkdir()
    if hostile == "zip":
        _zip_of_many_entries(models / "weights.pt", 300_000, pickle.dumps([1.5]))
    else:  # a pickle of 256 KiB of one-byte opcodes, its GLOBAL after them
        (models / "weights.pkl").write_bytes(b"\x80\x02" + b"N" * (256 << 10) + b"cnumpy\nfloat64\n.")
    monkeypatch.setattr(model_scan, "MODEL_SCAN_S", 0.01)
    caplog.set_level(logging.INFO, "azmlinfsrv.supervisor")
    started = time.monotonic()
    model_imports(str(models), [str(tmp_path / "code")])
    assert time.monotonic() - started < 0.25
    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Model scan stopped")]
    assert stopped and str(models) in stopped[0], caplog.text
