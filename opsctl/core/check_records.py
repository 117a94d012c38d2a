"""Data-check verdicts in the run store: written after a validation, read back by
``opsctl runs show``, ``opsctl lineage`` and the dashboard.

Running the checks is ``core/check_engine.py`` and choosing what to check is
``core/validation.py``; this module only records their verdicts (:func:`record_verdicts`),
answers the verdict cache (:func:`passed_before`) and reads verdicts back. A store that
cannot be written never fails a validation, as it never fails a run (docs/architecture.md,
*Runs and lineage*): the verdict stands, the record is what is lost, and the caller is told
in one line.

Imports neither dataclasses nor YAML at module level: ``opsctl runs show`` reads a run's
checks on its fast path (cli/fastpath.py). The verdicts come back as named tuples holding
the JSON shape of :class:`~opsctl.core.checks.DatasetVerdict`; :meth:`RecordedVerdict.verdict`
rebuilds the dataclass for callers that want it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

from opsctl.core.project import Project

if TYPE_CHECKING:
    from opsctl.core.checks import DatasetVerdict

MAX_VALUE_CHARS = 200  # an example value is stored at most this long: a huge cell is not a record


class RecordedVerdict(NamedTuple):
    """One dataset's verdict as recorded: a :class:`~opsctl.core.checks.DatasetVerdict`'s
    fields (``failures`` in their JSON form) plus where and when it was given."""

    path: str
    hash: str | None  # the data's DVC hash; None when it was not known
    checks_hash: str
    rows: int
    checks: int
    passed: bool
    cached: bool
    failures: list[dict]  # Failure.as_json(): {"check", "column", "count", "detail", "examples": [{"row", "value"}]}
    run_id: str | None  # None: a standalone `opsctl data validate`
    stage: str | None  # the pipeline gate that ran it
    at: float  # unix time
    duration: float | None

    @property
    def failed_checks(self) -> int:
        return len(self.failures)

    def as_json(self) -> dict:
        """``DatasetVerdict.as_json()``'s shape, plus ``run``, ``stage``, ``at`` and ``duration``."""
        return {
            "path": self.path,
            "hash": self.hash,
            "rows": self.rows,
            "passed": self.passed,
            "checks": self.checks,
            "cached": self.cached,
            "failures": self.failures,
            "checks_hash": self.checks_hash,
            "run": self.run_id,
            "stage": self.stage,
            "at": self.at,
            "duration": self.duration,
        }

    def verdict(self) -> DatasetVerdict:
        """The verdict as the check engine's dataclass."""
        from opsctl.core.checks import DatasetVerdict, Example, Failure

        return DatasetVerdict(
            path=self.path,
            hash=self.hash,
            checks_hash=self.checks_hash,
            rows=self.rows,
            checks=self.checks,
            failures=[
                Failure(
                    check=f.get("check", "?"),
                    column=f.get("column"),
                    count=int(f.get("count") or 0),
                    examples=tuple(
                        Example(row=int(e.get("row") or 0), value=e.get("value"), file=e.get("file"))
                        for e in f.get("examples") or []
                    ),
                    detail=f.get("detail") or "",
                )
                for f in self.failures
            ],
            duration=self.duration or 0.0,
            cached=self.cached,
        )


class DatasetState(NamedTuple):
    """A dataset on the Data screen: its checks, whether it is there, its last verdict."""

    path: str
    configured: bool  # has checks in opsctl.yaml now (False: only past verdicts)
    exists: bool  # in the workspace
    checks_hash: str | None  # of its checks now (None: not configured)
    last: RecordedVerdict | None  # the newest verdict (None: never validated)
    verdicts: int  # verdicts recorded for this path

    @property
    def checks_changed(self) -> bool:
        """The checks changed since the last verdict: it no longer says much."""
        return self.last is not None and self.checks_hash is not None and self.last.checks_hash != self.checks_hash


# -- writing ---------------------------------------------------------------------------


def record_verdicts(
    project: Project,
    verdicts: list[DatasetVerdict],
    *,
    run_id: str | None = None,
    stage: str | None = None,
    at: float | None = None,
) -> str | None:
    """Record these verdicts (one transaction: all or none) with their run and stage when
    given, as given at ``at`` (unix time; default: now); return None, or one line saying why
    they were not (all) recorded. A damaged, full or locked store never raises here (an
    interrupt does: nothing is written then)."""
    if not verdicts:
        return None
    from opsctl.core.runs import _one_line, open_store
    from opsctl.errors import OpsctlError
    from opsctl.store.validations import ValidationRecord, add_validations

    now = time.time() if at is None else at
    records = [
        ValidationRecord(
            path=v.path,
            data_hash=v.hash or "",
            checks_hash=v.checks_hash,
            passed=v.passed,
            rows=v.rows,
            checks=v.checks,
            failures=[_bounded(f.as_json()) for f in v.failures],
            at=now,
            duration=v.duration,
            cached=v.cached,
            stage=stage,
        )
        for v in verdicts
    ]
    try:
        with open_store(project, reap=False) as store:
            linked = add_validations(store, records, run_id)
    except Exception as exc:  # noqa: BLE001 — the verdict stands without its record (see the module docstring)
        hint = f" ({exc.hint})" if isinstance(exc, OpsctlError) and exc.hint else ""
        return f"the data-check verdicts were not recorded: {_one_line(exc)}{hint}"
    if not linked:
        return f"run {run_id} is not in the run store: its data-check verdicts were recorded without it"
    return None


def _bounded(failure: dict) -> dict:
    """A failure as stored: example values cut to :data:`MAX_VALUE_CHARS` characters."""
    for example in failure.get("examples", []):
        value = example.get("value")
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            example["value"] = value[: MAX_VALUE_CHARS - 1] + "…"
        elif not isinstance(value, (str, int, float, bool, type(None))):
            example["value"] = str(value)[:MAX_VALUE_CHARS]  # a timestamp, a numpy scalar: as text
    return failure


# -- reading ---------------------------------------------------------------------------


def passed_before(project: Project, data_hash: str | None, checks_hash: str | None) -> int | None:
    """The verdict cache: the row count of an earlier verdict in which this data (by hash)
    passed these checks (by hash) without a failure, or None. An unknown hash never matches;
    a missing store is not created; a store that cannot be read answers None (the data is
    then validated again, which is always safe)."""
    if not data_hash or not checks_hash:
        return None
    from opsctl.core.runs import open_store, store_path
    from opsctl.errors import StoreError
    from opsctl.store.validations import passed_before as cached

    if not store_path(project).exists():
        return None
    try:
        with open_store(project, reap=False) as store:
            return cached(store, data_hash, checks_hash)
    except StoreError:
        return None


def run_verdicts(project: Project, run_id: str) -> list[RecordedVerdict]:
    """The verdicts a run recorded, in the order its gates gave them. ``run_id``: the full id
    or a unique prefix (RunNotFoundError otherwise, as ``opsctl runs show``)."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.validations import run_validations

    if not store_path(project).exists():
        return []
    with open_store(project, reap=False) as store:
        records = run_validations(store, run_id)
        if not records and not store.has_run(run_id):
            records = run_validations(store, store.get_run(run_id).id)
    return [_recorded(r) for r in records]


def run_drift_checks(project: Project, run_id: str) -> list:
    """The drift checks a run's gates recorded (its full id), in order (store/drift_checks.py)."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.drift_checks import run_drift_checks as of_run

    if not store_path(project).exists():
        return []
    with open_store(project, reap=False) as store:
        return of_run(store, run_id)


def dataset_overview(project: Project) -> list[DatasetState]:
    """Every dataset with checks in opsctl.yaml (in its order), then the paths that have
    verdicts but no checks any more (sorted): existence in the workspace, last verdict and
    how many verdicts. Does not create the store."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.validations import last_validations

    configured = project.config.checks
    states = {}
    if store_path(project).exists():
        with open_store(project, reap=False) as store:
            states = last_validations(store)
    overview = []
    for path in [*configured, *sorted(p for p in states if p not in configured)]:
        state = states.get(path)
        checks = configured.get(path)
        overview.append(
            DatasetState(
                path=path,
                configured=checks is not None,
                exists=(project.root / path).exists(),
                checks_hash=checks.digest if checks is not None else None,
                last=_recorded(state.last) if state is not None else None,
                verdicts=state.total if state is not None else 0,
            )
        )
    return overview


def verdict_summary(verdict: RecordedVerdict | None) -> dict | None:
    """What lineage shows on a data node: ``{"passed", "checks_hash", "at", "failed", "run"}``."""
    if verdict is None:
        return None
    return {
        "passed": verdict.passed,
        "checks_hash": verdict.checks_hash,
        "at": verdict.at,
        "failed": verdict.failed_checks,
        "run": verdict.run_id,
    }


def verdict_of(store, path: str, data_hash: str | None) -> RecordedVerdict | None:
    """The last verdict on this version of a dataset, from an open run store (lineage's)."""
    from opsctl.store.validations import verdict_of as stored

    record = stored(store, path, data_hash)
    return _recorded(record) if record is not None else None


def _recorded(record) -> RecordedVerdict:
    return RecordedVerdict(
        path=record.path,
        hash=record.data_hash or None,
        checks_hash=record.checks_hash,
        rows=record.rows,
        checks=record.checks,
        passed=record.passed,
        cached=record.cached,
        failures=record.failures,
        run_id=record.run_id,
        stage=record.stage,
        at=record.at,
        duration=record.duration,
    )
