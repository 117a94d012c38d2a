"""``opsctl run``: the stale stages of the pipeline, in parallel, each in its image.

The plan is :func:`opsctl.core.pipeline.make_plan`. Each stale stage then goes
through DVC's own steps (:class:`opsctl.adapters.dvc_run.RunSession`): outputs
removed, restored from the run cache when the same command, deps and params
ran before, otherwise executed by the executor (a container of its image, or a
host process); on success its outputs are committed and its ``dvc.lock`` entry
written, with the image it ran in recorded in ``opsctl.lock``. The scheduler
runs independent stages at the same time, up to ``jobs``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from opsctl.core.gates import AFTER, BEFORE, DRIFT
from opsctl.core.pipeline import Plan, make_plan
from opsctl.core.project import Project
from opsctl.core.quarantine import MAX_QUARANTINE_ROWS
from opsctl.core.run_report import RunReport, StageRun
from opsctl.core.runs import RUNS_DIR, RunRecorder
from opsctl.core.scheduler import CACHED, FAILED, RAN, SchedulerInterrupted, StageReport, StageTask, run_stages
from opsctl.errors import ConfigError, OpsctlError, UsageError
from opsctl.executors.registry import executor_spec

if TYPE_CHECKING:
    from opsctl.adapters.dvc_lock import LockHolder
    from opsctl.adapters.dvc_run import RunSession
    from opsctl.core.checks import DatasetVerdict
    from opsctl.core.shared_stages import SharedStages
    from opsctl.executors.registry import ExecutorSpec


@dataclass(frozen=True)
class RunOptions:
    targets: list[str] = field(default_factory=list)
    jobs: int | None = None  # default: the number of cores
    executor: str | None = None  # default: opsctl.yaml's executor
    force: bool = False
    dry_run: bool = False
    keep_going: bool = False
    overrides: list[str] = field(default_factory=list)  # -S [FILE:]KEY=VALUE
    wait: bool = False  # another run holds the project: wait for it instead of refusing
    # Settings of the executor given on the command line (e.g. --scheduler, --retries): they
    # override opsctl.yaml's `executors: {NAME: {...}}`.
    executor_settings: dict = field(default_factory=dict)
    # A remote executor's outputs are fetched into the workspace; False leaves on the remote
    # those that nothing in this run reads here (`opsctl data pull` gets them).
    download: bool = True
    # An experiment's run (core/experiments.py): stages the same as another experiment's run
    # once across the sweep (core/shared_stages.py), within the sweep's slots.
    shared: SharedStages | None = None
    branch: str | None = None  # recorded as the run's branch (an experiment's work tree is detached)
    record_noop: bool = False  # record a run even when nothing is stale (an experiment is always a run)
    check_out: bool = False  # first check out every output the cache has (a new work tree has none)


class RunEvents:
    """What a front end hears during a run (called from worker threads; keep it quick)."""

    def waiting(self, holder: LockHolder) -> None:
        """Another run holds the project (``holder.describe()`` names it); ``wait`` waits for it."""

    def params_set(self, overrides: list[str]) -> None:
        """The -S values (as given) were written to the params files; the run goes ahead."""

    def planned(self, plan: Plan) -> None: ...

    def begun(self, run_id: str) -> None:
        """The run is recorded (as running) under this id; its stages start now."""

    def building(self, image: str, line: str) -> None: ...

    def image_ready(self, record) -> None:
        """An image the stages need is there: ``record.built`` when this run built it."""

    def stage_started(self, name: str) -> None: ...

    def stage_line(self, name: str, line: str) -> None: ...

    def stage_finished(self, stage: StageRun) -> None: ...

    def warning(self, text: str) -> None:
        """Something the user should know before the stages run (one line)."""

    def checked(self, stage: str, when: str, verdict: DatasetVerdict | DriftVerdict) -> None:
        """A data gate ran: ``verdict`` of a dataset checked ``when`` (gates.BEFORE/AFTER) ``stage`` runs, or
        its drift (gates.DRIFT: a DriftVerdict)."""


def parse_overrides(items: list[str], root: Path | None = None) -> list[tuple[str, str, object]]:
    """``[FILE:]KEY=VALUE`` -> (file, dotted key, YAML-parsed value); UsageError when malformed
    or when FILE is not inside the project. With ``root`` each FILE that exists is also
    resolved (symlinks too) and read with the bounds of core/yamlload.py, before anything
    is written to it."""
    import yaml

    from opsctl.core.config import outside_project
    from opsctl.core.yamlload import MAX_DATA_BYTES, cut, load_yaml_file

    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        file, colon, name = key.rpartition(":")
        if not colon:
            file, name = "params.yaml", key
        if not sep or not name or any(not part for part in name.split(".")):
            raise UsageError(f"-S {cut(item)}: expected KEY=VALUE or FILE:KEY=VALUE (e.g. -S train.n_est=50)")
        file = file or "params.yaml"
        if outside_project(file, root):
            raise UsageError(
                f"-S {cut(item)}: {cut(file)} is outside the project",
                hint="-S only changes params files inside the project (FILE is relative to its root)",
            )
        if root is not None and (root / file).is_file():
            load_yaml_file(root / file, max_bytes=MAX_DATA_BYTES, source=file)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((file, name, value))
    return parsed


def run_pipeline(project: Project, options: RunOptions, events: RunEvents | None = None) -> RunReport:
    """Plan, then run the stale stages. Raises SchedulerInterrupted (with the report as
    ``.report``) on Ctrl-C; a failed stage is in the report, not an exception."""
    from opsctl.adapters.dvc_run import apply_param_overrides

    events = events or RunEvents()
    executor_name = options.executor or project.config.executor
    spec = executor_spec(executor_name)  # an unknown name is a UsageError naming the executors there are
    if not options.download and not spec.remote:
        raise UsageError(
            f"--no-download applies to executors that run stages on other machines (not {executor_name})",
            hint="e.g. --executor dask",
        )
    jobs = options.jobs if options.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError("-j must be at least 1")
    overrides = parse_overrides(options.overrides, project.root)
    run_id = secrets.token_hex(6)
    report = RunReport(run_id, Plan(executor_name), executor_name, jobs, time.time())
    noop = _up_to_date_without_dvc(project, options, executor_name)
    if noop is not None:
        report.plan = noop
        events.planned(noop)
        report.finished = time.time()
        return report

    # One run at a time: the session holds DVC's repository lock (the one `dvc repro` holds)
    # until the run is over, and it is taken before anything is touched, -S params included.
    with (
        _open_session(project, options, events) as session,
        _executor_opened_early(project, spec, options, run_id) as early,
    ):
        if options.dry_run and overrides:
            return _dry_run_with_overrides(project, session, options, overrides, report, events)
        if options.check_out:
            session.check_out()
        if overrides:
            report.params_changed = apply_param_overrides(project.root, overrides)
            events.params_set(options.overrides)
        plan = make_plan(
            project,
            options.targets,
            executor=executor_name,
            force=options.force,
            session=session,
            check_run_cache=options.dry_run,
        )
        report.plan = plan
        events.planned(plan)
        if early is not None and not plan.to_run:
            early.release_network(run_id)  # nothing will join it: stopped while the run ends
        gates = DataGates(project, session, run_id, events, plan)
        if session.changed_data_sources and not options.dry_run:
            # The plan already counts their stages as stale (their deps changed). Data that
            # fails its checks is not committed: its .dvc file keeps pointing at the last good
            # version (`dvc checkout` brings it back), and the stages reading it fail.
            bad = gates.check_changed_sources(plan, session.changed_data_sources, session.data_source_outs)
            good = [dvcfile for dvcfile in session.changed_data_sources if dvcfile not in bad]
            if good:
                session.commit_data_sources(good)
            report.committed_data = good
        if options.dry_run or (not plan.to_run and not options.record_noop):
            # Nothing stale is not a run: no record (`opsctl run` in an up-to-date project stays instant).
            report.finished = time.time()
            return report
        recorder = RunRecorder(project, branch=options.branch)
        status = "failed"
        try:
            _execute(project, session, plan, options, jobs, report, events, recorder, gates, early)
            status = "failed" if report.failed else "succeeded"
        except KeyboardInterrupt:  # SchedulerInterrupted included
            status = "interrupted"
            raise
        finally:
            report.finished = time.time()
            if not recorder.begun:  # setting up failed (engine down, image build) before any stage
                recorder.close()
            else:
                try:
                    report.params, report.metrics = session.params_and_metrics()
                except Exception:  # noqa: BLE001 — unreadable metrics must not hide the run's outcome
                    pass
                recorder.finish(report, status, report.params, report.metrics)
                _record_plots(project, recorder, report)
                recorder.close()
                report.recorded = recorder.error is None
                report.record_error = str(recorder.error) if recorder.error else None
    return report


def _up_to_date_without_dvc(project: Project, options: RunOptions, executor: str) -> Plan | None:
    """:func:`opsctl.core.pipeline.nothing_to_run`, for a run that does only what its plan says
    (no -S, --force, forced record or checkout first)."""
    from opsctl.core.pipeline import nothing_to_run

    if options.force or options.overrides or options.record_noop or options.check_out or options.shared:
        return None
    return nothing_to_run(project, options.targets, executor)


@contextlib.contextmanager
def _executor_opened_early(project: Project, spec: ExecutorSpec, options: RunOptions, run_id: str) -> Iterator[Any]:
    """The run's executor, opened before DVC is asked for the plan when it safely can be
    (docs/architecture.md, "Containers").

    Opening the docker executor starts, in the engine, the run's network sandbox, which every
    stage container waits for (~0.3 s of the engine's time): started here, it runs while DVC
    opens and plans on this side, instead of after. The sandbox needs an image, and a stage's
    may still have to be built; so only an image the engine clearly says it has is used — a
    ``ref:`` image of opsctl.yaml, or one a stage of this project last ran in (opsctl.lock).
    Otherwise (another executor, a dry run, no such image, an engine that doesn't answer) this
    yields None and the executor opens after the images are built, as it always did.

    Closed on the way out, whatever happens; closing twice is harmless."""
    executor = None
    if spec.containers and not spec.remote and not options.dry_run:
        from opsctl.adapters.engine_api import image_here

        image = None
        for ref in _images_already_here_maybe(project):
            here = image_here(ref)
            if here is None:  # no engine to ask (or not this way): one timeout at most, not one a ref
                break
            if here:
                image = ref
                break
        if image is not None:
            executor = spec.create(_executor_settings(project, spec.name, options))
            executor.open(run_id, image)
    try:
        yield executor
    finally:
        if executor is not None:
            executor.close(run_id)


def _images_already_here_maybe(project: Project) -> Iterator[str]:
    """Images of this project that are likely in the engine, each once: ``ref:`` images first,
    then the ones its stages last ran in (only for image names it still configures)."""
    from opsctl.core.stagelock import read_lock

    refs = [image.ref for image in project.config.images.values() if image.ref]
    refs += [r.ref for r in read_lock(project.root).values() if r.ref and r.image in project.config.images]
    yield from dict.fromkeys(refs)


def _executor_settings(project: Project, executor: str, options: RunOptions) -> dict:
    """opsctl.yaml's ``executors.<name>`` settings, with the command line's on top."""
    return {**project.config.executors.get(executor, {}), **options.executor_settings}


def _record_plots(project: Project, recorder: RunRecorder, report: RunReport) -> None:
    """The run's plots (core.plots.snapshot), so they can be drawn after the workspace moves
    on. What could not be kept (a file over the store's cap, an unreadable ``dvc.yaml``) is
    said in ``report.plots_notes``: it never fails the run, nor marks it unrecorded."""
    if recorder.error is not None or recorder.store is None:
        return
    from opsctl.core.plots import RUN_COPY_CAP, snapshot
    from opsctl.core.runs import _one_line
    from opsctl.store.plots import record_plots

    try:
        recorded = snapshot(project)
        if recorded is not None:
            record_plots(recorder.store, report.run_id, recorded)
    except Exception as exc:  # noqa: BLE001 — see the docstring
        report.plots_notes.append(f"plots not recorded with the run: {_one_line(exc)}")
        return
    if recorded is not None:
        report.plots_notes += [
            f"plot file {f.path} ({f.size:,} bytes) is not kept with the run: it is not in the DVC cache and"
            f" the run store keeps at most {RUN_COPY_CAP >> 20} MiB of plot data a run"
            for f in recorded.omitted
        ]


def _open_session(project: Project, options: RunOptions, events: RunEvents) -> RunSession:
    from opsctl.adapters.dvc_run import RunSession
    from opsctl.errors import ProjectBusyError

    try:
        return RunSession(project.root, wait=options.wait, on_wait=events.waiting)
    except ProjectBusyError as exc:
        if not options.dry_run:
            exc.hint = "let it finish, or add --wait to start this run when it does"
        raise


def _dry_run_with_overrides(project, session, options, overrides, report, events) -> RunReport:
    """The plan as it would be with the -S values, then params files put back as they were."""
    from opsctl.adapters.dvc_run import apply_param_overrides
    from opsctl.core.rollback import FileTransaction

    project.state_dir.mkdir(exist_ok=True)
    with FileTransaction(project.state_dir) as tx:
        for file in {f for f, _k, _v in overrides}:
            tx.preserve(project.root / file)
        report.params_changed = apply_param_overrides(project.root, overrides)
        report.plan = make_plan(
            project,
            options.targets,
            executor=report.executor,
            force=options.force,
            session=session,
            check_run_cache=True,
        )
        events.planned(report.plan)
        tx.rollback()
    report.finished = time.time()
    return report


def _execute(
    project: Project,
    session,
    plan: Plan,
    options: RunOptions,
    jobs: int,
    report: RunReport,
    events: RunEvents,
    recorder: RunRecorder,
    gates: DataGates,
    opened: Any = None,
) -> None:
    from opsctl.adapters.dvc_run import EXECUTE, RESTORED, UP_TO_DATE, StageOutputMissing
    from opsctl.core.stagelock import StageImage, record_stage
    from opsctl.executors.base import DEFAULT_PIDS, ContainerSettings, StageInvocation

    steps = {s.name: s for s in plan.to_run}
    spec = executor_spec(plan.executor)
    if spec.containers:  # an unknown network fails here, before any build or container
        from opsctl.core.networks import check_stage_networks, host_network_warning

        on_host = check_stage_networks(project.config, steps)
        if on_host:
            events.warning(host_network_warning([f"stage {name}" for name in on_host]))
    # Opened before the plan when it could be (_executor_opened_early); opening again is a no-op.
    executor = opened or spec.create(_executor_settings(project, plan.executor, options))
    remote = None
    needed_here: set[str] = set()
    if spec.remote:
        from opsctl.core.remote_stage import needed_here as stages_read_here
        from opsctl.core.remote_stage import run_remote

        needed_here = stages_read_here(plan)

        executor.connect()  # an unreachable scheduler stops the run here (exit 4), before any build
        remote = run_remote(project, shared_filesystem=executor.local)
        if options.jobs is None:  # the cluster's parallelism, not this machine's
            jobs = report.jobs = executor.capacity()
    images = _images_for(project, plan, events) if spec.containers else {}
    if spec.remote and images:
        placed = executor.place_images(
            sorted({i.ref for i in images.values() if i.ref}), project.config.registry, project.config.project
        )
        images = {stage: i._replace(ref=placed.get(i.ref or "", i.ref)) for stage, i in images.items()}
    logs_dir = project.state_dir / RUNS_DIR / report.run_id
    report.logs_dir = logs_dir
    cancelled = threading.Event()
    by_name: dict[str, StageRun] = {}

    shared = options.shared

    def run_stage(name: str) -> StageReport:
        if shared is None:
            return run_here(name)
        from opsctl.core.shared_stages import Stopped

        key = shared.key(session.run_cache_key(name), images.get(name, StageImageRef(None, None, None, None)).identity)
        try:
            with shared.flight(key) as sibling_ran, shared.slot():
                result = run_here(name, sibling_ran)
                if result.status in (RAN, CACHED):
                    shared.mark_done(key)
                return result
        except Stopped as exc:
            return StageReport(FAILED, str(exc))

    def run_here(name: str, sibling_ran: bool = False) -> StageReport:
        """``sibling_ran``: another experiment of the sweep just ran this stage with these very
        inputs and image, so the run cache holds it even if this work tree's image record is old."""
        step = steps[name]
        image_name, ref, image_id, identity = images.get(name, StageImageRef(None, None, None, None))
        stage = StageRun(
            name, RAN, "", step.cmd, image=image_name, image_ref=ref, image_id=image_id, started=time.time()
        )
        by_name[name] = stage
        started = time.monotonic()
        log_path = logs_dir / f"{_safe(name)}.log"  # the stage's own log; gates append what failed
        # Data it reads that no stage writes is checked before it touches anything.
        failed_data = gates.failures(name, BEFORE, plan.gates_of(name, BEFORE), log_path)
        failed_data = failed_data or gates.drift_failures(name, plan.gates_of(name, DRIFT), log_path)
        if failed_data:
            stage.log_path = log_path
            stage.duration = time.monotonic() - started
            return StageReport(FAILED, f"not run: {failed_data}")
        after = plan.gates_of(name, AFTER)
        # A stage stale only because something upstream ran: DVC decides again now that
        # the upstream outputs exist (unchanged outputs mean nothing to do, as in dvc repro).
        recheck = not step.own_change and not options.force
        decision = session.prepare(
            name,
            recheck=recheck,
            use_run_cache=not options.force and (not step.image_changed or sibling_ran),
            record_restored=not after,
        )
        lock_entry = StageImage(plan.executor, image_name, ref, identity)
        if decision == UP_TO_DATE:
            stage.hashes = session.hashes(name).hashes
            stage.duration = time.monotonic() - started
            failed_data = gates.failures(name, AFTER, after, log_path)
            if failed_data:
                stage.log_path = log_path
                return StageReport(FAILED, failed_data)
            return StageReport(CACHED, "up to date once upstream finished")
        if decision == RESTORED:
            if after:  # its outputs are checked before they are recorded
                failed_data = gates.failures(name, AFTER, after, log_path)
                if failed_data:
                    stage.log_path = log_path
                    session.forget(name)
                    stage.duration = time.monotonic() - started
                    return StageReport(FAILED, f"restored from the run cache, then {failed_data}")
                session.record(name)
            record_stage(project.root, name, lock_entry)
            stage.hashes = session.hashes(name).hashes
            stage.duration = time.monotonic() - started
            return StageReport(CACHED, "restored from the run cache")
        assert decision == EXECUTE
        settings = project.config.settings_for(name)
        container = None
        if spec.containers:
            assert ref is not None  # _images_for gave every stage to run an image, or refused
            container = ContainerSettings(
                image=ref,
                cpus=settings.cpus,
                memory=settings.memory,
                gpus=settings.gpus,
                network=settings.network or "none",
                pids=settings.pids or DEFAULT_PIDS,
            )
        stage.log_path = log_path
        try:
            work = None
            if remote is not None:
                from opsctl.core.remote_stage import stage_work

                work = stage_work(session, project, name, step.wdir, remote)
            invocation = StageInvocation(
                stage=name,
                cmd=step.cmd,
                workdir=project.root / step.wdir,
                root=project.root,
                log_path=log_path,
                env={k: os.environ[k] for k in settings.env if k in os.environ},
                run_id=report.run_id,
                container=container,
                remote=work,
                on_started=lambda: settled(name),
            )
            outcome = executor.run(invocation, on_line=events.stage_line)
        except OpsctlError as exc:  # e.g. a remote stage's data or placement: that stage's failure, said plainly
            session.forget(name)
            if cancelled.is_set():
                return StageReport(FAILED, "stopped: the run was interrupted (Ctrl-C or SIGTERM)")
            return StageReport(FAILED, str(exc))
        except BaseException:
            session.forget(name)
            raise
        stage.exit_code = outcome.exit_code
        stage.duration = outcome.duration
        stage.worker, stage.attempts = outcome.worker, outcome.attempts
        if cancelled.is_set():
            session.forget(name)
            return StageReport(FAILED, "stopped: the run was interrupted (Ctrl-C or SIGTERM)")
        if not outcome.succeeded:
            session.forget(name)
            return StageReport(FAILED, f"exit code {outcome.exit_code}")
        if remote is not None:
            from opsctl.core.remote_stage import leave_outputs, take_outputs

            try:
                # A remote that is the project's own cache holds the outputs here already.
                if options.download or name in needed_here or remote.name is None:
                    take_outputs(session, name, outcome, remote)
                else:
                    stage.hashes = leave_outputs(session, name, outcome, remote).hashes
                    record_stage(project.root, name, lock_entry)
                    return StageReport(RAN, "outputs left on the remote (`opsctl data pull` gets them)")
            except OpsctlError as exc:
                session.forget(name)
                return StageReport(FAILED, f"its outputs could not be fetched: {exc}")
        failed_data = gates.failures(name, AFTER, after, log_path)
        if failed_data:
            session.forget(name)
            return StageReport(FAILED, failed_data)
        try:
            stage.hashes = session.record(name).hashes
        except StageOutputMissing as exc:
            return StageReport(FAILED, f"exited 0 but did not write its declared output: {exc}")
        record_stage(project.root, name, lock_entry)
        return StageReport(RAN, "")

    unsettled = {s.name for s in plan.to_run}  # stages that may still start a container
    unsettled_lock = threading.Lock()

    def settled(name: str) -> None:
        """``name`` started its container, or ended: once no stage can start one any more,
        the docker executor stops the run's network sandbox while the last ones run."""
        with unsettled_lock:
            if name not in unsettled:
                return
            unsettled.discard(name)
            if unsettled:
                return
        release = getattr(executor, "release_network", None)
        if release is not None:
            release(report.run_id)

    def on_finish(result) -> None:
        settled(result.name)
        stage = by_name.get(result.name) or StageRun(result.name, result.status, result.detail, steps[result.name].cmd)
        stage.status, stage.detail = result.status, result.detail
        by_name[result.name] = stage
        recorder.stage(report.run_id, stage)  # the scheduler calls this from the calling thread
        events.stage_finished(stage)

    def cancel() -> None:
        cancelled.set()
        if shared is not None:
            shared.stopped.set()
        executor.cancel(report.run_id)

    tasks = [StageTask(s.name, tuple(u for u in s.upstream if u in steps)) for s in plan.to_run]
    _free_at_exit_without_collecting()
    if images:
        # First: the reaper, and in the background the network sandbox, whose start the
        # stages' containers wait for; the run's record is made meanwhile.
        executor.open(report.run_id, images[tasks[0].name].ref)
    try:
        with _planning_objects_not_rescanned():
            try:
                recorder.begin(report, options.targets)  # everything is ready: from here on it is a run
                events.begun(report.run_id)
                gates.begin_recording()  # verdicts of data checked before (changed sources) are recorded with the run
                run_stages(
                    tasks,
                    run_stage,
                    jobs=jobs,
                    keep_going=options.keep_going,
                    on_start=events.stage_started,
                    on_finish=on_finish,
                    cancel=cancel,
                )
            finally:
                executor.close(report.run_id)
    except SchedulerInterrupted as exc:
        report.interrupted = True
        report.stages = [by_name[t.name] for t in tasks if t.name in by_name]
        report.finished = time.time()
        exc.report = report  # type: ignore[attr-defined]
        raise
    report.stages = [by_name[t.name] for t in tasks]


@contextlib.contextmanager
def _planning_objects_not_rescanned() -> Iterator[None]:
    """While the stages run, CPython's full garbage collections would walk every object
    planning left (DVC's index and stages: a tenth of a second or more each time, with every
    stage thread stopped behind the interpreter lock). Those objects live through the run
    anyway: ``gc.freeze`` sets them aside until it ends, and ``gc.unfreeze`` hands them back
    to the collector (a long-lived process, the dashboard, frees them as usual)."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_gc_frozen_at_exit = False


def _free_at_exit_without_collecting() -> None:
    """A run builds DVC's whole object graph (its index, stages, the docker SDK); at exit
    CPython's last garbage collection walks all of it, ~0.2 s that nobody waits for. Frozen
    at exit (``gc.freeze``), those objects are left to the process's end like the rest of its
    memory. Only at exit: a long-lived process (the dashboard) keeps collecting as usual."""
    global _gc_frozen_at_exit
    if not _gc_frozen_at_exit:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _gc_frozen_at_exit = True


class DataGates:
    """The data checks of one run (core/gates.py says which run where). A dataset read by
    several stages is checked once per run; across runs, the same bytes that passed the same
    checks are not read again (core/validation.py). Each verdict is recorded with the run
    and the stage it gated. Called from stage threads."""

    def __init__(self, project: Project, session, run_id: str, events: RunEvents, plan: Plan) -> None:
        self._project = project
        self._plan = plan
        self._session = session
        self._run_id = run_id
        self._events = events
        self._mutex = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._before: dict[str, DatasetVerdict] = {}  # a source's verdict, for every stage reading it
        self._drift: dict[str, DriftVerdict] = {}  # a dataset's drift, for every stage reading it
        self._record_warned = False
        self._recording = False  # until the run's record exists, verdicts wait in _pending
        self._pending: list[tuple[DatasetVerdict, str]] = []

    def check_changed_sources(self, plan: Plan, dvcfiles: list[str], outs: dict[str, tuple[str, ...]]) -> set[str]:
        """Check, before they are committed, the changed data sources that have checks; the
        .dvc files whose data failed."""
        from opsctl.core.gates import overlap

        bad = set()
        for dvcfile in dvcfiles:
            for gate in plan.gates:
                if gate.when != BEFORE or not any(overlap(gate.dataset, p) for p in outs.get(dvcfile, ())):
                    continue
                if not any(s.name == gate.stage for s in plan.to_run):
                    continue
                if self.failures(gate.stage, BEFORE, [gate.dataset], None):
                    bad.add(dvcfile)
        return bad

    def begin_recording(self) -> None:
        with self._mutex:
            self._recording, pending, self._pending = True, self._pending, []
        for verdict, stage in pending:
            self._record(verdict, stage)

    def failures(self, stage: str, when: str, datasets: list[str], log_path: Path | None) -> str:
        """Check ``datasets`` for ``stage``; '' when all passed, else one line saying what
        failed (the failing checks are also appended to the stage's log)."""
        failed = []
        for path in datasets:
            with self._mutex:
                lock = self._locks.setdefault(path, threading.Lock())
            with lock:
                verdict = self._before.get(path) if when == BEFORE else None
                if verdict is None:
                    verdict = self._check(stage, when, path)
                    if when == BEFORE:
                        self._before[path] = verdict
                    self._events.checked(stage, when, verdict)
            if not verdict.passed:
                failed.append(verdict)
        if not failed:
            return ""
        if log_path is not None:
            _log_failures(log_path, failed)
        shown = "; ".join(f"{v.path}: {v.summary()}" for v in failed)
        return f"data check failed: {shown}"

    def drift_failures(self, stage: str, datasets: list[str], log_path: Path | None) -> str:
        """Compare ``datasets`` (under drift: in opsctl.yaml) with their references before
        ``stage`` runs; '' when none drifted, else one line saying which did (the columns'
        results are also appended to the stage's log). Each dataset once per run."""
        failed = []
        for path in datasets:
            with self._mutex:
                lock = self._locks.setdefault(f"drift:{path}", threading.Lock())
            with lock:
                verdict = self._drift.get(path)
                if verdict is None:
                    verdict = self._drift[path] = self._check_drift(stage, path, log_path)
                    self._events.checked(stage, DRIFT, verdict)
            if verdict.drift:
                failed.append(verdict)
        if not failed:
            return ""
        return "data drifted: " + "; ".join(f"{v.path}: {v.summary()}" for v in failed)

    def _check_drift(self, stage: str, path: str, log_path: Path | None) -> DriftVerdict:
        from opsctl.core.monitoring import check_drift
        from opsctl.errors import OpsctlError

        settings = self._project.config.drift[path]
        lines = []
        try:
            report, error = check_drift(self._project, settings, run_id=self._run_id, stage=stage)
        except OpsctlError as exc:  # nothing to compare, unreadable data: the gate can't pass
            verdict = DriftVerdict(path, settings.reference, True, error=str(exc))
            lines.append(f"opsctl: drift check of {path} could not run: {exc}")
        else:
            if error and not self._record_warned:
                self._record_warned = True
                self._events.warning(error)
            verdict = DriftVerdict(
                path,
                settings.reference,
                report.drift,
                drifted=tuple(c.column for c in report.drifted),
                compared=len(report.compared),
                share=report.share,
                threshold_share=report.threshold_share,
            )
            lines.append(f"opsctl: drift of {path} from {settings.reference}: {verdict.summary()}")
            for c in report.columns:
                stat = "" if c.statistic is None else f" {c.statistic:.4g}"
                p = "" if c.p_value is None else f" (p {c.p_value:.3g})"
                mark = "drift" if c.drift else ("not compared" if not c.compared else "ok")
                lines.append(
                    f"opsctl:   {c.column}: {c.method or '-'}{stat}{p}: {mark}{' — ' + c.detail if c.detail else ''}"
                )
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        return verdict

    def _check(self, stage: str, when: str, path: str) -> DatasetVerdict:
        from opsctl.core.check_records import passed_before
        from opsctl.core.checks import PRESENT, READ, DatasetVerdict, Failure
        from opsctl.core.validation import check_dataset
        from opsctl.errors import OpsctlError

        checks = self._project.config.checks[path]
        data_hash = None
        if not (self._project.root / path).exists():
            failure = Failure(PRESENT, None, 1, detail=f"{path} is not in the workspace")
            verdict = DatasetVerdict(path, None, checks.digest, 0, len(checks.names()), [failure])
        else:
            data_hash = self._session.dataset_hash(path)
            try:
                verdict, row_checks = check_dataset(
                    self._project.root,
                    checks,
                    data_hash,
                    # A dataset with a quarantine is read every time: its rows must be moved again.
                    reuse=None if checks.quarantine else lambda h, c: passed_before(self._project, h, c),
                    keep_rows=MAX_QUARANTINE_ROWS + 1 if checks.quarantine else 0,
                )
                if checks.quarantine and verdict.tolerated:
                    self._quarantine(stage, when, checks, verdict, row_checks)
            except OpsctlError as exc:  # unreadable data (DataParseError): a failed check, not a crashed run
                failure = Failure(READ, None, 1, detail=str(exc))
                verdict = DatasetVerdict(path, data_hash, checks.digest, 0, len(checks.names()), [failure])
        with self._mutex:
            if not self._recording:
                self._pending.append((verdict, stage))
                return verdict
        self._record(verdict, stage)
        return verdict

    def _quarantine(self, stage: str, when: str, checks, verdict: DatasetVerdict, row_checks: dict) -> None:
        """Move the failing rows of a stage's output to its quarantine file (core/quarantine.py),
        or turn the verdict into a failure saying why they can't be moved."""
        from opsctl.core.checks import QUARANTINE, Failure
        from opsctl.core.gates import inside
        from opsctl.core.quarantine import quarantine_rows

        outs = next((s.outs for s in self._plan.steps if s.name == stage), ())
        why = None
        if when != AFTER:
            why = f"{checks.path} is not written by a stage: only a stage's output can have rows moved"
        elif not any(inside(checks.quarantine, out) for out in outs):
            why = (
                f"{checks.quarantine} is not an output of stage {stage}: declare it (or its directory) "
                "under the stage's outs in dvc.yaml so DVC versions it"
            )
        elif verdict.failing_rows > MAX_QUARANTINE_ROWS:
            why = f"{verdict.failing_rows:,} failing rows: a run moves at most {MAX_QUARANTINE_ROWS:,}"
        if why is not None:
            verdict.failures.append(Failure(QUARANTINE, None, 1, detail=why))
            return
        verdict.quarantined = quarantine_rows(self._project.root, checks, row_checks)
        # The verdict is recorded against the data as it is committed (what dvc.lock and lineage name).
        verdict.hash = self._session.dataset_hash(checks.path)

    def _record(self, verdict: DatasetVerdict, stage: str) -> None:
        from opsctl.core.check_records import record_verdicts

        error = record_verdicts(self._project, [verdict], run_id=self._run_id, stage=stage)
        if error and not self._record_warned:
            self._record_warned = True
            self._events.warning(f"data check verdicts were not recorded in the run store: {error}")


class DriftVerdict(NamedTuple):
    """What a drift gate found (the full report is in the run store)."""

    path: str
    reference: str
    drift: bool
    drifted: tuple[str, ...] = ()
    compared: int = 0
    share: float = 0.0
    threshold_share: float = 0.0
    error: str | None = None  # the comparison could not be made

    def summary(self) -> str:
        if self.error:
            return f"could not be compared: {self.error}"
        names = ", ".join(self.drifted[:5]) + (", …" if len(self.drifted) > 5 else "")
        return (
            f"{len(self.drifted)} of {self.compared} columns drifted ({self.share:.0%}; "
            f"the dataset drifts at {self.threshold_share:.0%}){': ' + names if names else ''}"
        )


def _log_failures(log_path: Path, verdicts: list[DatasetVerdict]) -> None:
    """The failing checks at the end of the stage's log, where `opsctl runs logs` shows them."""
    from opsctl.core.formatting import example_text

    lines = []
    for verdict in verdicts:
        lines.append(f"opsctl: data check failed: {verdict.path}: {verdict.summary(limit=len(verdict.failures))}")
        for failure in verdict.failures:
            where = f"{failure.check}({failure.column})" if failure.column else failure.check
            examples = ", ".join(example_text(e) for e in failure.as_json()["examples"])
            detail = f" — {failure.detail}" if failure.detail else ""
            lines.append(f"opsctl:   {where}: {failure.count} failing{detail}{': ' + examples if examples else ''}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


class StageImageRef(NamedTuple):
    image: str | None  # name in opsctl.yaml
    ref: str | None  # the tag or reference a container runs
    image_id: str | None
    identity: str | None  # what opsctl.lock records (see core.stagelock)


def _images_for(project: Project, plan: Plan, events: RunEvents) -> dict[str, StageImageRef]:
    """Build (or confirm) the images the stages to run need: stage -> (image, ref, id, identity)."""
    from opsctl.core.images import build_images

    needed: dict[str, list[str]] = {}
    for step in plan.to_run:
        image = project.config.settings_for(step.name).image
        if image is None:
            raise ConfigError(
                f"stage '{step.name}' has no image for the docker executor",
                hint="set stages.default.image (or stages.<stage>.image) in opsctl.yaml, or run with --executor local",
            )
        needed.setdefault(image, []).append(step.name)
    if not needed:  # nothing to run (an experiment whose params change nothing): no image to ask for
        return {}
    # Asks the engine first: EngineUnavailableError (exit 4, says how to start it) before anything runs.
    records = build_images(project, sorted(needed), on_line=events.building)
    result = {}
    for record in records:
        events.image_ready(record)
        identity = f"inputs:{record.inputs_hash}" if record.inputs_hash else record.image_id
        for stage in needed[record.name]:
            result[stage] = StageImageRef(record.name, record.ref, record.image_id, identity)
    return result


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
