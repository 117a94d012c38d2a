"""`opsctl monitor profile | drift | history`, `model register --profile` and the drift gate of
`opsctl run`, through the CLI in real Git + DVC projects: verdicts, exit codes, output shapes,
what is recorded, and bad input (one clear line, its exit code)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import PYTHON, git_dvc_project, opsctl_inprocess, run

ROWS = 400
PLANS = ["basic", "plus", "pro"]


def write_batch(path: Path, *, seed: int, shift: float = 0.0, plan_mix=(0.5, 0.3, 0.2), rows: int = ROWS) -> None:
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + shift * 12, 12, rows).round(1)
    fee = rng.gamma(4, 10 + shift * 10, rows).round(2)
    calls = rng.poisson(2 + shift * 3, rows)
    plan = rng.choice(PLANS, rows, p=list(plan_mix))
    senior = rng.choice([0, 1], rows, p=[0.8, 0.2])
    lines = ["id,age,fee,calls,plan,senior"]
    lines += [f"C{i},{a},{f},{c},{p},{s}" for i, (a, f, c, p, s) in enumerate(zip(age, fee, calls, plan, senior))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def project(tmp_path) -> Path:
    root = git_dvc_project(tmp_path / "p", "shop")
    write_batch(root / "data" / "train.csv", seed=1)
    write_batch(root / "data" / "incoming" / "same.csv", seed=2)
    write_batch(root / "data" / "incoming" / "shifted.csv", seed=3, shift=1.0, plan_mix=(0.1, 0.2, 0.7))
    return root


def monitor(root: Path, *args: str):
    return opsctl_inprocess("monitor", *args, cwd=root)


def test_profile_then_drift_against_it_and_the_history(project):
    made = monitor(project, "profile", "data/train.csv", "--json")
    assert made.returncode == 0, made.stderr
    written = json.loads(made.stdout)
    assert written["path"] == "monitor/train.profile.json" and written["rows"] == ROWS and written["columns"] == 6
    profile = project / written["path"]
    assert profile.stat().st_size == written["bytes"] < 30_000

    same = monitor(project, "drift", "data/incoming/same.csv", "--reference", "monitor/train.profile.json", "--json")
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert {"drift", "share", "threshold_share", "reference", "current", "columns"} <= report.keys()
    assert report["drift"] is False and report["threshold_share"] == 0.5
    assert report["reference"] == "monitor/train.profile.json" and report["current"] == "data/incoming/same.csv"
    methods = {c["column"]: c["method"] for c in report["columns"]}
    # 400 rows: tests, as Evidently's defaults pick them
    assert methods == {"id": None, "age": "ks", "fee": "ks", "calls": "ks", "plan": "chi2", "senior": "ztest"}
    identifier = next(c for c in report["columns"] if c["column"] == "id")
    assert identifier["compared"] is False and "identifier" in identifier["detail"]
    for column in report["columns"]:
        assert {"column", "method", "statistic", "p_value", "threshold", "drift"} <= column.keys()

    shifted = monitor(project, "drift", "data/incoming/shifted.csv", "-r", "monitor/train.profile.json", "--json")
    assert shifted.returncode == 6, shifted.stderr
    report = json.loads(shifted.stdout)
    drifted = {c["column"] for c in report["columns"] if c["drift"]}
    assert {"age", "fee", "calls", "plan"} <= drifted and report["drift"] is True
    assert report["share"] == pytest.approx(len(drifted) / 5)  # of the compared columns: not the identifier
    last = shifted.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data/incoming/shifted.csv drifted from monitor/train.profile.json:")

    history = monitor(project, "history", "--json")
    assert history.returncode == 0, history.stderr
    checks = json.loads(history.stdout)
    assert [(c["dataset"], c["drift"]) for c in checks] == [
        ("data/incoming/same.csv", False),
        ("data/incoming/shifted.csv", True),
    ]
    md5 = hashlib.md5((project / "data/incoming/shifted.csv").read_bytes()).hexdigest()
    assert checks[1]["hash"] == md5
    assert checks[1]["reference_hash"] == hashlib.md5(profile.read_bytes()).hexdigest()
    only = json.loads(monitor(project, "history", "data/incoming/same.csv", "--json").stdout)
    assert [c["dataset"] for c in only] == ["data/incoming/same.csv"]


def test_raw_reference_and_the_terminal_table(project):
    result = monitor(project, "drift", "data/incoming/shifted.csv", "--reference", "data/train.csv")
    assert result.returncode == 6
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0] == ["column", "method", "statistic", "p-value", "threshold", "verdict", "reference → current"]
    verdicts = {r[0]: r[5] for r in rows[1:]}
    assert verdicts["age"] == verdicts["plan"] == "drift"
    assert rows[1][5] == "drift"  # drifted columns first
    assert "→" in rows[1][6]  # the two distributions, as sparklines


def test_the_drift_settings_of_opsctl_yaml_are_the_default(project):
    monitor(project, "profile", "data/train.csv")
    config = project / "opsctl.yaml"
    config.write_text(
        config.read_text()
        + "drift:\n  data/incoming/shifted.csv:\n    reference: monitor/train.profile.json\n"
        + "    columns: [senior, id]\n    share: 0.5\n"
    )
    result = monitor(project, "drift", "data/incoming/shifted.csv", "--json")
    assert result.returncode == 0, result.stderr  # senior and id did not drift: only those are compared
    assert [c["column"] for c in json.loads(result.stdout)["columns"]] == ["senior", "id"]
    # an option wins over the settings
    result = monitor(project, "drift", "data/incoming/shifted.csv", "--column", "age", "--json")
    assert result.returncode == 6 and [c["column"] for c in json.loads(result.stdout)["columns"]] == ["age"]


def test_bad_input_is_one_clear_line_with_its_exit_code(project):
    no_reference = monitor(project, "drift", "data/incoming/same.csv")
    assert no_reference.returncode == 2
    assert no_reference.stderr.splitlines()[0] == "error: no reference for data/incoming/same.csv"
    assert "--reference" in no_reference.stderr

    (project / "other.csv").write_text("x,y\n1,2\n3,4\n")
    disjoint = monitor(project, "drift", "other.csv", "--reference", "data/train.csv")
    assert disjoint.returncode == 2
    assert "have no column in common" in disjoint.stderr
    assert "reference: id, age, fee, calls, plan, senior; current: x, y" in disjoint.stderr

    (project / "empty.csv").write_text("id,age,fee,calls,plan,senior\n")
    empty = monitor(project, "drift", "empty.csv", "--reference", "data/train.csv")
    assert empty.returncode == 2 and "empty.csv: has no rows to compare" in empty.stderr

    monitor(project, "profile", "data/train.csv", "-o", "monitor/new.profile.json")
    newer = json.loads((project / "monitor/new.profile.json").read_text())
    newer["opsctl_profile"] = 99
    (project / "monitor/new.profile.json").write_text(json.dumps(newer))
    refused = monitor(project, "drift", "data/incoming/same.csv", "-r", "monitor/new.profile.json")
    assert refused.returncode == 1
    assert "written by a newer opsctl" in refused.stderr and "Traceback" not in refused.stderr

    missing = monitor(project, "drift", "data/nope.csv", "-r", "data/train.csv")
    assert missing.returncode == 2 and "data/nope.csv: no such file or directory" in missing.stderr
    bad_method = monitor(project, "drift", "data/incoming/same.csv", "-r", "data/train.csv", "--method", "magic")
    assert bad_method.returncode == 2 and "--method magic" in bad_method.stderr
    # nothing failed was recorded
    assert json.loads(monitor(project, "history", "--json").stdout) == []


def test_a_type_change_is_reported_per_column(project):
    text = (project / "data/incoming/same.csv").read_text().replace(",0\n", ",no\n").replace(",1\n", ",yes\n")
    (project / "data/incoming/text.csv").write_text(text)
    result = monitor(project, "drift", "data/incoming/text.csv", "-r", "data/train.csv", "--json")
    columns = {c["column"]: c for c in json.loads(result.stdout)["columns"]}
    assert columns["senior"]["method"] == "type" and columns["senior"]["drift"] is True
    assert columns["senior"]["detail"] == "numbers in the reference, text in the current data"
    assert columns["age"]["method"] == "ks" and columns["age"]["drift"] is False
    assert result.returncode == 0  # 1 of 5 drifted


def test_a_model_version_carries_its_reference_profile(project):
    monitor(project, "profile", "data/train.csv")
    (project / "models").mkdir()
    (project / "models" / "model.pkl").write_bytes(b"a model")
    run([PYTHON, "-m", "dvc", "add", "-q", "models/model.pkl"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "model and profile"], cwd=project)

    registered = opsctl_inprocess(
        "model",
        "register",
        "churn",
        "models/model.pkl",
        "--profile",
        "monitor/train.profile.json",
        "--json",
        cwd=project,
    )
    assert registered.returncode == 0, registered.stderr
    md5 = hashlib.md5((project / "monitor/train.profile.json").read_bytes()).hexdigest()
    assert json.loads(registered.stdout)["profile_md5"] == md5
    opsctl_inprocess("model", "promote", "churn", "0.0.1", "--to", "prod", cwd=project, check=True)

    # the profile is found at the version's commit even after the workspace copy is gone
    (project / "monitor/train.profile.json").unlink()
    result = monitor(project, "drift", "data/incoming/shifted.csv", "--reference", "churn@v0.0.1", "--json")
    assert result.returncode == 6, result.stderr
    assert json.loads(result.stdout)["reference"] == "churn@v0.0.1"

    shown = json.loads(opsctl_inprocess("model", "show", "churn", "--json", cwd=project, check=True).stdout)
    version = shown["versions"][0]
    assert version["profile"] == "monitor/train.profile.json" and version["stages"] == ["prod"]
    assert [(c["dataset"], c["drift"]) for c in version["drift_checks"]] == [("data/incoming/shifted.csv", True)]
    table = opsctl_inprocess("model", "show", "churn", cwd=project, check=True).stdout
    assert "Drift checks against churn v0.0.1 (prod)" in table or "data/incoming/shifted.csv" in table


def test_an_uncommitted_profile_is_refused_at_registration(project):
    monitor(project, "profile", "data/train.csv")
    (project / "models").mkdir()
    (project / "models" / "model.pkl").write_bytes(b"a model")
    run([PYTHON, "-m", "dvc", "add", "-q", "models/model.pkl"], cwd=project)
    run(["git", "add", "models/model.pkl.dvc", "models/.gitignore"], cwd=project)
    run(["git", "commit", "-qm", "model"], cwd=project)
    refused = opsctl_inprocess(
        "model", "register", "churn", "models/model.pkl", "--profile", "monitor/train.profile.json", cwd=project
    )
    assert refused.returncode == 1
    assert "monitor/train.profile.json is not committed" in refused.stderr
    assert run(["git", "tag"], cwd=project).stdout == ""  # no half registration


def test_a_drift_gate_fails_the_stage_that_reads_drifted_data(project):
    monitor(project, "profile", "data/train.csv")
    config = project / "opsctl.yaml"
    config.write_text(
        config.read_text() + "drift:\n  data/incoming/batch.csv:\n    reference: monitor/train.profile.json\n"
    )
    (project / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "score": {
                        "cmd": "wc -l data/incoming/batch.csv > scores.txt",
                        "deps": ["data/incoming/batch.csv"],
                        "outs": ["scores.txt"],
                    }
                }
            }
        )
    )
    batch = project / "data/incoming/batch.csv"
    batch.write_bytes((project / "data/incoming/shifted.csv").read_bytes())
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "pipeline"], cwd=project)

    plan = opsctl_inprocess("run", "--dry-run", cwd=project, check=True)
    assert "drift before score" in plan.stdout and "data/incoming/batch.csv" in plan.stdout

    failed = opsctl_inprocess("run", cwd=project)
    assert failed.returncode == 5, failed.stderr
    assert "data drifted: data/incoming/batch.csv" in failed.stderr
    assert not (project / "scores.txt").exists() and not (project / "dvc.lock").exists()
    checks = json.loads(monitor(project, "history", "--json").stdout)
    assert len(checks) == 1 and checks[0]["drift"] is True and checks[0]["stage"] == "score" and checks[0]["run"]
    shown = json.loads(opsctl_inprocess("runs", "show", checks[0]["run"], "--json", cwd=project, check=True).stdout)
    assert [(d["dataset"], d["stage"], d["drift"]) for d in shown["drift"]] == [
        ("data/incoming/batch.csv", "score", True)
    ]
    assert "age" in shown["drift"][0]["drifted"]

    batch.write_bytes((project / "data/incoming/same.csv").read_bytes())
    passed = opsctl_inprocess("run", cwd=project)
    assert passed.returncode == 0, passed.stderr
    assert "no drift of data/incoming/batch.csv" in passed.stderr
    assert (project / "scores.txt").exists() and "score" in yaml.safe_load((project / "dvc.lock").read_text())["stages"]


def test_markdown_and_html_reports(project):
    result = monitor(
        project, "drift", "data/incoming/shifted.csv", "-r", "data/train.csv", "--md", "--html", "out/r.html"
    )
    assert result.returncode == 6  # the reports don't change the gate
    assert result.stdout.startswith("**Drift detected**") or "**Drift detected**" in result.stdout.splitlines()[0:3]
    assert "| age |" in result.stdout.replace("\\", "")
    page = (project / "out" / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    assert page.count("<svg") == 5 and "http://" not in page and "https://" not in page
    both = monitor(project, "drift", "data/incoming/same.csv", "-r", "data/train.csv", "--md", "--json")
    assert both.returncode == 2 and "pick one" in both.stderr


def test_the_ml_template_ships_a_profile_of_its_training_data_and_a_clean_batch(ml_project):
    profile = json.loads((ml_project / "monitor/churn.profile.json").read_text())
    raw = (ml_project / "data/raw/churn.csv").read_bytes()
    assert profile["dataset"] == "data/raw/churn.csv" and profile["hash"] == hashlib.md5(raw).hexdigest()
    tracked = run(["git", "ls-files"], cwd=ml_project).stdout.split()
    assert "monitor/churn.profile.json" in tracked and "data/incoming/batch.csv" in tracked
    result = monitor(ml_project, "drift", "data/incoming/batch.csv", "--json")  # the drift: settings
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reference"] == "monitor/churn.profile.json" and len(report["columns"]) == 10
