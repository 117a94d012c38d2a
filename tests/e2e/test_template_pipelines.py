"""Each built-in template's pipeline runs to completion with `dvc repro` on the host
right after `opsctl init`, and DVC then agrees everything is up to date."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BIN, run, run_opsctl

EXPECTED = {
    "ml-pipeline": ["metrics.json", "models/model.pkl", "plots/roc.json"],
    "data-pipeline": ["data/published", "summary.json"],
    "minimal": ["output/result.txt"],
}


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_pipeline_runs_with_dvc_repro(tmp_path, template):
    run_opsctl("init", "proj", "--template", template, "--defaults", cwd=tmp_path, check=True)
    root = tmp_path / "proj"
    run([BIN / "dvc", "repro"], cwd=root)
    for output in EXPECTED[template]:
        assert (root / output).exists(), output

    assert "up to date" in run([BIN / "dvc", "status"], cwd=root).stdout
    again = run([BIN / "dvc", "repro"], cwd=root).stdout
    assert "Running stage" not in again
    statuses = json.loads(run_opsctl("status", "--json", cwd=root, check=True).stdout)
    assert statuses and not any(s["stale"] for s in statuses)

    if template == "ml-pipeline":
        metrics = json.loads((root / "metrics.json").read_text())
        assert 0.5 < metrics["accuracy"] <= 1.0
