"""Quarantine: move the rows of a stage's CSV output that fail its row-level checks into
another file, as Delta Live Tables' ``expect_or_drop`` or dbt's ``store_failures`` do
(docs/architecture.md, *Data checks*).

Only a run does it, right after the stage succeeded and before its outputs are committed,
and only within ``max_failing_rows``: past it the gate fails and nothing is rewritten. The
dataset keeps the rows that passed, byte for byte as text (read and written with every value
as a string); the quarantine file gets the failing rows plus a ``failed_checks`` column.
Both files are written beside their target and renamed over it, so a crash leaves either the
old file or the new one. ``opsctl data validate`` never rewrites anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from opsctl.core.checks import DatasetChecks

MAX_QUARANTINE_ROWS = 100_000  # rows a run remembers to move; more failing rows fail the gate
FAILED_CHECKS_COLUMN = "failed_checks"


def quarantine_rows(root: Path, checks: DatasetChecks, row_checks: dict[tuple[str | None, int], list[str]]) -> int:
    """Move the rows named in ``row_checks`` ((None, 1-based data row) -> checks) from the
    dataset to ``checks.quarantine``; the number of rows moved."""
    import pandas as pd

    from opsctl.core.check_engine import _rows_per_chunk

    assert checks.quarantine is not None
    source = root / checks.path
    target = root / checks.quarantine
    failing = {row: ";".join(labels) for (file, row), labels in row_checks.items() if file is None}
    target.parent.mkdir(parents=True, exist_ok=True)
    kept_tmp = source.with_name(f".{source.name}.opsctl-tmp")
    moved_tmp = target.with_name(f".{target.name}.opsctl-tmp")
    moved = 0
    try:
        with (
            open(kept_tmp, "w", encoding="utf-8", newline="") as kept,
            open(moved_tmp, "w", encoding="utf-8", newline="") as bad,
        ):
            first_row = 1
            header = True
            # The same reading as the engine's (blank lines skipped), so row numbers agree.
            with pd.read_csv(
                source, dtype=str, keep_default_na=False, na_filter=False, chunksize=_rows_per_chunk(source)
            ) as reader:
                for frame in reader:
                    rows = pd.RangeIndex(first_row, first_row + len(frame))
                    is_bad = rows.isin(list(failing))
                    frame[~is_bad].to_csv(kept, index=False, header=header)
                    out = frame[is_bad].copy()
                    out[FAILED_CHECKS_COLUMN] = [failing[r] for r in rows[is_bad]]
                    out.to_csv(bad, index=False, header=header)
                    moved += len(out)
                    first_row += len(frame)
                    header = False
        os.replace(moved_tmp, target)
        os.replace(kept_tmp, source)
    finally:
        for tmp in (kept_tmp, moved_tmp):
            tmp.unlink(missing_ok=True)
    return moved
