"""Shared fixtures of the store tests."""

from __future__ import annotations

import pytest

from opsctl.store import RunStore


@pytest.fixture
def store(tmp_path):
    """A fresh run store where a project keeps it (test modules may define their own)."""
    with RunStore(tmp_path / ".opsctl" / "opsctl.db") as s:
        yield s
