"""Experiments and their durable queue in the run store (schema migration 6).

An experiment is a run (``runs``) with a row in ``experiments``: its group (the sweep), its
name, the ``-S`` values that made it and the Git commit holding its files. The queue
(``exp_queue``) holds experiments not run yet. Every change to an entry is one
``BEGIN IMMEDIATE`` transaction, so two runner processes never claim the same entry, and
an entry whose process died is found by the next runner (:func:`requeue_dead`).
Functions take a :class:`~opsctl.store.runs.RunStore` and use its transactions, as
store/validations.py does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from opsctl.store.runs import RunStore, rid_of

QUEUED, RUNNING = "queued", "running"
_QUEUE_COLUMNS = (
    "qid, grp, name, overrides, base, branch, executor, queued, status, runner, owner_host, owner_pid, run_id"
)


class QueueEntry(NamedTuple):
    qid: int
    group: str
    name: str
    overrides: list[str]  # "[FILE:]KEY=VALUE", as `opsctl run -S` takes them
    base: str  # the commit of the work tree snapshot the experiment starts from
    branch: str | None  # the branch checked out when it was queued (recorded as its run's)
    executor: str | None
    queued: float
    status: str  # queued | running
    runner: str | None  # "host:pid" of the `exp run` that queued it for itself; None: any runner
    owner_host: str | None  # the process running it (while running)
    owner_pid: int | None
    run_id: str | None  # the run it became, once started


class NewEntry(NamedTuple):
    group: str
    name: str
    overrides: Sequence[str]
    base: str
    executor: str | None = None
    branch: str | None = None


class Experiment(NamedTuple):
    """A recorded experiment: the run's summary fields an experiment table shows."""

    run_id: str
    group: str
    name: str
    overrides: list[str]
    git_ref: str | None
    base: str | None  # the commit of the work tree it started from (its snapshot)
    status: str
    started: float
    finished: float | None
    params: dict[str, object]
    metrics: dict[str, object]


def _entry(row: Sequence) -> QueueEntry:
    values = list(row)
    values[3] = json.loads(values[3])
    return QueueEntry._make(values)


# -- the queue ----------------------------------------------------------------------------


def enqueue(store: RunStore, entries: Sequence[NewEntry], runner: str | None = None) -> list[QueueEntry]:
    """Add entries (one transaction: all or none), in order; return them with their ids."""
    now = time.time()
    with store._write() as conn:
        qids = []
        for e in entries:
            cur = conn.execute(
                "INSERT INTO exp_queue (grp, name, overrides, base, branch, executor, queued, runner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (e.group, e.name, json.dumps(list(e.overrides)), e.base, e.branch, e.executor, now, runner),
            )
            qids.append(cur.lastrowid)
        marks = ", ".join("?" for _ in qids)
        rows = conn.execute(f"SELECT {_QUEUE_COLUMNS} FROM exp_queue WHERE qid IN ({marks}) ORDER BY qid", qids)
        return [_entry(r) for r in rows]


def queue_entries(store: RunStore, *, runner: str | None = None) -> list[QueueEntry]:
    """The queue, oldest first; with ``runner``, only the entries that runner queued for itself."""
    where, args = ("WHERE runner = ?", (runner,)) if runner is not None else ("", ())
    with store._read() as conn:
        return [_entry(r) for r in conn.execute(f"SELECT {_QUEUE_COLUMNS} FROM exp_queue {where} ORDER BY qid", args)]


def requeue_dead(store: RunStore, alive: Callable[[str, int], bool]) -> list[int]:
    """Entries left ``running`` by a process that is gone go back to the queue; entries an
    `exp run` queued for itself become anyone's when that process is gone. ``alive(host,
    pid)`` is called outside any transaction. Returns the ids put back."""
    with store._read() as conn:
        rows = conn.execute("SELECT qid, status, runner, owner_host, owner_pid FROM exp_queue").fetchall()
    dead_owner = [q for q, status, _r, host, pid in rows if status == RUNNING and pid and not alive(host or "", pid)]
    dead_runner = [q for q, _s, runner, _h, _p in rows if runner and not _runner_alive(runner, alive)]
    if not dead_owner and not dead_runner:
        return []
    with store._write() as conn:
        for qid in dead_owner:
            conn.execute(
                "UPDATE exp_queue SET status = ?, owner_host = NULL, owner_pid = NULL WHERE qid = ? AND status = ?",
                (QUEUED, qid, RUNNING),
            )
        for qid in dead_runner:
            conn.execute("UPDATE exp_queue SET runner = NULL WHERE qid = ?", (qid,))
    return dead_owner


def _runner_alive(runner: str, alive: Callable[[str, int], bool]) -> bool:
    host, _, pid = runner.rpartition(":")
    return not pid.isdigit() or alive(host, int(pid))


def claim_next(store: RunStore, host: str, pid: int, *, runner: str | None = None) -> QueueEntry | None:
    """The oldest queued entry, now ``running`` and owned by (host, pid); None when the queue
    has none for this runner. ``runner``: an `exp run` takes only what it queued itself;
    without it (`exp queue start`), only what nobody keeps for themselves."""
    with store._write() as conn:
        if runner is None:
            row = conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM exp_queue WHERE status = ? AND runner IS NULL ORDER BY qid LIMIT 1",
                (QUEUED,),
            ).fetchone()
        else:
            row = conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM exp_queue WHERE status = ? AND runner = ? ORDER BY qid LIMIT 1",
                (QUEUED, runner),
            ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE exp_queue SET status = ?, owner_host = ?, owner_pid = ? WHERE qid = ?", (RUNNING, host, pid, row[0])
        )
    return _entry(row)._replace(status=RUNNING, owner_host=host, owner_pid=pid)


def take_over(store: RunStore, qid: int, host: str, pid: int, run_id: str) -> bool:
    """The process running an entry names itself and its run (False: the entry is gone)."""
    with store._write() as conn:
        cur = conn.execute(
            "UPDATE exp_queue SET owner_host = ?, owner_pid = ?, run_id = ? WHERE qid = ? AND status = ?",
            (host, pid, run_id, qid, RUNNING),
        )
        return cur.rowcount == 1


def release(store: RunStore, qid: int) -> None:
    """An entry whose run was interrupted goes back to the queue, as it was."""
    with store._write() as conn:
        conn.execute(
            "UPDATE exp_queue SET status = ?, owner_host = NULL, owner_pid = NULL, run_id = NULL WHERE qid = ?",
            (QUEUED, qid),
        )


def remove_entries(store: RunStore, qids: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """Delete queued entries (all queued ones when ``qids`` is None). Returns (removed, running):
    an entry being run is never removed (its runner owns it)."""
    with store._write() as conn:
        rows = conn.execute("SELECT qid, status FROM exp_queue").fetchall()
        status = dict(rows)
        wanted = list(status) if qids is None else [q for q in qids if q in status]
        removed = [q for q in wanted if status[q] == QUEUED]
        running = [q for q in wanted if status[q] == RUNNING]
        for qid in removed:
            conn.execute("DELETE FROM exp_queue WHERE qid = ? AND status = ?", (qid, QUEUED))
    return removed, running


def finish_entry(store: RunStore, qid: int) -> None:
    with store._write() as conn:
        conn.execute("DELETE FROM exp_queue WHERE qid = ?", (qid,))


# -- recorded experiments ---------------------------------------------------------------------


def record_experiment(
    store: RunStore,
    run_id: str,
    group: str,
    name: str,
    overrides: Sequence[str],
    git_ref: str | None = None,
    base: str | None = None,
) -> bool:
    """Mark a run as an experiment of ``group`` (False: no such run)."""
    with store._write() as conn:
        rid = rid_of(conn, run_id)
        if rid is None:
            return False
        conn.execute(
            "INSERT INTO experiments (rid, grp, name, overrides, git_ref, base) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (rid) DO UPDATE SET grp = excluded.grp, name = excluded.name, "
            "overrides = excluded.overrides, git_ref = coalesce(excluded.git_ref, experiments.git_ref), "
            "base = coalesce(excluded.base, experiments.base)",
            (rid, group, name, json.dumps(list(overrides)), git_ref, base),
        )
        return True


def set_git_ref(store: RunStore, run_id: str, git_ref: str) -> None:
    with store._write() as conn:
        conn.execute(
            "UPDATE experiments SET git_ref = ? WHERE rid = (SELECT rid FROM runs WHERE id = ?)", (git_ref, run_id)
        )


def groups(store: RunStore) -> list[tuple[str, int, float]]:
    """(group, experiments, newest start), newest group first."""
    with store._read() as conn:
        return conn.execute(
            "SELECT e.grp, count(*), max(r.started) FROM experiments e JOIN runs r ON r.rid = e.rid "
            "GROUP BY e.grp ORDER BY max(r.started) DESC"
        ).fetchall()


def experiments(store: RunStore, group: str | None = None, run_ids: Sequence[str] | None = None) -> list[Experiment]:
    """The experiments of a group (or these runs), in the order they started, with every param and metric."""
    if group is not None:
        where, args = "e.grp = ?", [group]
    else:
        ids = list(run_ids or ())
        if not ids:
            return []
        where, args = f"r.id IN ({', '.join('?' for _ in ids)})", ids
    with store._read() as conn:
        rows = conn.execute(
            "SELECT r.rid, r.id, e.grp, e.name, e.overrides, e.git_ref, e.base, r.status, r.started, r.finished "
            f"FROM experiments e JOIN runs r ON r.rid = e.rid WHERE {where} ORDER BY r.started, r.rid",
            args,
        ).fetchall()
        rids = [r[0] for r in rows]
        params = store._values_of(conn, "params", rids, None)
        metrics = store._values_of(conn, "metrics", rids, None)
    return [
        Experiment(
            run_id,
            grp,
            name,
            json.loads(overrides),
            ref,
            base,
            status,
            started,
            finished,
            params.get(rid, {}),
            metrics.get(rid, {}),
        )
        for rid, run_id, grp, name, overrides, ref, base, status, started, finished in rows
    ]


def group_of_runs(store: RunStore, run_ids: Sequence[str]) -> dict[str, str]:
    """{run id: group} for the runs among these that are experiments."""
    ids = list(run_ids)
    if not ids:
        return {}
    with store._read() as conn:
        rows = conn.execute(
            f"SELECT r.id, e.grp FROM experiments e JOIN runs r ON r.rid = e.rid WHERE r.id IN ({', '.join('?' for _ in ids)})",
            ids,
        ).fetchall()
    return dict(rows)


def bases_in_use(store: RunStore) -> set[str]:
    """The snapshot commits a queue entry or a recorded experiment still names."""
    with store._read() as conn:
        rows = conn.execute(
            "SELECT base FROM exp_queue UNION SELECT base FROM experiments WHERE base IS NOT NULL"
        ).fetchall()
    return {b for (b,) in rows}
