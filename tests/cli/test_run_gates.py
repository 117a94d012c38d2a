"""Data gates in `opsctl run` (local executor, real Git and DVC): the checks of a data source
run before the stages that read it, the checks of an output right after its stage, and a
failure fails the stage the way a failing command does. Docker: tests/e2e/test_run_docker.py."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.test_run import dvc_is_clean, make_project, opsctl_run, statuses
from tests.conftest import opsctl_inprocess, run

GOOD_RAW = "id,age\n1,30\n2,40\n3,50\n"
BAD_RAW = "id,age\n1,30\n2,-4\n3,50\n"

STAGES = {
    # `adult` writes the rows whose age is at least params' min_age: its output's checks
    # fail when min_age lets a negative age through.
    "adult": {
        "cmd": "python3 -c \"import csv,yaml;m=yaml.safe_load(open('params.yaml'))['min_age'];"
        "r=list(csv.DictReader(open('data/raw.csv')));w=csv.DictWriter(open('data/adults.csv','w'),['id','age']);"
        "w.writeheader();[w.writerow(x) for x in r if int(x['age'])>=m]\"",
        "deps": ["data/raw.csv"],
        "params": ["min_age"],
        "outs": ["data/adults.csv"],
    },
    "count": {"cmd": "wc -l < data/adults.csv > count.txt", "deps": ["data/adults.csv"], "outs": ["count.txt"]},
}

CHECKS = {
    "checks": {
        "data/raw.csv": {"unique": [["id"]], "columns": {"id": {"type": "int"}, "age": {"type": "int", "min": 0}}},
        "data/adults.csv": {"rows": {"min": 1}, "columns": {"age": {"type": "int", "min": 18}}},
    }
}


def gated_project(tmp_path: Path, min_age: int = 18) -> Path:
    root = make_project(
        tmp_path / "p",
        STAGES,
        params={"min_age": min_age},
        files={"opsctl.yaml": yaml.safe_dump({"project": "p", "executor": "local", **CHECKS}), "data/.keep": ""},
    )
    (root / "data" / "raw.csv").write_text(GOOD_RAW)
    run(["dvc", "add", "-q", "data/raw.csv"], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "data"], cwd=root)
    return root


def lock_stages(root: Path) -> set[str]:
    lock = root / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.exists() else set()


def test_gates_pass_and_dvc_agrees(tmp_path):
    root = gated_project(tmp_path)
    report = opsctl_run(root)
    assert statuses(report) == {"adult": "ran", "count": "ran"}
    dvc_is_clean(root)


def test_bad_source_stops_the_run_before_any_stage_reads_it(tmp_path):
    root = gated_project(tmp_path)
    opsctl_run(root)
    lock_before = (root / "dvc.lock").read_bytes()
    dvcfile_before = (root / "data" / "raw.csv.dvc").read_bytes()
    (root / "data" / "raw.csv").write_text(BAD_RAW)

    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 5, result.stderr
    assert "data/raw.csv" in result.stderr and "min(age)" in result.stderr
    report = json.loads(opsctl_inprocess("runs", "show", "--json", _last_run(root), cwd=root).stdout)
    assert {s["name"]: s["outcome"] for s in report["stages"]} == {"adult": "failed", "count": "skipped"}
    # Nothing was run, nothing was recorded for the bad data: dvc.lock as before, and the
    # .dvc file still names the last good version (`dvc checkout` brings it back).
    assert (root / "dvc.lock").read_bytes() == lock_before
    assert (root / "data" / "raw.csv.dvc").read_bytes() == dvcfile_before
    assert (root / "data" / "adults.csv").exists()  # the stage never started: its old output is untouched
    log = Path(root / ".opsctl" / "runs" / _last_run(root) / "adult.log").read_text()
    assert "data check failed: data/raw.csv" in log and "row 2: -4" in log

    run(["dvc", "checkout", "-q", "--force", "data/raw.csv"], cwd=root)
    assert (root / "data" / "raw.csv").read_text() == GOOD_RAW
    again = opsctl_run(root)
    assert again["status"] == "up to date"


def test_a_failing_output_fails_its_stage_with_no_lock_entry(tmp_path):
    root = gated_project(tmp_path, min_age=-10)
    (root / "data" / "raw.csv").write_text("id,age\n1,30\n2,4\n")
    run(["dvc", "add", "-q", "data/raw.csv"], cwd=root)

    report = opsctl_run(root, code=5)
    assert statuses(report) == {"adult": "failed", "count": "skipped"}
    failed = report["stages"][0]
    assert failed["exit_code"] == 0 and "data check failed: data/adults.csv" in failed["detail"]
    assert "min(age) 1 row" in failed["detail"]
    assert lock_stages(root) == set()  # no entry: the stage is stale until its output passes
    log = Path(failed["log"]).read_text()
    assert "row 2: 4" in log
    status = run(["dvc", "status"], cwd=root)
    assert "adult" in status.stdout

    (root / "params.yaml").write_text("min_age: 18\n")
    fixed = opsctl_run(root)
    assert statuses(fixed) == {"adult": "ran", "count": "ran"}
    dvc_is_clean(root)


def test_keep_going_runs_the_independent_branch(tmp_path):
    stages = {**STAGES, "other": {"cmd": "echo x > other.txt", "outs": ["other.txt"]}}
    root = make_project(
        tmp_path / "p",
        stages,
        params={"min_age": -10},
        files={
            "opsctl.yaml": yaml.safe_dump({"project": "p", "executor": "local", **CHECKS}),
            "data/raw.csv": "id,age\n1,30\n2,4\n",
        },
    )
    report = opsctl_run(root, "--keep-going", "-j", "1", code=5)
    assert statuses(report) == {"adult": "failed", "count": "skipped", "other": "ran"}


def test_restored_outputs_are_checked_before_their_lock_entry(tmp_path):
    root = gated_project(tmp_path, min_age=-10)
    (root / "data" / "raw.csv").write_text("id,age\n1,30\n2,4\n")
    run(["dvc", "add", "-q", "data/raw.csv"], cwd=root)
    lenient = {**CHECKS["checks"], "data/adults.csv": {"columns": {"age": {"type": "int", "min": 0}}}}
    (root / "opsctl.yaml").write_text(yaml.safe_dump({"project": "p", "executor": "local", "checks": lenient}))
    assert statuses(opsctl_run(root)) == {"adult": "ran", "count": "ran"}
    (root / "params.yaml").write_text("min_age: 0\n")
    opsctl_run(root)
    # Back to -10: the run cache holds that output. With the strict checks again, the
    # restored output fails them: the stage fails and its dvc.lock entry is not written.
    (root / "params.yaml").write_text("min_age: -10\n")
    (root / "opsctl.yaml").write_text(yaml.safe_dump({"project": "p", "executor": "local", **CHECKS}))
    lock_before = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["adult"]
    report = opsctl_run(root, code=5)
    assert statuses(report) == {"adult": "failed", "count": "skipped"}
    assert "restored from the run cache, then data check failed" in report["stages"][0]["detail"]
    assert yaml.safe_load((root / "dvc.lock").read_text())["stages"]["adult"] == lock_before


def test_dry_run_lists_the_gates(tmp_path):
    root = gated_project(tmp_path)
    plan = json.loads(opsctl_inprocess("run", "--dry-run", "--json", cwd=root).stdout)
    checks = {s["stage"]: s["checks"] for s in plan["stages"]}
    assert checks == {
        "adult": {"before": ["data/raw.csv"], "after": ["data/adults.csv"]},
        "count": {"before": [], "after": []},
    }
    text = opsctl_inprocess("run", "--dry-run", cwd=root)
    assert "before adult\tdata/raw.csv" in text.stdout and "after adult\tdata/adults.csv" in text.stdout


def test_unreadable_output_is_a_failed_check_not_a_crash(tmp_path):
    stages = {"write": {"cmd": "printf 'a,b\\n1,2\\n3,4,5\\n' > out.csv", "outs": ["out.csv"]}}
    root = make_project(
        tmp_path / "p",
        stages,
        files={"opsctl.yaml": yaml.safe_dump({"project": "p", "checks": {"out.csv": {"columns": {"a": {}}}}})},
    )
    report = opsctl_run(root, code=5)
    assert "out.csv:3:" in report["stages"][0]["detail"]
    assert lock_stages(root) == set()


def _last_run(root: Path) -> str:
    runs = json.loads(opsctl_inprocess("runs", "list", "--json", "--limit", "1", cwd=root).stdout)
    return runs[0]["id"]


def test_the_same_data_is_not_checked_twice(tmp_path):
    root = gated_project(tmp_path)
    first = opsctl_inprocess("run", cwd=root)
    assert "✓ checks of data/raw.csv passed (before adult: 3 rows" in first.stderr
    assert "same data passed before" not in first.stderr
    again = opsctl_inprocess("run", "--force", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "✓ checks of data/raw.csv passed (before adult: 3 rows, 8 checks, same data passed before)" in again.stderr
    # Other checks on the same data: read again.
    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    config["checks"]["data/raw.csv"]["rows"] = {"min": 1}
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    third = opsctl_inprocess("run", "--force", cwd=root)
    assert "✓ checks of data/raw.csv passed (before adult: 3 rows, 9 checks)" in third.stderr


QUARANTINE_STAGES = {
    "clean": {
        "cmd": "mkdir -p out && cp data/raw.csv out/rows.csv",
        "deps": ["data/raw.csv"],
        "outs": ["out"],
    },
    "use": {"cmd": "wc -l < out/rows.csv > n.txt", "deps": ["out"], "outs": ["n.txt"]},
}


def quarantine_project(tmp_path: Path, raw: str, checks: dict) -> Path:
    return make_project(
        tmp_path / "p",
        QUARANTINE_STAGES,
        files={
            "opsctl.yaml": yaml.safe_dump({"project": "p", "executor": "local", "checks": {"out/rows.csv": checks}}),
            "data/raw.csv": raw,
        },
    )


ROWS_CHECKS = {
    "max_failing_rows": 2,
    "quarantine": "out/rejected.csv",
    "unique": [["id"]],
    "columns": {"id": {"type": "int"}, "age": {"type": "int", "min": 0}},
}


def test_quarantine_moves_failing_rows_and_dvc_versions_both_files(tmp_path):
    root = quarantine_project(tmp_path, "id,age\n1,30\n2,-4\n3,x\n1,50\n4,60\n", ROWS_CHECKS)
    # 3 failing rows — (2,-4), (3,x) and the repeated id 1 — are more than max_failing_rows: 2.
    report = opsctl_run(root, code=5)
    assert statuses(report)["clean"] == "failed"
    assert "data check failed: out/rows.csv: 3 checks failed" in report["stages"][0]["detail"]
    assert not (root / "out" / "rejected.csv").exists()  # past the tolerance nothing is rewritten
    assert (root / "out" / "rows.csv").read_text().count("\n") == 6

    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    config["checks"]["out/rows.csv"]["max_failing_rows"] = "60%"
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "3 failing rows tolerated, moved to out/rejected.csv" in result.stderr
    assert (root / "out" / "rows.csv").read_text() == "id,age\n1,30\n4,60\n"
    assert (root / "out" / "rejected.csv").read_text() == (
        "id,age,failed_checks\n2,-4,min(age)\n3,x,type(age)\n1,50,unique(id)\n"
    )
    assert (root / "n.txt").read_text().strip() == "3"  # the next stage saw the kept rows
    dvc_is_clean(root)


def test_quarantine_outside_the_stage_outputs_fails_the_stage(tmp_path):
    checks = {**ROWS_CHECKS, "quarantine": "rejected.csv"}
    root = quarantine_project(tmp_path, "id,age\n1,30\n2,-4\n", checks)
    report = opsctl_run(root, code=5)
    assert "rejected.csv is not an output of stage clean" in report["stages"][0]["detail"]
    assert (root / "out" / "rows.csv").read_text() == "id,age\n1,30\n2,-4\n"
    assert lock_stages(root) == set()


def test_validate_reports_tolerated_rows_and_rewrites_nothing(tmp_path):
    root = quarantine_project(tmp_path, "id,age\n1,30\n2,-4\n", {**ROWS_CHECKS, "max_failing_rows": "50%"})
    (root / "out").mkdir()
    (root / "out" / "rows.csv").write_text("id,age\n1,30\n2,-4\n")
    result = opsctl_inprocess("data", "validate", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)["datasets"][0]
    assert verdict["passed"] and verdict["failing_rows"] == 1 and verdict["allowed_failing_rows"] == 1
    assert [f["check"] for f in verdict["failures"]] == ["min"]
    assert (root / "out" / "rows.csv").read_text() == "id,age\n1,30\n2,-4\n"
    assert not (root / "out" / "rejected.csv").exists()
