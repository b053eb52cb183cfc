"""Train the sample's model and save it as an MLflow model folder, model/, in the shape the Azure ML
docs deploy without code: MLmodel (flavours python_function and sklearn, a signature with one
column per feature), conda.yaml, python_env.yaml, requirements.txt, input_example.json and
model.pkl.

Run with: python samples/mlflow-sklearn/make_model.py   (`make install` does, with devtui[mlflow])
The diabetes data ships inside scikit-learn, so nothing is downloaded. The folder is rebuilt
whole each time (MLflow refuses to save over one).
"""

import logging
import shutil
from pathlib import Path

import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

# Next to this file, whatever the current directory is.
MODEL_DIR = Path(__file__).resolve().parent / "model"


def main() -> None:
    # Its warning about pickles is for models from strangers; this one is made here.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    # 442 patients x 10 scaled features (age, sex, bmi, bp, s1..s6) -> disease progression.
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.1).fit(features, target)
    print(f"R^2 on the training data: {model.score(features, target):.3f}")

    shutil.rmtree(MODEL_DIR, ignore_errors=True)
    example = features.head(2)
    mlflow.sklearn.save_model(
        model, MODEL_DIR,
        # Columns with names and types: requests carry a split-orient DataFrame.
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    )
    print(f"wrote {MODEL_DIR}")


if __name__ == "__main__":
    main()
