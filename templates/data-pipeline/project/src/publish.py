"""Publish the reporting tables and a summary.

Reads:  data/transformed/{orders,daily_sales}.csv, params.yaml (publish.*)
Writes: data/published/monthly_revenue_by_country.csv
        data/published/category_summary.csv
        data/published/top_customers.csv
        summary.json (a DVC metrics file)
"""
import json
from pathlib import Path

import pandas as pd
import yaml

IN = Path("data/transformed")
OUT = Path("data/published")
SUMMARY = Path("summary.json")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["publish"]
    orders = pd.read_csv(IN / "orders.csv", dtype={"customer_id": str, "order_id": str})
    daily = pd.read_csv(IN / "daily_sales.csv")
    daily["month"] = daily["order_date"].str[:7]

    monthly = (
        daily.groupby(["month", "country"], as_index=False)
        .agg(orders=("orders", "sum"), units=("units", "sum"), revenue=("revenue", "sum"))
        .round({"revenue": 2})
    )
    categories = (
        daily.groupby("category", as_index=False)
        .agg(orders=("orders", "sum"), units=("units", "sum"), revenue=("revenue", "sum"))
        .sort_values("revenue", ascending=False)
    )
    categories["revenue_share"] = (categories["revenue"] / categories["revenue"].sum()).round(4)
    categories = categories.round({"revenue": 2})
    customers = (
        orders.groupby(["customer_id", "country"], as_index=False)
        .agg(orders=("order_id", "count"), revenue=("revenue", "sum"))
        .round({"revenue": 2})
        .sort_values(["revenue", "customer_id"], ascending=[False, True])
        .head(params["top_customers"])
    )

    OUT.mkdir(parents=True, exist_ok=True)
    monthly.to_csv(OUT / "monthly_revenue_by_country.csv", index=False)
    categories.to_csv(OUT / "category_summary.csv", index=False)
    customers.to_csv(OUT / "top_customers.csv", index=False)

    total = float(orders["revenue"].sum())
    summary = {
        "orders": int(len(orders)),
        "units": int(orders["quantity"].sum()),
        "customers": int(orders["customer_id"].nunique()),
        "countries": int(orders["country"].nunique()),
        "revenue": round(total, 2),
        "avg_order_value": round(total / len(orders), 2) if len(orders) else 0.0,
    }
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print("publish: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
