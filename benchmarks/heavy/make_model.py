"""A model that takes seconds to load, for benchmarks/reload.py --case heavy: a random forest of a
few hundred MB, trained on random data with the sklearn sample's 10 features. It is made on first
use and kept in benchmarks/heavy/model/ (not committed).

    .venv/bin/python benchmarks/heavy/make_model.py [--trees 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

MODEL = Path(__file__).resolve().parent / "model" / "forest.joblib"


def make(trees: int = 200, model: Path = MODEL) -> Path:
    """The forest at MODEL, made there first if it is not (a smoke run makes a small one elsewhere)."""
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    if model.exists():
        return model
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20_000, 10))
    target = features @ rng.normal(size=10) + rng.normal(scale=0.5, size=20_000)
    forest = RandomForestRegressor(n_estimators=trees, n_jobs=2, random_state=0).fit(features, target)
    model.parent.mkdir(parents=True, exist_ok=True)
    temporary = model.with_suffix(".tmp")
    joblib.dump(forest, temporary)
    temporary.replace(model)
    print(f"made {model} ({model.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s")
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=int, default=200)
    make(parser.parse_args().trees)
