"""Repair a damaged run store: copy every row that can still be read into a new store.

A store can be damaged by what SQLite cannot guard against (a disk that returns garbage,
a copy taken half way, a file edited by hand). SQLite then answers "database disk image
is malformed" on the pages that are hit, while the rest of the file reads fine. Python's
``sqlite3`` has no ``.recover``; this walks each table in key order and, when a read
fails, skips the damaged key range by probing forward (doubling the step, then bisecting
back to the first readable key), so one bad page costs the rows on it and no others.
Indexes are not read at all: the new store builds its own.

The damaged file is never deleted: it is renamed ``opsctl.db.damaged-YYYYmmdd-HHMMSS``
(with its ``-wal``), and the new store takes its place.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.errors import StoreError
from opsctl.store import schema

# Parents before children; each table's key, in the order of its primary key.
_TABLES = (
    ("runs", ("rid",)),
    ("names", ("kid",)),
    ("objects", ("oid",)),
    ("stages", ("sid",)),
    ("artifacts", ("sid", "kind", "oid")),
    ("params", ("rid", "kid")),
    ("metrics", ("rid", "kid")),
    ("validations", ("vid",)),
    ("drift_checks", ("did",)),
    ("experiments", ("rid",)),
    ("exp_queue", ("qid",)),
)
# Tables a store only has from a schema version on: an older damaged store has none to copy.
_SINCE = {"validations": 3, "drift_checks": 4, "experiments": 6, "exp_queue": 6}
# Columns added to a table later: an older store has none to read (the new store's default applies).
_COLUMNS_SINCE = {("stages", "worker"): 5, ("stages", "attempts"): 5}
_MIN_KEY, _MAX_KEY = -(2**63), 2**63 - 1
# Rows whose parent was lost with a damaged page mean nothing on their own.
_ORPHANS = (
    "DELETE FROM stages WHERE rid NOT IN (SELECT rid FROM runs)",
    "DELETE FROM artifacts WHERE sid NOT IN (SELECT sid FROM stages) OR oid NOT IN (SELECT oid FROM objects)",
    "DELETE FROM params WHERE rid NOT IN (SELECT rid FROM runs) OR kid NOT IN (SELECT kid FROM names)",
    "DELETE FROM metrics WHERE rid NOT IN (SELECT rid FROM runs) OR kid NOT IN (SELECT kid FROM names)",
    # a verdict is about its data: it outlives a lost run, as a standalone one
    "UPDATE validations SET rid = NULL WHERE rid IS NOT NULL AND rid NOT IN (SELECT rid FROM runs)",
    "UPDATE drift_checks SET rid = NULL WHERE rid IS NOT NULL AND rid NOT IN (SELECT rid FROM runs)",
    "DELETE FROM experiments WHERE rid NOT IN (SELECT rid FROM runs)",
)
_RECOUNT = (
    "UPDATE runs SET (n_ran, n_cached, n_failed, n_skipped) = "
    "(SELECT count(CASE outcome WHEN 'ran' THEN 1 END), count(CASE outcome WHEN 'cached' THEN 1 END), "
    "count(CASE outcome WHEN 'failed' THEN 1 END), count(CASE outcome WHEN 'skipped' THEN 1 END) "
    "FROM stages WHERE stages.rid = runs.rid)"
)


@dataclass
class RepairReport:
    problems: list[str]  # what SQLite's integrity check said (empty: the store was sound)
    kept: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    damaged: list[str] = field(default_factory=list)  # tables with rows that could not be read
    backup: Path | None = None  # where the damaged file was kept

    @property
    def repaired(self) -> bool:
        return self.backup is not None


def problems_of(path: Path) -> list[str]:
    """SQLite's ``PRAGMA integrity_check`` of the store at ``path`` (empty: sound)."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def repair(path: Path, running: Callable[[list[tuple[str, str, int]]], str | None] | None = None) -> RepairReport:
    """Check the store at ``path``; when damaged, copy what is readable into a new store that
    takes its place, the damaged file kept beside it.

    ``running(rows)`` gets the ``(id, host, pid)`` of the runs the damaged store says are
    running and returns a reason to stop (a run still at work would go on writing to the
    old file), or None."""
    problems = problems_of(path)
    report = RepairReport(problems)
    if not problems:
        return report
    fresh = path.with_name(path.name + ".repairing")
    for leftover in _files_of(fresh):
        leftover.unlink()
    source = sqlite3.connect(path, isolation_level=None)
    try:
        try:
            version = schema.user_version(source)
        except sqlite3.DatabaseError:
            version = schema.LATEST_VERSION  # a damaged header: read it as this opsctl's layout
        schema.check_version(version, str(path))
        if running is not None:
            try:
                rows = source.execute("SELECT id, host, pid FROM runs WHERE status = 'running'").fetchall()
            except sqlite3.DatabaseError:
                rows = []
            reason = running([(i, h or "", p) for i, h, p in rows if p is not None])
            if reason:
                raise StoreError(f"cannot repair the run store now: {reason}", hint="repair it when that run ended")
        _copy(source, fresh, report, version)
    finally:
        source.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("-wal", "-shm", ""):  # the main file last: a crash half way leaves it in place
        old = Path(f"{path}{suffix}")
        if old.exists():
            old.rename(f"{backup}{suffix}")
    fresh.rename(path)
    report.backup = backup
    return report


def _files_of(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def _copy(source: sqlite3.Connection, fresh: Path, report: RepairReport, version: int) -> None:
    dest = sqlite3.connect(fresh, isolation_level=None)
    try:
        schema.migrate(dest)
        dest.execute("BEGIN IMMEDIATE")
        for table, key in _TABLES:
            if version < _SINCE.get(table, 0):
                continue
            columns = [
                r[1]
                for r in dest.execute(f"PRAGMA table_info({table})")
                if version >= _COLUMNS_SINCE.get((table, r[1]), 0)
            ]
            insert = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            kept = 0
            damaged = False
            for row in _readable_rows(source, table, columns, key):
                if row is None:
                    damaged = True
                    continue
                try:
                    kept += dest.execute(insert, row).rowcount
                except sqlite3.Error:  # a row that reads but breaks a constraint: garbage, not a run
                    damaged = True
            report.kept[table] = kept
            if damaged:
                report.damaged.append(table)
        for statement in _ORPHANS:
            dest.execute(statement)
        dest.execute(_RECOUNT)
        report.kept = {t: dest.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t, _ in _TABLES}
        dest.execute("COMMIT")
    finally:
        dest.close()


def _readable_rows(
    conn: sqlite3.Connection, table: str, columns: list[str], key: tuple[str, ...]
) -> Iterator[tuple | None]:
    """Every readable row of ``table`` in key order; a None where rows could not be read."""
    keys = ", ".join(key)
    select = f"SELECT {', '.join(columns)} FROM {table}"
    at = [columns.index(k) for k in key]
    after: tuple | None = None  # the last key read
    start: int | None = _MIN_KEY  # or: the first key column's value to start from
    while True:
        if start is not None:
            query, args = f"{select} WHERE {key[0]} >= ? ORDER BY {keys}", (start,)
        else:
            assert after is not None
            query, args = f"{select} WHERE ({keys}) > ({', '.join('?' * len(key))}) ORDER BY {keys}", after
        try:
            for row in conn.execute(query, args):
                after, start = tuple(row[i] for i in at), None
                yield row
            return
        except sqlite3.DatabaseError:
            yield None
            # Past the last row read; or, when nothing was read since restarting, past the
            # restart point itself (its row is there but unreadable): always forward.
            last = start if start is not None else after[0]  # type: ignore[index]
            start = _next_readable(conn, table, key[0], last)
            if start is None:
                return


def _next_readable(conn: sqlite3.Connection, table: str, column: str, last: int) -> int | None:
    """The smallest value above ``last`` from which ``table`` reads again (None: nothing
    readable follows): probe forward doubling the step, then bisect back."""

    def readable(value: int) -> bool | None:
        try:
            found = conn.execute(f"SELECT {column} FROM {table} WHERE {column} >= ? LIMIT 1", (value,)).fetchone()
        except sqlite3.DatabaseError:
            return False
        return True if found is not None else None  # None: nothing at or after value

    if not isinstance(last, int):
        return None
    bad, step = last, 1
    while True:
        probe = min(last + step, _MAX_KEY)
        answer = readable(probe)
        if answer is None:
            return None
        if answer:
            good = probe
            break
        if probe == _MAX_KEY:
            return None
        bad, step = probe, step * 2
    while good - bad > 1:
        middle = (bad + good) // 2
        if readable(middle):  # None (nothing after) cannot happen below a readable value
            good = middle
        else:
            bad = middle
    return good
