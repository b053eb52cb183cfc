"""Scoring script in the classic form: init() once per worker, run() per request."""

import json
import logging
import os

import joblib
import numpy as np

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

model = None


def init():
    """Load the model once, when the worker starts (not on every request)."""
    global model
    # AZUREML_MODEL_DIR contains the model folder under its own name ("model").
    model_path = os.path.join(
        os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"
    )
    model = joblib.load(model_path)
    logger.info("model loaded from %s", model_path)


def run(raw_data):
    """raw_data is the request body as a str: {"data": [[10 floats], ...]}."""
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    logger.info("scoring %d row(s)", len(data))
    predictions = model.predict(data)
    digits = int(os.environ.get("PREDICTION_ROUND_DIGITS", "2"))
    # numpy arrays are not JSON serialisable; a list is.
    return [round(float(p), digits) for p in predictions]
