"""core/monitoring.py on a real Git + DVC project and a real run store: a profile is written
atomically under monitor/; the comparison to make comes from the options over opsctl.yaml's
drift: settings; a drift check is recorded with the data's hash as DVC records it and the
reference's (a dataset's, or a profile file's md5); a store that can't be written costs the
record, never the verdict."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import pytest
import yaml

from opsctl.core import monitoring
from opsctl.core.drift_data import PROFILE_KEY, is_profile_file, read_profile_file
from opsctl.core.drift_settings import DriftSettings
from opsctl.core.monitoring import check_drift, history, profile_dataset, settings_for
from opsctl.core.project import open_project
from opsctl.core.runs import store_path
from opsctl.errors import UsageError
from opsctl.store import NewRun, RunRecord, RunStore, StageRecord
from tests.conftest import git_dvc_project, run

CONFIG = """\
project: demo
drift:
  data/incoming/batch.csv:
    reference: monitor/ref.profile.json
    columns: [tenure, plan]
    method: psi
    threshold: 0.2
    share: 0.4
"""


def rows(n: int, shift: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    tenure = rng.normal(24 + shift, 6, n)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5])
    fee = rng.exponential(30, n)
    return "tenure,plan,fee\n" + "".join(f"{t:.3f},{p},{f:.2f}\n" for t, p, f in zip(tenure, plan, fee, strict=True))


@pytest.fixture
def project(tmp_path):
    root = git_dvc_project(tmp_path / "p", "demo")
    (root / "opsctl.yaml").write_text(CONFIG)
    (root / "data" / "incoming").mkdir(parents=True)
    (root / "data" / "ref.csv").write_text(rows(3000, 0, 1))
    (root / "data" / "incoming" / "batch.csv").write_text(rows(2000, 6, 2))  # a shifted batch
    (root / "data" / "incoming" / "same.csv").write_text(rows(2000, 0, 3))
    return open_project(root)


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def dvc_add(project, rel: str) -> str:
    """The md5 `dvc add` records for REL."""
    run([sys.executable, "-m", "dvc", "add", "-q", rel], cwd=project.root)
    return yaml.safe_load((project.root / f"{rel}.dvc").read_text())["outs"][0]["md5"]


def test_a_profile_is_written_under_monitor_and_its_size_returned(project):
    written = profile_dataset(project, "data/ref.csv")
    path = project.root / "monitor" / "ref.profile.json"
    assert written == monitoring.WrittenProfile(
        "monitor/ref.profile.json", "data/ref.csv", 3000, 3, path.stat().st_size
    )
    profile = json.loads(path.read_text())
    assert profile[PROFILE_KEY] == 1 and profile["dataset"] == "data/ref.csv" and profile["rows"] == 3000
    assert profile["hash"] == md5(project.root / "data" / "ref.csv")
    assert list(profile["columns"]) == ["tenure", "plan", "fee"]
    assert is_profile_file(path) and read_profile_file(path, "p").rows == 3000
    assert [p.name for p in path.parent.iterdir()] == ["ref.profile.json"]  # no temporary file left
    other = profile_dataset(project, "data/incoming/same.csv", "elsewhere/same.json")
    assert (
        other.path == "elsewhere/same.json" and (project.root / "elsewhere" / "same.json").stat().st_size == other.size
    )


def test_an_interrupted_profile_leaves_the_old_file(project, monkeypatch):
    profile_dataset(project, "data/ref.csv")
    path = project.root / "monitor" / "ref.profile.json"
    before = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    (project.root / "data" / "ref.csv").write_text(rows(100, 0, 9))
    with pytest.raises(KeyboardInterrupt):
        profile_dataset(project, "data/ref.csv")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["ref.profile.json"]


def test_a_profile_of_what_is_not_there_is_a_usage_error(project):
    with pytest.raises(UsageError, match="^data/nothing.csv: no such file or directory"):
        profile_dataset(project, "data/nothing.csv")
    assert not (project.root / "monitor").exists()


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("data/churn.csv", "monitor/churn.profile.json"),
        ("data/churn.parquet", "monitor/churn.profile.json"),
        ("data/parts/", "monitor/parts.profile.json"),
        ("events.NDJSON", "monitor/events.profile.json"),
    ],
)
def test_the_default_profile_path(dataset, expected):
    assert monitoring.default_profile_path(dataset) == expected


def test_settings_are_the_options_over_opsctl_yaml(project):
    configured = settings_for(project, "data/incoming/batch.csv", None)
    assert configured == DriftSettings(
        "data/incoming/batch.csv", "monitor/ref.profile.json", ("tenure", "plan"), "psi", 0.2, 0.4
    )
    given = settings_for(
        project, "data/incoming/batch.csv", "data/ref.csv", columns=("fee",), method="ks", threshold=0.01, share=1.0
    )
    assert given == DriftSettings("data/incoming/batch.csv", "data/ref.csv", ("fee",), "ks", 0.01, 1.0)
    partly = settings_for(project, "data/incoming/batch.csv", None, method="auto")
    assert partly == DriftSettings(
        "data/incoming/batch.csv", "monitor/ref.profile.json", ("tenure", "plan"), "auto", 0.2, 0.4
    )
    unconfigured = settings_for(project, "data/incoming/same.csv", "data/ref.csv")
    assert unconfigured == DriftSettings("data/incoming/same.csv", "data/ref.csv")  # every column, auto, 0.5


def test_no_reference_anywhere_is_a_usage_error_with_a_hint(project):
    with pytest.raises(UsageError) as error:
        settings_for(project, "data/incoming/same.csv", None)
    assert error.value.message == "no reference for data/incoming/same.csv" and error.value.exit_code == 2
    assert error.value.hint == "give --reference DATASET|PROFILE|NAME@VERSION, or add it under drift: in opsctl.yaml"


def test_a_drift_check_is_recorded_with_the_hashes_dvc_records(project):
    settings = settings_for(project, "data/incoming/batch.csv", "data/ref.csv")  # the rest from opsctl.yaml
    seen = []
    report, error = check_drift(project, settings, on_progress=lambda what, done, total: seen.append(what))
    assert error is None
    assert report.drift and {c.column for c in report.drifted} == {"tenure", "plan"}
    assert {"data/ref.csv", "data/incoming/batch.csv"} <= set(seen)
    (recorded,) = history(project)
    batch, ref = project.root / "data" / "incoming" / "batch.csv", project.root / "data" / "ref.csv"
    assert recorded.path == "data/incoming/batch.csv" and recorded.reference == "data/ref.csv"
    assert recorded.data_hash == md5(batch) == dvc_add(project, "data/incoming/batch.csv")
    assert recorded.reference_hash == md5(ref) == dvc_add(project, "data/ref.csv")
    assert (recorded.drift, recorded.share, recorded.threshold_share) == (True, 1.0, 0.4)
    assert recorded.rows == 2000 and recorded.run_id is None and recorded.duration > 0
    assert [(c["column"], c["method"], c["threshold"]) for c in recorded.columns] == [
        ("tenure", "psi", 0.2),
        ("plan", "psi", 0.2),
    ]
    assert all("histogram" not in c for c in recorded.columns)  # the numbers, not the pictures
    assert recorded.drifted == [c.column for c in report.drifted]
    assert history(project, "data/incoming/same.csv") == []


def test_a_profile_reference_is_recorded_with_the_profile_files_md5(project):
    profile_dataset(project, "data/ref.csv")
    profile = project.root / "monitor" / "ref.profile.json"
    report, error = check_drift(project, settings_for(project, "data/incoming/batch.csv", None))
    assert error is None and report.drift
    assert [(c.column, c.method, c.threshold) for c in report.columns] == [("tenure", "psi", 0.2), ("plan", "psi", 0.2)]
    same, _ = check_drift(project, settings_for(project, "data/incoming/same.csv", "monitor/ref.profile.json"))
    assert not same.drift
    first, second = history(project)
    assert first.reference == "monitor/ref.profile.json" and first.reference_hash == md5(profile)
    assert second.reference_hash == md5(profile) == dvc_add(project, "monitor/ref.profile.json")
    assert (first.path, first.drift, second.path, second.drift) == (
        "data/incoming/batch.csv",
        True,
        "data/incoming/same.csv",
        False,
    )
    assert [c.path for c in monitoring.checks_against(project, [md5(profile)])] == [
        "data/incoming/same.csv",
        "data/incoming/batch.csv",
    ]
    assert monitoring.checks_against(project, [""]) == []


def test_a_directory_is_recorded_with_dvcs_tree_hash(project):
    parts = project.root / "data" / "parts"
    parts.mkdir()
    (parts / "a.csv").write_text(rows(500, 0, 4))
    (parts / "b.csv").write_text(rows(500, 0, 5))
    report, error = check_drift(project, settings_for(project, "data/parts", "data/ref.csv"))
    assert error is None and report.current_rows == 1000 and not report.drift
    (recorded,) = history(project, "data/parts")
    assert recorded.data_hash.endswith(".dir") and recorded.data_hash == dvc_add(project, "data/parts")


def test_a_check_can_be_left_unrecorded_or_recorded_with_its_run(project):
    settings = settings_for(project, "data/incoming/same.csv", "data/ref.csv")
    report, error = check_drift(project, settings, record=False)
    assert error is None and not report.drift and history(project) == []
    with RunStore(store_path(project)) as store:
        store.record_run(
            RunRecord(NewRun("abcdef012345", started=1.0), "failed", 2.0, [StageRecord("train", "failed")])
        )
    check_drift(project, settings, run_id="abcdef012345", stage="train")
    (recorded,) = history(project)
    assert (recorded.run_id, recorded.stage) == ("abcdef012345", "train")


def test_a_store_that_cannot_be_written_costs_the_record_not_the_verdict(project):
    path = store_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    junk = b"not an sqlite file\n" * 300
    path.write_bytes(junk)
    report, error = check_drift(project, settings_for(project, "data/incoming/batch.csv", "data/ref.csv"))
    assert report.drift
    assert error is not None and "\n" not in error
    assert error.startswith("the drift check was not recorded in the run store: ")
    assert path.read_bytes() == junk


def test_a_reference_or_current_dataset_that_is_not_there_is_a_usage_error(project):
    with pytest.raises(UsageError, match="^data/gone.csv: no such file or directory"):
        check_drift(project, settings_for(project, "data/incoming/batch.csv", "data/gone.csv"))
    with pytest.raises(UsageError, match="^data/incoming/gone.csv: no such file or directory"):
        check_drift(project, settings_for(project, "data/incoming/gone.csv", "data/ref.csv"))
    assert history(project) == []


def test_a_changed_file_is_recorded_with_its_new_hash(project):
    settings = settings_for(project, "data/incoming/same.csv", "data/ref.csv")
    check_drift(project, settings)
    same = project.root / "data" / "incoming" / "same.csv"
    same.write_text(rows(1500, 0, 8))
    check_drift(project, settings)
    first, second = history(project)
    assert first.data_hash != second.data_hash == md5(same) and second.rows == 1500


def commit_all(project, message: str) -> None:
    run(["git", "add", "-A"], cwd=project.root)
    run(["git", "commit", "-q", "-m", message], cwd=project.root)


def test_a_models_registered_profile_is_the_reference_name_at_version(project):
    from opsctl.core.registry import register_model

    profile_dataset(project, "data/ref.csv")
    (project.root / "models").mkdir()
    (project.root / "models" / "model.pkl").write_bytes(b"a model")
    dvc_add(project, "models/model.pkl")
    commit_all(project, "a model and its reference profile")
    registration = register_model(
        project, "churn", "models/model.pkl", profile="monitor/ref.profile.json", cwd=project.root
    )
    profile = project.root / "monitor" / "ref.profile.json"
    assert registration.version == "v0.0.1"
    report, error = check_drift(project, settings_for(project, "data/incoming/batch.csv", "churn@v0.0.1"))
    assert error is None and report.drift and report.reference == "churn@v0.0.1"
    profile_md5 = md5(profile)
    profile.unlink()  # not in the workspace: read from the commit it was registered at
    same, _ = check_drift(project, settings_for(project, "data/incoming/same.csv", "churn@v0.0.1"))
    assert not same.drift
    assert [(c.reference, c.reference_hash) for c in history(project)] == [("churn@v0.0.1", profile_md5)] * 2
    assert len(monitoring.checks_against(project, [profile_md5])) == 2
    with pytest.raises(UsageError, match="^churn has no version v9.0.0"):
        check_drift(project, settings_for(project, "data/incoming/same.csv", "churn@v9.0.0"))
