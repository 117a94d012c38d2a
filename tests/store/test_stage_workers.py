"""Where each stage ran: a remote executor's worker and how many attempts it took,
recorded per stage (schema 5), read back with the run, and the newest worker per stage."""

from __future__ import annotations

import sqlite3

import pytest

from opsctl.store import LATEST_VERSION, NewRun, RunRecord, RunStore, StageRecord, schema
from opsctl.store.repair import repair
from opsctl.store.runs import LAST_WORKER_SQL
from tests.store.conftest import old_store, tables_and_indexes
from tests.store.test_damaged_store import garble, leaf_pages

W1, W2 = "tcp://127.0.0.1:40123", "tcp://10.0.0.7:39001"


def test_a_stages_worker_and_attempts_read_back_with_the_run(store):
    store.begin_run(NewRun("abcdef012345", started=1.0))
    store.record_stage("abcdef012345", StageRecord("prepare", "ran", started=2.0, worker=W1))
    store.record_stage("abcdef012345", StageRecord("train", "ran", started=3.0, worker=W2, attempts=2))
    store.record_stage("abcdef012345", StageRecord("report", "cached", started=4.0))
    store.finish_run("abcdef012345", "succeeded", 5.0, {}, {})
    stages = store.get_run("abcdef012345").stages
    assert [(s.name, s.worker, s.attempts) for s in stages] == [
        ("prepare", W1, 1),
        ("train", W2, 2),
        ("report", None, 1),
    ]


def test_a_whole_run_keeps_them_too(store):
    store.record_run(
        RunRecord(
            NewRun("abcdef012345", started=1.0), "failed", 2.0, [StageRecord("train", "failed", worker=W1, attempts=3)]
        )
    )
    (stage,) = store.get_run("abcdef012345").stages
    assert (stage.worker, stage.attempts) == (W1, 3)


@pytest.mark.parametrize("attempts", [0, -1, 1.5, None])
def test_attempts_below_one_are_refused(store, attempts):
    store.begin_run(NewRun("abcdef012345", started=1.0))
    with pytest.raises(ValueError, match="attempts must be a whole number from 1"):
        store.record_stage("abcdef012345", StageRecord("train", "ran", attempts=attempts))
    assert store.get_run("abcdef012345").stages == []


def test_a_version_4_store_is_migrated_and_its_stages_ran_on_this_host(tmp_path):
    db = old_store(tmp_path / "opsctl.db", 4, status="succeeded", stage=("train", "ran"))
    version, names = tables_and_indexes(db)
    assert version == 4 and "stages_by_name" not in names
    with RunStore(db) as store:
        (stage,) = store.get_run("abcdef012345").stages
        assert (stage.name, stage.outcome, stage.worker, stage.attempts) == ("train", "ran", None, 1)
        store.record_run(
            RunRecord(NewRun("0123456789ab", started=3.0), "succeeded", 4.0, [StageRecord("train", "ran", worker=W1)])
        )
        assert store.get_run("0123456789ab").stages[0].worker == W1
    version, names = tables_and_indexes(db)
    assert version == LATEST_VERSION and LATEST_VERSION >= 5
    assert "stages_by_name" in names


def test_repair_of_a_version_4_store_keeps_its_stages(tmp_path):
    db = tmp_path / "opsctl.db"
    conn = sqlite3.connect(db, isolation_level=None)
    schema.migrate(conn, target=4)
    conn.execute("BEGIN")
    for i in range(3000):  # enough runs for a damaged page among them
        conn.execute(
            "INSERT INTO runs (rid, id, started, status) VALUES (?, ?, ?, 'succeeded')", (i + 1, f"{i:012x}", i)
        )
        conn.execute("INSERT INTO stages (rid, name, outcome, started) VALUES (?, 'train', 'ran', ?)", (i + 1, i))
    conn.execute("COMMIT")
    conn.close()
    garble(db, leaf_pages(db, "runs")[5])
    report = repair(db)
    assert report.repaired and report.damaged == ["runs"]
    assert 0 < report.kept["stages"] == report.kept["runs"] < 3000
    with RunStore(db) as store:
        (stage,) = store.get_run(f"{2999:012x}").stages
        assert (stage.name, stage.worker, stage.attempts) == ("train", None, 1)


def _run(store, run_id, started, *stages):
    store.record_run(RunRecord(NewRun(run_id, started=started), "succeeded", started + 1, list(stages)))


def test_last_workers_are_where_each_stage_last_executed(store):
    _run(store, "aaaa00000001", 10.0, StageRecord("prepare", "ran", started=10.0, worker=W1))
    _run(
        store,
        "aaaa00000002",
        20.0,
        StageRecord("prepare", "cached", started=20.0),  # restored, not run: the worker before stands
        StageRecord("train", "failed", started=21.0, worker=W2, attempts=2),
        StageRecord("evaluate", "ran", started=22.0, worker=W1),
    )
    _run(store, "aaaa00000003", 30.0, StageRecord("evaluate", "ran", started=30.0))  # on this host
    _run(store, "aaaa00000004", 40.0, StageRecord("train", "skipped"))
    assert store.last_workers(["prepare", "train", "evaluate", "never"]) == {"prepare": W1, "train": W2}


def test_last_workers_read_one_index_entry_per_stage(store):
    with store._read() as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {LAST_WORKER_SQL}", ("train",)).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "USING INDEX stages_by_name" in details and "TEMP B-TREE" not in details
