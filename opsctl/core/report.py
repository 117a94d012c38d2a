"""``opsctl report``: what a change to the pipeline did, for a pull request's review.

One :class:`Report` compares the head (the workspace, or a revision) with a base revision
(default: where the branch left the default branch) and gathers what opsctl already knows:
params and metrics (read as `dvc params/metrics diff` read them, adapters/dvc_compare.py),
tracked data (`dvc diff`), the pipeline's staleness and the run recorded for the head, the data
checks and drift results recorded for the head's data (looked up by the data's hash, so a run
that cached a stage still has its verdicts), plots whose data changed, and registry events
since the base. Rendering is core/report_render.py; gates are core/report_gates.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl.core.files import file_md5
from opsctl.core.project import Project
from opsctl.errors import UsageError

SCHEMA_VERSION = 1
WORKSPACE = "workspace"
TREND_RUNS = 10  # runs on the branch the trend chart shows
TREND_KEYS = 4  # metrics a trend chart draws at most
MAX_HASHED_BYTES = 1 << 30  # a dataset hashed here to look its verdicts up; larger asks DVC (its own state)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Side:
    label: str  # as shown: "workspace", a revision as given, or a short commit
    rev: str | None  # what Git resolves (None: the workspace)
    commit: str | None  # the commit (the workspace: HEAD's)
    dirty: bool = False  # the workspace differs from its commit

    def as_json(self) -> dict:
        return {"label": self.label, "rev": self.rev, "commit": self.commit, "dirty": self.dirty}


@dataclass(frozen=True)
class ParamChange:
    file: str
    key: str
    old: Any
    new: Any

    def as_json(self) -> dict:
        return {"file": self.file, "key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class MetricRow:
    file: str
    key: str
    name: str  # as runs record it (and gates name it): the key, or FILE:KEY when there are several files
    old: Any
    new: Any

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def delta(self) -> float | None:
        if _number(self.old) and _number(self.new):
            return float(self.new) - float(self.old)
        return None

    @property
    def delta_pct(self) -> float | None:
        delta = self.delta
        if delta is None or float(self.old) == 0:
            return None
        return delta / abs(float(self.old)) * 100

    def as_json(self) -> dict:
        return {
            "file": self.file,
            "key": self.key,
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "delta": self.delta,
            "delta_pct": self.delta_pct,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class StageLine:
    name: str
    outcome: str  # ran | cached | failed | skipped | interrupted
    duration: float | None


@dataclass(frozen=True)
class RunLine:
    id: str
    status: str
    started: float
    duration: float | None
    commit: str | None
    dirty: bool
    stages: list[StageLine]

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "started": self.started,
            "duration": self.duration,
            "commit": self.commit,
            "dirty": self.dirty,
            "stages": [{"name": s.name, "outcome": s.outcome, "duration": s.duration} for s in self.stages],
        }


@dataclass(frozen=True)
class StaleStage:
    name: str
    reasons: list[str]


@dataclass(frozen=True)
class TrendPoint:
    run: str
    commit: str | None
    started: float
    metrics: dict[str, Any]


@dataclass
class Trend:
    branch: str | None
    keys: list[str]
    points: list[TrendPoint]  # oldest first

    def as_json(self) -> dict:
        return {
            "branch": self.branch,
            "keys": self.keys,
            "runs": [
                {"id": p.run, "commit": p.commit, "started": p.started, "metrics": p.metrics} for p in self.points
            ],
        }


@dataclass
class PlotChange:
    id: str
    template: str
    plot: Any  # adapters.dvc_plots.Plot with both sides overlaid (base first)
    revs: list[str]

    def as_json(self) -> dict:
        return {"id": self.id, "template": self.template, "revs": self.revs}


@dataclass
class Report:
    base: Side
    head: Side
    stale: list[StaleStage] = field(default_factory=list)
    run: RunLine | None = None
    params: list[ParamChange] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    trend: Trend | None = None
    data: list[Any] = field(default_factory=list)  # core.data.DataChange
    checks: list[Any] = field(default_factory=list)  # core.check_records.RecordedVerdict, failures first
    unchecked: list[str] = field(default_factory=list)  # datasets with checks but no verdict on this version
    drift: list[Any] = field(default_factory=list)  # store.drift_checks.DriftRecord, drifted first
    plots: list[PlotChange] = field(default_factory=list)
    registry: list[Any] = field(default_factory=list)  # core.registry.HistoryEvent, oldest first
    gates: list[Any] = field(default_factory=list)  # core.report_gates.GateResult
    notes: list[str] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[Any]:
        return [g for g in self.gates if g.failed]


# --- revisions ----------------------------------------------------------------------------------


def resolve_sides(
    project: Project, base: str | None, head: str | None, *, suggested_base: str | None = None
) -> tuple[Side, Side]:
    """The two sides: ``head`` (None: the workspace) and ``base`` (None: ``suggested_base``
    from the CI, else the merge base with the default branch, else the head's parent)."""
    from opsctl.adapters import git

    root = project.root
    head_commit = git.head_commit(root)
    if head_commit is None:
        raise UsageError("the repository has no commit yet: there is nothing to compare with", hint="commit first")
    if head is None or head == WORKSPACE:
        dirty = git.work_tree_state(root).dirty
        head_side = Side(WORKSPACE, None, head_commit, dirty)
    else:
        commit = git.resolve_commit(root, head)
        if commit is None:
            raise UsageError(f"--head {head}: no such Git revision", hint="a branch, tag or commit")
        head_side = Side(head, head, commit)
    assert head_side.commit is not None
    if base is not None:
        commit = git.resolve_commit(root, base)
        if commit is None:
            raise UsageError(f"--base {base}: no such Git revision", hint="a branch, tag or commit (fetch it in CI)")
        return Side(base, base, commit), head_side
    if suggested_base:
        commit = git.resolve_commit(root, suggested_base)
        if commit:
            return Side(suggested_base[:12], suggested_base, commit), head_side
        # A shallow clone lacks it: say so rather than silently compare with something else.
        raise UsageError(
            f"the pull request's base {suggested_base[:12]} is not in this clone",
            hint="fetch the whole history (actions/checkout with fetch-depth: 0; GitLab GIT_DEPTH: 0), or give --base",
        )
    default = git.default_branch(root)
    if default is not None:
        fork = git.merge_base(root, head_side.commit, default)
        if fork and fork != head_side.commit:
            return Side(f"{default}@{fork[:7]}", fork, fork), head_side
    parent = git.parent_of(root, head_side.commit)
    if parent is not None and (head_side.rev is not None or not head_side.dirty):
        return Side(f"{head_side.commit[:7]}~1", parent, parent), head_side
    return Side(head_side.commit[:7], head_side.commit, head_side.commit), head_side


def repository_subdir(root: Path) -> str | None:
    """Where the project sits in its Git repository (None: at the top)."""
    from opsctl.adapters.git import repository_prefix

    return repository_prefix(root) or None


# --- building -----------------------------------------------------------------------------------


def build_report(
    project: Project,
    base: Side,
    head: Side,
    *,
    gate_metrics: list[str] | None = None,
    with_plots: bool = True,
    progress: Progress | None = None,
) -> Report:
    """Everything the report says about ``head`` against ``base``."""
    say = progress or (lambda _what: None)
    report = Report(base, head)
    say("Comparing params and metrics")
    _params_and_metrics(project, report)
    say("Comparing data")
    _data(project, report)
    say("Reading the pipeline and its runs")
    _pipeline(project, report)
    _trend(project, report, gate_metrics or [])
    say("Looking up data checks and drift")
    _checks_and_drift(project, report)
    if with_plots:
        say("Comparing plots")
        _plots(project, report)
    _registry(project, report)
    return report


def _params_and_metrics(project: Project, report: Report) -> None:
    from opsctl.adapters import dvc_compare, dvc_compat

    assert report.base.rev is not None
    try:
        old = dvc_compare.read_side(project.root, report.base.commit)
        new = dvc_compare.read_side(project.root, report.head.commit if report.head.rev else None)
    except dvc_compare.NeedsDvc:
        old, new = dvc_compare.dvc_sides(project.root, report.base.rev, report.head.rev)
    for label, side in ((report.base.label, old), (report.head.label, new)):
        for path, why in side.errors.items():
            report.notes.append(f"{path}: {why} ({_where(label)})")
    for path, changes in sorted(dvc_compat.diff_values(old.params, new.params).items()):
        # a YAML key may be a number (`1: a`): keys are shown, sorted and named as text
        for key, change in sorted(changes.items(), key=lambda item: str(item[0])):
            report.params.append(ParamChange(path, str(key), change.get("old"), change.get("new")))
    files = list(dict.fromkeys([*new.metrics, *old.metrics]))
    for path in files:
        before = dvc_compat.flat_values(old.metrics.get(path, {}))
        after = dvc_compat.flat_values(new.metrics.get(path, {}))
        for key in dict.fromkeys([*after, *before]):
            name = str(key) if len(files) == 1 else f"{path}:{key}"
            report.metrics.append(MetricRow(path, str(key), name, before.get(key), after.get(key)))


def _where(label: str) -> str:
    return "in the workspace" if label == WORKSPACE else f"at {label}"


def _data(project: Project, report: Report) -> None:
    from opsctl.core.data import diff_data

    assert report.base.rev is not None
    report.data = diff_data(project, report.base.commit, report.head.commit if report.head.rev else None)


def _pipeline(project: Project, report: Report) -> None:
    from opsctl.core.runs import open_store, store_path

    if report.head.rev is None:
        from opsctl.core.pipeline import pipeline_status

        report.stale = [StaleStage(s.name, list(s.reasons)) for s in pipeline_status(project) if s.stale]
    if not store_path(project).exists():
        return
    with open_store(project, reap=False) as store:
        run_id = _head_run(project, report.head, store)
        if run_id is None:
            return
        detail = store.get_run(run_id)
    report.run = RunLine(
        detail.id,
        detail.status,
        detail.started,
        detail.duration,
        detail.git_commit,
        detail.dirty,
        [StageLine(s.name, s.outcome, s.duration) for s in detail.stages],
    )


def _head_run(project: Project, head: Side, store) -> str | None:
    """The run behind the head: the newest run of the head's commit (CI runs on a checkout),
    else the newest run that produced the outputs the head's ``dvc.lock`` records (a run made
    before its results were committed; lineage's producers)."""
    from opsctl.adapters.dvc_records import lock_outputs
    from opsctl.store.runs import Filter

    found = store.list_runs(limit=1, filters=[Filter("git_commit", None, "=", head.commit)], metric_keys=[])
    if found:
        return str(found[0].id)
    producers = [
        p
        for path, md5 in lock_outputs(project.root, head.commit if head.rev else None).items()
        for p in store.producers(path, md5, limit=1)
    ]
    return max(producers, key=lambda p: p.started).run_id if producers else None


def _trend(project: Project, report: Report, gate_metrics: list[str]) -> None:
    """The key metrics over the last runs on the head's branch: those the gates name, then
    those that changed, then the first ones, up to :data:`TREND_KEYS`."""
    from opsctl.adapters.git import current_branch
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.runs import Filter

    names = {r.name for r in report.metrics if _number(r.new) or _number(r.old)}
    wanted = [m for m in gate_metrics if m in names]
    wanted += [r.name for r in report.metrics if r.changed and r.name in names]
    wanted += [r.name for r in report.metrics if r.name in names]
    keys = list(dict.fromkeys(wanted))[:TREND_KEYS]
    branch = current_branch(project.root) if report.head.rev is None else None
    if not keys or not store_path(project).exists():
        return
    filters = [Filter("branch", None, "=", branch)] if branch else []
    with open_store(project, reap=False) as store:
        runs = store.list_runs(limit=TREND_RUNS, status="succeeded", filters=filters, metric_keys=keys)
    points = [TrendPoint(r.id, r.git_commit, r.started, r.metrics) for r in reversed(runs) if r.metrics]
    if len(points) >= 2:
        report.trend = Trend(branch, keys, points)


def _checks_and_drift(project: Project, report: Report) -> None:
    """Verdicts and drift results on the head's version of each dataset (by its hash)."""
    from opsctl.core.check_records import verdict_of
    from opsctl.core.runs import open_store, store_path
    from opsctl.store.drift_checks import drift_history, drift_paths

    configured = list(project.config.checks)
    if not store_path(project).exists():
        report.unchecked = configured
        return
    with open_store(project, reap=False) as store:
        paths = drift_paths(store)
        hashes = _dataset_hashes(project, report.head, [*configured, *paths])
        for path in configured:
            verdict = verdict_of(store, path, hashes.get(path)) if hashes.get(path) else None
            if verdict is None:
                report.unchecked.append(path)
            else:
                report.checks.append(verdict)
        for path in paths:
            data_hash = hashes.get(path)
            if not data_hash:
                continue
            latest = next((r for r in drift_history(store, path, limit=50) if r.data_hash == data_hash), None)
            if latest is not None:
                report.drift.append(latest)
    report.checks.sort(key=lambda v: (v.passed, v.path))
    report.drift.sort(key=lambda r: (not r.drift, r.path))


def _dataset_hashes(project: Project, head: Side, paths: list[str]) -> dict[str, str]:
    """Each dataset's DVC hash on the head: from the head's ``dvc.lock``/``.dvc`` files at a
    revision; in the workspace, as ``opsctl data validate`` keys it (md5 of a file, remembered
    by its stat in core/data_hashes.py; DVC's tree hash of a directory)."""
    paths = list(dict.fromkeys(paths))
    if not paths:
        return {}
    if head.rev is not None:
        from opsctl.adapters.dvc_compare import output_hashes

        return output_hashes(project.root, head.commit or head.rev, paths)
    from opsctl.core import data_hashes

    found: dict[str, str] = {}
    others = []
    remembered: dict[str, tuple[list[int], str]] = {}
    for path in paths:
        full = project.root / path
        stat = data_hashes.signature(full)
        known = data_hashes.known_hash(project, path, stat)
        if known:
            found[path] = known
        elif stat is not None and stat[0] <= MAX_HASHED_BYTES:
            try:
                digest: str | None = file_md5(full)
            except OSError:
                digest = None
            if digest is not None and data_hashes.signature(full) == stat:
                found[path] = digest
                remembered[path] = (stat, digest)
        elif full.exists():
            others.append(path)
    if remembered:
        data_hashes.remember(project, remembered)
    if others:
        from opsctl.adapters.dvc import dataset_hashes

        found.update({p: h for p, h in dataset_hashes(project.root, others).items() if h})
    return found


def _plots(project: Project, report: Report) -> None:
    """Plots whose data differs between the sides, both overlaid (base first)."""
    from opsctl.core import plots as core_plots

    if core_plots.fast_definitions(project, []) == {}:
        return  # nothing declared: skip DVC's plot collection
    assert report.base.commit is not None
    # Series are named by these: the revision as the user gave it, else a short commit.
    base_rev = report.base.rev if report.base.rev and report.base.rev != report.base.commit else report.base.commit[:7]
    head_rev = report.head.rev or WORKSPACE
    if base_rev == head_rev:
        return
    try:
        plot_set = core_plots.load(project, revs=[base_rev, head_rev])
    except Exception as exc:  # noqa: BLE001 — plots are one section: say why, keep the rest of the report
        report.notes.append(f"plots: {exc}")
        return
    for plot in plot_set.plots:
        if _plot_changed(plot, base_rev, head_rev):
            report.plots.append(PlotChange(plot.id, plot.template, plot, [base_rev, head_rev]))
    report.notes.extend(e for e in plot_set.errors if "no data to draw" not in e)


def _plot_changed(plot: Any, base_rev: str, head_rev: str) -> bool:
    if plot.kind != "vega":  # an image: its bytes per revision
        return plot.sources.get(base_rev) != plot.sources.get(head_rev)
    # Only what the plot draws counts: a file's other columns may change under an unchanged plot.
    x, y = plot.props.get("x"), plot.props.get("y")
    rows: dict[str, list] = {base_rev: [], head_rev: []}
    for point in plot.datapoints:
        rev = point.get("rev")
        if rev in rows:
            rows[rev].append((point.get("filename"), point.get("field"), repr(point.get(x)), repr(point.get(y))))
    return rows[base_rev] != rows[head_rev]


def _registry(project: Project, report: Report) -> None:
    """Registry events (registrations, promotions, rollbacks) made after the base commit."""
    from opsctl.adapters.git import commit_time
    from opsctl.core.registry import all_history

    assert report.base.commit is not None
    since = commit_time(project.root, report.base.commit)
    if since is None:
        return
    # Git keeps seconds: an event in the base commit's second counts as after it (the base is made first).
    events = [e for e in all_history(project) if e.at.timestamp() >= since]
    report.registry = sorted(events, key=lambda e: e.at)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- JSON ---------------------------------------------------------------------------------------


def as_json(report: Report) -> dict:
    """Everything, for scripts (validated by opsctl/assets/report.schema.json in the tests)."""
    return {
        "schema": SCHEMA_VERSION,
        "base": report.base.as_json(),
        "head": report.head.as_json(),
        "passed": not report.failed_gates,
        "gates": [g.as_json() for g in report.gates],
        "pipeline": {
            "stale": [{"stage": s.name, "reasons": s.reasons} for s in report.stale],
            "run": report.run.as_json() if report.run else None,
        },
        "params": [p.as_json() for p in report.params],
        "metrics": [m.as_json() for m in report.metrics],
        "trend": report.trend.as_json() if report.trend else None,
        "data": [
            {
                "path": d.path,
                "change": d.change,
                "old_hash": d.old_hash,
                "new_hash": d.new_hash,
                "old_size": d.old_size,
                "new_size": d.new_size,
            }
            for d in report.data
        ],
        "checks": [v.as_json() for v in report.checks],
        "unchecked": report.unchecked,
        "drift": [_drift_json(r) for r in report.drift],
        "plots": [p.as_json() for p in report.plots],
        "registry": [_event_json(e) for e in report.registry],
        "notes": report.notes,
    }


def _drift_json(record: Any) -> dict:
    return {
        "path": record.path,
        "data_hash": record.data_hash or None,
        "reference": record.reference,
        "drift": record.drift,
        "share": record.share,
        "threshold_share": record.threshold_share,
        "drifted_columns": record.drifted,
        "columns": record.columns,
        "rows": record.rows,
        "at": record.at,
        "run_id": record.run_id,
    }


def _event_json(event: Any) -> dict:
    return {
        "event": event.event,
        "name": event.name,
        "version": event.version,
        "stage": event.stage,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "tag": event.tag,
        "commit": event.commit,
        "at": event.at.isoformat(),
        "author": event.author,
    }
