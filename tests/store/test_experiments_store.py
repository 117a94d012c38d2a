"""The experiments' tables in the run store (schema 6): a version-5 store is migrated and keeps
its runs; the queue's claims are exclusive across connections; a dead owner's entry goes back."""

from __future__ import annotations

import threading

from opsctl.store import LATEST_VERSION, RunStore
from opsctl.store.experiments import (
    QUEUED,
    RUNNING,
    NewEntry,
    claim_next,
    enqueue,
    experiments,
    groups,
    queue_entries,
    record_experiment,
    requeue_dead,
)
from tests.conftest import one_stage_run
from tests.store.conftest import old_store, tables_and_indexes


def test_a_version_5_store_is_migrated_keeps_its_runs_and_takes_experiments(tmp_path):
    db = old_store(tmp_path / "opsctl.db", 5, status="succeeded", stage=("train", "ran"))
    version, names = tables_and_indexes(db)
    assert version == 5 and "experiments" not in names and "exp_queue" not in names
    with RunStore(db) as store:
        detail = store.get_run("abcdef012345")
        assert detail.status == "succeeded" and [s.name for s in detail.stages] == ["train"]
        # the new tables work on the migrated store
        assert record_experiment(store, "abcdef012345", "g", "g-1", ["train.lr=1"], "0" * 40)
        assert [(e.run_id, e.group, e.overrides, e.git_ref) for e in experiments(store, "g")] == [
            ("abcdef012345", "g", ["train.lr=1"], "0" * 40)
        ]
        assert [g for g, _n, _t in groups(store)] == ["g"]
        queued = enqueue(store, [NewEntry("g2", "g2-1", ["train.lr=2"], "1" * 40)])
        assert [(e.name, e.status) for e in queued] == [("g2-1", QUEUED)]
    version, names = tables_and_indexes(db)
    assert version == LATEST_VERSION and {"experiments", "exp_queue"} <= names


def test_an_experiment_of_a_run_that_does_not_exist_is_not_recorded(store):
    assert not record_experiment(store, "nosuchrun000", "g", "g-1", [])
    store.record_run(one_stage_run("aaaaaaaaaaaa", 1.0, 1, params={"train.lr": 1}, metrics={"score": 1}))
    assert record_experiment(store, "aaaaaaaaaaaa", "g", "g-1", ["train.lr=1"])
    [exp] = experiments(store, "g")
    assert exp.params == {"train.lr": 1} and exp.metrics == {"score": 1}


def test_two_claimers_never_get_the_same_entry(tmp_path):
    db = tmp_path / ".opsctl" / "opsctl.db"
    with RunStore(db) as store:
        enqueue(store, [NewEntry("g", f"g-{i}", [f"a={i}"], "0" * 40) for i in range(120)])
    claimed: dict[int, list[int]] = {1: [], 2: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def claimer(pid: int) -> None:
        try:
            with RunStore(db) as own:  # a connection of its own, as another process has
                start.wait()
                while (entry := claim_next(own, "host", pid)) is not None:
                    claimed[pid].append(entry.qid)
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(pid,)) for pid in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    everything = claimed[1] + claimed[2]
    assert sorted(everything) == sorted(set(everything)), "an entry was claimed twice"
    assert len(everything) == 120
    with RunStore(db) as store:
        owners = {e.qid: (e.status, e.owner_pid) for e in queue_entries(store)}
    assert all(owners[q] == (RUNNING, 1) for q in claimed[1])
    assert all(owners[q] == (RUNNING, 2) for q in claimed[2])


def test_a_dead_owners_entry_goes_back_to_the_queue_and_a_live_ones_stays(store):
    enqueue(store, [NewEntry("g", "g-1", [], "0" * 40), NewEntry("g", "g-2", [], "0" * 40)])
    dead = claim_next(store, "h", 111)
    live = claim_next(store, "h", 222)
    assert dead is not None and live is not None
    assert claim_next(store, "h", 333) is None  # nothing left queued

    back = requeue_dead(store, lambda host, pid: pid == 222)
    assert back == [dead.qid]
    status = {e.qid: (e.status, e.owner_pid) for e in queue_entries(store)}
    assert status == {dead.qid: (QUEUED, None), live.qid: (RUNNING, 222)}
    again = claim_next(store, "h", 333)
    assert again is not None and again.qid == dead.qid


def test_an_entry_kept_for_a_dead_exp_run_becomes_anyones(store):
    enqueue(store, [NewEntry("g", "g-1", [], "0" * 40)], runner="h:4242")
    assert claim_next(store, "h", 1) is None  # kept for its `exp run`
    requeue_dead(store, lambda host, pid: False)
    entry = claim_next(store, "h", 1)
    assert entry is not None and entry.runner is None
