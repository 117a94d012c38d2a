"""The run store on real SQLite files: round trips, lookups, filters, sorting, lineage,
the reaper, migrations, and the stores it must refuse."""

from __future__ import annotations

import math
import sqlite3
import threading
import time

import pytest

from opsctl.errors import (
    AmbiguousRunError,
    OpsctlError,
    RunNotFoundError,
    StoreError,
    StoreVersionError,
    UsageError,
)
from opsctl.store import (
    LATEST_VERSION,
    ArtifactRecord,
    Filter,
    NewRun,
    RunDetail,
    RunRecord,
    RunStore,
    RunSummary,
    StageRecord,
    schema,
)
from opsctl.store import runs as runs_module
from opsctl.store.runs import CONTAINS_OP, PREFIX_OP


@pytest.fixture
def db(tmp_path):
    return tmp_path / ".opsctl" / "opsctl.db"


@pytest.fixture
def store(db):
    with RunStore(db) as s:
        yield s


def new_run(run_id: str, started: float, **kw) -> NewRun:
    defaults = dict(
        user="alice",
        host="box",
        pid=4242,
        git_commit="c0ffee" * 6 + "ab",
        branch="main",
        executor="local",
        jobs=2,
        targets=["train"],
    )
    return NewRun(id=run_id, started=started, **{**defaults, **kw})


def stage(name: str, outcome: str = "ran", started: float | None = None, **kw) -> StageRecord:
    return StageRecord(name=name, outcome=outcome, started=started, **kw)


def record(store, run_id, started, *, status="succeeded", duration=10.0, params=None, metrics=None, stages=(), **kw):
    store.record_run(
        RunRecord(new_run(run_id, started, **kw), status, started + duration, list(stages), params or {}, metrics or {})
    )


def ids(runs) -> list[str]:
    return [r.id for r in runs]


# -- round trips -----------------------------------------------------------------------

PARAMS = {
    "train.n_est": 50,
    "train.lr": 0.05,
    "train.ratio": 1.0,
    "train.optimizer": "adam",
    "train.shuffle": True,
    "train.seed": None,
    "train.layers": [64, 32],
    "train.extra": {"a": 1},
    "big": 2**70,
    "neg": -3,
    "text.unicode": "naïve – ✓",
    "looks.numeric": "50",
}
METRICS = {"accuracy": 0.93, "metrics.json:loss": 0.21, "nan_metric": math.nan, "inf_metric": math.inf, "epochs": 12}

PREP = StageRecord(
    name="prepare",
    outcome="ran",
    detail="",
    started=1001.0,
    duration=1.5,
    cmd="python src/prepare.py",
    image_ref="ghcr.io/acme/prep:1.0",
    image_id="sha256:" + "a" * 64,
    exit_code=0,
    log_path=".opsctl/runs/abcdef012345/prepare.log",
    artifacts=(
        ArtifactRecord("dep", "data/raw.csv", "11" * 16),
        ArtifactRecord("dep", "src/prepare.py", "22" * 16),
        ArtifactRecord("out", "data/prepared", "33" * 16 + ".dir"),
        ArtifactRecord("param", "params.yaml", '{"prepare.split": 0.2}'),
    ),
)
TRAIN = StageRecord(
    name="train",
    outcome="failed",
    detail="exit code 1",
    started=1003.0,
    duration=7.25,
    cmd="python src/train.py",
    image_ref="ghcr.io/acme/train:1.0",
    image_id=None,
    exit_code=1,
    log_path=".opsctl/runs/abcdef012345/train.log",
    artifacts=(ArtifactRecord("dep", "data/prepared", "33" * 16 + ".dir"), ArtifactRecord("out", "model.pkl", None)),
)
EVAL = StageRecord(name="evaluate", outcome="skipped", detail="train failed")


def _assert_full_run(detail, run_id="abcdef012345"):
    assert detail.id == run_id
    assert (detail.status, detail.started, detail.finished, detail.duration) == ("failed", 1000.0, 1012.5, 12.5)
    assert (detail.user, detail.host, detail.pid) == ("alice", "box", 4242)
    assert (detail.git_commit, detail.branch, detail.dirty, detail.diff_hash) == ("c" * 40, "dev", True, "d1ff" * 16)
    assert (detail.executor, detail.jobs, detail.targets) == ("docker", 4, ["train", "evaluate"])
    assert (detail.ran, detail.cached, detail.failed, detail.skipped) == (1, 0, 1, 1)
    # values keep their JSON types: an int stays an int, 1.0 stays a float, "50" stays a string
    params = dict(detail.params)
    assert params == PARAMS
    assert type(params["train.n_est"]) is int and type(params["train.ratio"]) is float
    assert type(params["big"]) is int and params["big"] == 2**70
    metrics = dict(detail.metrics)
    assert math.isnan(metrics.pop("nan_metric"))
    assert metrics == {k: v for k, v in METRICS.items() if k != "nan_metric"}
    assert detail.stages == [
        PREP,
        TRAIN,
        EVAL,  # never started: after those that did
    ]


def _full_new_run(run_id="abcdef012345"):
    return NewRun(
        id=run_id,
        started=1000.0,
        user="alice",
        host="box",
        pid=4242,
        git_commit="c" * 40,
        branch="dev",
        dirty=True,
        diff_hash="d1ff" * 16,
        executor="docker",
        jobs=4,
        targets=["train", "evaluate"],
    )


def test_a_run_recorded_as_it_happens_reads_back_whole(store):
    store.begin_run(_full_new_run())
    running = store.get_run("abcdef012345")
    assert (running.status, running.finished, running.duration, running.stages) == ("running", None, None, [])
    store.record_stage("abcdef012345", EVAL)  # recorded first, listed last (never started)
    store.record_stage("abcdef012345", TRAIN)
    store.record_stage("abcdef012345", PREP)
    live = store.list_runs()[0]
    assert (live.status, live.ran, live.failed, live.skipped) == ("running", 1, 1, 1)  # counts follow the stages
    store.finish_run("abcdef012345", "failed", 1012.5, PARAMS, METRICS)
    _assert_full_run(store.get_run("abcdef012345"))


def test_a_whole_run_in_one_call_reads_back_the_same(store):
    store.record_run(RunRecord(_full_new_run(), "failed", 1012.5, [EVAL, TRAIN, PREP], PARAMS, METRICS))
    _assert_full_run(store.get_run("abcdef012345"))


def test_a_new_store_is_created_with_its_directory_in_wal_mode_at_the_latest_version(db):
    assert not db.parent.exists()
    RunStore(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema.user_version(conn) == LATEST_VERSION == 7
    conn.close()


def test_record_runs_writes_all_or_nothing(store):
    good = RunRecord(new_run("aaaa00000001", 1.0), "succeeded", 2.0)
    dup = RunRecord(new_run("aaaa00000001", 3.0), "succeeded", 4.0)
    with pytest.raises(StoreError, match="already in the run store"):
        store.record_runs([good, RunRecord(new_run("aaaa00000002", 2.0), "succeeded", 3.0), dup])
    assert store.count_runs() == 0
    assert store.record_runs([good]) == 1
    assert ids(store.list_runs()) == ["aaaa00000001"]


def test_a_write_that_failed_leaves_no_trace_in_later_writes(store):
    """Key names first seen in a rolled-back transaction must not be remembered as stored."""
    first = RunRecord(new_run("aaaa00000001", 1.0), "succeeded", 2.0, params={"fresh.key": 1}, metrics={"m": 2})
    with pytest.raises(StoreError):
        store.record_runs([first, first])
    store.record_run(
        RunRecord(new_run("aaaa00000002", 1.0), "succeeded", 2.0, params={"other": 0, "fresh.key": 3}, metrics={"m": 4})
    )
    detail = store.get_run("aaaa00000002")
    assert (detail.params, detail.metrics) == ({"fresh.key": 3, "other": 0}, {"m": 4})
    assert ids(store.list_runs(filters=[Filter("params", "fresh.key", "=", 3)])) == ["aaaa00000002"]


def test_bad_writes_are_refused(store):
    store.begin_run(new_run("aaaa00000001", 1.0))
    with pytest.raises(StoreError, match="already in the run store"):
        store.begin_run(new_run("aaaa00000001", 2.0))
    store.record_stage("aaaa00000001", stage("train"))
    with pytest.raises(StoreError, match="already recorded"):
        store.record_stage("aaaa00000001", stage("train"))
    with pytest.raises(RunNotFoundError):
        store.record_stage("bbbb00000001", stage("train"))
    with pytest.raises(RunNotFoundError):
        store.finish_run("bbbb00000001", "succeeded", 2.0, {}, {})
    with pytest.raises(ValueError, match="status"):
        store.finish_run("aaaa00000001", "running", 2.0, {}, {})
    with pytest.raises(ValueError, match="outcome"):
        store.record_stage("aaaa00000001", stage("eval", outcome="done"))
    with pytest.raises(ValueError, match="kind"):
        store.record_stage("aaaa00000001", stage("eval", artifacts=[ArtifactRecord("input", "x", "1")]))
    with pytest.raises(ValueError, match="hex"):
        store.begin_run(new_run("Not-An-Id", 1.0))
    # the refused writes left nothing behind
    assert [s.name for s in store.get_run("aaaa00000001").stages] == ["train"]


def test_finishing_twice_keeps_the_second_call(store):
    store.begin_run(new_run("aaaa00000001", 1.0))
    store.finish_run("aaaa00000001", "interrupted", 2.0, {"a": 1, "b": 2}, {"m": 0.1})
    store.finish_run("aaaa00000001", "succeeded", 3.0, {"a": 5}, {"m": 0.9})
    detail = store.get_run("aaaa00000001")
    assert (detail.status, detail.finished, detail.params, detail.metrics) == ("succeeded", 3.0, {"a": 5}, {"m": 0.9})


# -- finding a run by id -----------------------------------------------------------------


def test_a_unique_prefix_finds_the_run(store):
    for run_id, started in [("abcd12345678", 1.0), ("abcd99999999", 2.0), ("ef0123456789", 3.0)]:
        record(store, run_id, started)
    assert store.get_run("ef01").id == "ef0123456789"
    assert store.get_run("  EF012 ").id == "ef0123456789"  # case and spaces as a user types them
    assert store.get_run("abcd1").id == "abcd12345678"
    assert store.get_run("abcd99999999").id == "abcd99999999"


def test_an_ambiguous_prefix_lists_candidates(store):
    for run_id, started in [("abcd12345678", 1.0), ("abcd99999999", 2.0), ("ef0123456789", 3.0)]:
        record(store, run_id, started)
    with pytest.raises(AmbiguousRunError) as info:
        store.get_run("abcd")
    assert info.value.candidates == ["abcd12345678", "abcd99999999"]
    assert "abcd12345678" in str(info.value) and "abcd99999999" in str(info.value)
    assert info.value.exit_code == 2 and isinstance(info.value, UsageError)


def test_many_matches_list_only_a_few(store):
    for i in range(8):
        record(store, f"abcd{i:08x}", float(i))
    with pytest.raises(AmbiguousRunError) as info:
        store.get_run("abcd")
    assert len(info.value.candidates) == 5
    assert "…" in str(info.value)


@pytest.mark.parametrize("ref", ["0123", "abc", "ab", "", "xyz!", "abcd123456789"])
def test_unknown_or_too_short_ids_are_not_found(store, ref):
    record(store, "abcd12345678", 1.0)
    with pytest.raises(RunNotFoundError) as info:
        store.get_run(ref)
    assert info.value.exit_code == 2
    assert info.value.hint


# -- listing, filters, sorting -------------------------------------------------------------


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """Six runs, one started per second; not every run has every param and metric.
    Shared by the tests that only read it (one store for the module keeps them fast)."""
    with RunStore(tmp_path_factory.mktemp("populated") / "opsctl.db") as store:
        yield _populate(store)


def _populate(store):
    rows = [
        # id, started, status, params, metrics, duration
        ("000000000001", 1.0, "succeeded", {"n": 10, "opt": "adam", "lr": 0.1}, {"acc": 0.70, "loss": 0.9}, 5.0),
        ("000000000002", 2.0, "failed", {"n": 50, "opt": "sgd"}, {"acc": 0.95}, 30.0),
        ("000000000003", 3.0, "succeeded", {"n": 30, "opt": "adam", "lr": 0.01}, {"acc": 0.80, "loss": 0.5}, 1.0),
        ("000000000004", 4.0, "interrupted", {"opt": "rmsprop"}, {}, 2.0),
        ("000000000005", 5.0, "succeeded", {"n": 50.0, "opt": "adam", "lr": 0.3}, {"acc": 0.80, "loss": 0.4}, 8.0),
    ]
    for run_id, started, status, params, metrics, duration in rows:
        record(
            store,
            run_id,
            started,
            status=status,
            params=params,
            metrics=metrics,
            duration=duration,
            branch="dev" if run_id == "000000000003" else "main",
        )
    store.begin_run(new_run("000000000006", 6.0))  # still running: no duration, no values
    return store


def test_newest_first_by_default_and_oldest_first_on_request(populated):
    assert ids(populated.list_runs()) == [f"00000000000{i}" for i in (6, 5, 4, 3, 2, 1)]
    assert ids(populated.list_runs(descending=False)) == [f"00000000000{i}" for i in (1, 2, 3, 4, 5, 6)]
    assert ids(populated.list_runs(limit=2, offset=1)) == ["000000000005", "000000000004"]
    assert populated.list_runs(limit=0) == []
    assert populated.count_runs() == 6


def test_summaries_carry_what_the_list_shows(populated):
    run = populated.list_runs(limit=1, offset=4)[0]
    assert run == RunSummary(
        id="000000000002",
        status="failed",
        started=2.0,
        finished=32.0,
        duration=30.0,
        git_commit="c0ffee" * 6 + "ab",
        dirty=False,
        branch="main",
        ran=0,
        cached=0,
        failed=0,
        skipped=0,
        metrics={"acc": 0.95},
    )
    assert populated.list_runs(limit=1, offset=1, metric_keys=["loss", "nope"])[0].metrics == {"loss": 0.4}
    assert populated.list_runs(limit=1, offset=1, metric_keys=[])[0].metrics == {}


@pytest.mark.parametrize(
    ("status", "expected"),
    [("succeeded", [5, 3, 1]), ("running", [6]), (["failed", "interrupted"], [4, 2]), ([], [])],
)
def test_status_filter(populated, strategy, status, expected):
    assert ids(populated.list_runs(status=status)) == [f"00000000000{i}" for i in expected]
    assert populated.count_runs(status=status) == len(expected)


@pytest.fixture(params=["chosen", "listed", "checked", "all broad"])
def strategy(request, monkeypatch):
    """Filters run in different ways: a params/metrics filter's runs listed first from the
    value index (when few match), or each run checked in listing order (when many match);
    a status from its index, or checked along the sort's order (a common status). The
    store picks per query; forced each way, the answers must be the same."""
    if request.param == "listed":
        monkeypatch.setattr(runs_module, "_IN_COST", 0.0)
    elif request.param == "checked":
        monkeypatch.setattr(runs_module, "_IN_COST", math.inf)
    elif request.param == "all broad":  # every filter and status counts as matching many runs
        monkeypatch.setattr(runs_module, "_COUNT_CAP", 1)
    return request.param


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter("params", "n", ">", 20), [5, 3, 2]),
        (Filter("params", "n", ">=", 50), [5, 2]),
        (Filter("params", "n", "=", 50), [5, 2]),  # 50 and 50.0 are the same number
        (Filter("params", "n", "<", 30), [1]),
        (Filter("params", "n", "<=", 30.0), [3, 1]),
        (Filter("params", "n", "!=", 50), [3, 1]),  # runs without n match nothing, != included
        (Filter("params", "lr", "<", 0.2), [3, 1]),
        (Filter("params", "opt", "=", "adam"), [5, 3, 1]),
        (Filter("params", "opt", "!=", "adam"), [4, 2]),
        (Filter("params", "opt", ">", "r"), [4, 2]),  # strings compare as strings
        (Filter("metrics", "acc", ">=", 0.8), [5, 3, 2]),
        (Filter("metrics", "acc", "=", 0.8), [5, 3]),
        (Filter("metrics", "loss", "<", 0.6), [5, 3]),
        (Filter("metrics", "nope", ">", 0), []),  # a key no run has
        (Filter("params", "n", "=", "50"), []),  # the string "50" is not the number 50
        (Filter("status", "", "=", "succeeded"), [5, 3, 1]),
        (Filter("branch", None, "=", "dev"), [3]),
        (Filter("duration", None, ">", 6), [5, 2]),
    ],
)
def test_filters(populated, strategy, flt, expected):
    assert ids(populated.list_runs(filters=[flt])) == [f"00000000000{i}" for i in expected]
    assert populated.count_runs(filters=[flt]) == len(expected)


def test_filters_combine_with_each_other_and_the_status(populated, strategy):
    both = [Filter("params", "opt", "=", "adam"), Filter("metrics", "acc", ">", 0.75)]
    assert ids(populated.list_runs(filters=both)) == ["000000000005", "000000000003"]
    assert ids(populated.list_runs(status="succeeded", filters=[Filter("params", "n", "<", 40)])) == [
        "000000000003",
        "000000000001",
    ]
    assert populated.count_runs(status="failed", filters=both) == 0


def test_filters_on_booleans_and_lists_compare_json(store, strategy):
    record(store, "000000000001", 1.0, params={"shuffle": True, "layers": [64, 32]})
    record(store, "000000000002", 2.0, params={"shuffle": False, "layers": [64]})
    assert ids(store.list_runs(filters=[Filter("params", "shuffle", "=", True)])) == ["000000000001"]
    assert ids(store.list_runs(filters=[Filter("params", "layers", "=", [64])])) == ["000000000002"]
    # a boolean is not the number 1
    assert store.list_runs(filters=[Filter("params", "shuffle", "=", 1)]) == []


@pytest.mark.parametrize(
    "bad",
    [Filter("params", "n", "~", 1), Filter("params", "", "=", 1), Filter("colour", None, "=", "red")],
)
def test_meaningless_filters_are_usage_errors(populated, bad):
    with pytest.raises(UsageError):
        populated.list_runs(filters=[bad])
    with pytest.raises(UsageError):
        populated.count_runs(filters=[bad])


def test_unknown_status_and_sort_are_usage_errors(populated):
    with pytest.raises(UsageError, match="status"):
        populated.list_runs(status="done")
    for sort in ("colour", "metrics.", "params"):
        with pytest.raises(UsageError, match="sort"):
            populated.list_runs(sort=sort)
        with pytest.raises(UsageError, match="sort"):  # even when nothing would match
            populated.list_runs(sort=sort, filters=[Filter("params", "nope", "=", 1)])


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        # equal values (acc 0.8 in runs 3 and 5): the later recorded first when descending
        ("metrics.acc", True, [2, 5, 3, 1, 6, 4]),
        ("metrics.acc", False, [1, 3, 5, 2, 6, 4]),  # lacking the key: last, newest first, either way
        ("metrics.loss", False, [5, 3, 1, 6, 4, 2]),
        ("params.n", True, [5, 2, 3, 1, 6, 4]),
        ("params.opt", True, [2, 4, 5, 3, 1, 6]),  # strings sort as strings
        ("params.opt", False, [1, 3, 5, 4, 2, 6]),
        ("params.nope", True, [6, 5, 4, 3, 2, 1]),  # no run has it: newest first
        ("duration", True, [2, 5, 1, 4, 3, 6]),  # the running run has none: last
        ("duration", False, [3, 4, 1, 5, 2, 6]),
        ("started", False, [1, 2, 3, 4, 5, 6]),
        ("finished", True, [2, 5, 4, 1, 3, 6]),
    ],
)
def test_sorting(populated, sort, descending, expected):
    expected_ids = [f"00000000000{i}" for i in expected]
    assert ids(populated.list_runs(sort=sort, descending=descending)) == expected_ids
    # paging walks the same order, across the runs with and without the value
    for limit in (1, 2, 4):
        paged = []
        for offset in range(0, 7, limit):
            paged += ids(populated.list_runs(sort=sort, descending=descending, limit=limit, offset=offset))
        assert paged == expected_ids


def test_sorting_with_filters(populated, strategy):
    runs = populated.list_runs(
        sort="metrics.loss", descending=False, filters=[Filter("params", "opt", "=", "adam")], status="succeeded"
    )
    assert ids(runs) == ["000000000005", "000000000003", "000000000001"]
    runs = populated.list_runs(sort="metrics.loss", status="failed")
    assert ids(runs) == ["000000000002"]


# -- previous run, lineage ------------------------------------------------------------------


def test_previous_run_is_the_last_finished_one_on_the_same_branch(populated):
    prev = populated.previous_run("000000000005", "main")
    assert prev.id == "000000000004" and prev.status == "interrupted"
    assert populated.previous_run("000000000005", "main", status="succeeded").id == "000000000001"
    assert populated.previous_run("000000000006", "main").id == "000000000005"  # running runs can look back
    assert populated.previous_run("000000000005", "dev").id == "000000000003"  # another branch, when asked
    assert populated.previous_run("000000000001", "main") is None
    assert populated.previous_run("000000000002", "main").metrics == {"acc": 0.7, "loss": 0.9}  # for deltas
    with pytest.raises(RunNotFoundError):
        populated.previous_run("0000000000ff", "main")


def test_previous_run_never_picks_a_running_run_or_the_run_itself(store):
    record(store, "000000000001", 1.0, branch=None)
    store.begin_run(new_run("000000000002", 2.0, branch=None))
    record(store, "000000000003", 3.0, branch=None)
    record(store, "000000000004", 3.0, branch=None)  # the same start time: recorded later
    assert store.previous_run("000000000004", None).id == "000000000003"
    assert store.previous_run("000000000003", None).id == "000000000001"
    assert store.previous_run("000000000001", None) is None


def test_producers_are_the_stages_that_output_a_path(store):
    model = lambda digest: ArtifactRecord("out", "models/model.pkl", digest)  # noqa: E731
    record(store, "000000000001", 1.0, stages=[stage("train", artifacts=[model("h1")])])
    record(
        store,
        "000000000002",
        2.0,
        stages=[
            stage("train", artifacts=[model("h2"), ArtifactRecord("dep", "data/train.csv", "d1")]),
            stage("evaluate", artifacts=[ArtifactRecord("dep", "models/model.pkl", "h2")]),  # reads it: not a producer
        ],
    )
    record(store, "000000000003", 3.0, stages=[stage("train", outcome="cached", artifacts=[model("h1")])])
    assert store.producers("models/model.pkl") == [
        ("000000000003", "train", 3.0),
        ("000000000002", "train", 2.0),
        ("000000000001", "train", 1.0),
    ]
    assert [p.run_id for p in store.producers("models/model.pkl", "h1")] == ["000000000003", "000000000001"]
    assert store.producers("models/model.pkl", "h3") == []
    assert store.producers("data/train.csv") == []
    assert store.producers("models") == []  # paths match whole, never as prefixes
    assert store.producers("models/model.pkl", before=2.5) == [
        ("000000000002", "train", 2.0),
        ("000000000001", "train", 1.0),
    ]
    assert store.producers("models/model.pkl", limit=1) == [("000000000003", "train", 3.0)]


def test_one_object_version_is_stored_once(store, db):
    shared = ArtifactRecord("dep", "data/raw.csv", "r" * 32)
    for i in range(1, 4):
        record(store, f"00000000000{i}", float(i), stages=[stage("prep", artifacts=[shared])])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM objects").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 3
    conn.close()


# -- reaping runs left running ---------------------------------------------------------------


def test_reap_marks_runs_of_dead_processes_interrupted(store):
    store.begin_run(new_run("000000000001", 1.0, host="box", pid=100))  # dead
    store.record_stage("000000000001", stage("prep", outcome="ran"))
    store.record_stage("000000000001", stage("train", outcome="cached"))
    store.begin_run(new_run("000000000002", 2.0, host="box", pid=200))  # alive
    store.begin_run(new_run("000000000003", 3.0, host="other", pid=100))  # another host: the caller says alive
    store.begin_run(new_run("000000000004", 4.0, host="box", pid=None))  # can't be checked: left alone
    record(store, "000000000005", 5.0, host="box", pid=100)  # finished already
    asked = []

    def alive(host, pid):
        asked.append((host, pid))
        return not (host == "box" and pid == 100)

    before = time.time()
    assert store.reap_dead_runs(alive) == ["000000000001"]
    assert sorted(asked) == [("box", 100), ("box", 200), ("other", 100)]
    reaped = store.get_run("000000000001")
    assert reaped.status == "interrupted"
    assert before <= reaped.finished <= time.time()
    assert (reaped.ran, reaped.cached) == (1, 1)
    assert [r.status for r in store.list_runs(descending=False)] == [
        "interrupted",
        "running",
        "running",
        "running",
        "succeeded",
    ]
    assert store.reap_dead_runs(alive) == []


# -- the store file: migrations, newer versions, damage ------------------------------------------


def _v1_store(db):
    """A store as opsctl with schema 1 wrote it: its tables, no indexes, a run in them."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    assert schema.migrate(conn, target=1) == 0
    assert schema.user_version(conn) == 1
    x = conn.execute
    x("BEGIN")
    x(
        "INSERT INTO runs (rid, id, started, finished, status, user, host, pid, git_commit, branch, dirty, executor, "
        "jobs, targets, n_ran) VALUES (1, 'abcdef012345', 10, 20, 'succeeded', 'bob', 'box', 7, 'c1', 'main', 0, "
        "'local', 1, '[\"train\"]', 1)"
    )
    x("INSERT INTO runs (rid, id, started, status) VALUES (2, 'abcdef999999', 30, 'running')")
    x(
        "INSERT INTO stages (sid, rid, name, outcome, started, duration, cmd) "
        "VALUES (1, 1, 'train', 'ran', 11, 8, 'python train.py')"
    )
    x("INSERT INTO objects (oid, path, hash) VALUES (1, 'model.pkl', 'm1'), (2, 'data.csv', 'd1')")
    x("INSERT INTO artifacts (sid, kind, oid) VALUES (1, 'out', 1), (1, 'dep', 2)")
    x("INSERT INTO names (kid, name) VALUES (1, 'train.n_est'), (2, 'acc')")
    x("INSERT INTO params (rid, kid, num, value) VALUES (1, 1, 50, NULL)")
    x("INSERT INTO metrics (rid, kid, num, value) VALUES (1, 2, 0.9, NULL)")
    x("COMMIT")
    conn.close()


def _indexes(db) -> set[str]:
    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    conn.close()
    return names


def test_a_version_1_store_is_migrated_and_keeps_its_runs(db):
    _v1_store(db)
    assert _indexes(db) == set()
    with RunStore(db) as store:
        detail = store.get_run("abcdef01")
        assert (detail.user, detail.params, detail.metrics, detail.targets) == (
            "bob",
            {"train.n_est": 50},
            {"acc": 0.9},
            ["train"],
        )
        assert [(s.name, s.cmd, [(a.kind, a.path, a.hash) for a in s.artifacts]) for s in detail.stages] == [
            ("train", "python train.py", [("dep", "data.csv", "d1"), ("out", "model.pkl", "m1")])
        ]
        assert ids(store.list_runs(filters=[Filter("params", "train.n_est", ">", 10)], sort="metrics.acc")) == [
            "abcdef012345"
        ]
        assert store.producers("model.pkl", "m1") == [("abcdef012345", "train", 10.0)]
        # the migrated store takes new runs with the names it already has
        record(store, "0123456789ab", 40.0, params={"train.n_est": 70})
        assert ids(store.list_runs(sort="params.train.n_est")) == ["0123456789ab", "abcdef012345", "abcdef999999"]
    conn = sqlite3.connect(db)
    assert schema.user_version(conn) == LATEST_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert {
        "runs_by_started",
        "runs_by_status",
        "params_by_value",
        "metrics_by_value",
        "artifacts_by_object",
    } <= _indexes(db)


def test_migrating_twice_is_a_no_op(db):
    _v1_store(db)
    RunStore(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    assert schema.migrate(conn) == LATEST_VERSION  # the version it had
    assert schema.user_version(conn) == LATEST_VERSION
    with pytest.raises(ValueError):
        schema.migrate(conn, target=LATEST_VERSION + 1)
    conn.close()


def test_a_store_from_a_newer_opsctl_is_refused_and_left_untouched(db):
    with RunStore(db) as store:
        record(store, "abcdef012345", 1.0)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    with pytest.raises(StoreVersionError) as info:
        RunStore(db)
    error = info.value
    assert str(error) == (
        f"the run store {db} was written by a newer opsctl (schema {LATEST_VERSION + 1}; this opsctl knows up to {LATEST_VERSION})"
    )
    assert "upgrade" in error.hint
    assert isinstance(error, StoreError) and isinstance(error, OpsctlError) and error.exit_code == 1
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before


def test_migrate_refuses_a_newer_store_too(db):
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA user_version = 9")
    with pytest.raises(StoreVersionError, match="schema 9"):
        schema.migrate(conn)
    assert not conn.in_transaction
    conn.close()


def test_a_file_that_is_not_a_database_is_a_store_error(db):
    db.parent.mkdir(parents=True)
    junk = b"this is not an SQLite database\n" * 200
    db.write_bytes(junk)
    with pytest.raises(StoreError) as info:
        RunStore(db)
    assert "is not a run store" in str(info.value) and str(db) in str(info.value)
    assert info.value.hint
    assert db.read_bytes() == junk


def test_a_damaged_store_is_a_store_error(db):
    with RunStore(db) as store:
        store.record_runs(
            RunRecord(new_run(f"{i:012x}", float(i)), "succeeded", i + 1.0, [stage("s", cmd="x" * 200)], {"p": i})
            for i in range(300)
        )
    data = bytearray(db.read_bytes())
    data[4096 * 2 :] = b"\xff" * (len(data) - 4096 * 2)  # every page after the second: garbage
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged|not a run store"):
        with RunStore(db) as store:
            store.list_runs(limit=500)
            store.get_run("00000000012b")


def test_a_closed_store_says_so(store):
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()


def test_one_store_can_be_shared_by_threads(store):
    errors = []

    def work(n):
        try:
            for i in range(25):
                record(store, f"{n:04x}{i:08x}", n * 100 + i, metrics={"m": i})
                store.list_runs(limit=5)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_runs() == 100


# -- the dashboard's search and column sorts ---------------------------------------------


def test_text_search_matches_a_prefix_of_the_id_commit_or_branch(store):
    record(store, "aaaa00000001", 1.0, git_commit="f00d" + "0" * 36, branch="main")
    record(store, "bbbb00000002", 2.0, git_commit="beef" + "0" * 36, branch="feature_x")
    record(store, "cccc00000003", 3.0, git_commit="cafe" + "0" * 36, branch="featureYx")

    def search(text):
        return ids(store.list_runs(filters=[Filter("text", None, PREFIX_OP, text)]))

    assert search("aaaa") == ["aaaa00000001"]
    assert search("beef") == ["bbbb00000002"]
    assert search("feature") == ["cccc00000003", "bbbb00000002"]
    assert search("feature_") == ["bbbb00000002"]  # "_" is taken literally, not as LIKE's any-character
    assert search("%") == []
    assert search("zzz") == []
    assert store.count_runs(filters=[Filter("text", None, PREFIX_OP, "feature")]) == 2
    assert ids(store.list_runs(filters=[Filter("branch", None, PREFIX_OP, "ma")])) == ["aaaa00000001"]


def test_text_search_can_match_anywhere_in_the_id_commit_or_branch(store):
    record(store, "aaaa00000001", 1.0, git_commit="f00d" + "0" * 36, branch="main")
    record(store, "bbbb00000002", 2.0, git_commit="beef" + "0" * 36, branch="feature_exp")
    record(store, "cccc00000003", 3.0, git_commit="ca" + "fe" * 19, branch="exp-2")

    def search(text):
        return ids(store.list_runs(filters=[Filter("text", None, CONTAINS_OP, text)]))

    assert search("exp") == ["cccc00000003", "bbbb00000002"]
    assert search("0000000") == ["cccc00000003", "bbbb00000002", "aaaa00000001"]  # in every id
    assert search("efef") == ["cccc00000003"]  # inside the commit
    assert search("f_a") == [] and search("e%") == []  # LIKE's own characters taken literally
    assert search("e_e") == ["bbbb00000002"]
    assert store.count_runs(filters=[Filter("text", None, CONTAINS_OP, "exp")]) == 2
    assert ids(store.list_runs(filters=[Filter("branch", None, CONTAINS_OP, "ai")])) == ["aaaa00000001"]


def test_starts_with_and_contains_are_refused_on_params_and_text_takes_only_them(store):
    with pytest.raises(UsageError, match="starts with"):
        store.list_runs(filters=[Filter("params", "n", PREFIX_OP, "1")])
    with pytest.raises(UsageError, match="contains"):
        store.list_runs(filters=[Filter("metrics", "n", CONTAINS_OP, "1")])
    with pytest.raises(UsageError, match="text filter"):
        store.list_runs(filters=[Filter("text", None, "=", "a")])


@pytest.mark.parametrize(
    "sort, descending, expected",
    [
        (
            "status",
            False,
            ["000000000002", "000000000004", "000000000006", "000000000001", "000000000003", "000000000005"],
        ),
        (
            "branch",
            True,
            ["000000000006", "000000000005", "000000000004", "000000000002", "000000000001", "000000000003"],
        ),
        ("id", True, ["000000000006", "000000000005", "000000000004", "000000000003", "000000000002", "000000000001"]),
    ],
)
def test_sorting_by_run_columns(populated, sort, descending, expected):
    assert ids(populated.list_runs(sort=sort, descending=descending)) == expected


def test_a_run_detail_starts_with_a_run_summary_field_for_field():
    """get_run builds a RunDetail from a RunSummary's values followed by the detail's own."""
    assert RunDetail._fields[: len(RunSummary._fields)] == RunSummary._fields
    assert RunDetail.__annotations__ | RunSummary.__annotations__ == RunDetail.__annotations__
