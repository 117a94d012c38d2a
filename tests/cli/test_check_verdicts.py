"""Data-check verdicts as the user sees them: `opsctl runs show` lists a run's checks,
`opsctl lineage` marks each data node that passed or failed its checks. The verdicts are
recorded through core/check_records.py (the check engine is not this test's subject) on
a copy of the ml project after a real `opsctl run --executor local`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opsctl.core.check_records import record_verdicts
from opsctl.core.checks import DatasetVerdict, Example, Failure
from opsctl.core.project import open_project
from tests.cli.test_lineage import MODEL, RAW, lineage_of, lock_md5
from tests.cli.test_runs import copy_project, ml_ran  # noqa: F401 — the shared fixture
from tests.conftest import opsctl_inprocess

PREPARED = "data/prepared"
FEATURES = "data/features"


@pytest.fixture
def checked(ml_ran, tmp_path) -> dict:  # noqa: F811 — the fixture imported above
    """The ml project with two verdicts in its run: the raw data passed (gate of prepare),
    prepare's output failed two checks; and a standalone verdict on another raw version."""
    root = copy_project(ml_ran["root"], tmp_path / "ml")
    raw_hash = yaml.safe_load((root / f"{RAW}.dvc").read_text())["outs"][0]["md5"]
    prepared_hash = lock_md5(root, "prepare", "outs", PREPARED)
    project = open_project(root)
    passed = DatasetVerdict(RAW, raw_hash, "c" * 16, rows=1000, checks=12, duration=0.2)
    failed = DatasetVerdict(
        PREPARED,
        prepared_hash,
        "e" * 16,
        rows=800,
        checks=9,
        failures=[
            Failure("type", "tenure", 2, (Example(3, "abc", "train.csv"), Example(9, "x", "train.csv"))),
            Failure("rows", None, 800, detail="800 rows, fewer than rows.min 1000"),
        ],
    )
    assert record_verdicts(project, [passed], run_id=ml_ran["run"], stage="prepare") is None
    assert record_verdicts(project, [failed], run_id=ml_ran["run"], stage="prepare") is None
    other = DatasetVerdict(RAW, "0" * 32, "c" * 16, rows=5, checks=12, failures=[Failure("rows", None, 5)])
    assert record_verdicts(project, [other]) is None  # standalone, another version: not this run's
    return {"root": root, "run": ml_ran["run"], "raw": raw_hash, "prepared": prepared_hash}


def test_runs_show_json_lists_the_runs_checks(checked):
    result = opsctl_inprocess("runs", "show", checked["run"][:8], "--json", cwd=checked["root"])
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout)["checks"]
    # The run's own gates (the template's checks) came first; then the two recorded here.
    gates = [(c["path"], c["stage"], c["passed"]) for c in checks[:3]]
    assert gates == [
        (RAW, "prepare", True),
        (FEATURES + "/train.csv", "featurize", True),
        (FEATURES + "/test.csv", "featurize", True),
    ]
    checks = checks[3:]
    assert [(c["path"], c["stage"], c["passed"], c["run"]) for c in checks] == [
        (RAW, "prepare", True, checked["run"]),
        (PREPARED, "prepare", False, checked["run"]),
    ]
    raw, prepared = checks
    assert raw == {
        "path": RAW,
        "hash": checked["raw"],
        "rows": 1000,
        "passed": True,
        "checks": 12,
        "cached": False,
        "failures": [],
        "checks_hash": "c" * 16,
        "run": checked["run"],
        "stage": "prepare",
        "at": raw["at"],
        "duration": 0.2,
    }
    assert isinstance(raw["at"], float)
    assert prepared["failures"] == [
        {
            "check": "type",
            "column": "tenure",
            "count": 2,
            "detail": "",
            "examples": [
                {"row": 3, "value": "abc", "file": "train.csv"},
                {"row": 9, "value": "x", "file": "train.csv"},
            ],
        },
        {"check": "rows", "column": None, "count": 800, "detail": "800 rows, fewer than rows.min 1000", "examples": []},
    ]


def test_runs_show_text_lists_the_runs_checks(checked):
    result = opsctl_inprocess("runs", "show", checked["run"], cwd=checked["root"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("checks")
    assert lines[at + 1] == "dataset\tstage\tverdict\trows\tfailing checks"
    assert lines[at + 2] == f"{RAW}\tprepare\t✓ checks passed\t500\t"  # the run's own gate
    assert lines[at + 5] == f"{RAW}\tprepare\t✓ checks passed\t1000\t"
    assert lines[at + 6] == (
        f"{PREPARED}\tprepare\t✗ 2 checks failed\t800\ttype(tenure) 2 rows, rows: 800 rows, fewer than rows.min 1000"
    )


def test_runs_show_of_a_run_without_checks_says_nothing_of_them(tmp_path):
    from tests.cli.test_run import CHAIN, make_project, opsctl_run

    root = make_project(tmp_path / "p", CHAIN)
    run_id = opsctl_run(root, "--executor", "local")["run_id"]
    result = opsctl_inprocess("runs", "show", run_id, cwd=root)
    assert result.returncode == 0 and "checks" not in result.stdout.splitlines()
    shown = json.loads(opsctl_inprocess("runs", "show", run_id, "--json", cwd=root).stdout)
    assert shown["checks"] == []


def test_lineage_json_marks_the_data_nodes_that_were_checked(checked):
    g = lineage_of(checked["root"], MODEL)
    raw = g.one("data", path=RAW)
    assert raw["checks"] == {
        "passed": True,
        "checks_hash": "c" * 16,
        "at": raw["checks"]["at"],
        "failed": 0,
        "run": checked["run"],
    }
    prepared = g.one("artifact", path=PREPARED)
    assert prepared["checks"]["passed"] is False and prepared["checks"]["failed"] == 2
    assert prepared["checks"]["checks_hash"] == "e" * 16
    # matched by path and hash: the model has no verdict; the features file has its gate's
    assert g.root["checks"] is None
    features = g.one("artifact", path=FEATURES + "/train.csv")["checks"]
    assert features["passed"] is True and features["run"] == checked["run"]
    assert all("checks" not in n for n in g.of("source"))


def test_lineage_text_shows_each_data_nodes_verdict(checked):
    result = opsctl_inprocess("lineage", MODEL, cwd=checked["root"])
    assert result.returncode == 0, result.stderr
    (raw,) = [line for line in result.stdout.splitlines() if f"{RAW}.dvc" in line]
    assert raw.endswith(f"(data, {RAW}.dvc)  ✓ checks passed")
    (prepared,) = [line for line in result.stdout.splitlines() if f"{PREPARED}  md5" in line]
    assert prepared.endswith("(output of prepare)  ✗ 2 checks failed")
    (model,) = [line for line in result.stdout.splitlines() if line.startswith(MODEL)]
    assert "checks" not in model


def test_lineage_of_another_version_does_not_take_this_versions_verdict(checked):
    """The standalone verdict was on another hash of the raw data: after changing the
    verdicts of this version, lineage follows the hash, not the path."""
    root: Path = checked["root"]
    project = open_project(root)
    again = DatasetVerdict(RAW, checked["raw"], "f" * 16, rows=1000, checks=13, failures=[Failure("strict", None, 1)])
    assert record_verdicts(project, [again]) is None  # newer checks on the same data: it failed them
    raw = lineage_of(root, MODEL).one("data", path=RAW)
    assert (
        raw["checks"]["passed"] is False and raw["checks"]["checks_hash"] == "f" * 16 and raw["checks"]["run"] is None
    )
