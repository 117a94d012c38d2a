"""Run records: every ``opsctl run`` in the project's run store (``.opsctl/opsctl.db``),
and the queries behind ``opsctl runs``.

The store itself (SQLite, WAL, migrations) is :mod:`opsctl.store`; this module
decides what a run record holds — the code that ran (commit, branch, dirty
flag and a hash of the uncommitted diff), params and metrics as DVC reads
them, and per stage its outcome, image and the DVC hash of every dep and out.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from opsctl.core.formatting import is_number
from opsctl.core.project import STATE_DIR, Project
from opsctl.errors import StoreError, UsageError
from opsctl.secrets import mask_mapping

STORE_FILE = "opsctl.db"  # under .opsctl/
RUNS_DIR = "runs"  # under .opsctl/: one directory of stage logs per run


def store_path(project: Project) -> Path:
    return project.state_dir / STORE_FILE


def open_store(project: Project, *, reap: bool = True):
    """The project's run store; runs left "running" by a dead opsctl are marked interrupted."""
    from opsctl.store import RunStore

    project.state_dir.mkdir(exist_ok=True)
    store = RunStore(store_path(project))
    if reap:
        settle_kept_runs(project, store)  # before reaping: a run kept aside gets its own status, not "interrupted"
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
    from opsctl.adapters.processes import pid_alive

    return pid_alive(pid)


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
    in dvc.lock; the record is a report of them. The error is kept for the caller.

    Nor does such a store turn the run into an "interrupted" one later: when the end of
    the run cannot be written (a damaged page, a full disk), its final status is written
    alone if it can be, and the whole record is kept aside in ``.opsctl/pending/ID.json``
    (in room reserved when the run began, so a full disk does not stop that either), for
    :func:`settle_kept_runs` to record as soon as the store takes writes again."""

    def __init__(self, project: Project, *, branch: str | None = None) -> None:
        """``branch``: the branch to record when the work tree's own is not the one (an
        experiment's work tree is detached at the commit of the branch it came from)."""
        self.project = project
        self._branch = branch
        self.store: Any = None  # a RunStore once begun (imported off the critical path)
        self.error: Exception | None = None
        self.branch: str | None = None
        self.begun = False
        self._new_run = None  # the NewRun as begun
        self._stages: list = []  # StageRecords, whether or not the store took them
        self._kept: Path | None = None  # the room reserved for this run's record (see finish)
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
        self._kept = _reserve(self.project, report.run_id)

        def action():
            self._preparing.join()
            if "error" in self._ready:
                raise self._ready["error"]
            state = self._ready["state"]
            self.branch = self._branch or state.branch
            self._new_run = NewRun(
                id=report.run_id,
                started=report.started,
                user=current_user(),
                host=socket.gethostname(),
                pid=os.getpid(),
                git_commit=state.commit,
                branch=self.branch,
                dirty=state.dirty,
                diff_hash=state.diff_hash,
                executor=report.executor,
                jobs=report.jobs,
                targets=list(targets),
            )
            self.store = open_store(self.project)
            self.store.begin_run(self._new_run)

        self._guard(action)

    def stage(self, run_id: str, stage) -> None:
        from opsctl.store import ArtifactRecord, StageRecord

        record = StageRecord(
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
            # (getattr: stage results made before remote executors have neither)
            worker=getattr(stage, "worker", None),
            attempts=getattr(stage, "attempts", 1),
            artifacts=[
                ArtifactRecord(kind=h.kind, path=h.path, hash=_masked_param(h.hash) if h.kind == "param" else h.hash)
                for h in stage.hashes
            ],
        )
        self._stages.append(record)
        self._guard(lambda: self.store.record_stage(run_id, record))

    def _relative(self, path) -> str | None:
        """Log paths relative to the project: a moved or copied project keeps finding them."""
        if path is None:
            return None
        # (the project that holds the state: an experiment's work tree records into its origin's)
        try:
            return Path(path).relative_to(self.project.state_dir.parent).as_posix()
        except ValueError:
            return str(path)

    def finish(self, report, status: str, params: dict, metrics: dict) -> None:
        params = mask_mapping(params)

        def action():
            self.store.finish_run(report.run_id, status, report.finished, params, metrics)
            previous = self.store.previous_run(report.run_id, self.branch)
            if previous is not None:
                report.previous_run_id = previous.id
                report.previous_metrics = dict(previous.metrics)

        self._guard(action)
        if self.error is None:
            _release(self._kept)
            return
        if self.store is not None:
            with contextlib.suppress(Exception):  # the status alone, so the run is not reaped as interrupted
                self.store.mark_finished(report.run_id, status, report.finished)
        if self._new_run is not None:
            kept = _keep_aside(
                self.project, self._kept, self._new_run, self._stages, status, report.finished, params, metrics
            )
            if kept is not None:
                self.error = StoreError(f"{_one_line(self.error)}; {_kept_note(self.project, kept, self.error)}")

    def close(self) -> None:
        self._preparing.join()
        if self.store is not None:
            self.store.close()
        self.store = None


# -- runs kept aside while the store could not take them ------------------------------------

PENDING_DIR = "pending"  # under .opsctl/: one JSON file per run the store could not take whole
_RESERVED = 16384  # bytes set aside per running run: its record fits, stages included, in most runs


def _reserve(project: Project, run_id: str) -> Path | None:
    """Room for this run's record, taken while the disk has some: a placeholder that says
    which process owns it. None when even that cannot be written (nothing is kept then)."""
    import json
    import socket

    path = project.state_dir / PENDING_DIR / f"{run_id}.json"
    text = json.dumps({"run": {"id": run_id, "host": socket.gethostname(), "pid": os.getpid()}, "status": None})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.ljust(_RESERVED))
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return path


def _release(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _keep_aside(project, reserved, new_run, stages, status, finished, params, metrics) -> Path | None:
    """Write the whole record beside the store; on a full disk, into the reserved room, with
    as much of the record as fits (stages without their hashes, then the status alone)."""
    import json

    path = project.state_dir / PENDING_DIR / f"{new_run.id}.json"
    stage_dicts = [{**s._asdict(), "artifacts": [list(a) for a in s.artifacts]} for s in stages]
    run = {**new_run._asdict(), "targets": list(new_run.targets)}
    record = {"run": run, "stages": stage_dicts, "status": status, "finished": finished}
    whole = json.dumps({**record, "params": params, "metrics": metrics}, default=str)
    try:
        tmp = path.with_suffix(".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(whole, encoding="utf-8")
        os.replace(tmp, path)
        return path
    except OSError:
        with contextlib.suppress(OSError):
            path.with_suffix(".tmp").unlink()
    if reserved is None or not reserved.exists():
        return None
    for text in (
        whole,
        json.dumps({**record, "stages": [{**s, "artifacts": []} for s in stage_dicts]}, default=str),
        json.dumps({"run": run, "status": status, "finished": finished}, default=str),
    ):
        if len(text.encode()) <= _RESERVED:
            try:
                with open(reserved, "r+", encoding="utf-8") as f:  # overwritten in place: no new blocks needed
                    f.write(text.ljust(_RESERVED))
                return reserved
            except OSError:
                return None
    return None


def _one_line(exc: Exception) -> str:
    return str(exc).rstrip(".")


def _kept_note(project: Project, kept: Path, error: Exception) -> str:
    from opsctl.errors import StoreDamagedError

    where = kept.relative_to(project.root).as_posix() if kept.is_relative_to(project.root) else str(kept)
    if isinstance(error, StoreDamagedError):
        return f"this run is kept in {where}: `opsctl runs repair` keeps every readable run and adds it"
    return f"this run is kept in {where} and recorded by the next opsctl command that can write the store"


def settle_kept_runs(project: Project, store) -> list[str]:
    """Record the runs kept aside (see :class:`RunRecorder`) now that ``store`` may take them;
    return their ids. A file stays while the store refuses it; never raises."""
    import json

    directory = project.state_dir / PENDING_DIR
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    settled = []
    for name in names:
        if not name.endswith(".json"):
            continue
        path = directory / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            run = data["run"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if data.get("status") is None:  # room reserved by a run: still at work, or killed
            if not _alive(run.get("host") or "", int(run.get("pid") or 0)):
                _release(path)
            continue
        try:
            _settle(store, data)
        except Exception:  # noqa: BLE001 — still not writable: keep the file, say the status if possible
            with contextlib.suppress(Exception):
                store.mark_finished(run["id"], data["status"], data.get("finished") or run.get("started"))
            continue
        _release(path)
        settled.append(run["id"])
    return settled


def _settle(store, data: dict) -> None:
    from opsctl.store import ArtifactRecord, NewRun, RunRecord, StageRecord

    run = data["run"]
    stages = [
        StageRecord(**{**s, "artifacts": [ArtifactRecord(*a) for a in s.get("artifacts", [])]})
        for s in data.get("stages") or []
    ]
    params, metrics = data.get("params") or {}, data.get("metrics") or {}
    finished = float(data.get("finished") or run.get("started") or 0.0)
    if not store.has_run(run["id"]):
        if "started" not in run:
            return  # only the status was kept, of a run the store never had: nothing to record
        new_run = NewRun(**{**run, "targets": tuple(run.get("targets") or ())})
        store.record_run(RunRecord(new_run, data["status"], finished, stages, params, metrics))
        return
    recorded = {s.name for s in store.get_run(run["id"]).stages}
    for stage in stages:
        if stage.name not in recorded:
            store.record_stage(run["id"], stage)
    store.finish_run(run["id"], data["status"], finished, params, metrics)


def _masked_param(values: str | None) -> str | None:
    """A param dependency's values as DVC recorded them (JSON ``{"db.password": ...}``), with
    secret-looking keys masked: the store never keeps a secret (the rule: opsctl/secrets.py)."""
    import json

    if not values:
        return values
    try:
        loaded = json.loads(values)
    except ValueError:
        return values
    if not isinstance(loaded, dict):
        return values
    return json.dumps(mask_mapping(loaded), sort_keys=True, default=str)


class StoreRepair(NamedTuple):  # (not a dataclass: `opsctl runs list` imports this module, see store/runs.py)
    problems: list[str]  # what SQLite's integrity check found (empty: the store was sound)
    kept: dict[str, int]  # table -> rows kept
    damaged: list[str]  # tables some rows of which could not be read
    backup: str | None  # the damaged file, kept (relative to the project)
    settled: list[str]  # runs kept aside meanwhile, now recorded


def repair_store(project: Project) -> StoreRepair:
    """``opsctl runs repair``: a damaged store is replaced by a new one holding every row
    that can still be read (the damaged file kept beside it); runs kept aside while it
    could not be written are then recorded. A sound store is left as it is."""
    from opsctl.store.repair import repair

    def running(rows: list[tuple[str, str, int]]) -> str | None:
        busy = [f"{run_id[:8]} (pid {pid})" for run_id, host, pid in rows if _alive(host, pid)]
        return f"run {', '.join(busy)} is still running" if busy else None

    path = store_path(project)
    report = repair(path, running) if path.exists() else None
    store = open_store(project, reap=False)
    try:
        settled = settle_kept_runs(project, store)
        store.reap_dead_runs(_alive)
    finally:
        store.close()
    backup = report.backup if report is not None else None
    return StoreRepair(
        problems=report.problems if report is not None else [],
        kept=report.kept if report is not None else {},
        damaged=report.damaged if report is not None else [],
        backup=backup.relative_to(project.root).as_posix() if backup is not None else None,
        settled=settled,
    )


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
    if field in ("status", "group") and not key:
        return Where(field, "", op, right.strip())
    if field not in ("params", "metrics") or not key:
        raise UsageError(f"--where {text}: the field must be params.KEY, metrics.KEY, status or group")
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
MAX_LIMIT = (1 << 63) - 1


def list_runs(
    project: Project,
    *,
    limit: int = 20,
    status: str | None = None,
    where: Sequence[str] = (),
    sort: str | None = None,
    count: bool = True,
) -> RunList:
    from opsctl.store import Filter

    if limit < 1:
        raise UsageError("--limit must be at least 1")
    if limit > MAX_LIMIT:  # SQLite's integers are 64-bit: a bigger one cannot even be asked
        raise UsageError(f"--limit {limit}: at most {MAX_LIMIT}")
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


def last_workers(project: Project, stages: Sequence[str]) -> dict[str, str]:
    """Per stage, the remote worker its newest execution ran on (those last run on this host,
    or never run, are left out)."""
    if not store_path(project).exists():
        return {}
    with open_store(project) as store:
        return store.last_workers(stages)


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

    recorded = sorted(detail.stages, key=lambda s: (s.started or 0, s.name))
    # Relative paths are the project's (absolute ones come from older records).
    logs = [(s.name, project.root / s.log_path if s.log_path else None) for s in recorded]
    known = {p.resolve() for _n, p in logs if p is not None}
    recorded_names = {n for n, _p in logs}
    log_dir = project.state_dir / RUNS_DIR / detail.id
    if log_dir.is_dir():
        live = sorted(
            (p for p in log_dir.glob("*.log") if p.resolve() not in known and p.stem not in recorded_names),
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
