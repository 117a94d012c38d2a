"""Drift checks in the run store (store/drift_checks.py), on real SQLite files: they read back
as written, with their run and stage; a dataset's history is oldest first; the checks made
against a reference are found by its hash; a run's deletion keeps its checks; repair copies
them; a version-3 store is migrated to take them."""

from __future__ import annotations

import sqlite3

import pytest

from opsctl.errors import StoreError
from opsctl.store import LATEST_VERSION, NewRun, RunRecord, RunStore, StageRecord, schema
from opsctl.store.drift_checks import (
    DriftRecord,
    add_drift_checks,
    checks_against,
    drift_history,
    drift_paths,
    run_drift_checks,
)
from opsctl.store.repair import repair
from tests.store.conftest import old_store, tables_and_indexes
from tests.store.test_damaged_store import garble, leaf_pages

COLUMNS = [
    {
        "column": "tenure",
        "kind": "numeric",
        "method": "wasserstein",
        "statistic": 0.42,
        "p_value": None,
        "threshold": 0.1,
        "drift": True,
        "compared": True,
        "detail": None,
    },
    {
        "column": "plan",
        "kind": "categorical",
        "method": "jensenshannon",
        "statistic": 0.01,
        "p_value": None,
        "threshold": 0.1,
        "drift": False,
        "compared": True,
        "detail": None,
    },
    {
        "column": "id",
        "kind": "categorical",
        "method": None,
        "statistic": None,
        "p_value": None,
        "threshold": None,
        "drift": False,
        "compared": False,
        "detail": "over 100,000 distinct values (an identifier, not a distribution)",
    },
]


def check(path="data/batch.csv", *, at=100.0, reference="monitor/churn.profile.json", reference_hash="r" * 32, **kw):
    return DriftRecord(
        path=path,
        data_hash=kw.pop("data_hash", "d" * 32),
        reference=reference,
        reference_hash=reference_hash,
        drift=kw.pop("drift", True),
        share=kw.pop("share", 0.5),
        threshold_share=kw.pop("threshold_share", 0.5),
        columns=kw.pop("columns", COLUMNS),
        rows=kw.pop("rows", 1000),
        at=at,
        **kw,
    )


def a_run(store: RunStore, run_id: str, started: float = 50.0) -> None:
    store.record_run(
        RunRecord(NewRun(run_id, started=started), "failed", started + 1, [StageRecord("train", "failed")])
    )


def test_a_runs_checks_read_back_as_written(store):
    a_run(store, "abcdef012345")
    written = [check(stage="train", duration=0.25, run_id="abcdef012345"), check("data/b.parquet", drift=False)]
    assert add_drift_checks(store, [written[0], written[1]._replace(run_id="abcdef012345")], "abcdef012345")
    got = run_drift_checks(store, "abcdef012345")
    assert got == [written[0], written[1]._replace(run_id="abcdef012345")]
    assert got[0].columns == COLUMNS and got[0].drifted == ["tenure"]
    assert (got[0].stage, got[0].duration, got[1].stage, got[1].duration) == ("train", 0.25, None, None)
    assert run_drift_checks(store, "0123456789ab") == []


def test_a_standalone_check_has_no_run_and_an_unknown_run_is_said(store):
    assert add_drift_checks(store, [check()]) is True
    assert add_drift_checks(store, [check(at=200.0)], "ffffffffffff") is False  # kept, without the run
    assert [(c.at, c.run_id) for c in drift_history(store)] == [(100.0, None), (200.0, None)]


def test_the_counts_of_compared_and_drifted_columns_are_stored(store):
    add_drift_checks(store, [check()])
    with store._read() as conn:
        row = conn.execute("SELECT n_columns, n_drifted, n_rows, drift, share FROM drift_checks").fetchone()
    assert tuple(row) == (2, 1, 1000, 1, 0.5)  # the identifier column was not compared


def test_history_is_oldest_first_per_dataset_and_keeps_the_newest_with_a_limit(store):
    add_drift_checks(store, [check(at=30.0), check("other.csv", at=10.0), check(at=20.0, drift=False)])
    add_drift_checks(store, [check(at=40.0, share=0.0, drift=False), check(at=20.0, data_hash="e" * 32)])
    history = drift_history(store, "data/batch.csv")
    assert [(c.at, c.drift) for c in history] == [(20.0, False), (20.0, True), (30.0, True), (40.0, False)]
    assert history[1].data_hash == "e" * 32  # the same time: in the order written
    assert [c.at for c in drift_history(store, "data/batch.csv", limit=2)] == [30.0, 40.0]
    assert [c.path for c in drift_history(store)] == [
        "other.csv",
        "data/batch.csv",
        "data/batch.csv",
        "data/batch.csv",
        "data/batch.csv",
    ]
    assert drift_history(store, "nowhere.csv") == []
    assert drift_paths(store) == ["data/batch.csv", "other.csv"]


def test_checks_against_a_reference_are_found_by_its_hash_newest_first(store):
    add_drift_checks(
        store,
        [
            check(at=1.0, reference_hash="a" * 32),
            check(at=3.0, reference_hash="a" * 32, reference="churn@v3"),
            check(at=2.0, reference_hash="b" * 32),
            check(at=4.0, reference_hash=""),
        ],
    )
    assert [(c.at, c.reference) for c in checks_against(store, ["a" * 32])] == [
        (3.0, "churn@v3"),
        (1.0, "monitor/churn.profile.json"),
    ]
    assert [c.at for c in checks_against(store, ["a" * 32, "b" * 32], limit=2)] == [3.0, 2.0]
    assert checks_against(store, []) == [] and checks_against(store, [""]) == []  # unknown hashes match nothing
    assert checks_against(store, ["c" * 32]) == []


def test_the_lookups_are_index_searches(store):
    conn = store._connection()
    plans = {
        "path": "SELECT did FROM drift_checks WHERE path = 'p' ORDER BY at DESC, did DESC LIMIT 5",
        "reference": "SELECT did FROM drift_checks WHERE reference_hash IN ('a', 'b') ORDER BY at DESC LIMIT 5",
        "run": "SELECT did FROM drift_checks WHERE rid = 1 ORDER BY did",
    }
    for name, sql in plans.items():
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "INDEX" in plan, (name, plan)


def test_several_checks_are_one_transaction(store):
    bad = check("b.csv")._replace(at=None)  # NOT NULL
    with pytest.raises(StoreError):
        add_drift_checks(store, [check("a.csv"), bad])
    assert drift_history(store) == []
    add_drift_checks(store, [check("a.csv")])  # the store is not left in a transaction
    assert drift_paths(store) == ["a.csv"]


def test_hand_damaged_columns_still_give_the_verdict(store):
    add_drift_checks(store, [check()])
    with store._write() as conn:
        conn.execute("UPDATE drift_checks SET columns = '{not json'")
    (got,) = drift_history(store)
    assert got.columns == [] and got.drift and got.share == 0.5
    with store._write() as conn:
        conn.execute("""UPDATE drift_checks SET columns = '[1, {"column": "a", "drift": true}]'""")
    assert drift_history(store)[0].columns == [{"column": "a", "drift": True}]


def test_a_deleted_run_keeps_its_checks_as_standalone_ones(store):
    a_run(store, "abcdef012345")
    add_drift_checks(store, [check(stage="train")], "abcdef012345")
    with store._write() as conn:
        conn.execute("DELETE FROM runs WHERE id = 'abcdef012345'")
    (got,) = drift_history(store)
    assert got.run_id is None and got.stage == "train" and got.drift
    assert run_drift_checks(store, "abcdef012345") == []


def test_a_version_3_store_is_migrated_with_its_runs_and_takes_checks(tmp_path):
    db = old_store(tmp_path / "opsctl.db", 3, status="failed", stage=("train", "failed"))
    assert "drift_checks" not in tables_and_indexes(db)[1]
    with RunStore(db) as store:
        assert store.get_run("abcdef012345").stages[0].name == "train"
        add_drift_checks(store, [check(stage="train")], "abcdef012345")
        assert [c.run_id for c in run_drift_checks(store, "abcdef012345")] == ["abcdef012345"]
    version, names = tables_and_indexes(db)
    assert version == LATEST_VERSION == 7
    assert {"drift_checks_by_path", "drift_checks_by_reference", "drift_checks_by_run"} <= names


def test_repair_copies_the_checks(tmp_path):
    db = tmp_path / "opsctl.db"
    with RunStore(db) as store:
        a_run(store, "abcdef012345")
        add_drift_checks(store, [check(stage="train"), check("b.csv", drift=False)], "abcdef012345")
        add_drift_checks(store, [check("c.csv", at=300.0)])
        for i in range(3000):  # enough runs for a damaged page among them
            a_run(store, f"{i:012x}", started=1000.0 + i)
    pages = leaf_pages(db, "runs")
    garble(db, pages[len(pages) // 2])
    report = repair(db)
    assert report.repaired and report.kept["drift_checks"] == 3
    with RunStore(db) as store:
        got = run_drift_checks(store, "abcdef012345")
        assert [(c.path, c.drift, c.stage, c.columns) for c in got] == [
            ("data/batch.csv", True, "train", COLUMNS),
            ("b.csv", False, None, COLUMNS),
        ]
        assert [c.path for c in drift_history(store, "c.csv")] == ["c.csv"]


def test_repair_of_a_version_3_store_has_no_checks_to_copy(tmp_path):
    db = tmp_path / "opsctl.db"
    conn = sqlite3.connect(db, isolation_level=None)
    schema.migrate(conn, target=3)
    conn.execute("BEGIN")
    for i in range(3000):
        conn.execute("INSERT INTO runs (id, started, status) VALUES (?, ?, 'succeeded')", (f"{i:012x}", i))
    conn.execute("COMMIT")
    conn.close()
    garble(db, leaf_pages(db, "runs")[5])
    report = repair(db)
    assert report.repaired and report.damaged == ["runs"] and report.kept["drift_checks"] == 0
    with RunStore(db) as store:
        assert drift_history(store) == [] and drift_paths(store) == []
