"""Data-check verdicts in the run store: one row per dataset validated.

A verdict is written by a standalone ``opsctl data validate`` (no run) or by a gate of
``opsctl run`` (its run and stage). It is read back three ways, each one an index range:
the verdict cache (did this data hash pass these checks before?), a run's checks, and the
last verdict of each dataset path. Functions take a :class:`~opsctl.store.runs.RunStore`
and use its transactions, so they share its locking, its error messages and its
``BEGIN IMMEDIATE`` writes. Named tuples, not dataclasses: ``opsctl runs show`` reads
these on its fast path (see store/runs.py, ``RunDetail``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from opsctl.store.runs import RunStore, rid_of


class ValidationRecord(NamedTuple):
    """One dataset's verdict as stored. ``failures`` are the failing checks as JSON objects
    (``{"check", "column", "count", "detail", "examples": [{"row", "value"}]}``)."""

    path: str
    data_hash: str  # '' when the data's hash was not known
    checks_hash: str
    passed: bool
    rows: int
    checks: int  # how many checks ran
    failures: list[dict]
    at: float  # unix time the validation ended
    duration: float | None = None
    cached: bool = False  # the same data passed the same checks before: not validated again
    stage: str | None = None  # the pipeline gate that ran it (the stage whose output or input it is)
    run_id: str | None = None  # None: a standalone `opsctl data validate`


class PathState(NamedTuple):
    """A dataset path's last verdict and how many it has had."""

    last: ValidationRecord
    total: int  # verdicts recorded for the path


_COLUMNS = (
    "v.path, v.data_hash, v.checks_hash, v.passed, v.n_rows, v.n_checks, v.failures, v.at, v.duration, v.cached, "
    "v.stage, r.id"
)
_FROM = "validations v LEFT JOIN runs r ON r.rid = v.rid"


def add_validations(store: RunStore, records: Sequence[ValidationRecord], run_id: str | None = None) -> bool:
    """Write every verdict in ONE transaction (all of them or none: an interrupted
    validation leaves no partial record). With ``run_id``, they belong to that run; a run
    the store does not have is not an error (its record may have failed to begin): the
    verdicts are written without it and False is returned."""
    with store._write() as conn:
        rid = rid_of(conn, run_id) if run_id is not None else None
        for record in records:
            conn.execute(
                "INSERT INTO validations (rid, stage, path, data_hash, checks_hash, passed, n_rows, n_checks, "
                "failures, at, duration, cached) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rid, *_row(record)),
            )
    return run_id is None or rid is not None


def passed_before(store: RunStore, data_hash: str | None, checks_hash: str | None) -> int | None:
    """The verdict cache: the row count of a verdict in which this data (by hash) passed
    these checks (by hash) with no failure at all (a pass that tolerated failing rows is not
    reused: its failures are worth seeing again); None when there is none. An unknown hash
    ('' or None) never matches."""
    if not data_hash or not checks_hash:
        return None
    with store._read() as conn:
        row = conn.execute(
            "SELECT n_rows FROM validations WHERE data_hash = ? AND checks_hash = ? AND passed = 1 "
            "AND failures = '[]' AND n_rows >= 0 LIMIT 1",
            (data_hash, checks_hash),
        ).fetchone()
    return None if row is None else int(row[0])


def run_validations(store: RunStore, run_id: str) -> list[ValidationRecord]:
    """The verdicts a run recorded (its full id), in the order they were written."""
    with store._read() as conn:
        rid = rid_of(conn, run_id)
        if rid is None:
            return []
        rows = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE v.rid = ? ORDER BY v.vid", (rid,)).fetchall()
    return [_record(row) for row in rows]


def last_validations(store: RunStore, paths: Iterable[str] | None = None) -> dict[str, PathState]:
    """{path: its last verdict and the number of verdicts} for ``paths`` (default: every
    path with a verdict). Paths without a verdict are left out."""
    states: dict[str, PathState] = {}
    with store._read() as conn:
        wanted = (
            list(paths)
            if paths is not None
            else [p for (p,) in conn.execute("SELECT DISTINCT path FROM validations ORDER BY path")]
        )
        for path in wanted:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE v.path = ? ORDER BY v.at DESC, v.vid DESC LIMIT 1", (path,)
            ).fetchone()
            if row is None:
                continue
            total = conn.execute("SELECT count(*) FROM validations WHERE path = ?", (path,)).fetchone()[0]
            states[path] = PathState(_record(row), total)
    return states


def verdict_of(store: RunStore, path: str, data_hash: str | None) -> ValidationRecord | None:
    """The last verdict on this version (path and data hash) of a dataset, whatever checks
    it was held to (None: never validated, or an unknown hash)."""
    if not data_hash:
        return None
    with store._read() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE v.data_hash = ? AND v.path = ? ORDER BY v.at DESC, v.vid DESC "
            "LIMIT 1",
            (data_hash, path),
        ).fetchone()
    return _record(row) if row is not None else None


def _row(r: ValidationRecord) -> tuple:
    return (
        r.stage,
        r.path,
        r.data_hash or "",
        r.checks_hash,
        int(bool(r.passed)),
        int(r.rows),
        int(r.checks),
        json.dumps(list(r.failures), ensure_ascii=False, default=str),
        r.at,
        r.duration,
        int(bool(r.cached)),
    )


def _record(row: sqlite3.Row | tuple) -> ValidationRecord:
    path, data_hash, checks_hash, passed, rows, checks, failures, at, duration, cached, stage, run_id = row
    try:
        decoded = json.loads(failures)
    except ValueError:  # written by hand or damaged: the verdict still says passed or not
        decoded = []
    return ValidationRecord(
        path=path,
        data_hash=data_hash,
        checks_hash=checks_hash,
        passed=bool(passed),
        rows=rows,
        checks=checks,
        failures=decoded if isinstance(decoded, list) else [],
        at=at,
        duration=duration,
        cached=bool(cached),
        stage=stage,
        run_id=run_id,
    )
