"""Experiments: ``opsctl exp run`` sweeps, the durable queue, ``exp show/apply/branch``.

An experiment is a run of the pipeline with some params changed, in its own work tree, so
the user's files are never touched (docs/architecture.md, *Experiments*):

- ``exp run`` expands its ``-S`` sweeps (core/sweep.py), takes a snapshot of the work tree
  (the current commit plus uncommitted changes, as a commit that no branch points at) and
  queues one entry per experiment in the run store. ``--queue`` stops there; otherwise it
  runs its own entries, as ``exp queue start`` runs everybody's.
- A runner (:func:`run_queue`) claims entries one by one and runs each in a process of its
  own (``python -m opsctl.cli.exp_child``): DVC works in the process's working directory,
  so one process per work tree. That process makes a linked Git work tree of the snapshot
  under ``.dvc/tmp/opsctl-exps/`` (inside ``.dvc/``, where DVC never looks for pipelines),
  points its DVC cache at the project's, checks the outputs out, writes its params and runs
  the pipeline there (core/run.py), recording into the project's run store and logs. Stages
  whose inputs are the same in several experiments run once (core/shared_stages.py).
- When it ends, the work tree is committed (``refs/opsctl/exps/RUN``: params, ``dvc.lock``,
  metrics) for ``exp apply``/``exp branch``, and removed. An interrupted experiment goes
  back to the queue; an experiment whose process died is put back by the next runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.core.project import STATE_DIR, Project
from opsctl.core.runs import _alive, open_store
from opsctl.errors import OpsctlError, UsageError

if TYPE_CHECKING:
    from opsctl.store.experiments import Experiment, QueueEntry

WORK_TREES = Path(".dvc") / "tmp" / "opsctl-exps"  # the experiments' work trees (DVC ignores .dvc/)
EXPS_STATE = "exps"  # under .opsctl/: the sweeps' slots
ERRORS_LOG = "errors.log"  # under .opsctl/exps/: tracebacks of experiments that crashed
MAX_GROUP_NAME = 64
STOP_GRACE = 60.0  # seconds an experiment process gets to clean up after Ctrl-C before it is killed


# -- planning a sweep --------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    group: str
    experiments: list[list[str]]  # each: the -S overrides ("KEY=VALUE") of one experiment
    varying: list[str]  # the keys whose values differ between experiments


def plan_sweep(
    project: Project, sweeps: Sequence[str], *, zip_mode: bool = False, name: str | None = None
) -> SweepPlan:
    """The experiments of ``-S`` sweeps; UsageError for a malformed one, or a params key the
    params file does not have (refused now, not when the experiment runs)."""
    from opsctl.core.sweep import expand, varying

    group = _group_name(name)
    experiments = expand(list(sweeps), zip_mode=zip_mode)
    check_param_keys(project, experiments[0])
    return SweepPlan(group, experiments, varying(experiments))


def _group_name(name: str | None) -> str:
    if name is None:
        return f"sweep-{time.strftime('%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not name or len(name) > MAX_GROUP_NAME or not all(c.isalnum() or c in "._-" for c in name):
        raise UsageError(
            f"--name {name[:MAX_GROUP_NAME]!r}: use letters, digits, '.', '_' and '-' (at most {MAX_GROUP_NAME})"
        )
    return name


def check_param_keys(project: Project, overrides: Sequence[str]) -> None:
    """Every ``[FILE:]KEY`` must exist in its params file: a typo would otherwise add a new
    param that nothing reads, and the sweep would run N identical experiments."""
    import difflib

    from opsctl.core.run import parse_overrides
    from opsctl.core.yamlload import MAX_DATA_BYTES, cut, load_yaml_file

    loaded: dict[str, Any] = {}
    for file, key, _value in parse_overrides(list(overrides), project.root):
        path = project.root / file
        if file not in loaded:
            if not path.is_file():
                raise UsageError(f"-S {cut(key)}: no params file {file}", hint="name the file: -S FILE:KEY=VALUE")
            loaded[file] = load_yaml_file(path, max_bytes=MAX_DATA_BYTES, source=file) or {}
        node: Any = loaded[file]
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                keys = _flat_keys(loaded[file])
                close = difflib.get_close_matches(key, keys, n=3)
                raise UsageError(
                    f"-S {cut(key)}: {file} has no param {cut(key)}",
                    hint=f"did you mean {', '.join(close)}?"
                    if close
                    else f"{file} has: {', '.join(keys[:8]) or 'nothing'}",
                )
            node = node[part]


def _flat_keys(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return [prefix] if prefix else []
    keys = []
    for k, v in data.items():
        keys += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return [k.rstrip(".") for k in keys]


# -- the queue ------------------------------------------------------------------------------------


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def queue_sweep(
    project: Project, plan: SweepPlan, *, executor: str | None, for_runner: str | None = None
) -> list[QueueEntry]:
    """Queue the sweep's experiments, each starting from the work tree as it is now.
    ``for_runner``: keep them for that runner (`exp run`); None: for any `exp queue start`."""
    from opsctl.adapters.git import current_branch, snapshot
    from opsctl.executors.registry import executor_spec
    from opsctl.store.experiments import NewEntry, enqueue

    if executor is not None:
        executor_spec(executor)  # an unknown name: UsageError naming the executors there are
    base = snapshot(project.root, exclude=(STATE_DIR,))
    branch = current_branch(project.root)
    entries = [
        NewEntry(plan.group, f"{plan.group}-{i + 1}", overrides, base, executor, branch)
        for i, overrides in enumerate(plan.experiments)
    ]
    with open_store(project) as store:
        return enqueue(store, entries, for_runner)


def queue_list(project: Project) -> list[QueueEntry]:
    from opsctl.store.experiments import queue_entries, requeue_dead

    with open_store(project) as store:
        requeue_dead(store, _alive)
    remove_orphan_work_trees(project)
    with open_store(project, reap=False) as store:
        return queue_entries(store)


def queue_remove(project: Project, qids: Sequence[int] | None) -> tuple[list[int], list[int], list[int]]:
    """(removed, running: not removed, unknown). ``qids`` None: every queued entry."""
    from opsctl.store.experiments import queue_entries, requeue_dead

    with open_store(project) as store:
        requeue_dead(store, _alive)
        entries = queue_entries(store)
        known = {e.qid for e in entries}
        unknown = [q for q in qids or () if q not in known]
        removed, running = _remove(project, store, entries, None if qids is None else [q for q in qids if q in known])
    return removed, running, unknown


def drop_unstarted(project: Project, runner: str) -> int:
    """The entries an `exp run` queued for itself and never started, taken off the queue when an
    error stops it (the engine down, an image that fails to build): they were queued to run
    now, and running the command again queues them again. How many were dropped."""
    from opsctl.store.experiments import QUEUED, queue_entries

    with open_store(project, reap=False) as store:
        entries = queue_entries(store, runner=runner)
        removed, _running = _remove(project, store, entries, [e.qid for e in entries if e.status == QUEUED])
    return len(removed)


def _remove(project: Project, store, entries: list[QueueEntry], qids: list[int] | None) -> tuple[list[int], list[int]]:
    from opsctl.store.experiments import remove_entries

    removed, running = remove_entries(store, qids)
    _drop_unused_snapshots(project, store, {e.base for e in entries if e.qid in removed})
    return removed, running


def _drop_unused_snapshots(project: Project, store, candidates: set[str]) -> None:
    """Snapshots (refs/opsctl/snapshots/) that no queue entry nor recorded experiment names any
    more; only among ``candidates`` (the bases of entries just removed): a sweep being queued
    at this moment has made its snapshot and not yet queued its entries."""
    from opsctl.adapters.git import drop_snapshot
    from opsctl.store.experiments import bases_in_use

    for commit in candidates - bases_in_use(store):
        drop_snapshot(project.root, commit)


# -- running the queue -------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    entry: QueueEntry
    run_id: str | None = None
    status: str = "running"  # running | succeeded | failed | interrupted | error (never became a run)
    detail: str = ""  # what failed
    failed_stages: list[str] = field(default_factory=list)
    stage: str | None = None  # the stage running now (live display)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    metrics: dict = field(default_factory=dict)


class SweepEvents:
    """What a front end hears while a queue runs (called from the runner's thread)."""

    def images(self, names: list[str]) -> None:
        """The images the experiments need are being built (or confirmed), once for all."""

    def started(self, result: ExperimentResult) -> None: ...

    def progress(self, result: ExperimentResult) -> None:
        """A stage of a running experiment started or finished (``result.stage``)."""

    def finished(self, result: ExperimentResult) -> None: ...

    def stopping(self, running: int) -> None:
        """Ctrl-C: ``running`` experiments are cleaning up."""


@dataclass
class _Child:
    result: ExperimentResult
    work_tree: Path
    pid: int | None = None  # known once the zygote says so
    code: int | None = None  # its exit code, once it ended


class _Zygote:
    """The process experiments are forked from (``python -m opsctl.cli.exp_child --zygote``):
    it imports DVC, Docker's SDK and opsctl once, so an experiment starts in milliseconds
    instead of paying ~0.8 s of CPU for its imports. Requests go down its stdin, one JSON
    line each; what every experiment says comes back on its stdout, tagged with its queue id,
    and so do their pids and exit codes. Its stdin is a pipe only this runner holds: should
    the runner die, the zygote sees end-of-file and stops every experiment it forked."""

    def __init__(self, project: Project) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = project.state_dir / EXPS_STATE / ERRORS_LOG  # where a crashed experiment's traceback goes
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as errors:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "opsctl.cli.exp_child", "--zygote", str(project.root)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
        self.buffer = b""
        self.gone = False

    def fork(self, argv: list[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"argv": argv}).encode() + b"\n")
        self.proc.stdin.flush()

    def messages(self, timeout: float) -> list[dict]:
        """What came within ``timeout`` seconds (``gone`` set when the zygote itself ended)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.gone = True
            self.proc.wait()
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        found = []
        for line in lines:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the zygote's cue to stop its experiments and exit
        try:
            self.proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Experiment processes beyond -j: they set their work tree up while others' stages run, and
# wait for a slot to run stages of their own (core/shared_stages.py).
AHEAD = 2


def run_queue(
    project: Project,
    *,
    jobs: int,
    runner: str | None = None,
    executor: str | None = None,
    executor_settings: dict | None = None,
    events: SweepEvents | None = None,
) -> list[ExperimentResult]:
    """Run queued experiments, up to ``jobs`` stages at once across them, until the queue has
    none left for this runner (entries queued meanwhile are picked up). ``runner``: only the
    entries that runner queued (`exp run`); None: the shared queue (`exp queue start`).
    ``executor_settings``: the command line's (``--scheduler``), over opsctl.yaml's.
    Ctrl-C stops every experiment, puts them back in the queue and re-raises."""
    from opsctl.store.experiments import claim_next, release, requeue_dead

    events = events or SweepEvents()
    if jobs < 1:
        raise UsageError("-j must be at least 1")
    token = secrets.token_hex(4)
    slots_dir = project.state_dir / EXPS_STATE / f"slots-{token}"
    host, pid = socket.gethostname(), os.getpid()
    with open_store(project) as store:
        requeue_dead(store, _alive)
    remove_orphan_work_trees(project)
    built: set[str] = set()
    running: dict[int, _Child] = {}
    results: list[ExperimentResult] = []
    zygote: _Zygote | None = None
    try:
        while True:
            while len(running) < jobs + AHEAD and (zygote is None or not zygote.gone):
                with open_store(project, reap=False) as store:
                    entry = claim_next(store, host, pid, runner=runner)
                if entry is None:
                    break
                name = executor or entry.executor or project.config.executor
                try:
                    if name not in built:
                        _prepare_images(project, name, events)
                        built.add(name)
                    zygote = zygote or _Zygote(project)
                    work_tree = project.root / WORK_TREES / f"q{entry.qid}-{secrets.token_hex(3)}"
                    argv = [str(project.root), str(entry.qid), str(work_tree), name, str(jobs), str(slots_dir)]
                    zygote.fork([*argv, json.dumps(executor_settings or {})])
                except BaseException:
                    with open_store(project, reap=False) as store:
                        release(store, entry.qid)
                    raise
                running[entry.qid] = _Child(ExperimentResult(entry), work_tree)
                events.started(running[entry.qid].result)
            if not running:
                break
            assert zygote is not None
            _pump(zygote, running, results, events, project)
    except KeyboardInterrupt:
        events.stopping(len(running))
        _stop(zygote, running, results, project)
        raise
    finally:
        if zygote is not None:
            zygote.close()
        _remove_tree(slots_dir)
    return results


def _prepare_images(project: Project, executor: str, events: SweepEvents) -> None:
    """Build the images once here, before any experiment process would build them at once."""
    from opsctl.executors.registry import executor_spec

    if not executor_spec(executor).containers or not project.config.images:
        return
    from opsctl.core.images import build_images

    names = sorted(project.config.images)
    events.images(names)
    build_images(project, names)


def _pump(
    zygote: _Zygote,
    running: dict[int, _Child],
    results: list[ExperimentResult],
    events: SweepEvents | None,
    project: Project,
    timeout: float = 0.5,
) -> None:
    """Read what the experiments say for a moment; settle those that ended."""
    for message in zygote.messages(timeout):
        child = running.get(message.get("qid", -1))
        if child is None:
            continue
        if message.get("event") == "pid":
            child.pid = int(message["pid"])
        elif message.get("event") == "exit":
            child.code = int(message["code"])
        else:
            _on_message(child.result, message, events or SweepEvents())
    for qid, child in list(running.items()):
        if child.code is None and not zygote.gone:
            continue
        _settle(child, project)
        del running[qid]
        results.append(child.result)
        if events is not None:
            events.finished(child.result)


def _on_message(result: ExperimentResult, message: dict, events: SweepEvents) -> None:
    kind = message.get("event")
    if kind == "begun":
        result.run_id = message["run"]
    elif kind == "stage":
        result.stage = message.get("stage") if message.get("state") == "started" else None
        events.progress(result)
    elif kind == "done":
        result.status = message.get("status", "failed")
        result.failed_stages = list(message.get("failed", []))
        result.detail = message.get("detail", "")
        result.metrics = dict(message.get("metrics", {}))
    elif kind == "error":
        result.status = "error"
        result.detail = message.get("message", "")


def _settle(child: _Child, project: Project) -> None:
    """After an experiment process ended, however it ended."""
    result = child.result
    result.finished = time.time()
    result.stage = None
    code = child.code
    from opsctl.store.experiments import finish_entry, release

    if result.status == "running":  # it said nothing at the end: stopped by a signal, or it crashed
        stopped = code in (130, -signal.SIGINT, -signal.SIGKILL, -signal.SIGTERM)
        result.status = "interrupted" if stopped else "error"
        result.detail = result.detail or f"its process ended with code {code}"
    if result.status == "interrupted":  # back to the queue, to run again
        with open_store(project, reap=False) as store:
            release(store, result.entry.qid)
    elif result.status == "error":
        # It could not run (a bad config) or crashed (a bug): off the queue, not retried forever.
        with open_store(project, reap=False) as store:
            finish_entry(store, result.entry.qid)
        if result.detail.startswith("internal error"):
            result.detail += f" (traceback in {STATE_DIR}/{EXPS_STATE}/{ERRORS_LOG})"
    if child.work_tree.exists():
        from opsctl.adapters.git import remove_work_tree

        remove_work_tree(project.root, child.work_tree)


def _stop(
    zygote: _Zygote | None, running: dict[int, _Child], results: list[ExperimentResult], project: Project
) -> None:
    """Ctrl-C reached the experiment processes too (same process group) when it came from a
    terminal; SIGTERM or a script's SIGINT did not: say it to each, then wait for them to
    remove their containers, record their runs and put their entries back."""
    for child in running.values():
        if child.pid is not None and child.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE
    while running and zygote is not None and time.monotonic() < deadline:
        try:
            _pump(zygote, running, results, None, project, timeout=0.2)
        except KeyboardInterrupt:  # a second Ctrl-C: still wait for the clean-up
            continue
    for child in list(running.values()):  # past the grace period (or no zygote): as they are
        if child.pid is not None and child.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        _settle(child, project)
        results.append(child.result)
    running.clear()


def remove_orphan_work_trees(project: Project) -> list[Path]:
    """Work trees of experiments whose process is gone (their entries were put back)."""
    from opsctl.adapters.git import remove_work_tree
    from opsctl.store.experiments import queue_entries

    base = project.root / WORK_TREES
    if not base.is_dir():
        return []
    with open_store(project, reap=False) as store:
        live = {
            e.qid
            for e in queue_entries(store)
            if e.status == "running" and e.owner_pid and _alive(e.owner_host or "", e.owner_pid)
        }
    removed = []
    for path in sorted(base.iterdir()):
        qid = path.name[1:].split("-", 1)[0]
        if not (qid.isdigit() and int(qid) in live):
            remove_work_tree(project.root, path)
            removed.append(path)
    return removed


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- one experiment, in its own process (cli/exp_child.py) -----------------------------------------


def preload() -> None:
    """Import what an experiment needs, for the zygote its processes are forked from."""
    import opsctl.adapters.dvc_run
    import opsctl.core.images
    import opsctl.core.pipeline
    import opsctl.core.run
    import opsctl.core.shared_stages
    import opsctl.executors.docker
    import opsctl.executors.local
    import opsctl.store.experiments  # noqa: F401
    from opsctl.adapters.docker import preload as docker_preload
    from opsctl.adapters.dvc import preload as dvc_preload

    dvc_preload()
    docker_preload()


def run_one(
    home: Project,
    qid: int,
    work_tree: Path,
    executor: str,
    jobs: int,
    slots_dir: Path,
    say: Callable[[dict], None],
    executor_settings: dict | None = None,
) -> int:
    """Run queue entry ``qid`` in a new work tree; the exit code (0, 5 failed stage, 130)."""
    from opsctl.adapters.dvc import share_cache
    from opsctl.adapters.git import add_work_tree, commit_experiment, remove_work_tree, snapshot_head
    from opsctl.core.run import RunEvents, RunOptions, StageRun, run_pipeline
    from opsctl.core.shared_stages import SharedStages
    from opsctl.store.experiments import finish_entry, queue_entries, record_experiment, release, set_git_ref, take_over

    with open_store(home, reap=False) as store:
        entry = next((e for e in queue_entries(store) if e.qid == qid), None)
    if entry is None:
        say({"event": "error", "message": f"queue entry {qid} is gone"})
        return 1
    this: QueueEntry = entry  # (named again for the closure below: mypy forgets the check there)
    host, pid = socket.gethostname(), os.getpid()
    begun: list[str] = []

    class Events(RunEvents):
        def begun(self, run_id: str) -> None:
            begun.append(run_id)
            with open_store(home, reap=False) as store:
                take_over(store, qid, host, pid, run_id)
                record_experiment(store, run_id, this.group, this.name, this.overrides, base=this.base)
            say({"event": "begun", "run": run_id})

        def stage_started(self, name: str) -> None:
            say({"event": "stage", "stage": name, "state": "started"})

        def stage_finished(self, stage: StageRun) -> None:
            say({"event": "stage", "stage": stage.name, "state": stage.status})

    try:
        add_work_tree(home.root, work_tree, snapshot_head(home.root, entry.base), entry.base)
        share_cache(home.root, work_tree)
        project = Project(work_tree, state_dir=home.state_dir)
        options = RunOptions(
            jobs=jobs,
            executor=executor,
            executor_settings=dict(executor_settings or {}),
            overrides=list(entry.overrides),
            shared=SharedStages(home.state_dir, slots_dir, jobs),
            branch=entry.branch,
            record_noop=True,
            check_out=True,
        )
        try:
            report = run_pipeline(project, options, Events())
        except KeyboardInterrupt:
            with open_store(home, reap=False) as store:
                release(store, qid)
            say({"event": "done", "status": "interrupted", "run": begun[0] if begun else None})
            return 130
        failed = [s.name for s in report.failed]
        # Only a finished experiment is kept as a commit: a failed stage leaves outputs that DVC
        # never recorded (nor listed in a .gitignore), which would go into Git as files.
        ref = None if failed else commit_experiment(work_tree, report.run_id, _commit_message(entry), (STATE_DIR,))
        with open_store(home, reap=False) as store:
            if report.recorded and ref is not None:
                set_git_ref(store, report.run_id, ref)
            finish_entry(store, qid)
        say(
            {
                "event": "done",
                "run": report.run_id,
                "status": "failed" if failed else "succeeded",
                "failed": failed,
                "detail": "; ".join(f"{s.name}: {s.detail}" for s in report.failed),
                "metrics": _flat_metrics(report.metrics),
            }
        )
        return 5 if failed else 0
    except OpsctlError as exc:
        # It could not run at all (a config error, a params file gone): that is its outcome,
        # not something to try again forever.
        with open_store(home, reap=False) as store:
            finish_entry(store, qid)
        say({"event": "error", "message": str(exc)})
        return exc.exit_code
    finally:
        remove_work_tree(home.root, work_tree)


def _commit_message(entry: QueueEntry) -> str:
    values = " ".join(entry.overrides) or "the workspace's params"
    return f"opsctl exp {entry.name}: {values}"


def _flat_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


# -- reading experiments ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentTable:
    group: str
    experiments: list[Experiment]  # best first
    varying: list[str]  # the -S keys whose values differ
    metric_keys: list[str]
    sort_key: str | None
    groups: list[tuple[str, int, float]]  # every group: (name, experiments, newest start)


def show_experiments(project: Project, group: str | None = None, sort: str | None = None) -> ExperimentTable:
    import difflib

    from opsctl.core.runs import store_path
    from opsctl.core.sweep import varying
    from opsctl.store.experiments import experiments, groups

    key, descending = experiment_sort(sort)
    if not store_path(project).exists():
        if group is not None:
            raise UsageError(f"no experiment group '{group}'", hint="`opsctl exp run` makes one")
        return ExperimentTable("", [], [], [], None, [])
    with open_store(project) as store:
        known = groups(store)
        names = [g for g, _n, _t in known]
        if group is None:
            if not known:
                return ExperimentTable("", [], [], [], None, [])
            group = names[0]
        elif group not in names:
            close = difflib.get_close_matches(group, names, n=3)
            raise UsageError(
                f"no experiment group '{group}'",
                hint=f"did you mean {', '.join(close)}?" if close else f"groups: {', '.join(names[:6]) or 'none yet'}",
            )
        rows = experiments(store, group)
    metric_keys: list[str] = []
    for row in rows:
        metric_keys += [k for k in sorted(row.metrics) if k not in metric_keys]
    if key is None and metric_keys:
        key, descending = f"metrics.{metric_keys[0]}", True
    if key is not None:
        rows = _sorted(rows, key, descending)
    return ExperimentTable(group, rows, varying([r.overrides for r in rows]), metric_keys, key, known)


def experiment_sort(sort: str | None) -> tuple[str | None, bool]:
    """``--sort metrics.KEY`` (or ``params.KEY``; ``+`` first: lowest first) -> (key, descending);
    UsageError for anything else."""
    from opsctl.core.runs import parse_sort

    if sort and not sort.lstrip("+-").startswith(("metrics.", "params.")):
        raise UsageError(f"--sort {sort}: sort experiments by metrics.KEY or params.KEY (+ first: lowest first)")
    return parse_sort(sort)


def _sorted(rows: list[Experiment], key: str, descending: bool) -> list[Experiment]:
    kind, _, name = key.partition(".")
    return sorted(rows, key=lambda row: rank((row.metrics if kind == "metrics" else row.params).get(name), descending))


def rank(value: object, descending: bool) -> tuple[int, float, str]:
    """A sort key putting the best value first: numbers (highest first when ``descending``),
    then text, then missing values, whatever the order."""
    if isinstance(value, bool) or value is None:
        return (2, 0.0, "")
    if isinstance(value, (int, float)):
        return (0, -value if descending else value, "")
    return (1, 0.0, str(value))


def override_values(overrides: Sequence[str]) -> dict[str, str]:
    """{KEY: VALUE text} of an experiment's -S values."""
    return {k: v for k, _, v in (o.partition("=") for o in overrides)}


def typed_values(overrides: Sequence[str]) -> dict[str, object]:
    """{KEY: value} of an experiment's -S values, each read as `opsctl run -S` reads it (YAML)."""
    from opsctl.core.run import parse_overrides

    return {
        key: value for key, (_file, _name, value) in zip(override_values(overrides), parse_overrides(list(overrides)))
    }


# -- bringing an experiment back --------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    run_id: str
    files: list[str]  # Git-tracked files written or deleted
    outputs: list[str]  # DVC outputs checked out
    fetched: int  # cache objects fetched from the remote first


def _experiment_commit(project: Project, run: str) -> tuple[str, str, Experiment]:
    """(run id, the experiment's commit, the experiment) of a succeeded experiment, or UsageError."""
    from opsctl.adapters.git import commit_exists
    from opsctl.store.experiments import experiments

    with open_store(project) as store:
        detail = store.get_run(run)  # RunNotFoundError / AmbiguousRunError for a bad id
        found = experiments(store, run_ids=[detail.id])
    if not found:
        raise UsageError(f"run {detail.id} is not an experiment", hint="`opsctl exp show` lists them")
    exp = found[0]
    if exp.status != "succeeded":
        raise UsageError(
            f"experiment {exp.name} (run {detail.id}) {exp.status}: it has nothing to apply",
            hint="`opsctl runs show RUN` says what happened; `opsctl exp show` lists the ones that succeeded",
        )
    if exp.git_ref is None or not commit_exists(project.root, exp.git_ref):
        raise UsageError(
            f"experiment {exp.name} (run {detail.id}) has no recorded files",
            hint="its commit (refs/opsctl/exps/RUN) is gone from the repository",
        )
    return detail.id, exp.git_ref, exp


def apply_experiment(project: Project, run: str, *, force: bool = False) -> Applied:
    """Bring an experiment's files (params, dvc.lock, metrics, the code it ran) and outputs into
    the work tree. Refused when it would overwrite uncommitted changes (unless ``force``);
    outputs missing from the cache are fetched from the default remote first, and if they
    can't be, nothing is written."""
    from opsctl.adapters.dvc import apply_checkout, missing_lock_objects
    from opsctl.adapters.git import blob, changed_paths, commit_exists, head_commit, parent_of

    run_id, commit, exp = _experiment_commit(project, run)
    base = parent_of(project.root, commit) or head_commit(project.root) or commit
    changes = changed_paths(project.root, base, commit)
    # A file whose content here is none of the commit it ran from, the work tree it started
    # from (uncommitted edits the sweep took along) or the experiment's, would be lost.
    known = [base, commit] + ([exp.base] if exp.base and commit_exists(project.root, exp.base) else [])
    conflicts = []
    for _status, path in changes:
        here = project.root / path
        current = here.read_bytes() if here.is_file() else None
        if all(current != blob(project.root, rev, path) for rev in known):
            conflicts.append(path)
    lock = blob(project.root, commit, "dvc.lock")
    fetched, missing = missing_lock_objects(project.root, lock)
    modified_outputs = [] if force else _modified_outputs(project)
    if (conflicts or modified_outputs) and not force:
        names = sorted(set(conflicts + modified_outputs))
        raise UsageError(
            f"applying {run_id} would overwrite uncommitted changes: {', '.join(names[:8])}"
            + (f" and {len(names) - 8} more" if len(names) > 8 else ""),
            hint="commit or stash them first, or add --force",
        )
    if missing:
        raise OpsctlError(
            f"experiment {run_id}'s outputs are not in the DVC cache, nor on a remote: {', '.join(missing[:5])}",
            hint="run the experiment again (`opsctl exp run`), or push its outputs from where it ran",
        )
    written = []
    for status, path in changes:
        target = project.root / path
        if status == "D":
            if target.exists():
                target.unlink()
            written.append(path)
            continue
        data = blob(project.root, commit, path) or b""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.opsctl-apply")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # whole or not at all
        written.append(path)
    outputs = apply_checkout(project.root)
    return Applied(run_id, written, outputs, fetched)


def _modified_outputs(project: Project) -> list[str]:
    from opsctl.adapters.dvc import modified_outputs

    return modified_outputs(project.root)


def branch_experiment(project: Project, run: str, branch: str) -> tuple[str, str]:
    """A Git branch at the experiment's commit (its parent: the commit it ran from)."""
    from opsctl.adapters.git import create_branch

    run_id, commit, _exp = _experiment_commit(project, run)
    create_branch(project.root, branch, commit)
    return run_id, commit
