"""Train the churn classifier.

Reads:  data/features/train.csv, params.yaml (train.*)
Writes: models/model.pkl
"""
import pickle
from pathlib import Path

import pandas as pd
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

TRAIN = Path("data/features/train.csv")
MODEL = Path("models/model.pkl")
TARGET = "churn"


def build_model(params: dict):
    kind = params["model"]
    if kind == "random_forest":
        return RandomForestClassifier(
            n_estimators=params["n_estimators"],
            max_depth=params["max_depth"],
            min_samples_leaf=params["min_samples_leaf"],
            random_state=params["seed"],
            n_jobs=1,
        )
    if kind == "logistic_regression":
        return LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=params["seed"])
    raise SystemExit(f"train: unknown model {kind!r} (use random_forest or logistic_regression)")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["train"]
    df = pd.read_csv(TRAIN)
    x, y = df.drop(columns=[TARGET]), df[TARGET]

    model = build_model(params)
    model.fit(x, y)

    MODEL.parent.mkdir(parents=True, exist_ok=True)
    with MODEL.open("wb") as f:
        pickle.dump({"model": model, "features": list(x.columns)}, f)
    print(f"train: {params['model']} fitted on {len(df)} rows, "
          f"train accuracy {model.score(x, y):.3f}")


if __name__ == "__main__":
    main()
