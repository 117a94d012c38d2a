"""Ingest the raw orders export into a normalized staging file.

Keeps every row (opsctl checks them right after this stage) but normalizes the
format: snake_case headers, trimmed strings, upper-case country and currency
codes, lower-case categories and statuses, and a `source_row` column that
points back to the line of the raw file.

Reads:  data/raw/orders.csv
Writes: data/ingested/orders.csv
"""
from pathlib import Path

import pandas as pd

RAW = Path("data/raw/orders.csv")
OUT = Path("data/ingested/orders.csv")
UPPER = ["country", "currency"]
LOWER = ["category", "status"]


def main() -> None:
    # Read everything as text: the checks in opsctl.yaml say which values are valid.
    df = pd.read_csv(RAW, dtype=str, keep_default_na=False)
    df.columns = [c.strip().lower().replace(" ", "_") for c in df.columns]
    df = df.apply(lambda col: col.str.strip())
    for col in UPPER:
        df[col] = df[col].str.upper()
    for col in LOWER:
        df[col] = df[col].str.lower()
    df.insert(0, "source_row", range(2, len(df) + 2))  # line 1 is the header

    OUT.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT, index=False)
    print(f"ingest: {len(df)} rows, {len(df.columns) - 1} columns from {RAW}")


if __name__ == "__main__":
    main()
