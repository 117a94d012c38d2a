"""Evaluate the model on the test split.

Reads:  models/model.pkl, data/features/test.csv, params.yaml (evaluate.*)
Writes: metrics.json, plots/roc.json, plots/confusion.json
"""
import json
import pickle
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

TEST = Path("data/features/test.csv")
MODEL = Path("models/model.pkl")
METRICS = Path("metrics.json")
PLOTS = Path("plots")
TARGET = "churn"


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["evaluate"]
    with MODEL.open("rb") as f:
        bundle = pickle.load(f)
    model, features = bundle["model"], bundle["features"]

    df = pd.read_csv(TEST)
    x = df.reindex(columns=features, fill_value=0)
    y = df[TARGET].astype(int)
    proba = model.predict_proba(x)[:, 1]
    pred = (proba >= params["threshold"]).astype(int)

    metrics = {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "roc_auc": roc_auc_score(y, proba),
    }
    metrics = {k: round(float(v), 4) for k, v in metrics.items()}
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")

    PLOTS.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = roc_curve(y, proba)
    roc = [{"fpr": round(float(a), 4), "tpr": round(float(b), 4)} for a, b in zip(fpr, tpr)]
    (PLOTS / "roc.json").write_text(json.dumps(roc, indent=1) + "\n")
    confusion = [{"actual": int(a), "predicted": int(p)} for a, p in zip(y, pred)]
    (PLOTS / "confusion.json").write_text(json.dumps(confusion, indent=1) + "\n")

    print("evaluate: " + ", ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
