"""The warm parent before the first save (issue 9, part 2): the supervisor imports the script's
own third-party imports and the libraries its pickled model names before the first worker,
learns what workers import in init() and their first run(), and keeps that per deployment so the
next start is warm from its first save."""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import shutil
import sys
import zipfile

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine
from devtui.events import INFERENCE_SERVER, SUCCEEDED, Logs
from helpers import SAMPLES
from inference_server.warming import model_imports, static_imports

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
        engine = Engine(spec.load(folder), tmp_path / "work", port=0, watch=False)
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
    engine = Engine(spec.load(folder), tmp_path / "work", port=0, watch=False)
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
    (model / "notes.txt").write_text("not a pickle")
    (model / "broken.pkl").write_bytes(b"\x80\x05garbage")

    found = model_imports(str(model), [str(tmp_path / "code")])
    # joblib's file: scikit-learn's estimator module, read up to where joblib's raw arrays begin.
    assert "sklearn.linear_model._ridge" in found and "joblib.numpy_pickle" in found
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

