"""core/check_records.py on a real Git + DVC project and a real run store: verdicts are
recorded with their run and stage, read back as they were given, cached by data hash and
checks hash, listed per dataset; a store that cannot be written costs the record, never
the validation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opsctl.core.check_records import (
    MAX_VALUE_CHARS,
    dataset_overview,
    passed_before,
    record_verdicts,
    run_verdicts,
)
from opsctl.core.checks import DatasetVerdict, Example, Failure
from opsctl.core.project import open_project
from opsctl.core.runs import store_path
from opsctl.errors import RunNotFoundError
from opsctl.store import NewRun, RunRecord, RunStore, StageRecord
from tests.conftest import git_dvc_project

RUN = "abcdef012345"
CHECKS = """\
project: demo
checks:
  data/raw.csv:
    rows: {min: 1}
    columns:
      tenure: {type: int, min: 0}
  data/features:
    format: parquet
"""


@pytest.fixture
def project(tmp_path):
    root = git_dvc_project(tmp_path / "p", "demo")
    (root / "opsctl.yaml").write_text(CHECKS)
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("tenure\n1\n")
    return open_project(root)


def a_run(project, run_id: str = RUN) -> None:
    with RunStore(store_path(project)) as store:
        store.record_run(RunRecord(NewRun(run_id, started=1.0), "failed", 2.0, [StageRecord("prepare", "failed")]))


def failing(path="data/raw.csv", data_hash="a" * 32, checks_hash="c" * 16) -> DatasetVerdict:
    return DatasetVerdict(
        path,
        data_hash,
        checks_hash,
        rows=10,
        checks=3,
        failures=[
            Failure("min", "tenure", 2, (Example(4, -1), Example(7, -3, "part-1.csv"))),
            Failure("rows", None, 10, detail="10 rows, more than rows.max 5"),
        ],
        duration=0.25,
    )


def passing(path="data/raw.csv", data_hash="b" * 32, checks_hash="c" * 16) -> DatasetVerdict:
    return DatasetVerdict(path, data_hash, checks_hash, rows=10, checks=3, duration=0.1)


def test_a_runs_verdicts_read_back_as_given(project):
    a_run(project)
    given = [passing(), failing("data/features", "f" * 29 + ".dir")]
    assert record_verdicts(project, given, run_id=RUN, stage="prepare") is None
    got = run_verdicts(project, RUN)
    assert [v.verdict() for v in got] == given  # the engine's dataclass, failures and examples included
    assert [(v.run_id, v.stage, v.passed, v.failed_checks) for v in got] == [
        (RUN, "prepare", True, 0),
        (RUN, "prepare", False, 2),
    ]
    assert run_verdicts(project, RUN[:6]) == got  # a unique prefix, as `opsctl runs show` takes
    json = got[1].as_json()
    assert {k: json[k] for k in ("path", "hash", "passed", "checks", "stage", "run")} == {
        "path": "data/features",
        "hash": "f" * 29 + ".dir",
        "passed": False,
        "checks": 3,
        "stage": "prepare",
        "run": RUN,
    }
    assert json["failures"] == [f.as_json() for f in given[1].failures]
    with pytest.raises(RunNotFoundError):
        run_verdicts(project, "0f0f0f")


def test_the_verdict_cache_matches_data_and_checks_hash_of_a_pass(project):
    root = project.root
    assert passed_before(project, "b" * 32, "c" * 16) is None
    assert not store_path(project).exists()  # asking did not create the store
    assert not (root / ".opsctl").exists()
    record_verdicts(project, [passing(), failing()])
    assert passed_before(project, "b" * 32, "c" * 16) is not None
    assert passed_before(project, "a" * 32, "c" * 16) is None  # that data failed
    assert passed_before(project, "b" * 32, "d" * 16) is None  # other checks
    assert passed_before(project, "", "c" * 16) is None and passed_before(project, None, "c" * 16) is None
    # an unknown hash is stored as unknown and never matches
    record_verdicts(project, [passing(data_hash=None)])
    assert passed_before(project, "", "c" * 16) is None
    assert dataset_overview(project)[0].last.hash is None


def test_a_store_that_cannot_be_written_costs_the_record_not_the_validation(project):
    path = store_path(project)
    path.parent.mkdir(parents=True)
    junk = b"not an sqlite file\n" * 300
    path.write_bytes(junk)
    error = record_verdicts(project, [failing()], run_id=RUN, stage="prepare")
    assert error is not None and "\n" not in error
    assert error.startswith("the data-check verdicts were not recorded: ") and str(path) in error
    assert "move the file aside" in error  # the store error's hint: what to do
    assert passed_before(project, "a" * 32, "c" * 16) is None  # a cache miss, not a crash
    assert path.read_bytes() == junk


def test_a_damaged_store_says_how_to_repair(project):
    a_run(project)
    path = store_path(project)
    conn = sqlite3.connect(path)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:  # garbage over every page but the header's
        for page in range(2, pages + 1):
            f.seek((page - 1) * 4096)
            f.write(b"\xff" * 4096)
    error = record_verdicts(project, [passing()])
    assert error is not None and "opsctl runs repair" in error


def test_verdicts_of_an_unknown_run_are_kept_without_it(project):
    error = record_verdicts(project, [passing()], run_id="feedfeedfeed", stage="prepare")
    assert error == "run feedfeedfeed is not in the run store: its data-check verdicts were recorded without it"
    (state, *_rest) = dataset_overview(project)
    assert state.last.run_id is None and state.last.stage == "prepare"


def test_an_interrupt_records_nothing(project, monkeypatch):
    from opsctl.store import validations

    real, seen = validations._row, []

    def interrupted(record):
        seen.append(record)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(record)

    monkeypatch.setattr(validations, "_row", interrupted)
    with pytest.raises(KeyboardInterrupt):
        record_verdicts(project, [passing(), failing()])
    monkeypatch.undo()
    assert all(state.last is None for state in dataset_overview(project))


def test_long_example_values_are_cut_and_odd_ones_stored_as_text(project):
    class Stamp:
        def __str__(self) -> str:
            return "2026-01-01 00:00:00"

    verdict = DatasetVerdict(
        "data/raw.csv",
        "a" * 32,
        "c" * 16,
        rows=1,
        checks=1,
        failures=[Failure("regex", "email", 2, (Example(1, "x" * 10_000), Example(2, Stamp())))],
    )
    assert record_verdicts(project, [verdict]) is None
    (example_1, example_2) = dataset_overview(project)[0].last.failures[0]["examples"]
    assert len(example_1["value"]) == MAX_VALUE_CHARS and example_1["value"].endswith("…")
    assert example_2["value"] == "2026-01-01 00:00:00"


def test_the_overview_lists_configured_datasets_then_past_ones(project):
    a_run(project)
    checks = project.config.checks
    record_verdicts(project, [failing(checks_hash=checks["data/raw.csv"].digest)])
    record_verdicts(project, [passing(checks_hash=checks["data/raw.csv"].digest)], run_id=RUN, stage="prepare")
    record_verdicts(project, [passing("data/old.csv")])
    overview = dataset_overview(project)
    assert [(d.path, d.configured, d.exists, d.verdicts) for d in overview] == [
        ("data/raw.csv", True, True, 2),
        ("data/features", True, False, 0),
        ("data/old.csv", False, False, 1),
    ]
    raw, features, old = overview
    assert raw.last.passed and raw.last.run_id == RUN and raw.last.stage == "prepare"  # the newest verdict
    assert raw.checks_hash == checks["data/raw.csv"].digest and not raw.checks_changed
    assert features.last is None and features.checks_hash == checks["data/features"].digest
    assert old.checks_hash is None and not old.checks_changed
    # the checks change: the last verdict was given against other checks
    Path(project.root / "opsctl.yaml").write_text(CHECKS.replace("min: 0", "min: 1"))
    assert dataset_overview(open_project(project.root))[0].checks_changed


def test_the_overview_of_a_project_without_a_store_creates_none(project):
    assert [d.last for d in dataset_overview(project)] == [None, None]
    assert not store_path(project).exists()
