"""Run records: every ``opsctl run`` in the project's run store (``.opsctl/opsctl.db``),
and the queries behind ``opsctl runs``.

The store itself (SQLite, WAL, migrations) is :mod:`opsctl.store`; this module
decides what a run record holds — the code that ran (commit, branch, dirty
flag and a hash of the uncommitted diff), params and metrics as DVC reads
them, and per stage its outcome, image and the DVC hash of every dep and out.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NamedTuple

from opsctl.core.formatting import is_number
from opsctl.core.project import STATE_DIR, Project
from opsctl.errors import UsageError

STORE_FILE = "opsctl.db"  # under .opsctl/


def store_path(project: Project) -> Path:
    return project.state_dir / STORE_FILE


def open_store(project: Project, *, reap: bool = True):
    """The project's run store; runs left "running" by a dead opsctl are marked interrupted."""
    from opsctl.store import RunStore

    project.state_dir.mkdir(exist_ok=True)
    store = RunStore(store_path(project))
    if reap:
        _mark_dead_runs(project, store)
    return store


class DeadRun(NamedTuple):
    run_id: str
    stopped: list[str]  # the stages it was running when its process died


def mark_dead_runs(project: Project) -> list[DeadRun]:
    """Mark interrupted the runs left "running" by an opsctl that is gone (killed with
    SIGKILL, a crash, a reboot), as every command that opens the run store does; what
    this call marked. Commands that have no other use for the store (``opsctl status``)
    call this, so that whatever the user looks at next tells the truth."""
    if not store_path(project).exists():
        return []
    store = open_store(project, reap=False)
    try:
        return _mark_dead_runs(project, store)
    finally:
        store.close()


def _mark_dead_runs(project: Project, store) -> list[DeadRun]:
    """The stages a dead run had recorded stay as they were; a stage that was running when
    it died has a log file but no record: it is recorded ``interrupted``, with its log."""
    dead = store.reap_dead_runs(_alive)  # only those this call marked: no stage is added twice
    if not dead:
        return []
    from opsctl.core.run import RUNS_DIR  # only now: `opsctl runs list` starts without it
    from opsctl.errors import OpsctlError
    from opsctl.store import StageRecord

    marked = []
    for run_id in dead:
        stopped: list[str] = []
        try:
            recorded = store.get_run(run_id).stages
            names = {s.name for s in recorded}
            logs = {s.log_path for s in recorded if s.log_path}
            log_dir = project.state_dir / RUNS_DIR / run_id
            for log in sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []:
                relative = log.relative_to(project.root).as_posix()
                if log.stem in names or relative in logs or str(log) in logs:
                    continue
                store.record_stage(
                    run_id,
                    StageRecord(
                        name=log.stem,
                        outcome="interrupted",
                        detail="its opsctl process died while it ran",
                        log_path=relative,
                    ),
                )
                stopped.append(log.stem)
        except OpsctlError:
            pass  # the run is marked; its stages as far as they could be told
        marked.append(DeadRun(run_id, stopped))
    return marked


def _alive(host: str, pid: int) -> bool:
    """Whether the opsctl process that owns a running run is still there. Another host's
    process can't be checked: assume it lives (a shared project directory over NFS)."""
    import socket

    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry (containers with arbitrary uids)
        return str(os.getuid())


# -- recording -------------------------------------------------------------------------


class RunRecorder:
    """Writes one run as it happens: begun, each stage as it finishes, then finished.

    Called from the thread that drives the scheduler only (SQLite connections are per
    thread). A store that can't be written never fails the run: the run's results are
    in dvc.lock; the record is a report of them. The error is kept for the caller."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.store = None
        self.error: Exception | None = None
        self.branch: str | None = None
        self.begun = False
        # Asking Git about the work tree (and importing the store) takes ~40 ms: do it while
        # images are checked, not on the run's critical path. Nothing is written before begin().
        self._ready: dict = {}
        self._preparing = threading.Thread(target=self._prepare, name="opsctl-recorder", daemon=True)
        self._preparing.start()

    def _prepare(self) -> None:
        from opsctl.adapters.git import work_tree_state

        try:
            import opsctl.store  # noqa: F401 — imported here, off the critical path; the file is opened by begin()

            self._ready["state"] = work_tree_state(self.project.root, exclude=(STATE_DIR,))
        except Exception as exc:  # noqa: BLE001 — reported by begin(), see the class docstring
            self._ready["error"] = exc

    def _guard(self, action) -> None:
        if self.error is not None:
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 — see the class docstring
            self.error = exc

    def begin(self, report, targets: list[str]) -> None:
        import socket

        from opsctl.store import NewRun

        self.begun = True

        def action():
            self._preparing.join()
            if "error" in self._ready:
                raise self._ready["error"]
            state = self._ready["state"]
            self.store = open_store(self.project)
            self.branch = state.branch
            self.store.begin_run(
                NewRun(
                    id=report.run_id,
                    started=report.started,
                    user=current_user(),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    git_commit=state.commit,
                    branch=state.branch,
                    dirty=state.dirty,
                    diff_hash=state.diff_hash,
                    executor=report.executor,
                    jobs=report.jobs,
                    targets=list(targets),
                )
            )

        self._guard(action)

    def stage(self, run_id: str, stage) -> None:
        from opsctl.store import ArtifactRecord, StageRecord

        def action():
            self.store.record_stage(
                run_id,
                StageRecord(
                    name=stage.name,
                    outcome=stage.status,
                    detail=stage.detail,
                    started=stage.started,
                    duration=stage.duration,
                    cmd=stage.cmd,
                    image_ref=stage.image_ref,
                    image_id=stage.image_id,
                    exit_code=stage.exit_code,
                    log_path=self._relative(stage.log_path),
                    artifacts=[ArtifactRecord(kind=h.kind, path=h.path, hash=h.hash) for h in stage.hashes],
                ),
            )

        self._guard(action)

    def _relative(self, path) -> str | None:
        """Log paths relative to the project: a moved or copied project keeps finding them."""
        if path is None:
            return None
        try:
            return Path(path).relative_to(self.project.root).as_posix()
        except ValueError:
            return str(path)

    def finish(self, report, status: str, params: dict, metrics: dict) -> None:
        def action():
            self.store.finish_run(report.run_id, status, report.finished, params, metrics)
            previous = self.store.previous_run(report.run_id, self.branch)
            if previous is not None:
                report.previous_run_id = previous.id
                report.previous_metrics = dict(previous.metrics)

        self._guard(action)

    def close(self) -> None:
        self._preparing.join()
        if self.store is not None:
            self.store.close()
        self.store = None


# -- queries ---------------------------------------------------------------------------

_OPS = (">=", "<=", "!=", "=", ">", "<")


class Where(NamedTuple):
    field: str  # params | metrics | status
    key: str
    op: str
    value: object


def parse_where(text: str) -> Where:
    """``params.train.n_est>50``, ``metrics.accuracy>=0.8``, ``status=failed`` -> Where."""
    import yaml

    for op in _OPS:
        left, sep, right = text.partition(op)
        if sep:
            break
    else:
        raise UsageError(f"--where {text}: expected FIELD OP VALUE, e.g. params.train.n_est>50 or metrics.acc>=0.8")
    left = left.strip()
    field, _, key = left.partition(".")
    if field == "status" and not key:
        return Where("status", "", op, right.strip())
    if field not in ("params", "metrics") or not key:
        raise UsageError(f"--where {text}: the field must be params.KEY, metrics.KEY or status")
    try:
        value = yaml.safe_load(right.strip())
    except yaml.YAMLError:
        value = right.strip()
    return Where(field, key, op, value)


def parse_sort(text: str | None) -> tuple[str | None, bool]:
    """``--sort`` -> (key, descending). Highest first by default (``metrics.accuracy``:
    the best run on top); a leading ``+`` sorts lowest first (``+metrics.loss``)."""
    if not text:
        return None, True
    from opsctl.store.runs import SORT_COLUMNS

    key = text.lstrip("+-")
    if key not in ("started", "duration", *SORT_COLUMNS) and not key.startswith(("metrics.", "params.")):
        raise UsageError(
            f"--sort {text}: sort by started, duration, {', '.join(SORT_COLUMNS)}, metrics.KEY or params.KEY"
        )
    return key, not text.startswith("+")


class RunList(NamedTuple):
    runs: list  # store RunSummary, newest first (or as sorted)
    metric_keys: list[str]  # the key metrics shown as columns
    total: int  # runs matching the filters
    total_in_store: int


MAX_METRIC_COLUMNS = 6


def list_runs(
    project: Project,
    *,
    limit: int = 20,
    status: str | None = None,
    where: list[str] = (),
    sort: str | None = None,
    count: bool = True,
) -> RunList:
    from opsctl.store import Filter

    if limit < 1:
        raise UsageError("--limit must be at least 1")
    if status is not None and status not in ("running", "succeeded", "failed", "interrupted"):
        raise UsageError(f"--status {status}: one of running, succeeded, failed, interrupted")
    filters = [Filter(w.field, w.key, w.op, w.value) for w in map(parse_where, where)]
    sort_key, descending = parse_sort(sort)
    if not store_path(project).exists():
        return RunList([], [], 0, 0)
    with open_store(project) as store:
        runs = store.list_runs(limit=limit, status=status, filters=filters, sort=sort_key, descending=descending)
        # Counting every run costs a few ms in a big store: only when the caller shows it.
        total = store.count_runs(status=status, filters=filters) if count and len(runs) >= limit else len(runs)
        total_in_store = total if (status is None and not filters) or runs else store.count_runs()
    keys: list[str] = []
    for run in runs:  # the key metrics: those of the newest runs, in their order
        keys += [k for k in sorted(run.metrics) if k not in keys]
    return RunList(runs, keys[:MAX_METRIC_COLUMNS], total, total_in_store)


def show_run(project: Project, run: str):
    with open_store(project) as store:
        return store.get_run(run)


class CompareRow(NamedTuple):
    key: str  # params.train.n_estimators | metrics.accuracy
    values: list
    changed: bool
    deltas: list  # value - the first run's value, for numbers; None otherwise


class Comparison(NamedTuple):
    run_ids: list[str]
    rows: list[CompareRow]


def compare_runs(project: Project, runs: list[str]) -> Comparison:
    with open_store(project) as store:
        details = [store.get_run(r) for r in runs]
    rows = []
    for section in ("params", "metrics"):
        keys = sorted({k for d in details for k in getattr(d, section)})
        for key in keys:
            values = [getattr(d, section).get(key) for d in details]
            first = values[0]
            deltas = [(v - first) if is_number(v) and is_number(first) else None for v in values]
            rows.append(CompareRow(f"{section}.{key}", values, len({repr(v) for v in values}) > 1, deltas))
    return Comparison([d.id for d in details], rows)


def stage_logs(project: Project, run: str, stage: str | None) -> list[tuple[str, Path | None]]:
    """(stage, log path) of a run's stages in the order they started; one stage when named.

    Stages still running have no record yet, only a log file in the run's log
    directory: those are included too (that is what ``--follow`` follows)."""
    return logs_of(project, show_run(project, run), stage)


def logs_of(project: Project, detail, stage: str | None = None) -> list[tuple[str, Path | None]]:
    """:func:`stage_logs` of a run already read (a store ``RunDetail``)."""
    import difflib

    from opsctl.core.run import RUNS_DIR

    recorded = sorted(detail.stages, key=lambda s: (s.started or 0, s.name))
    # Relative paths are the project's (absolute ones come from older records).
    logs = [(s.name, project.root / s.log_path if s.log_path else None) for s in recorded]
    known = {p.resolve() for _n, p in logs if p is not None}
    names = {n for n, _p in logs}
    log_dir = project.state_dir / RUNS_DIR / detail.id
    if log_dir.is_dir():
        live = sorted(
            (p for p in log_dir.glob("*.log") if p.resolve() not in known and p.stem not in names),
            key=lambda p: p.stat().st_mtime,
        )
        logs += [(p.stem, p) for p in live]
    if stage is not None:
        chosen = [(n, p) for n, p in logs if n == stage]
        if not chosen:
            names = [n for n, _p in logs]
            close = difflib.get_close_matches(stage, names, n=3, cutoff=0.5)
            raise UsageError(
                f"run {detail.id[:8]} has no stage '{stage}'",
                hint=f"did you mean {', '.join(close)}?" if close else f"its stages: {', '.join(names) or 'none'}",
            )
        logs = chosen
    return logs


def run_is_running(project: Project, run: str) -> bool:
    return show_run(project, run).status == "running"
