"""``opsctl data validate`` and the pipeline's data gates: which datasets, their hash, the
verdict cache, the engine, the record.

A verdict is cached by (data hash, checks hash): a dataset whose exact bytes already passed
the exact same checks is not read again (docs/architecture.md, *Data checks*). Every
verdict, cached or not, is recorded in the run store with the run and stage that asked for
it, all of one validation in one transaction, after the last dataset is checked: Ctrl-C in
the middle records nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from opsctl.core.checks import DatasetChecks, DatasetVerdict, ValidationReport
from opsctl.core.project import Project
from opsctl.errors import UsageError

# (dataset path, bytes done, bytes in all) while a dataset is read
ProgressCallback = Callable[[str, int, int], None]


def dataset_path(project: Project, given: str) -> str:
    """A path as typed (relative to the current directory, or absolute) as the project-relative
    path ``checks:`` is keyed by."""
    rel = os.path.relpath(os.path.abspath(given), project.root)
    if rel == ".." or rel.startswith(".." + os.sep):
        raise UsageError(f"{given}: is outside the project ({project.root})")
    return Path(rel).as_posix()


def select_datasets(project: Project, paths: list[str]) -> list[DatasetChecks]:
    """The datasets ``opsctl data validate PATH...`` checks: the named ones (each must have
    checks and be in the workspace: UsageError otherwise), or every dataset with checks that
    is in the workspace."""
    declared = project.config.checks
    if not paths:
        if not declared:
            raise UsageError(
                "no data checks are declared",
                hint="add a checks: section to opsctl.yaml, or start one with `opsctl data profile PATH --write`",
            )
        present = [c for path, c in declared.items() if (project.root / path).exists()]
        if not present:
            raise UsageError(
                f"none of the {len(declared)} datasets with checks is in the workspace ({', '.join(declared)})",
                hint="`opsctl data pull` fetches tracked data; `opsctl run` produces a stage's outputs",
            )
        return present
    chosen = []
    for given in paths:
        rel = dataset_path(project, given)
        checks = declared.get(rel)
        if checks is None:
            known = ", ".join(declared) or "none"
            raise UsageError(
                f"{rel}: no checks are declared for it (datasets with checks: {known})",
                hint=f"`opsctl data profile {rel} --write` starts a checks: block for it",
            )
        if not (project.root / rel).exists():
            raise UsageError(
                f"{rel}: is not in the workspace",
                hint="`opsctl data pull` fetches tracked data; `opsctl run` produces a stage's outputs",
            )
        if checks not in chosen:
            chosen.append(checks)
    return chosen


def check_dataset(
    root: Path,
    checks: DatasetChecks,
    data_hash: str | None,
    *,
    reuse: Callable[[str, str], int | None] | None = None,
    on_progress: ProgressCallback | None = None,
    keep_rows: int = 0,
) -> tuple[DatasetVerdict, dict]:
    """One dataset's verdict: from the cache when ``reuse(data_hash, checks_hash)`` gives
    the row count of an earlier pass of these bytes through these checks, else by reading
    the data (a file's hash, when not given, is then the md5 computed as it was read). Also
    the first ``keep_rows`` failing rows with their checks ((file, row) -> checks), for a
    quarantine."""
    from opsctl.core.check_engine import check_rows

    started = time.monotonic()
    digest = checks.digest
    rows = reuse(data_hash, digest) if reuse is not None and data_hash else None
    if rows is not None:
        return DatasetVerdict(checks.path, data_hash, digest, rows=rows, checks=len(checks.names()), cached=True), {}
    progress = None
    if on_progress is not None:
        path = checks.path

        def progress(done: int, total: int) -> None:
            on_progress(path, done, total)

    found = check_rows(root, checks, keep_rows=keep_rows, on_progress=progress)
    verdict = DatasetVerdict(
        checks.path,
        data_hash or found.md5,
        digest,
        rows=found.rows,
        checks=len(checks.names()),
        failures=found.failures,
        duration=time.monotonic() - started,
        failing_rows=found.failing_rows,
        allowed_failing_rows=checks.allowed_failing_rows(found.rows),
        quarantine=checks.quarantine,
    )
    return verdict, found.row_checks


def validate_datasets(
    project: Project,
    paths: list[str],
    *,
    use_cache: bool = True,
    on_progress: ProgressCallback | None = None,
    on_verdict: Callable[[DatasetVerdict], None] | None = None,
) -> tuple[ValidationReport, str | None]:
    """``opsctl data validate``: the report, and a one-line warning when the run store could
    not record it (the verdicts stand either way). A file's hash comes from the md5 remembered
    for its stat, or is computed as it is read (core/data_hashes.py); only a directory's needs
    DVC."""
    from opsctl.core import data_hashes
    from opsctl.core.check_records import passed_before, record_verdicts

    selected = select_datasets(project, paths)
    stats = {c.path: data_hashes.signature(project.root / c.path) for c in selected}
    hashes = {path: data_hashes.known_hash(project, path, stat) for path, stat in stats.items()}
    directories = [c.path for c in selected if stats[c.path] is None]
    if directories:
        from opsctl.adapters.dvc import dataset_hashes

        hashes.update(dataset_hashes(project.root, directories))

    def reuse(data_hash: str, checks_hash: str) -> int | None:
        return passed_before(project, data_hash, checks_hash)

    report = ValidationReport()
    learned: dict[str, tuple[list[int], str]] = {}
    for checks in selected:
        verdict, _rows = check_dataset(
            project.root, checks, hashes.get(checks.path), reuse=reuse if use_cache else None, on_progress=on_progress
        )
        stat = stats[checks.path]
        if verdict.hash and stat is not None and data_hashes.signature(project.root / checks.path) == stat:
            learned[checks.path] = (stat, verdict.hash)
        report.datasets.append(verdict)
        if on_verdict is not None:
            on_verdict(verdict)
    error = record_verdicts(project, report.datasets)
    data_hashes.remember(project, learned)
    return report, error
