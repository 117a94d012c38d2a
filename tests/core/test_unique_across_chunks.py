"""``unique`` over a file read in several chunks: a key repeating one of an earlier chunk's
counts, as does one repeating within its own chunk (a file bigger than one chunk, ~32 MB,
crashed with "output array is read-only" under pandas 3)."""

from __future__ import annotations

import pytest

from opsctl.core import check_engine
from opsctl.core.checks import UNIQUE, ColumnChecks, DatasetChecks


@pytest.mark.parametrize("max_run", [1 << 20, 1500])  # runs of earlier hashes merged, or kept apart past 1,500
def test_unique_counts_repeats_of_earlier_chunks_and_of_its_own(tmp_path, monkeypatch, max_run):
    monkeypatch.setattr(check_engine, "CHUNK_BYTES", 1)  # the smallest chunk: 1,000 rows
    monkeypatch.setattr(check_engine, "_MAX_RUN", max_run)
    ids = [*range(1, 2501), 5, 1500, 1500]  # 5 is in chunk 1, 1500 in chunk 2 (and twice in chunk 3)
    (tmp_path / "t.csv").write_text("id\n" + "".join(f"{i}\n" for i in ids))
    checks = DatasetChecks(path="t.csv", format="csv", unique=(("id",),), columns=(ColumnChecks("id", type="int"),))

    rows, failures = check_engine.run_checks(tmp_path, checks)

    assert rows == 2503
    [failure] = failures
    assert (failure.check, failure.count) == (UNIQUE, 3)
    assert [(e.row, e.value) for e in failure.examples] == [(2501, 5), (2502, 1500), (2503, 1500)]
