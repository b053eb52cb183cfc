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


def make(trees: int = 200) -> Path:
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    if MODEL.exists():
        return MODEL
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20_000, 10))
    target = features @ rng.normal(size=10) + rng.normal(scale=0.5, size=20_000)
    forest = RandomForestRegressor(n_estimators=trees, n_jobs=2, random_state=0).fit(features, target)
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    temporary = MODEL.with_suffix(".tmp")
    joblib.dump(forest, temporary)
    temporary.replace(MODEL)
    print(f"made {MODEL} ({MODEL.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s")
    return MODEL


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=int, default=200)
    make(parser.parse_args().trees)
