"""Train the sample's model and write model/sklearn_regression_model.pkl.

Run once with: python samples/sklearn-regression/train_model.py
The diabetes data ships inside scikit-learn, so nothing is downloaded.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

# Write next to this file, whatever the current directory is.
MODEL_PATH = Path(__file__).resolve().parent / "model" / "sklearn_regression_model.pkl"


def main() -> None:
    # 442 patients x 10 already-scaled features -> disease progression after one year.
    X, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.1).fit(X, y)
    print(f"R^2 on the training data: {model.score(X, y):.3f}")

    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, MODEL_PATH)
    print(f"wrote {MODEL_PATH}")


if __name__ == "__main__":
    main()
