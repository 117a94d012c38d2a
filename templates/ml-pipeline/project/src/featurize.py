"""Turn prepared rows into numeric model features.

One-hot encodes the categorical columns and (optionally) standardizes the
numeric ones, using statistics of the training split only so that nothing
leaks from the test split.

Reads:  data/prepared/{train,test}.csv, params.yaml (featurize.*)
Writes: data/features/{train,test}.csv (feature columns + "churn")
"""
from pathlib import Path

import pandas as pd
import yaml

IN = Path("data/prepared")
OUT = Path("data/features")
TARGET = "churn"
ID = "customer_id"
CATEGORICAL = ["partner", "contract", "internet_service", "payment_method", "paperless_billing"]
NUMERIC = ["senior_citizen", "tenure_months", "monthly_charges", "total_charges", "support_calls"]


def clean(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    # New customers (tenure 0) have not been billed yet: no total charges.
    df["total_charges"] = df["total_charges"].fillna(0.0)
    for col in CATEGORICAL:
        df[col] = df[col].fillna("unknown").astype(str).str.strip().str.lower()
    return df


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["featurize"]
    train = clean(pd.read_csv(IN / "train.csv"))
    test = clean(pd.read_csv(IN / "test.csv"))

    # Categories are learned from the training split; unseen test values become all-zero rows.
    x_train = pd.get_dummies(train[CATEGORICAL], prefix=CATEGORICAL, dtype=int)
    x_test = pd.get_dummies(test[CATEGORICAL], prefix=CATEGORICAL, dtype=int)
    x_test = x_test.reindex(columns=x_train.columns, fill_value=0)

    num_train = train[NUMERIC].astype(float)
    num_test = test[NUMERIC].astype(float)
    if params["scale"]:
        mean, std = num_train.mean(), num_train.std(ddof=0).replace(0, 1.0)
        num_train = (num_train - mean) / std
        num_test = (num_test - mean) / std

    OUT.mkdir(parents=True, exist_ok=True)
    for name, num, cat, src in (("train", num_train, x_train, train), ("test", num_test, x_test, test)):
        features = pd.concat([num.round(6), cat], axis=1)
        features[TARGET] = src[TARGET].astype(int)
        features.to_csv(OUT / f"{name}.csv", index=False)
    print(f"featurize: {features.shape[1] - 1} features")


if __name__ == "__main__":
    main()
