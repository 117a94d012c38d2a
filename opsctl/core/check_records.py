"""TEMPORARY until the records branch lands (h/records replaces this file)."""

from __future__ import annotations


def passed_before(project, data_hash, checks_hash) -> bool:
    return False


def record_verdicts(project, verdicts, *, run_id=None, stage=None):
    return None
