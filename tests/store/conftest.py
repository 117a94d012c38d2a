"""Shared fixtures of the store tests."""

from __future__ import annotations

import sqlite3

import pytest

from opsctl.store import RunStore, schema


@pytest.fixture
def store(tmp_path):
    """A fresh run store where a project keeps it (test modules may define their own)."""
    with RunStore(tmp_path / ".opsctl" / "opsctl.db") as s:
        yield s


def old_store(db, version: int, *, status: str, stage: tuple[str, str]):
    """A store as an older opsctl left it (schema ``version``) with one run, abcdef012345,
    of one stage: what a migration must keep."""
    conn = sqlite3.connect(db, isolation_level=None)
    schema.migrate(conn, target=version)
    conn.execute("INSERT INTO runs (rid, id, started, finished, status) VALUES (1, 'abcdef012345', 1, 2, ?)", (status,))
    conn.execute("INSERT INTO stages (rid, name, outcome) VALUES (1, ?, ?)", stage)
    conn.close()
    return db


def tables_and_indexes(db) -> tuple[int, set[str]]:
    """The store's schema version and the names of its tables and indexes."""
    conn = sqlite3.connect(db)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        return schema.user_version(conn), names
    finally:
        conn.close()
