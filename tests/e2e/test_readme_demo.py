"""The README's main-job command (scripts/demo.sh) works end to end."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO


def test_demo_script_scaffolds_runs_and_pushes(tmp_path):
    demo = tmp_path / "demo"
    env = {**os.environ, "OPSCTL_DEMO_DIR": str(demo), "OPSCTL_SKIP_SETUP": "1"}
    result = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Everything is up to date." in result.stderr  # opsctl status after opsctl run
    assert "Data and pipelines are up to date." in result.stdout  # and DVC agrees
    assert "✓ run " in result.stderr and "4 ran" in result.stderr
    assert "2 ran" in result.stderr  # the second run, with -S: train and evaluate only
    # The data checks pass, then catch the broken raw row before any stage reads it (exit 5),
    # and the good version comes back from DVC.
    checks = result.stdout.split("$ opsctl data validate", 1)[1]
    assert "data/raw/churn.csv\tpassed" in checks
    assert "✗ checks of data/raw/churn.csv failed (before prepare): 1 check failed: min(tenure_months) 1 row" in (
        result.stderr
    )
    assert "error: stage prepare failed" in result.stderr
    # The runs are recorded, compared, and the registered model's lineage goes back to the raw data.
    assert "params.train.n_estimators\t100\t50\t-50" in result.stdout
    assert "✓ Registered churn v0.0.1" in result.stderr and "is now in prod" in result.stderr
    lineage = result.stdout.split("$ opsctl lineage churn@v0.0.1", 1)[1]
    assert (
        "models/model.pkl" in lineage
        and "data/raw/churn.csv" in lineage
        and "(data, data/raw/churn.csv.dvc)" in lineage
    )
    # With an engine reachable (always in CI), the stages ran in containers.
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        assert "(docker, -j" in result.stderr
        assert "stages run in containers" in result.stderr
    assert "metrics.json" in result.stdout
    metrics = json.loads((demo / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5
    assert any((demo / ".opsctl" / "remote").rglob("*")), "the push put nothing in the embedded remote"
    assert "Pushed" in result.stderr
    assert "models/model.pkl\t" in result.stdout  # `opsctl data ls` lists the pipeline's outputs

    # Running it again replaces its own demo project instead of refusing.
    again = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
