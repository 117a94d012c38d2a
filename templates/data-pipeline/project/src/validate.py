"""Validate ingested orders: type the columns and reject the rows that break a rule.

Reads:  data/ingested/orders.csv, params.yaml (validate.*)
Writes: data/validated/orders.csv     valid rows, typed
        data/validated/rejected.csv   rejected rows with the rules they broke
        reports/validation.json       row counts per rule (a DVC metrics file)
Fails when the rejected fraction exceeds validate.max_invalid_fraction.
"""
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

IN = Path("data/ingested/orders.csv")
OUT = Path("data/validated")
REPORT = Path("reports/validation.json")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["validate"]
    df = pd.read_csv(IN, dtype=str, keep_default_na=False)

    date = pd.to_datetime(df["order_date"], format="%Y-%m-%d", errors="coerce")
    quantity = pd.to_numeric(df["quantity"], errors="coerce")
    unit_price = pd.to_numeric(df["unit_price"], errors="coerce")
    start, end = pd.Timestamp(params["start_date"]), pd.Timestamp(params["end_date"])

    # rule name -> boolean Series, True where the row breaks the rule
    rules = {
        "missing_order_id": df["order_id"] == "",
        "missing_customer_id": df["customer_id"] == "",
        "invalid_date": date.isna(),
        "date_out_of_range": date.notna() & ((date < start) | (date > end)),
        "invalid_quantity": quantity.isna() | (quantity <= 0) | (quantity % 1 != 0),
        "invalid_unit_price": unit_price.isna() | (unit_price <= 0)
        | (unit_price > params["max_unit_price"]),
        "unknown_currency": ~df["currency"].isin(params["currencies"]),
        "duplicate_order_id": (df["order_id"] != "") & df.duplicated("order_id", keep="first"),
    }
    broken = pd.DataFrame(rules)
    reasons = broken.apply(lambda row: ";".join(r for r in rules if row[r]), axis=1)
    bad = broken.any(axis=1)

    valid = df[~bad].copy()
    valid["order_date"] = date[~bad].dt.strftime("%Y-%m-%d")
    valid["quantity"] = quantity[~bad].astype(int)
    valid["unit_price"] = unit_price[~bad].round(2)
    rejected = df[bad].assign(reasons=reasons[bad])

    OUT.mkdir(parents=True, exist_ok=True)
    valid.to_csv(OUT / "orders.csv", index=False)
    rejected.to_csv(OUT / "rejected.csv", index=False)

    fraction = float(bad.mean()) if len(df) else 0.0
    report = {
        "rows_in": int(len(df)),
        "rows_valid": int((~bad).sum()),
        "rows_rejected": int(bad.sum()),
        "rejected_fraction": round(fraction, 4),
        "rules": {name: int(mask.sum()) for name, mask in rules.items()},
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")

    print(f"validate: {report['rows_valid']} valid, {report['rows_rejected']} rejected "
          f"({fraction:.1%}); see {OUT / 'rejected.csv'}")
    if fraction > params["max_invalid_fraction"]:
        sys.exit(f"validate: rejected fraction {fraction:.1%} exceeds "
                 f"max_invalid_fraction {params['max_invalid_fraction']:.1%}")


if __name__ == "__main__":
    main()
