"""Data-check verdicts in the run store (store/validations.py), on real SQLite files: the
migration from schema 2 keeps every run, writes are one transaction, the three lookups
use their indexes, a run's deletion keeps its verdicts, and repair copies them."""

from __future__ import annotations

import sqlite3

import pytest

from opsctl.errors import StoreError
from opsctl.store import LATEST_VERSION, NewRun, RunRecord, RunStore, StageRecord, schema
from opsctl.store.repair import repair
from opsctl.store.validations import (
    ValidationRecord,
    add_validations,
    last_validations,
    passed_before,
    run_validations,
    verdict_of,
)
from tests.store.conftest import old_store, tables_and_indexes
from tests.store.test_damaged_store import garble, leaf_pages

FAILURE = {
    "check": "type",
    "column": "tenure",
    "count": 2,
    "detail": "",
    "examples": [{"row": 3, "value": "abc"}, {"row": 9, "value": "x"}],
}


def verdict(path="data/raw.csv", data_hash="d" * 32, checks_hash="c" * 16, *, passed=True, at=100.0, **kw):
    return ValidationRecord(
        path=path,
        data_hash=data_hash,
        checks_hash=checks_hash,
        passed=passed,
        rows=kw.pop("rows", 10),
        checks=kw.pop("checks", 4),
        failures=kw.pop("failures", [] if passed else [FAILURE]),
        at=at,
        **kw,
    )


def a_run(store: RunStore, run_id: str, started: float = 50.0) -> None:
    store.record_run(
        RunRecord(NewRun(run_id, started=started), "succeeded", started + 1, [StageRecord("prepare", "ran")])
    )


def test_verdicts_round_trip_with_their_run_and_stage(store):
    a_run(store, "abcdef012345")
    assert add_validations(
        store,
        [verdict(stage="prepare", duration=0.5), verdict("data/features.csv", passed=False, stage="featurize")],
        "abcdef012345",
    )
    got = run_validations(store, "abcdef012345")
    assert [(v.path, v.stage, v.passed, v.run_id, v.failures) for v in got] == [
        ("data/raw.csv", "prepare", True, "abcdef012345", []),
        ("data/features.csv", "featurize", False, "abcdef012345", [FAILURE]),
    ]
    assert got[0].duration == 0.5 and got[0].rows == 10 and got[0].checks == 4 and not got[0].cached
    assert run_validations(store, "0123456789ab") == []


def test_a_standalone_verdict_has_no_run_and_an_unknown_run_is_said(store):
    assert add_validations(store, [verdict()]) is True
    assert add_validations(store, [verdict(at=200.0)], "ffffffffffff") is False  # kept, without the run
    states = last_validations(store)
    assert states["data/raw.csv"].total == 2 and states["data/raw.csv"].last.run_id is None
    assert states["data/raw.csv"].last.at == 200.0


def test_passed_before_needs_both_hashes_and_a_pass(store):
    add_validations(store, [verdict(data_hash="a" * 32, passed=False), verdict(data_hash="", checks_hash="c" * 16)])
    assert passed_before(store, "a" * 32, "c" * 16) is None  # it failed
    assert passed_before(store, "", "c" * 16) is None and passed_before(store, None, "c" * 16) is None
    add_validations(store, [verdict(data_hash="a" * 32)])
    assert passed_before(store, "a" * 32, "c" * 16) is not None
    assert passed_before(store, "a" * 32, "e" * 16) is None  # other checks
    assert passed_before(store, "b" * 32, "c" * 16) is None  # other data


def test_last_verdict_per_path_and_by_version(store):
    add_validations(store, [verdict(data_hash="1" * 32, at=10.0), verdict("b.csv", at=5.0)])
    add_validations(store, [verdict(data_hash="2" * 32, passed=False, at=20.0)])
    states = last_validations(store)
    assert list(states) == ["b.csv", "data/raw.csv"]
    assert (states["data/raw.csv"].last.data_hash, states["data/raw.csv"].total) == ("2" * 32, 2)
    assert last_validations(store, ["b.csv", "nowhere.csv"]) == {"b.csv": states["b.csv"]}
    assert verdict_of(store, "data/raw.csv", "1" * 32).passed
    assert not verdict_of(store, "data/raw.csv", "2" * 32).passed
    assert verdict_of(store, "data/raw.csv", "3" * 32) is None and verdict_of(store, "data/raw.csv", None) is None


def test_the_lookups_are_index_searches(store):
    conn = store._connection()
    plans = {
        "cache": "SELECT 1 FROM validations WHERE data_hash = 'a' AND checks_hash = 'b' AND passed = 1 LIMIT 1",
        "path": "SELECT vid FROM validations WHERE path = 'p' ORDER BY at DESC, vid DESC LIMIT 1",
        "run": "SELECT vid FROM validations WHERE rid = 1 ORDER BY vid",
    }
    for name, sql in plans.items():
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING" in plan and "INDEX" in plan, (name, plan)


def test_several_verdicts_are_one_transaction(store):
    """A verdict that cannot be written takes the others with it: never half a validation."""
    bad = verdict("b.csv")._replace(at=None)  # NOT NULL
    with pytest.raises(StoreError):
        add_validations(store, [verdict("a.csv"), bad])
    assert last_validations(store) == {}


def test_an_interrupt_while_writing_leaves_no_verdict(store, monkeypatch):
    from opsctl.store import validations

    real = validations._row
    calls = []

    def interrupted(record):
        calls.append(record)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(record)

    monkeypatch.setattr(validations, "_row", interrupted)
    with pytest.raises(KeyboardInterrupt):
        add_validations(store, [verdict("a.csv"), verdict("b.csv")])
    monkeypatch.undo()
    assert last_validations(store) == {}
    add_validations(store, [verdict("a.csv")])  # the store is not left in a transaction
    assert list(last_validations(store)) == ["a.csv"]


def test_a_deleted_run_keeps_its_verdicts_as_standalone_ones(store):
    a_run(store, "abcdef012345")
    add_validations(store, [verdict(stage="prepare")], "abcdef012345")
    with store._write() as conn:
        conn.execute("DELETE FROM runs WHERE id = 'abcdef012345'")
    (state,) = last_validations(store).values()
    assert state.last.run_id is None and state.last.stage == "prepare" and state.last.passed


def test_a_version_2_store_is_migrated_with_its_runs_and_takes_verdicts(tmp_path):
    db = old_store(tmp_path / "opsctl.db", 2, status="succeeded", stage=("prepare", "ran"))
    with RunStore(db) as store:
        assert store.get_run("abcdef012345").stages[0].name == "prepare"
        add_validations(store, [verdict(stage="prepare")], "abcdef012345")
        assert [v.run_id for v in run_validations(store, "abcdef012345")] == ["abcdef012345"]
    version, names = tables_and_indexes(db)
    assert version == LATEST_VERSION == 7
    assert {"validations_by_path", "validations_by_hash", "validations_by_run"} <= names


def test_repair_copies_the_verdicts(tmp_path):
    db = tmp_path / "opsctl.db"
    with RunStore(db) as store:
        a_run(store, "abcdef012345")
        add_validations(store, [verdict(stage="prepare"), verdict("b.csv", passed=False)], "abcdef012345")
        for i in range(3000):  # enough runs for a damaged page among them
            a_run(store, f"{i:012x}", started=1000.0 + i)
    pages = leaf_pages(db, "runs")
    garble(db, pages[len(pages) // 2])
    report = repair(db)
    assert report.repaired and report.kept["validations"] == 2
    with RunStore(db) as store:
        got = run_validations(store, "abcdef012345")
        assert [(v.path, v.passed, v.stage, v.failures) for v in got] == [
            ("data/raw.csv", True, "prepare", []),
            ("b.csv", False, None, [FAILURE]),
        ]


def test_repair_of_a_version_2_store_has_no_verdicts_to_copy(tmp_path):
    db = tmp_path / "opsctl.db"
    conn = sqlite3.connect(db, isolation_level=None)
    schema.migrate(conn, target=2)
    conn.execute("BEGIN")
    for i in range(3000):
        conn.execute("INSERT INTO runs (id, started, status) VALUES (?, ?, 'succeeded')", (f"{i:012x}", i))
    conn.execute("COMMIT")
    conn.close()
    garble(db, leaf_pages(db, "runs")[5])
    report = repair(db)
    assert report.repaired and report.damaged == ["runs"]  # not "validations": it had none
    assert report.kept["validations"] == 0
    with RunStore(db) as store:
        assert last_validations(store) == {}
