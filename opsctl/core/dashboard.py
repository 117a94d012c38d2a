"""What the dashboard (`opsctl ui`) reads and does, as one object handed to the app.

The Textual app never touches the store, Git or DVC: it calls a :class:`Dashboard`
from thread workers (every method blocks) and renders what comes back. Tests hand
the app a Dashboard over a prepared project, or a fake with the same methods.
Everything here goes through the same services as the CLI (core/runs.py,
core/lineage.py, core/pipeline.py, core/registry.py), so the dashboard and
`opsctl runs|lineage|status|model` always agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from opsctl.core.project import Project
from opsctl.errors import UsageError

if TYPE_CHECKING:  # (importing the store costs start-up time)
    from opsctl.core.pipeline import PlanWatcher
    from opsctl.store import RunDetail

STATUSES = ("running", "succeeded", "failed", "interrupted")
_OPS = (">=", "<=", "!=", "=", ">", "<")
# A store file written this recently may have been written again within the same clock tick.
RACY_STAMP_NS = 50_000_000


class RunQuery(NamedTuple):
    """Which runs the runs table shows, in which order."""

    status: str | None = None
    where: tuple[str, ...] = ()  # params.KEY>1, metrics.KEY<0.2, as `opsctl runs list --where`
    text: str | None = None  # found in a run's id, commit or branch
    sort: str | None = None  # started (default), duration, metrics.KEY, params.KEY
    descending: bool = True

    def describe(self) -> str:
        parts = ([self.status] if self.status else []) + list(self.where) + ([self.text] if self.text else [])
        return " ".join(parts)


def parse_run_filter(text: str, *, base: RunQuery | None = None) -> RunQuery:
    """What the dashboard's ``/`` box takes: words separated by spaces, all of which must
    hold. A status (``failed``), a comparison on params or metrics (``params.lr>0.1``,
    ``metrics.acc>=0.8``), an experiment group (``group=sweep-1``), or else text found in a
    run's id, commit or branch."""
    from opsctl.core.runs import parse_where

    status, where, words = None, [], []
    for word in text.split():
        if word.lower() in STATUSES:
            status = word.lower()
        elif any(op in word for op in _OPS):
            parse_where(word)  # a malformed expression fails here, with the CLI's message
            where.append(word)
        else:
            words.append(word)
    if len(words) > 1:
        raise UsageError(
            f"filter: one search word at most, got {' '.join(words)}",
            hint="a status, params.KEY>VALUE, metrics.KEY<VALUE, group=NAME, or text in a run id, commit or branch",
        )
    base = base or RunQuery()
    return base._replace(status=status, where=tuple(where), text=words[0] if words else None)


class RunsPage(NamedTuple):
    runs: list  # store RunSummary, in the query's order
    offset: int  # of the first run in the whole filtered list
    total: int  # runs matching the query
    total_in_store: int
    metric_keys: list[str]  # the key metrics, as columns
    groups: dict = {}  # run id -> its experiment group, for the runs of the page that have one


class RunView(NamedTuple):
    detail: RunDetail
    logs: list[tuple[str, Path | None]]  # (stage, log file)
    checks: tuple = ()  # the run's data-check verdicts (core/check_records.py RecordedVerdict), as given


class LogChunk(NamedTuple):
    text: str
    offset: int  # where to read on from
    exists: bool


class PlotsView(NamedTuple):
    """What the Plots view shows: the plots one run recorded, or several runs' overlaid."""

    plots: list  # adapters.dvc_plots.Plot, in DVC's order; each run's series named by its id
    run_ids: list[str]  # the runs drawn (full ids), in the order asked
    plot_errors: list[list[str]]  # per plot, what could not be read (core.plots.PlotSet.errors_of)
    notes: list[str]  # what belongs to no one plot (a run left out), one line each
    empty: str = ""  # no plots at all: why, and what would give some


NO_PLOTS_DECLARED = (
    "No plots: dvc.yaml declares none. Declare a stage's output under `plots:` (a JSON, YAML or CSV file, "
    "with x, y, template and title), then run the pipeline: each run records its plots."
)


class PipelineStageView(NamedTuple):
    name: str
    layer: int
    upstream: list[str]
    status: str  # up to date | stale | running | failed
    reasons: list[str]
    cmd: str
    last_worker: str | None = None  # the remote worker its newest execution ran on (None: this host, or never)


class Dashboard:
    """The dashboard's services for one project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._plan_watcher: PlanWatcher | None = None  # pipeline_changes(): made on first use
        # Whether the last pipeline() read was kept for the fast path (Plan.kept): False means
        # a file changed while it was read, and a read a moment later will be kept.
        self.pipeline_kept: bool | None = None

    @property
    def name(self) -> str:
        return self.project.config.project

    # -- runs ------------------------------------------------------------------------
    def runs_page(self, query: RunQuery, *, offset: int = 0, limit: int = 100) -> RunsPage:
        """One page of runs: the store pages, the table never holds the whole store."""
        from opsctl.core.runs import open_store, parse_sort, parse_where, store_path
        from opsctl.store import Filter
        from opsctl.store.experiments import group_of_runs

        filters = [Filter(w.field, w.key, w.op, w.value) for w in map(parse_where, query.where)]
        if query.text:
            filters.append(Filter("text", None, "*=", query.text))
        sort_key, _ = parse_sort(query.sort)
        if not store_path(self.project).exists():
            return RunsPage([], 0, 0, 0, [])
        with open_store(self.project) as store:
            runs = store.list_runs(
                limit=limit,
                offset=offset,
                status=query.status,
                filters=filters,
                sort=sort_key,
                descending=query.descending,
            )
            total = store.count_runs(status=query.status, filters=filters)
            total_in_store = total if (query.status is None and not filters) else store.count_runs()
            groups = group_of_runs(store, [r.id for r in runs])
        keys: list[str] = []
        for run in runs:
            keys += [k for k in sorted(run.metrics) if k not in keys]
        return RunsPage(runs, offset, total, total_in_store, keys[:6], groups)

    def store_marker(self) -> tuple:
        """Changes whenever a run or a stage is written: the screens poll it.

        A file's mtime moves in clock ticks (milliseconds), and a WAL rewritten from its
        start keeps its size, so a write in the tick of this read could leave the stamp as it
        was. As git does with a racily clean index, a stamp that recent is not trusted: the
        marker is then unique, so the next poll reads again once the clock has moved on."""
        import time

        from opsctl.core.runs import store_path

        path = store_path(self.project)
        now = time.time_ns()
        stamps: list[object] = []
        for candidate in (path, path.with_name(path.name + "-wal")):
            try:
                st = candidate.stat()
            except FileNotFoundError:
                stamps.append(None)
                continue
            stamps.append((st.st_mtime_ns, st.st_size))
            if now - st.st_mtime_ns < RACY_STAMP_NS:
                stamps.append(("racy", time.monotonic_ns()))
        return tuple(stamps)

    def run_view(self, run_id: str) -> RunView:
        """A run and its stages' log files (in the order they started, running stages
        included): what the run screen shows, in one read of the store."""
        from opsctl.core.check_records import run_verdicts
        from opsctl.core.runs import logs_of, show_run

        detail = show_run(self.project, run_id)
        return RunView(detail, logs_of(self.project, detail), tuple(run_verdicts(self.project, detail.id)))

    @staticmethod
    def read_log(path: Path | None, offset: int = 0, *, limit: int = 1 << 20) -> LogChunk:
        """The log from ``offset`` on (at most the last ``limit`` bytes of a big one)."""
        if path is None:
            return LogChunk("", offset, False)
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(offset, size - limit) if offset == 0 else offset
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return LogChunk("", offset, False)
        return LogChunk(data.decode("utf-8", errors="replace"), start + len(data), True)

    def compare(self, run_ids: list[str]):
        from opsctl.core.runs import compare_runs

        return compare_runs(self.project, run_ids)

    def plots(self, run_ids: list[str]) -> PlotsView:
        """The plots the runs recorded, each one overlaying the runs (core/plots.py). A run that
        recorded none is left out with a line saying so; when none did, ``empty`` says why: the
        project declares no plots, or the runs are older than its plots."""
        from opsctl.core import plots as core_plots
        from opsctl.core.runs import open_store
        from opsctl.store.plots import has_plots

        with open_store(self.project) as store:
            ids = list(dict.fromkeys(store.get_run(run_id).id for run_id in run_ids))  # a run once
            recorded = [run_id for run_id in ids if has_plots(store, run_id)]
        missing = [f"run {run_id} recorded no plots" for run_id in ids if run_id not in recorded]
        if not recorded:
            return PlotsView([], ids, [], [], self._why_no_plots(ids))
        plot_set = core_plots.load(self.project, runs=recorded)
        return PlotsView(
            plot_set.plots, recorded, [plot_set.errors_of(p) for p in plot_set.plots], missing + plot_set.notes
        )

    def _why_no_plots(self, run_ids: list[str]) -> str:
        from opsctl.core import plots as core_plots

        try:
            declared = bool(core_plots.load(self.project).plots)
        except Exception:  # noqa: BLE001 - a dvc.yaml DVC can't read: say what the runs lack, not why
            declared = True
        if not declared:
            return NO_PLOTS_DECLARED
        if len(run_ids) == 1:
            which = f"Run {run_ids[0]} recorded no plots: it ran"
        else:
            which = "None of these runs recorded plots: they ran"
        return (
            f"{which} before dvc.yaml declared them, or before opsctl recorded plots with each run. "
            "Run the pipeline again (`opsctl run`) to record them; `opsctl plots show` draws the workspace's."
        )

    # -- lineage, pipeline -------------------------------------------------------------
    def lineage(self, target: str):
        from opsctl.core.lineage import lineage
        from opsctl.core.registry_link import model_version_lookup

        return lineage(self.project, target, model_version=model_version_lookup(self.project))

    def pipeline(self) -> list[PipelineStageView]:
        """The stage DAG, each stage up to date or stale (as `opsctl status` says: the no-op
        fast path, else DVC), or running / failed (from the newest run in the store)."""
        from opsctl.core.pipeline import make_plan

        plan = make_plan(self.project, [], executor=None, force=False)
        self.pipeline_kept = plan.kept
        return self._stage_views(plan)

    def pipeline_changes(self) -> tuple[tuple[str, ...], list[PipelineStageView] | None] | None:
        """What changed since the pipeline was last checked (stat only: cheap enough to ask every
        50 ms): the changed paths, and the stages as those changes make them look before DVC
        confirms it (a stage whose dep or out changed is stale, and every stage below it; None
        when no stage's files changed, e.g. dvc.yaml itself). None without a kept check."""
        from opsctl.core.pipeline import PlanWatcher

        if self._plan_watcher is None:
            self._plan_watcher = PlanWatcher(self.project)
        changes = self._plan_watcher.changes()
        if changes is None:
            return None
        if not changes:
            return changes, None
        plan = self._plan_watcher.provisional(changes)
        return changes, self._stage_views(plan) if plan is not None else None

    def _stage_views(self, plan) -> list[PipelineStageView]:
        from opsctl.core.runs import last_workers

        running, failed = self._stages_of_newest_run()
        workers = last_workers(self.project, [s.name for s in plan.steps])
        layers: dict[str, int] = {}
        views = []
        for step in plan.steps:  # upstream first
            layer = layers[step.name] = 1 + max((layers[u] for u in step.upstream if u in layers), default=0)
            if step.name in running:
                label = "running"
            elif step.name in failed and step.stale:
                label = "failed"
            elif step.stale:
                label = "stale"
            else:
                label = "up to date"
            views.append(
                PipelineStageView(
                    step.name, layer, list(step.upstream), label, list(step.reasons), step.cmd, workers.get(step.name)
                )
            )
        return views

    def _stages_of_newest_run(self) -> tuple[set[str], set[str]]:
        from opsctl.core.runs import open_store, store_path

        if not store_path(self.project).exists():
            return set(), set()
        with open_store(self.project) as store:
            newest = store.list_runs(limit=1, metric_keys=[])
        if not newest:
            return set(), set()
        run = newest[0]
        view = self.run_view(run.id)
        detail, logs = view.detail, view.logs
        recorded = {s.name: s.outcome for s in detail.stages}
        running = {name for name, _ in logs if name not in recorded} if run.status == "running" else set()
        failed = {name for name, outcome in recorded.items() if outcome == "failed"}
        return running, failed

    # -- data checks -------------------------------------------------------------------
    def datasets(self) -> list:
        """The datasets with checks (then those with verdicts only), each with its last
        verdict: what the Data screen lists (core/check_records.py DatasetState)."""
        from opsctl.core.check_records import dataset_overview

        return dataset_overview(self.project)

    # -- drift -------------------------------------------------------------------------
    def drift(self) -> list:
        """Every dataset with drift checks and its newest ones, oldest first (core/monitoring.py
        DatasetDrift): the Data screen's drift view."""
        from opsctl.core.monitoring import drift_overview

        return drift_overview(self.project)

    def drift_verdicts(self, profile_hashes: list[str]) -> dict:
        """Per profile md5 (of a model version) the newest drift check against it."""
        from opsctl.core.monitoring import newest_checks_against

        return newest_checks_against(self.project, profile_hashes)

    # -- models ----------------------------------------------------------------------
    def models(self) -> list:
        """Every registered model with its versions (newest first) and stages."""
        from opsctl.core import registry
        from opsctl.core.registry_link import run_metrics

        def metrics(run_id):
            return run_metrics(self.project, run_id)

        return [
            registry.show_model(self.project, m.name, run_metrics=metrics) for m in registry.list_models(self.project)
        ]

    def model_history(self, name: str) -> list:
        from opsctl.core import registry

        return registry.model_history(self.project, name)

    def promote(self, name: str, version: str, stage: str):
        from opsctl.core import registry

        return registry.promote_model(self.project, name, version, stage)

    def rollback(self, name: str, stage: str):
        from opsctl.core import registry

        return registry.rollback_model(self.project, name, stage)

    def allowed_stages(self) -> list[str] | None:
        """The stages `dvc.yaml`/`.gto` allow (None: any name)."""
        from opsctl.adapters import registry as registry_store

        return registry_store.allowed_stages(self.project.root)
