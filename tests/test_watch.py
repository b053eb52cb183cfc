"""The file watcher (devtui/engine/watch.py): code saves come on a fast watcher, everything else on slow
ones, and a save caught between an editor's truncate and its write waits for the write."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from devtui import spec
from devtui.engine.watch import CODE_STEP_MS, OTHER_STEP_MS, batches, watches
from helpers import save

pytestmark = pytest.mark.anyio


def test_the_code_is_watched_fast_and_the_rest_slowly(sample):
    folder = sample("sklearn-regression")
    d = spec.load(folder)
    fast, *slow = watches(d)
    assert fast.paths == (d.code_dir,) and fast.recursive and fast.step_ms == CODE_STEP_MS
    assert all(w.step_ms == OTHER_STEP_MS for w in slow)
    watched = {p for w in slow for p in w.paths}
    assert d.model.path in watched and d.deployment_file.parent in watched


def test_a_slow_watcher_over_the_code_leaves_the_code_to_the_fast_one(sample):
    """Code inside the model folder: the model folder's watcher must not report code saves a
    second time, one of its slow steps later."""
    folder = sample("sklearn-regression")
    d = spec.load(folder)
    model = d.code_dir.parent
    d = replace(d, model=replace(d.model, path=model))
    fast, slow, *_ = watches(d)
    assert fast.paths == (d.code_dir,) and slow.paths == (model,)
    assert not slow.wants(None, str(d.code_dir / "score.py"))
    assert slow.wants(None, str(model / "weights.pkl"))


def _truncate_then_write(path: Path, text: str) -> None:
    """Save the way some editors do: open (truncating), then write a moment later."""
    with open(path, "w") as f:
        f.flush()
        time.sleep(0.01)  # the editor's own pause between the two, not synchronisation
        f.write(text)


async def test_a_save_seen_between_truncate_and_write_waits_for_the_write(sample):
    folder = sample("sklearn-regression")
    d = spec.load(folder)
    script = d.code_dir / "score.py"
    text = script.read_text() + "\n# saved\n"
    stop = asyncio.Event()
    watcher = batches(d, stop)
    try:
        warm = asyncio.ensure_future(anext(watcher))
        while not warm.done():  # watchfiles sets its watches up in the background: poll until it sees
            save(d.code_dir / "warm.py", "x = 1\n")
            await asyncio.wait({warm}, timeout=0.2)
        writing = asyncio.ensure_future(asyncio.to_thread(_truncate_then_write, script, text))
        while True:
            batch = await asyncio.wait_for(anext(watcher), 30)
            if script.resolve() in batch.files:
                break
        # Read as the worker would on this batch: the whole save, never the empty file.
        assert script.read_text() == text
        await writing
    finally:
        stop.set()
        await watcher.aclose()
