"""Split the raw churn data into stratified train and test sets.

Reads:  data/raw/churn.csv, params.yaml (prepare.*)
Writes: data/prepared/train.csv, data/prepared/test.csv
"""
from pathlib import Path

import pandas as pd
import yaml

RAW = Path("data/raw/churn.csv")
OUT = Path("data/prepared")
TARGET = "churn"


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]

    df = pd.read_csv(RAW)
    df = df.drop_duplicates(subset="customer_id")
    df = df.dropna(subset=[TARGET])
    df[TARGET] = df[TARGET].astype(int)

    # Stratified split: the same fraction of churners and non-churners goes to the test set.
    test = df.groupby(TARGET, group_keys=False).sample(
        frac=params["test_size"], random_state=params["seed"]
    ).sort_index()
    train = df.drop(test.index)

    OUT.mkdir(parents=True, exist_ok=True)
    train.to_csv(OUT / "train.csv", index=False)
    test.to_csv(OUT / "test.csv", index=False)
    print(f"prepare: {len(train)} train rows, {len(test)} test rows "
          f"(churn rate {df[TARGET].mean():.2f})")


if __name__ == "__main__":
    main()
