"""The heavy case's scoring script: init() loads a random forest of a few hundred MB (seconds)."""

import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "forest.joblib"))
    model.n_jobs = 1  # two rows a request: a thread pool per predict() would cost more than the trees


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    predictions = model.predict(data)
    digits = 2
    return [round(float(p), digits) for p in predictions]
