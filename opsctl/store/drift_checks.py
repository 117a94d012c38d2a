"""Drift checks in the run store: one row per comparison of a dataset with its reference.

Written by ``opsctl monitor drift`` (no run) or a drift gate of ``opsctl run`` (its run and
stage); read back as a dataset's history (``opsctl monitor history``, the Data screen), a
run's checks, and the checks made against a reference by its hash (a model version's
profile: ``opsctl model show``). Functions take a :class:`~opsctl.store.runs.RunStore` and
use its transactions, as store/validations.py does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from opsctl.store.runs import RunStore, rid_of

MAX_HISTORY = 10_000  # checks read back at once: a dashboard chart, not an export


class DriftRecord(NamedTuple):
    path: str  # the current dataset
    data_hash: str  # '' when unknown
    reference: str  # as named: a path, a profile file, NAME@VERSION
    reference_hash: str
    drift: bool
    share: float
    threshold_share: float
    columns: list[dict]  # {"column", "method", "statistic", "p_value", "threshold", "drift", "detail"}
    rows: int
    at: float  # unix time
    duration: float | None = None
    stage: str | None = None
    run_id: str | None = None

    @property
    def drifted(self) -> list[str]:
        return [c["column"] for c in self.columns if c.get("drift") and c.get("compared", True)]

    @property
    def compared(self) -> int:
        """How many columns were compared (the share's denominator)."""
        return sum(1 for c in self.columns if c.get("compared", True))


_COLUMNS = (
    "d.path, d.data_hash, d.reference, d.reference_hash, d.drift, d.share, d.threshold_share, d.columns, d.n_rows, "
    "d.at, d.duration, d.stage, r.id"
)
_FROM = "drift_checks d LEFT JOIN runs r ON r.rid = d.rid"


def add_drift_checks(store: RunStore, records: Sequence[DriftRecord], run_id: str | None = None) -> bool:
    """Write the checks in one transaction; with ``run_id``, as that run's (False when the
    store has no such run: they are written as standalone ones)."""
    with store._write() as conn:
        rid = rid_of(conn, run_id) if run_id is not None else None
        for r in records:
            compared = [c for c in r.columns if c.get("compared", True)]
            conn.execute(
                "INSERT INTO drift_checks (rid, stage, path, data_hash, reference, reference_hash, drift, share, "
                "threshold_share, n_columns, n_drifted, n_rows, columns, at, duration) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    r.stage,
                    r.path,
                    r.data_hash or "",
                    r.reference,
                    r.reference_hash or "",
                    int(bool(r.drift)),
                    float(r.share),
                    float(r.threshold_share),
                    len(compared),
                    sum(1 for c in compared if c.get("drift")),
                    int(r.rows),
                    json.dumps(list(r.columns), ensure_ascii=False, default=str),
                    r.at,
                    r.duration,
                ),
            )
    return run_id is None or rid is not None


def drift_history(store: RunStore, path: str | None = None, *, limit: int = MAX_HISTORY) -> list[DriftRecord]:
    """The checks of one dataset (or of all), oldest first; the newest ``limit`` of them."""
    where, args = ("WHERE d.path = ?", (path,)) if path is not None else ("", ())
    with store._read() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} {where} ORDER BY d.at DESC, d.did DESC LIMIT ?", (*args, limit)
        ).fetchall()
    return [_record(row) for row in reversed(rows)]


def drift_paths(store: RunStore) -> list[str]:
    """Every dataset path with a drift check, sorted."""
    with store._read() as conn:
        return [p for (p,) in conn.execute("SELECT DISTINCT path FROM drift_checks ORDER BY path")]


def checks_against(store: RunStore, reference_hashes: Sequence[str], *, limit: int = 20) -> list[DriftRecord]:
    """The newest checks (up to ``limit``, newest first) made against any of these reference hashes."""
    wanted = [h for h in reference_hashes if h]
    if not wanted:
        return []
    marks = ", ".join("?" for _ in wanted)
    with store._read() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE d.reference_hash IN ({marks}) ORDER BY d.at DESC, d.did DESC "
            "LIMIT ?",
            (*wanted, limit),
        ).fetchall()
    return [_record(row) for row in rows]


def run_drift_checks(store: RunStore, run_id: str) -> list[DriftRecord]:
    with store._read() as conn:
        rid = rid_of(conn, run_id)
        if rid is None:
            return []
        rows = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE d.rid = ? ORDER BY d.did", (rid,)).fetchall()
    return [_record(row) for row in rows]


def _record(row: sqlite3.Row | tuple) -> DriftRecord:
    (
        path,
        data_hash,
        reference,
        reference_hash,
        drift,
        share,
        threshold_share,
        columns,
        rows,
        at,
        duration,
        stage,
        run,
    ) = row
    try:
        decoded = json.loads(columns)
    except ValueError:  # damaged by hand: the verdict still stands
        decoded = []
    return DriftRecord(
        path=path,
        data_hash=data_hash,
        reference=reference,
        reference_hash=reference_hash,
        drift=bool(drift),
        share=float(share),
        threshold_share=float(threshold_share),
        columns=[c for c in decoded if isinstance(c, dict)] if isinstance(decoded, list) else [],
        rows=rows,
        at=at,
        duration=duration,
        stage=stage,
        run_id=run,
    )
