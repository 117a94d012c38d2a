"""``opsctl monitor``: profiles, drift checks and their history (docs/architecture.md, *Drift*).

Which reference a dataset is compared with: ``--reference`` (a dataset, a profile file, or
NAME@VERSION: the profile registered with a model version), else the dataset's entry under
``drift:`` in opsctl.yaml. Every check is recorded in the run store after it is made; a
store that can't be written never changes the verdict (the caller gets one line saying so).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsctl.core.drift_settings import DEFAULT_SHARE, DriftSettings
from opsctl.core.files import write_atomically
from opsctl.core.project import Project
from opsctl.errors import OpsctlError, UsageError

PROFILE_DIR = "monitor"
PROFILE_SUFFIX = ".profile.json"

# (what is being read, bytes done, bytes in all)
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class WrittenProfile:
    path: str  # project-relative
    dataset: str
    rows: int
    columns: int
    size: int  # bytes of the file


def project_path(project: Project, given: str) -> str:
    """A path as typed (relative to the current directory, or absolute), project-relative."""
    from opsctl.core.validation import dataset_path

    return dataset_path(project, given)


def default_profile_path(dataset: str) -> str:
    stem = Path(dataset.rstrip("/")).name
    for suffix in (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f"{PROFILE_DIR}/{stem}{PROFILE_SUFFIX}"


def profile_dataset(
    project: Project, dataset: str, output: str | None = None, *, on_progress: ProgressCallback | None = None
) -> WrittenProfile:
    """Write the profile of ``dataset`` (project-relative) to ``output`` (default
    monitor/NAME.profile.json), atomically: an interrupted profile leaves the old file."""
    from opsctl.core.drift_data import build_profile, profile_json

    data, data_hash = _read(project, dataset, on_progress)
    target = output or default_profile_path(dataset)
    profile = build_profile(data, dataset, data_hash)
    text = profile_json(profile).encode()
    write_atomically(project.root / target, text)
    return WrittenProfile(target, dataset, data.rows, len(data.columns), len(text))


def settings_for(
    project: Project,
    current: str,
    reference: str | None,
    *,
    columns: tuple[str, ...] = (),
    method: str | None = None,
    threshold: float | None = None,
    share: float | None = None,
) -> DriftSettings:
    """The comparison to make: the options given, over the dataset's ``drift:`` settings."""
    configured = project.config.drift.get(current)
    if reference is None and configured is None:
        raise UsageError(
            f"no reference for {current}",
            hint="give --reference DATASET|PROFILE|NAME@VERSION, or add it under drift: in opsctl.yaml",
        )
    base = configured or DriftSettings(current, reference or "")
    return DriftSettings(
        path=current,
        reference=reference if reference is not None else base.reference,
        columns=columns or base.columns,
        method=method or base.method,
        threshold=threshold if threshold is not None else base.threshold,
        share=share if share is not None else base.share,
    )


def check_drift(
    project: Project,
    settings: DriftSettings,
    *,
    on_progress: ProgressCallback | None = None,
    record: bool = True,
    run_id: str | None = None,
    stage: str | None = None,
):
    """Compare the dataset with its reference; return (DriftReport, a one-line warning when
    the check could not be recorded, else None)."""
    from opsctl.core.drift import compare_datasets

    started = time.monotonic()
    reference = load_reference(project, settings.reference, on_progress=on_progress)
    current, current_hash = _read(project, settings.path, on_progress)
    current.hash = current_hash
    report = compare_datasets(
        reference,
        current,
        columns=settings.columns,
        method=settings.method,
        threshold=settings.threshold,
        share=settings.share if settings.share else DEFAULT_SHARE,
    )
    error = None
    if record:
        error = record_drift(project, [report], duration=time.monotonic() - started, run_id=run_id, stage=stage)
    return report, error


def load_reference(project: Project, given: str, *, on_progress: ProgressCallback | None = None):
    """A reference as DatasetData: NAME@VERSION's registered profile, a profile file, or a dataset."""
    from opsctl.core.drift_data import is_profile_file, load_profile, read_profile_file

    path = project.root / given
    if "@" in given and not path.exists():
        name, _, version = given.partition("@")
        text, md5 = model_profile(project, name, version)
        data = load_profile(text, given)
        data.hash = md5
        return data
    if is_profile_file(path):
        return read_profile_file(path, given)
    data, data_hash = _read(project, given, on_progress)
    data.hash = data_hash
    return data


def model_profile(project: Project, name: str, version: str) -> tuple[bytes, str]:
    """The bytes and md5 of the profile registered with model NAME at VERSION."""
    from opsctl.core.registry import profile_of_version

    path, md5, commit = profile_of_version(project, name, version)
    candidates: list[Callable[[], bytes | None]] = [
        lambda: (project.root / path).read_bytes() if (project.root / path).is_file() else None,
        lambda: _dvc_cached(project, md5),
        lambda: _at_commit(project, path, commit),
    ]
    for candidate in candidates:
        try:
            text = candidate()
        except OSError:
            continue
        if text is not None and hashlib.md5(text, usedforsecurity=False).hexdigest() == md5:
            return text, md5
    raise OpsctlError(
        f"the profile registered with {name} {version} ({path}, md5 {md5[:8]}) is not in the workspace, "
        "the DVC cache or Git",
        hint="`opsctl data pull` it, or check out the commit it was registered at",
    )


def _dvc_cached(project: Project, md5: str) -> bytes | None:
    for layout in ("files/md5/", ""):  # DVC 3's cache, then DVC 2's
        path = project.root / ".dvc" / "cache" / f"{layout}{md5[:2]}" / md5[2:]
        if path.is_file():
            return path.read_bytes()
    return None


def _at_commit(project: Project, path: str, commit: str) -> bytes | None:
    from opsctl.adapters.registry import file_at

    text = file_at(project.root, path, commit)
    return text.encode() if text is not None else None


def _read(project: Project, dataset: str, on_progress: ProgressCallback | None):
    """The dataset's columns and its md5 (a file's is computed while it is read, or taken from
    the stat-keyed cache; a directory's comes from DVC)."""
    from opsctl.core import data_hashes
    from opsctl.core.check_engine import file_md5
    from opsctl.core.drift_data import read_dataset

    path = project.root / dataset
    if not path.exists():
        raise UsageError(f"{dataset}: no such file or directory")
    stat = data_hashes.signature(path)
    known = data_hashes.known_hash(project, dataset, stat)
    found: dict[str, str] = {}
    hasher = None
    if known is None and stat is not None:

        def digest() -> None:
            try:
                found["md5"] = file_md5(path)
            except OSError:
                pass

        hasher = threading.Thread(target=digest, name="opsctl-md5", daemon=True)
        hasher.start()
    progress = None
    if on_progress is not None:

        def progress(done: int, total: int) -> None:
            on_progress(dataset, done, total)

    try:
        data = read_dataset(project.root, dataset, on_progress=progress)
    finally:
        if hasher is not None:
            hasher.join()
    data_hash = known or found.get("md5", "")
    if stat is None:
        from opsctl.adapters.dvc import dataset_hashes

        data_hash = dataset_hashes(project.root, [dataset]).get(dataset) or ""
    elif data_hash and known is None and data_hashes.signature(path) == stat:
        data_hashes.remember(project, {dataset: (stat, data_hash)})
    return data, data_hash


def record_drift(
    project: Project,
    reports: list,
    *,
    duration: float | None = None,
    run_id: str | None = None,
    stage: str | None = None,
) -> str | None:
    """Record drift reports in the run store; a one-line warning when it can't be written."""
    from opsctl.core.runs import _one_line, open_store
    from opsctl.store.drift_checks import DriftRecord, add_drift_checks

    now = time.time()
    records = [
        DriftRecord(
            path=r.current,
            data_hash=r.current_hash,
            reference=r.reference,
            reference_hash=r.reference_hash,
            drift=r.drift,
            share=r.share,
            threshold_share=r.threshold_share,
            columns=[_stored_column(c) for c in r.columns],
            rows=r.current_rows,
            at=now,
            duration=duration,
            stage=stage,
            run_id=run_id,
        )
        for r in reports
    ]
    try:
        with open_store(project, reap=False) as store:
            add_drift_checks(store, records, run_id)
    except Exception as exc:  # noqa: BLE001 — the verdict stands without its record
        return f"the drift check was not recorded in the run store: {_one_line(exc)}"
    return None


def _stored_column(column) -> dict:
    """A column's result without its picture (history keeps the numbers, not the bars)."""
    data = column.to_json()
    data.pop("histogram", None)
    return data


def history(project: Project, dataset: str | None = None) -> list:
    """The recorded drift checks (of one dataset, or all), oldest first."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.drift_checks import drift_history

    if not store_path(project).exists():
        return []
    with open_store(project, reap=False) as store:
        return drift_history(store, dataset)


def checks_against(project: Project, reference_hashes: list[str], *, limit: int = 20) -> list:
    """The newest drift checks made against these references (by hash), newest first."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.drift_checks import checks_against as against

    if not store_path(project).exists() or not any(reference_hashes):
        return []
    with open_store(project, reap=False) as store:
        return against(store, reference_hashes, limit=limit)


# -- what the dashboard reads (core/dashboard.py) ------------------------------------------------

DRIFT_POINTS = 100  # checks per dataset the dashboard charts: the newest ones


@dataclass(frozen=True)
class DatasetDrift:
    """A dataset's recorded drift checks (store DriftRecord, oldest first): the newest
    ``DRIFT_POINTS`` of them."""

    path: str
    checks: list

    @property
    def last(self):
        return self.checks[-1] if self.checks else None


def drift_overview(project: Project, *, points: int = DRIFT_POINTS) -> list[DatasetDrift]:
    """Every dataset with drift checks (by path), each with its newest ``points`` checks,
    read in one visit to the store; [] when there is no store (nothing is created)."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.drift_checks import drift_history, drift_paths

    if not store_path(project).exists():
        return []
    with open_store(project, reap=False) as store:
        return [DatasetDrift(path, drift_history(store, path, limit=points)) for path in drift_paths(store)]


def newest_checks_against(project: Project, reference_hashes: list[str]) -> dict:
    """Per reference hash (a model version's profile md5) the newest drift check made
    against it (store DriftRecord); hashes never checked against are left out."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.drift_checks import checks_against as against

    wanted = sorted({h for h in reference_hashes if h})
    if not wanted or not store_path(project).exists():
        return {}
    found = {}
    with open_store(project, reap=False) as store:
        for md5 in wanted:
            newest = against(store, [md5], limit=1)
            if newest:
                found[md5] = newest[0]
    return found
