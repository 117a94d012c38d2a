"""The run store: every ``opsctl run`` as a record in one SQLite file (``.opsctl/opsctl.db``).

Why it is built the way it is:

- **Several opsctl processes at once** (a run in one terminal, ``opsctl runs list``
  or the TUI in another, a second run): WAL mode lets readers and the one writer
  proceed together; every write is a ``BEGIN IMMEDIATE`` transaction, so a
  writer takes the write lock before it reads anything and never fails half
  way with "database is locked" (a deferred transaction that reads, then
  writes, can); ``busy_timeout`` makes a second writer wait its turn instead of
  failing.
- **Nothing is lost or half written**: a run recorded whole (:meth:`RunStore.record_run`)
  is one transaction; a run recorded as it happens is begun, gets one
  transaction per finished stage, and is finished with its params and metrics.
  A run whose process died stays ``running`` until :meth:`RunStore.reap_dead_runs`
  sees its pid gone and marks it ``interrupted``.
- **Fast at 100,000 runs**: listing, filtering, sorting and lineage are index
  range scans (see :mod:`opsctl.store.schema`), never a pass over every run,
  for the common shapes (newest first, a status, one metric sorted).
- ``synchronous=NORMAL``: in WAL mode that is still crash-safe for the database
  (no corruption); a power cut may lose the last transactions, which costs a
  run record, never a result (results are in ``dvc.lock`` and the DVC cache).

One ``RunStore`` may be shared by threads: its calls are serialized by a lock.
Threads that want to read in parallel (the TUI's workers) open their own.
Never share one across ``fork``: each process opens its own.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, TypeGuard

from opsctl.errors import AmbiguousRunError, RunNotFoundError, StoreDamagedError, StoreError, UsageError
from opsctl.store import schema

RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"
STATUSES = (RUNNING, SUCCEEDED, FAILED, INTERRUPTED)
FINAL_STATUSES = (SUCCEEDED, FAILED, INTERRUPTED)
OUTCOMES = ("ran", "cached", "skipped", "failed", "interrupted")
KINDS = ("dep", "out", "param")
OPS = ("=", "!=", "<", "<=", ">", ">=")
PREFIX_OP = "^="  # "starts with": for run columns and the "text" field only
CONTAINS_OP = "*="  # "contains": the same fields (a substring scan costs what a prefix one does here)
TEXT_OPS = (PREFIX_OP, CONTAINS_OP)
MIN_PREFIX = 4  # shorter prefixes match too many runs to be meant as one
REPAIR_HINT = (
    "run `opsctl runs repair`: it copies every readable run into a new store and keeps the damaged file beside it"
)
DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another before giving up

_ID = re.compile(r"[0-9a-f]{4,64}")
_INT64 = (-(2**63), 2**63 - 1)
_CHUNK = 500  # ids per "IN (...)" list: below SQLite's oldest variable limit (999)
# How a params/metrics filter is evaluated is chosen per query from how many runs match
# it, counted in the value index: either its matching runs are listed first from the
# index and sorted (cheap when few match), or each run is checked as the listing walks the
# runs in order (cheap when many match: the page fills quickly). Counting stops at
# _COUNT_CAP (a filter matching that many is "broad"), unless every filter is broad:
# their conjunction may still be narrow, so they are counted whole. _IN_COST is what
# listing one matching run costs relative to checking one run.
_COUNT_CAP = 1000
_IN_COST = 4.0
# Page cache per connection, at most (SQLite fills it only as pages are read, so a short
# CLI call uses little of it). A connection that bulk-writes (record_runs) gets more, for
# good: its inserts touch index pages all over a large store, batch after batch, and
# re-reading them would dominate its cost.
_CACHE_KIB = 65536
_BULK_CACHE_KIB = 262144


# -- what callers hand in ------------------------------------------------------------


class ArtifactRecord(NamedTuple):
    """One dep, out or param of a stage, with its DVC hash (``md5`` of a file, ``….dir``
    of a directory; for a ``param``, the values DVC recorded). ``path`` is as DVC names it
    (relative to the repository root, ``/``-separated): lineage looks it up verbatim."""

    kind: str  # dep | out | param
    path: str
    hash: str | None = None


class StageRecord(NamedTuple):
    """How one stage of a run went; what ``record_stage`` takes and ``get_run`` returns."""

    name: str
    outcome: str  # ran | cached | skipped | failed | interrupted
    detail: str = ""
    started: float | None = None  # unix time
    duration: float | None = None  # seconds
    cmd: str | None = None
    image_ref: str | None = None  # e.g. ghcr.io/acme/train:1.2
    image_id: str | None = None  # the image's digest / id it actually ran
    exit_code: int | None = None
    log_path: str | None = None
    artifacts: Sequence[ArtifactRecord] = ()
    worker: str | None = None  # a remote executor's worker address; None: it ran on this host
    attempts: int = 1  # above 1: its worker died and it was run again


class NewRun(NamedTuple):
    """A run as it starts. ``pid`` and ``host`` let a later opsctl tell that the process
    recording it died (:meth:`RunStore.reap_dead_runs`)."""

    id: str  # lowercase hex, chosen by the caller (12 characters in opsctl)
    started: float  # unix time
    user: str | None = None
    host: str | None = None
    pid: int | None = None
    git_commit: str | None = None
    branch: str | None = None  # None: detached HEAD
    dirty: bool = False
    diff_hash: str | None = None  # hash of the uncommitted diff, when dirty
    executor: str | None = None
    jobs: int | None = None
    targets: Sequence[str] = ()


class RunRecord(NamedTuple):
    """A whole, finished run: what :meth:`RunStore.record_run` writes in one transaction."""

    run: NewRun
    status: str
    finished: float
    stages: Sequence[StageRecord] = ()
    params: Mapping[str, object] = MappingProxyType({})  # flat: {"train.n_est": 50}
    metrics: Mapping[str, object] = MappingProxyType({})  # flat: {"metrics.json:acc": 0.9}


class Filter(NamedTuple):
    """One condition of a listing: ``Filter("params", "train.n_est", ">", 50)``, ``Filter("text", None, "^=", "a1b2")``
    (a run whose id, commit or branch starts with it; ``"*="``: contains it),
    ``Filter("metrics", "accuracy", ">=", 0.8)``, ``Filter("status", "", "=", "failed")``.

    ``field`` is ``params``, ``metrics`` or a run column (:data:`RUN_FIELDS`); ``key``
    names the param or metric (unused for run columns). A number compares numerically
    with numeric values; anything else (a string, a bool, a list) compares with the
    value's JSON form, so ``"adam"`` matches the string ``adam``. A run that lacks the key
    matches no condition on it, ``!=`` included.
    """

    field: str
    key: str | None = None
    op: str = "="
    value: object = None


# -- what callers get back -----------------------------------------------------------


class RunSummary(NamedTuple):
    """A row of ``opsctl runs list``: enough to show and compare without the stages."""

    id: str
    status: str
    started: float
    finished: float | None
    duration: float | None  # None while running
    git_commit: str | None
    dirty: bool
    branch: str | None
    ran: int
    cached: int
    failed: int
    skipped: int
    metrics: dict[str, object]  # the requested metric keys that the run has


class RunDetail(NamedTuple):
    """Everything recorded about one run (``metrics`` holds all of them): :class:`RunSummary`'s
    fields, in its order, then the detail's own. Named tuples have no field inheritance, so
    the summary's are repeated (tests/store checks they match). The store's types are named
    tuples, not dataclasses, because every class is built at import and `opsctl runs list`
    imports this module: a dataclass costs ~0.9 ms to build (a named tuple ~0.1 ms), and the
    dataclasses module ~11 ms to import (bench/runs.py measures the whole command)."""

    id: str
    status: str
    started: float
    finished: float | None
    duration: float | None  # None while running
    git_commit: str | None
    dirty: bool
    branch: str | None
    ran: int
    cached: int
    failed: int
    skipped: int
    metrics: dict[str, object]
    # -- beyond RunSummary
    user: str | None
    host: str | None
    pid: int | None
    executor: str | None
    jobs: int | None
    targets: list[str]
    diff_hash: str | None
    params: dict[str, object]
    stages: list[StageRecord]  # in the order they started


class Producer(NamedTuple):
    """A stage of a run that had a path among its outs (lineage walks these back)."""

    run_id: str
    stage: str
    started: float


# Run columns a Filter may name, as SQL on the ``runs r`` alias.
RUN_FIELDS = {
    "status": "r.status",
    "branch": "r.branch",
    "git_commit": "r.git_commit",
    "user": "r.user",
    "host": "r.host",
    "executor": "r.executor",
    "dirty": "r.dirty",
    "jobs": "r.jobs",
    "id": "r.id",
    "started": "r.started",
    "finished": "r.finished",
    "duration": "(r.finished - r.started)",
    # an experiment's group (`opsctl exp run`): NULL for a plain run (store/experiments.py)
    "group": "(SELECT e.grp FROM experiments e WHERE e.rid = r.rid)",
}
_VALUE_FIELDS = {"params": "params", "metrics": "metrics"}
# Run columns list_runs may also sort by (no index: SQLite sorts the filtered runs).
SORT_COLUMNS = {"id": "r.id", "status": "r.status", "commit": "r.git_commit", "branch": "r.branch", "stages": "r.n_ran"}
# What a Filter on the pseudo-field "text" (op "^=" or "*=") searches: any of these.
_TEXT_COLUMNS = ("r.id", "r.git_commit", "r.branch")

_SUMMARY_COLUMNS = (
    "r.rid, r.id, r.status, r.started, r.finished, r.finished - r.started, r.git_commit, "
    "r.dirty, r.branch, r.n_ran, r.n_cached, r.n_failed, r.n_skipped"
)
_DETAIL_COLUMNS = _SUMMARY_COLUMNS + ", r.user, r.host, r.pid, r.executor, r.jobs, r.targets, r.diff_hash"
_NEWEST_FIRST = "r.started DESC, r.rid DESC"
# The worker of a stage's newest execution: a backward walk of stages_by_name (name, started, sid).
LAST_WORKER_SQL = (
    "SELECT worker FROM stages WHERE name = ? AND outcome IN ('ran', 'failed', 'interrupted') "
    "ORDER BY started DESC, sid DESC LIMIT 1"
)


class RunStore:
    """The run records of one project, in the SQLite file at ``path``.

    Opening creates the file (and its directory) when missing and migrates an older
    store to the current schema; a store written by a newer opsctl raises
    :class:`~opsctl.errors.StoreVersionError` and is left as it is; a file that is not
    a store raises :class:`~opsctl.errors.StoreError`. Use it as a context manager, or
    call :meth:`close`.
    """

    def __init__(self, path: str | PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self._label = str(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._names: dict[str, int] = {}  # key name -> kid, committed rows only
        self._pending_names: dict[str, int] = {}  # added by the open write transaction
        self._conn: sqlite3.Connection | None = self._open()

    # -- opening and closing --

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )  # the lock below serializes threads
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run store {self._label}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            # The version is read, and checked, before anything that could write to the file.
            version = schema.user_version(conn)
            schema.check_version(version, self._label)
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            conn.execute("PRAGMA foreign_keys = ON")
            if version < schema.LATEST_VERSION:
                schema.migrate(conn, label=self._label)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment alone with the file; when several processes open
        # a new store at once the switch can report "locked" without waiting, so retry.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        """Close the connection (idempotent). Closing the last connection checkpoints the WAL."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions and errors --

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """One message per way a store fails, naming the file: the user has to act on it."""
        text = str(exc)
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB" or "not a database" in text:
            return StoreError(
                f"{self._label} is not a run store ({text})", hint="move the file aside: opsctl starts a new run store"
            )
        if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
            return StoreDamagedError(f"the run store {self._label} is damaged ({text})", hint=REPAIR_HINT)
        if name.startswith("SQLITE_FULL") or "disk is full" in text:
            return StoreError(
                f"the run store {self._label} cannot grow: the disk is full",
                hint="free some space; runs finished meanwhile are recorded by the next opsctl command",
            )
        if name.startswith("SQLITE_BUSY") or "locked" in text:
            return StoreError(
                f"the run store {self._label} is locked by another process (waited up to {self._busy_timeout:g} s)",
                hint="another opsctl is writing to it; try again",
            )
        return StoreError(f"the run store {self._label}: {text}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the run store {self._label} is closed")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: the queries inside see one snapshot (a run and its stages
        agree even while another process writes)."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, begun IMMEDIATE: the write lock is taken first, so it waits
        (busy_timeout) instead of failing when another writer is at work."""
        with self._lock:
            conn = self._connection()
            self._pending_names = {}
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                # only now are the new names' ids real (a rollback would have taken them back)
                self._names.update(self._pending_names)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            finally:
                self._pending_names = {}

    # -- writing --

    def begin_run(self, run: NewRun) -> None:
        """Record a run as ``running``, before its first stage: a run killed half way is
        then still found (and reaped) by the next opsctl."""
        _check_run(run)
        with self._write() as conn:
            self._insert_run(conn, run, RUNNING, None, {})

    def record_stage(self, run_id: str, stage: StageRecord) -> None:
        """Record one finished stage and its artifacts (one transaction, so ``runs show``
        of a running run shows its finished stages). Raises RunNotFoundError for an unknown run."""
        _check_stage(stage)
        with self._write() as conn:
            rid = self._rid(conn, run_id)
            self._insert_stage(conn, rid, run_id, stage)
            self._recount(conn, rid)

    def finish_run(
        self, run_id: str, status: str, finished: float, params: Mapping[str, object], metrics: Mapping[str, object]
    ) -> None:
        """Close a run: its final status, end time, params and metrics (already flat:
        ``{"train.n_est": 50}``), and stage counts taken from the recorded stages.

        A run finished twice keeps the second call's values (a run the reaper wrongly
        marked interrupted gets its real status back)."""
        _check_final(status)
        with self._write() as conn:
            rid = self._rid(conn, run_id)
            conn.execute("UPDATE runs SET status = ?, finished = ? WHERE rid = ?", (status, finished, rid))
            conn.execute("DELETE FROM params WHERE rid = ?", (rid,))
            conn.execute("DELETE FROM metrics WHERE rid = ?", (rid,))
            self._insert_values(conn, "params", rid, params)
            self._insert_values(conn, "metrics", rid, metrics)
            self._recount(conn, rid)

    def mark_finished(self, run_id: str, status: str, finished: float) -> None:
        """Only a run's final status and end time: what :meth:`finish_run` falls back to when the
        store cannot take the rest (a damaged page under params), so the run is not left
        ``running`` for the next opsctl to mark interrupted."""
        _check_final(status)
        with self._write() as conn:
            conn.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, finished, run_id))

    def has_run(self, run_id: str) -> bool:
        with self._read() as conn:
            return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def record_run(self, record: RunRecord) -> None:
        """Write a whole finished run (run, stages, artifacts, params, metrics) in ONE
        transaction: for imports and benchmarks, and for callers that only record at the end."""
        _check_record(record)
        with self._write() as conn:
            self._insert_record(conn, record)

    def record_runs(self, records: Iterable[RunRecord]) -> int:
        """Write many whole runs in one transaction (all or none); return how many.
        For benchmarks and imports: one commit for a batch writes each touched index page
        once, which halves the cost per run against one ``record_run`` each."""
        count = 0
        with self._write() as conn:
            conn.execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
            for record in records:
                _check_record(record)
                self._insert_record(conn, record)
                count += 1
        return count

    def reap_dead_runs(self, alive: Callable[[str, int], bool]) -> list[str]:
        """Mark ``interrupted`` (finished now) every ``running`` run whose process is gone;
        return their ids.

        ``alive(host, pid)`` is the caller's: only it knows how to check a process (and
        what to assume for another host's). Runs recorded without a pid are left alone.
        ``alive`` is called outside any transaction, so a slow check blocks no writer."""
        with self._read() as conn:
            running = conn.execute("SELECT id, host, pid FROM runs WHERE status = ?", (RUNNING,)).fetchall()
        dead = [run_id for run_id, host, pid in running if pid is not None and not alive(host or "", pid)]
        if not dead:
            return []
        reaped = []
        with self._write() as conn:
            now = time.time()
            for run_id in dead:
                cur = conn.execute(
                    "UPDATE runs SET status = ?, finished = ? WHERE id = ? AND status = ?",
                    (INTERRUPTED, now, run_id, RUNNING),
                )
                if cur.rowcount:  # not finished by its own process in the meantime
                    self._recount(conn, self._rid(conn, run_id))
                    reaped.append(run_id)
        return reaped

    def _insert_record(self, conn: sqlite3.Connection, record: RunRecord) -> None:
        counts = {o: 0 for o in OUTCOMES}
        for stage in record.stages:
            counts[stage.outcome] += 1
        rid = self._insert_run(conn, record.run, record.status, record.finished, counts)
        for stage in record.stages:
            self._insert_stage(conn, rid, record.run.id, stage)
        self._insert_values(conn, "params", rid, record.params)
        self._insert_values(conn, "metrics", rid, record.metrics)

    def _insert_run(
        self, conn: sqlite3.Connection, run: NewRun, status: str, finished: float | None, counts: Mapping[str, int]
    ) -> int:
        try:
            cur = conn.execute(
                "INSERT INTO runs (id, started, finished, status, user, host, pid, git_commit, branch, dirty, "
                "diff_hash, executor, jobs, targets, n_ran, n_cached, n_failed, n_skipped) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.started,
                    finished,
                    status,
                    run.user,
                    run.host,
                    run.pid,
                    run.git_commit,
                    run.branch,
                    int(bool(run.dirty)),
                    run.diff_hash,
                    run.executor,
                    run.jobs,
                    json.dumps(list(run.targets)),
                    counts.get("ran", 0),
                    counts.get("cached", 0),
                    counts.get("failed", 0),
                    counts.get("skipped", 0),
                ),
            )
        except sqlite3.IntegrityError as exc:
            if "runs.id" in str(exc):
                raise StoreError(f"run {run.id} is already in the run store {self._label}") from exc
            raise
        return _rowid(cur)

    def _insert_stage(self, conn: sqlite3.Connection, rid: int, run_id: str, stage: StageRecord) -> None:
        try:
            sid = conn.execute(
                "INSERT INTO stages (rid, name, outcome, detail, started, duration, cmd, image_ref, image_id, "
                "exit_code, log_path, worker, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    stage.name,
                    stage.outcome,
                    stage.detail or "",
                    stage.started,
                    stage.duration,
                    stage.cmd,
                    stage.image_ref,
                    stage.image_id,
                    stage.exit_code,
                    stage.log_path,
                    stage.worker,
                    stage.attempts,
                ),
            ).lastrowid
        except sqlite3.IntegrityError as exc:
            if "stages.name" in str(exc):
                raise StoreError(f"stage {stage.name} of run {run_id} is already recorded") from exc
            raise
        if stage.artifacts:
            conn.executemany(
                "INSERT OR IGNORE INTO artifacts (sid, kind, oid) VALUES (?, ?, ?)",
                [(sid, a.kind, self._oid(conn, a.path, a.hash or "")) for a in stage.artifacts],
            )

    def _insert_values(self, conn: sqlite3.Connection, table: str, rid: int, values: Mapping[str, object]) -> None:
        if values:
            conn.executemany(
                f"INSERT OR REPLACE INTO {table} (rid, kid, num, value) VALUES (?, ?, ?, ?)",
                [(rid, self._kid_for_write(conn, str(key)), *_encode(value)) for key, value in values.items()],
            )

    def _recount(self, conn: sqlite3.Connection, rid: int) -> None:
        conn.execute(
            "UPDATE runs SET (n_ran, n_cached, n_failed, n_skipped) = "
            "(SELECT count(CASE outcome WHEN 'ran' THEN 1 END), count(CASE outcome WHEN 'cached' THEN 1 END), "
            "count(CASE outcome WHEN 'failed' THEN 1 END), count(CASE outcome WHEN 'skipped' THEN 1 END) "
            "FROM stages WHERE rid = ?1) WHERE rid = ?1",
            (rid,),
        )

    def _oid(self, conn: sqlite3.Connection, path: str, digest: str) -> int:
        row = conn.execute("SELECT oid FROM objects WHERE path = ? AND hash = ?", (path, digest)).fetchone()
        if row is not None:
            return row[0]
        return _rowid(conn.execute("INSERT INTO objects (path, hash) VALUES (?, ?)", (path, digest)))

    def _kid_for_write(self, conn: sqlite3.Connection, name: str) -> int:
        kid = self._names.get(name) or self._pending_names.get(name)
        if kid is None:
            row = conn.execute("SELECT kid FROM names WHERE name = ?", (name,)).fetchone()
            if row is not None:
                kid = self._names[name] = row[0]
            else:
                kid = self._pending_names[name] = _rowid(conn.execute("INSERT INTO names (name) VALUES (?)", (name,)))
        return kid

    def _kid(self, conn: sqlite3.Connection, name: str) -> int | None:
        kid = self._names.get(name)
        if kid is None:
            row = conn.execute("SELECT kid FROM names WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            kid = self._names[name] = row[0]
        return kid

    def _rid(self, conn: sqlite3.Connection, run_id: str) -> int:
        rid = rid_of(conn, run_id)
        if rid is None:
            raise RunNotFoundError(f"no run {run_id} in the run store {self._label}")
        return rid

    # -- reading --

    def list_runs(
        self,
        limit: int = 50,
        offset: int = 0,
        status: str | Collection[str] | None = None,
        filters: Iterable[Filter] = (),
        sort: str | None = None,
        descending: bool = True,
        metric_keys: Iterable[str] | None = None,
    ) -> list[RunSummary]:
        """A page of runs, newest first unless ``sort`` says otherwise.

        ``sort``: ``started`` (default), ``finished``, ``duration``, ``params.KEY`` or
        ``metrics.KEY``; runs lacking the value (no such key, still running) come last,
        newest first, whatever the direction. Equal values: the later recorded run first
        (descending) or last. ``metric_keys``: the metrics to carry in each summary
        (default: all of them; ``[]``: none).
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        _check_sort(sort)
        with self._read() as conn:
            where = self._where(conn, status, filters, needed=offset + limit, by_started=sort in (None, "", "started"))
            if where is None or limit == 0:
                return []
            rows = self._page(conn, where, sort, descending, limit, offset)
            metrics = self._values_of(conn, "metrics", [row[0] for row in rows], metric_keys)
        return [_summary(row, metrics.get(row[0], {})) for row in rows]

    def count_runs(self, status: str | Collection[str] | None = None, filters: Iterable[Filter] = ()) -> int:
        """How many runs :meth:`list_runs` would page through with the same status and filters."""
        filters = list(filters)
        with self._read() as conn:
            if status is None and len(filters) == 1 and filters[0].field in _VALUE_FIELDS and filters[0].op in OPS:
                # one value filter alone: count its entries in the value index (one per run)
                f = filters[0]
                kid = self._kid(conn, f.key) if f.key else None
                if kid is not None:
                    column, value = _comparable(f.value)
                    return conn.execute(
                        f"SELECT count(*) FROM {_VALUE_FIELDS[f.field]} WHERE kid = ? AND {column} {f.op} ?",
                        (kid, value),
                    ).fetchone()[0]
            where = self._where(conn, status, filters, needed=None, by_started=True)
            if where is None:
                return 0
            return conn.execute(
                f"SELECT count(*) FROM {where.source} WHERE {where.sql}", [*where.source_args, *where.args]
            ).fetchone()[0]

    def get_run(self, id_or_prefix: str) -> RunDetail:
        """One run, by its id or a unique prefix of it (at least 4 characters, any case).

        Raises RunNotFoundError when nothing matches and AmbiguousRunError (with some
        candidates) when the prefix matches several runs; both are usage errors (exit 2)."""
        ref = id_or_prefix.strip().lower()
        with self._read() as conn:
            row = self._resolve(conn, ref, id_or_prefix)
            rid = row[0]
            params = self._values_of(conn, "params", [rid], None).get(rid, {})
            metrics = self._values_of(conn, "metrics", [rid], None).get(rid, {})
            stages = self._stages_of(conn, rid)
        summary = _summary(row[:13], metrics)
        user, host, pid, executor, jobs, targets, diff_hash = row[13:]
        return RunDetail(
            *summary,
            user=user,
            host=host,
            pid=pid,
            executor=executor,
            jobs=jobs,
            targets=json.loads(targets),
            diff_hash=diff_hash,
            params=params,
            stages=stages,
        )

    def previous_run(self, run_id: str, branch: str | None, *, status: str | None = None) -> RunSummary | None:
        """The latest finished run on ``branch`` (None: detached HEAD) that started before
        ``run_id``: what a run's metric deltas are taken against. ``status`` narrows it
        (e.g. ``succeeded``); by default any finished run counts."""
        with self._read() as conn:
            me = conn.execute("SELECT rid, started FROM runs WHERE id = ?", (run_id,)).fetchone()
            if me is None:
                raise RunNotFoundError(f"no run {run_id} in the run store {self._label}")
            rid, started = me
            statuses = (status,) if status else FINAL_STATUSES
            # equal start times: the one recorded earlier counts as before (written so that
            # the (branch, started) index bounds the search)
            row = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM runs r WHERE r.branch IS ? "
                f"AND r.started <= ? AND NOT (r.started = ? AND r.rid >= ?) "
                f"AND r.status IN ({','.join('?' * len(statuses))}) ORDER BY {_NEWEST_FIRST} LIMIT 1",
                (branch, started, started, rid, *statuses),
            ).fetchone()
            if row is None:
                return None
            metrics = self._values_of(conn, "metrics", [row[0]], None)
        return _summary(row, metrics.get(row[0], {}))

    def producers(
        self,
        path: str,
        hash: str | None = None,  # noqa: A002
        *,
        before: float | None = None,
        limit: int | None = None,
    ) -> list[Producer]:
        """The stages (and their runs) that had ``path`` among their outs, with that hash
        when given; newest run first. Lineage walks an artifact back to its producer with it.

        Without a hash every version's producers come back (one per run that made the
        path: many, in a long-lived project); ``before`` (runs started at or before it)
        and ``limit`` keep the answer to what the caller will look at."""
        sql = (
            "SELECT r.id, s.name, r.started FROM objects o "
            "JOIN artifacts a ON a.oid = o.oid AND a.kind = 'out' "
            "JOIN stages s ON s.sid = a.sid JOIN runs r ON r.rid = s.rid WHERE o.path = ?"
        )
        args: list[object] = [path]
        if hash is not None:
            sql += " AND o.hash = ?"
            args.append(hash)
        if before is not None:
            sql += " AND r.started <= ?"
            args.append(before)
        sql += f" ORDER BY {_NEWEST_FIRST}, s.name"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [Producer(*row) for row in rows]

    def last_workers(self, names: Iterable[str]) -> dict[str, str]:
        """Per stage name, the worker its newest execution ran on (ran, failed or
        interrupted: a cached or skipped stage ran nowhere); stages whose newest execution
        was on this host (no worker) or that never ran are left out. One index probe each."""
        result: dict[str, str] = {}
        with self._read() as conn:
            for name in names:
                row = conn.execute(LAST_WORKER_SQL, (name,)).fetchone()
                if row is not None and row[0]:
                    result[name] = row[0]
        return result

    # -- query building --

    def _where(
        self,
        conn: sqlite3.Connection,
        status: str | Collection[str] | None,
        filters: Iterable[Filter],
        needed: int | None,
        by_started: bool,
    ) -> _Where | None:
        """SQL conditions on ``runs r`` and their arguments; None when nothing can match (a
        filter on a key no run has, or a value no run has). ``needed``: how many matching
        runs the query reads in order (offset + limit), None for all of them (a count).
        ``by_started``: the runs are read newest (or oldest) first, or counted."""
        conditions: list[str] = []
        args: list[object] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                if s not in STATUSES:
                    raise UsageError(f"no run status '{s}'", hint=f"one of {', '.join(STATUSES)}")
            marks = ",".join("?" * len(statuses))
            column = "r.status"
            if not by_started:  # (status, started) serves those; another order may not
                few = conn.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM runs WHERE status IN ({marks}) LIMIT {_COUNT_CAP})", statuses
                ).fetchone()[0]
                if few == 0:
                    return None
                if few >= _COUNT_CAP:  # a common status: "+" keeps SQLite from listing the runs
                    column = "+r.status"  # by status and sorting them all; the sort's order leads
            conditions.append(f"{column} IN ({marks})")
            args += statuses
        values: list[tuple[str, int, str, str, object]] = []  # table, kid, column, op, value
        for f in filters:
            if f.op not in OPS and f.op not in TEXT_OPS:
                raise UsageError(
                    f"unknown comparison '{f.op}' in a run filter",
                    hint=f"one of {' '.join(OPS)} (and {PREFIX_OP} starts with, {CONTAINS_OP} contains, "
                    "on run columns)",
                )
            if f.field == "text" or (f.op in TEXT_OPS and f.field in RUN_FIELDS):
                if f.op not in TEXT_OPS:
                    raise UsageError(
                        f"a text filter takes {PREFIX_OP} (starts with) or {CONTAINS_OP} (contains), not {f.op}"
                    )
                columns = _TEXT_COLUMNS if f.field == "text" else (RUN_FIELDS[f.field],)
                conditions.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")")
                pattern = _like_literal(str(f.value)) + "%"
                args += [pattern if f.op == PREFIX_OP else "%" + pattern] * len(columns)
            elif f.op in TEXT_OPS:
                raise UsageError(
                    f"{f.op} ({'starts with' if f.op == PREFIX_OP else 'contains'}) applies to run "
                    f"columns and text, not {f.field}"
                )
            elif f.field in _VALUE_FIELDS:
                if not f.key:
                    raise UsageError(f"a {f.field} filter needs a key, e.g. {f.field}.KEY{f.op}VALUE")
                kid = self._kid(conn, f.key)
                if kid is None:
                    return None
                column, value = _comparable(f.value)
                values.append((_VALUE_FIELDS[f.field], kid, column, f.op, value))
            elif f.field in RUN_FIELDS:
                value = int(f.value) if f.field == "dirty" and isinstance(f.value, bool) else f.value
                conditions.append(f"{RUN_FIELDS[f.field]} {f.op} ?")
                args.append(value)
            else:
                raise UsageError(
                    f"cannot filter runs on '{f.field}'",
                    hint=f"filter on params.KEY, metrics.KEY or {', '.join(RUN_FIELDS)}",
                )
        driver = None
        source, source_args = "runs r", []
        if values:
            counts = [
                conn.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE kid = ? AND {column} {op} ? "
                    f"LIMIT {_COUNT_CAP})",
                    (kid, value),
                ).fetchone()[0]
                for table, kid, column, op, value in values
            ]
            if min(counts) == 0:
                return None
            exact = min(counts) < _COUNT_CAP
            if not exact and len(values) > 1:
                counts = [
                    conn.execute(
                        f"SELECT count(*) FROM {table} WHERE kid = ? AND {column} {op} ?", (kid, value)
                    ).fetchone()[0]
                    for table, kid, column, op, value in values
                ]
                exact = True
            runs = max(conn.execute("SELECT max(rid) FROM runs").fetchone()[0] or 1, max(counts))
            matching = math.prod(c / runs for c in counts)  # as if the filters were independent
            checked = runs if needed is None else min(runs, needed / matching)
            smallest = min(range(len(counts)), key=counts.__getitem__)
            # a count that stopped at the cap is only a lower bound: never list from it
            if exact and counts[smallest] * _IN_COST < checked * len(values):
                driver = smallest
            for i, (table, kid, column, op, value) in enumerate(values):
                if i == driver:  # the runs matching it, from the value index (kid, num, value, rid),
                    # joined first: CROSS JOIN keeps SQLite from starting elsewhere (a status index)
                    source = (
                        f"(SELECT rid FROM {table} WHERE kid = ? AND {column} {op} ?) d "
                        f"CROSS JOIN runs r ON r.rid = d.rid"
                    )
                    source_args = [kid, value]
                else:  # checked run by run
                    conditions.append(
                        f"EXISTS (SELECT 1 FROM {table} v WHERE v.rid = r.rid AND v.kid = ? AND v.{column} {op} ?)"
                    )
                    args += [kid, value]
        return _Where(source, source_args, " AND ".join(conditions) or "1", args, driven=driver is not None)

    def _page(
        self, conn: sqlite3.Connection, where: _Where, sort: str | None, descending: bool, limit: int, offset: int
    ) -> list[tuple]:
        """Rows ``offset .. offset+limit`` of the runs in sort order: those with a sort value
        (walked along an index), then those without it (newest first)."""
        source, sql = where.source, where.sql
        args = [*where.source_args, *where.args]
        direction = "DESC" if descending else "ASC"
        sort = sort or "started"
        if sort in ("started", ""):
            return conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM {source} WHERE {sql} "
                f"ORDER BY r.started {direction}, r.rid {direction} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        if sort in SORT_COLUMNS:
            return conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM {source} WHERE {sql} "
                f"ORDER BY {SORT_COLUMNS[sort]} {direction}, r.rid {direction} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        if sort in ("finished", "duration"):
            expr = "r.finished" if sort == "finished" else "(r.finished - r.started)"
            with_value = (
                f"SELECT {_SUMMARY_COLUMNS} FROM {source} WHERE {expr} IS NOT NULL AND {sql} "
                f"ORDER BY {expr} {direction}, r.rid {direction}",
                args,
            )
            without = (
                f"SELECT {_SUMMARY_COLUMNS} FROM {source} WHERE r.finished IS NULL AND {sql} ORDER BY {_NEWEST_FIRST}",
                args,
            )
            return _two_part_page(conn, with_value, without, limit, offset)
        section, _, key = sort.partition(".")
        table = _VALUE_FIELDS[section]
        kid = self._kid(conn, key)
        without = (
            f"SELECT {_SUMMARY_COLUMNS} FROM {source} WHERE {sql} "
            f"AND NOT EXISTS (SELECT 1 FROM {table} v WHERE v.rid = r.rid AND v.kid = ?) "
            f"ORDER BY {_NEWEST_FIRST}",
            [*args, kid],
        )
        if kid is None:
            return conn.execute(f"{without[0]} LIMIT ? OFFSET ?", [*without[1], limit, offset]).fetchall()
        # CROSS JOIN fixes the outer loop: the sort value's index, so that the page comes in
        # index order; or, when a selective filter lists the runs, those runs (then sorted)
        if where.driven:
            joined = f"{source} CROSS JOIN {table} v ON v.rid = r.rid"
            joined_args = [*where.source_args, kid, *where.args]
        else:
            joined = f"{table} v CROSS JOIN runs r ON r.rid = v.rid"
            joined_args = [kid, *where.args]
        with_value = (
            f"SELECT {_SUMMARY_COLUMNS} FROM {joined} "
            f"WHERE v.kid = ? AND {sql} "
            f"ORDER BY v.num {direction}, v.value {direction}, v.rid {direction}",
            joined_args,
        )
        return _two_part_page(conn, with_value, without, limit, offset)

    def _resolve(self, conn: sqlite3.Connection, ref: str, given: str) -> tuple:
        if not ref or not all(c in "0123456789abcdef" for c in ref):
            raise RunNotFoundError(
                f"no run '{given}': run ids are hexadecimal", hint="`opsctl runs list` shows the runs"
            )
        row = conn.execute(f"SELECT {_DETAIL_COLUMNS} FROM runs r WHERE r.id = ?", (ref,)).fetchone()
        if row is not None:
            return row
        if len(ref) < MIN_PREFIX:
            raise RunNotFoundError(f"no run '{given}'", hint=f"give at least {MIN_PREFIX} characters of a run id")
        # ids are hex, so "every id starting with ref" is the range [ref, ref + 'g')
        rows = conn.execute(
            f"SELECT {_DETAIL_COLUMNS} FROM runs r WHERE r.id >= ? AND r.id < ? ORDER BY r.id LIMIT 6", (ref, ref + "g")
        ).fetchall()
        if not rows:
            raise RunNotFoundError(f"no run '{given}'", hint="`opsctl runs list` shows the runs")
        if len(rows) > 1:
            candidates = [r[1] for r in rows[:5]]
            more = ", …" if len(rows) > 5 else ""
            raise AmbiguousRunError(
                f"run id prefix '{given}' matches several runs: {', '.join(candidates)}{more}",
                candidates,
                hint="give more characters of the id",
            )
        return rows[0]

    def _values_of(
        self, conn: sqlite3.Connection, table: str, rids: Sequence[int], keys: Iterable[str] | None
    ) -> dict[int, dict[str, object]]:
        """{rid: {key: value}} for these runs; only ``keys`` when given."""
        result: dict[int, dict[str, object]] = {}
        kid_sql, kid_args = "", []
        if keys is not None:
            kids = [k for k in (self._kid(conn, key) for key in keys) if k is not None]
            if not kids:
                return result
            kid_sql, kid_args = f" AND v.kid IN ({','.join('?' * len(kids))})", kids
        for start in range(0, len(rids), _CHUNK):
            chunk = list(rids[start : start + _CHUNK])
            rows = conn.execute(
                f"SELECT v.rid, n.name, v.num, v.value FROM {table} v JOIN names n ON n.kid = v.kid "
                f"WHERE v.rid IN ({','.join('?' * len(chunk))}){kid_sql} ORDER BY v.rid, n.name",
                [*chunk, *kid_args],
            )
            for rid, name, num, value in rows:
                result.setdefault(rid, {})[name] = _decode(num, value)
        return result

    def _stages_of(self, conn: sqlite3.Connection, rid: int) -> list[StageRecord]:
        artifacts: dict[int, list[ArtifactRecord]] = {}
        for sid, kind, path, digest in conn.execute(
            "SELECT a.sid, a.kind, o.path, o.hash FROM stages s JOIN artifacts a ON a.sid = s.sid "
            "JOIN objects o ON o.oid = a.oid WHERE s.rid = ? ORDER BY a.sid, a.kind, o.path",
            (rid,),
        ):
            artifacts.setdefault(sid, []).append(ArtifactRecord(kind, path, digest or None))
        rows = conn.execute(
            "SELECT sid, name, outcome, detail, started, duration, cmd, image_ref, image_id, exit_code, log_path, "
            "worker, attempts FROM stages WHERE rid = ? ORDER BY started IS NULL, started, sid",
            (rid,),
        )
        return [StageRecord._make([*row[1:11], tuple(artifacts.get(row[0], ())), *row[11:]]) for row in rows]


# -- helpers ---------------------------------------------------------------------------


class _Where(NamedTuple):
    """Which runs a listing or count reads: ``SELECT … FROM {source} WHERE {sql}``."""

    source: str  # "runs r", or a selective filter's matching runs joined to "runs r"
    source_args: list[object]
    sql: str  # conditions on "runs r"
    args: list[object]
    driven: bool  # the source starts from a selective filter's runs


def _two_part_page(
    conn: sqlite3.Connection, with_value: tuple[str, list], without: tuple[str, list], limit: int, offset: int
) -> list[tuple]:
    """Page through "rows with a sort value, in order" then "rows without one": each part
    keeps its own index order, where a single ORDER BY over both would sort every run."""
    rows = conn.execute(f"{with_value[0]} LIMIT ? OFFSET ?", [*with_value[1], limit, offset]).fetchall()
    if len(rows) == limit:
        return rows
    if rows:
        skipped = 0  # the page started inside the first part
    else:  # the page starts beyond the first part: how far beyond?
        first_sql, first_args = with_value
        counted = conn.execute(f"SELECT count(*) FROM ({first_sql})", first_args).fetchone()[0]
        skipped = offset - counted
    rows += conn.execute(f"{without[0]} LIMIT ? OFFSET ?", [*without[1], limit - len(rows), skipped]).fetchall()
    return rows


def _summary(row: Sequence, metrics: dict[str, object]) -> RunSummary:
    (_rid, run_id, status, started, finished, duration, commit, dirty, branch, ran, cached, failed, skipped) = row[:13]
    return RunSummary(
        id=run_id,
        status=status,
        started=started,
        finished=finished,
        duration=duration,
        git_commit=commit,
        dirty=bool(dirty),
        branch=branch,
        ran=ran,
        cached=cached,
        failed=failed,
        skipped=skipped,
        metrics=metrics,
    )


def _json(value: object) -> str:
    # one encoding for stored values and filter values, so that they compare equal
    return json.dumps(value, ensure_ascii=False, default=str)


def _rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid the INSERT just run on ``cursor`` made (typed optional: None before any INSERT)."""
    if cursor.lastrowid is None:
        raise StoreError("the run store did not return the id of a new row")
    return cursor.lastrowid


def _number(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _encode(value: object) -> tuple[object, str | None]:
    """(num, value) columns: a number once, as itself, in ``num`` (JSON text only when
    ``num`` cannot hold it exactly); anything else as JSON in ``value``."""
    if _number(value):
        if isinstance(value, numbers.Integral):
            as_int = int(value)
            if _INT64[0] <= as_int <= _INT64[1]:
                return as_int, None
            return float(as_int), _json(as_int)
        as_float = float(value)
        if math.isnan(as_float):  # SQLite stores NaN as NULL
            return None, "NaN"
        return as_float, None
    return None, _json(value)


def _decode(num: object, value: str | None) -> object:
    return json.loads(value) if value is not None else num


def _comparable(value: object) -> tuple[str, object]:
    """Which column a filter value is compared with, and the value to compare."""
    if _number(value):
        return "num", value if isinstance(value, numbers.Integral) and abs(int(value)) < 2**63 else float(value)
    return "value", _json(value)


def _check_sort(sort: str | None) -> None:
    if sort in (None, "", "started", "finished", "duration") or sort in SORT_COLUMNS:
        return
    section, _, key = sort.partition(".")
    if section not in _VALUE_FIELDS or not key:
        raise UsageError(
            f"cannot sort runs by '{sort}'",
            hint=f"sort by started, finished, duration, {', '.join(SORT_COLUMNS)}, metrics.KEY or params.KEY",
        )


def _like_literal(text: str) -> str:
    """TEXT in a LIKE pattern, its own % and _ taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_run(run: NewRun) -> None:
    if not isinstance(run.id, str) or not _ID.fullmatch(run.id):
        raise ValueError(f"run id {run.id!r}: expected 4-64 lowercase hex characters")


def _check_final(status: str) -> None:
    if status not in FINAL_STATUSES:
        raise ValueError(f"a finished run's status is one of {', '.join(FINAL_STATUSES)}, not {status!r}")


def _check_stage(stage: StageRecord) -> None:
    if stage.outcome not in OUTCOMES:
        raise ValueError(f"stage {stage.name}: outcome {stage.outcome!r} is not one of {', '.join(OUTCOMES)}")
    if not isinstance(stage.attempts, int) or stage.attempts < 1:
        raise ValueError(f"stage {stage.name}: attempts must be a whole number from 1, not {stage.attempts!r}")
    for artifact in stage.artifacts:
        if artifact.kind not in KINDS:
            raise ValueError(f"stage {stage.name}: artifact kind {artifact.kind!r} is not one of {', '.join(KINDS)}")


def _check_record(record: RunRecord) -> None:
    _check_run(record.run)
    _check_final(record.status)
    for stage in record.stages:
        _check_stage(stage)


def rid_of(conn: sqlite3.Connection, run_id: str) -> int | None:
    """The row id of the run with this full id (None: the store has no such run). The tables
    that hang off a run (validations, drift checks) find their run with it."""
    row = conn.execute("SELECT rid FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]
