"""Each built-in template's pipeline runs to completion with `dvc repro` on the host
right after `opsctl init`, and DVC then agrees everything is up to date."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BIN, opsctl_inprocess, run

EXPECTED = {
    "ml-pipeline": ["metrics.json", "models/model.pkl", "plots/roc.json"],
    "data-pipeline": ["data/published", "summary.json"],
    "minimal": ["output/result.txt"],
}


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_pipeline_runs_with_dvc_repro(tmp_path, template):
    opsctl_inprocess("init", "proj", "--template", template, "--defaults", cwd=tmp_path, check=True)
    root = tmp_path / "proj"
    run([BIN / "dvc", "repro"], cwd=root)
    for output in EXPECTED[template]:
        assert (root / output).exists(), output

    assert "up to date" in run([BIN / "dvc", "status"], cwd=root).stdout
    again = run([BIN / "dvc", "repro"], cwd=root).stdout
    assert "Running stage" not in again
    statuses = json.loads(opsctl_inprocess("status", "--json", cwd=root, check=True).stdout)
    assert statuses and not any(s["stale"] for s in statuses)

    if template == "ml-pipeline":
        metrics = json.loads((root / "metrics.json").read_text())
        assert 0.5 < metrics["accuracy"] <= 1.0


def test_data_pipeline_checks_quarantine_the_dirty_rows(tmp_path):
    """The template's declared checks catch the sample's broken rows in `opsctl run`: they move
    to data/ingested/rejected.csv with the checks they broke, and DVC versions both files."""
    opsctl_inprocess("init", "proj", "--template", "data-pipeline", "--defaults", cwd=tmp_path, check=True)
    root = tmp_path / "proj"
    result = opsctl_inprocess("run", "--executor", "local", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "16 failing rows tolerated, moved to data/ingested/rejected.csv" in result.stderr
    rejected = (root / "data/ingested/rejected.csv").read_text().splitlines()
    assert rejected[0].endswith(",failed_checks") and len(rejected) == 17
    reasons = "\n".join(rejected[1:])
    for check in ("type(quantity)", "nullable(customer_id)", "in(currency)", "unique(order_id)", "max(order_date)"):
        assert check in reasons
    kept = (root / "data/ingested/orders.csv").read_text().splitlines()
    assert len(kept) == 1 + 403 - 16
    assert "up to date" in run([BIN / "dvc", "status"], cwd=root).stdout
    shown = json.loads(opsctl_inprocess("runs", "show", json.loads(result.stdout)["run_id"], "--json", cwd=root).stdout)
    verdicts = {c["path"]: c for c in shown["checks"]}
    assert verdicts["data/ingested/orders.csv"]["passed"] and verdicts["data/transformed/daily_sales.csv"]["passed"]
