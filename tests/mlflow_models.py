"""The MLflow models of the reference answers (tests/data/mlflow_reference_*.json), made the same
way every time: the data ships inside scikit-learn, and training is deterministic (one thread, fixed
seeds), so a recreated model gives the recorded predictions.

- ``sklearn``: a Ridge regression on the diabetes data, a DataFrame of 10 named double columns;
  signature and input example from that DataFrame (as azureml-examples' ncd/sklearn-diabetes).
- ``lightgbm``: a lightgbm Booster, multiclass, on the iris data with named columns (as
  ncd/lightgbm-iris); it answers one row of three class probabilities per input row.

    python tests/mlflow_models.py sklearn FOLDER      # writes FOLDER/model (FOLDER must not hold one)

Needs devtui's mlflow extra and lightgbm (the test extra).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
from pathlib import Path

KINDS = ("sklearn", "lightgbm")
# The name of the model folder inside the folder AZUREML_MODEL_DIR points at (MLFLOW_MODEL_FOLDER).
MODEL_FOLDER = "model"
# A folder of models made once for the whole test run (tests/conftest.py makes it and removes it):
# a save takes seconds of CPU (mlflow loads the model again in a subprocess to learn its
# requirements), and the models are the same every time, so each test gets a copy.
CACHE_VARIABLE = "DEVTUI_TEST_MODEL_CACHE"


def make(kind: str, parent: Path) -> Path:
    """Save the KIND model as PARENT/model and return that folder (a copy of the run's, if any)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model {kind!r}; one of {KINDS}")
    folder = Path(parent) / MODEL_FOLDER
    cache = os.environ.get(CACHE_VARIABLE)
    if not cache:
        _MAKERS[kind](folder)
        return folder
    made = Path(cache) / kind / MODEL_FOLDER
    with open(Path(cache) / f"{kind}.lock", "w") as lock:  # test processes make it once between them
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            _MAKERS[kind](made.with_name("making"))
            made.with_name("making").rename(made)
    shutil.copytree(made, folder, copy_function=shutil.copy)  # written now, as a save writes them
    return folder


def _sklearn(folder: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)  # its pickle warning is for strangers' models

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.1).fit(features, target)
    example = features.head(2)
    mlflow.sklearn.save_model(model, folder, signature=infer_signature(example, model.predict(example)),
                              input_example=example,
                              serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)


def _lightgbm(folder: Path) -> None:
    import lightgbm
    import mlflow.lightgbm
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "learning_rate": 0.1, "seed": 7,
              "deterministic": True, "num_threads": 1, "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(features, label=target), num_boost_round=10)
    example = features.head(2)
    mlflow.lightgbm.save_model(booster, folder, signature=infer_signature(example, booster.predict(example)),
                               input_example=example)


_MAKERS = {"sklearn": _sklearn, "lightgbm": _lightgbm}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in KINDS:
        sys.exit(f"usage: python {sys.argv[0]} {{{'|'.join(KINDS)}}} FOLDER")
    print(make(sys.argv[1], Path(sys.argv[2])))
