"""The store marker the dashboard polls: a write must never go unnoticed, even one in the
same clock tick as the read (mtime moves in ticks; a WAL rewritten from its start keeps its
size)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from opsctl.core.dashboard import RACY_STAMP_NS, Dashboard
from opsctl.core.runs import STORE_FILE


def services(tmp_path) -> Dashboard:
    return Dashboard(SimpleNamespace(state_dir=tmp_path))  # type: ignore[arg-type]


def test_a_settled_store_gives_the_same_marker_until_it_is_written(tmp_path):
    store = tmp_path / STORE_FILE
    store.write_bytes(b"x" * 10)
    old = store.stat().st_mtime_ns - 10 * RACY_STAMP_NS
    os.utime(store, ns=(old, old))
    dashboard = services(tmp_path)
    seen = dashboard.store_marker()
    assert dashboard.store_marker() == seen

    os.utime(store, ns=(old + 1, old + 1))  # written again: same size, a new stamp
    assert dashboard.store_marker() != seen


def test_a_store_written_just_now_never_compares_equal(tmp_path):
    """Written within the racy window: the same stamp may hide a second write, so each read
    differs and the screen reads once more after the window has passed."""
    store = tmp_path / STORE_FILE
    store.write_bytes(b"x" * 10)
    os.utime(store, None)  # now
    dashboard = services(tmp_path)
    assert dashboard.store_marker() != dashboard.store_marker()


def test_no_store_yet_is_a_marker_too(tmp_path):
    dashboard = services(tmp_path)
    assert dashboard.store_marker() == (None, None)
