"""``opsctl run``: plan, then run the stale stages — with a live display on a
terminal, stage-prefixed log lines off one."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import typer

from opsctl.cli.output import Styled, out
from opsctl.cli.pipeline import showing_build_log_tail
from opsctl.cli.run_view import is_number, print_up_to_date, report_json
from opsctl.executors.registry import choices_text

if TYPE_CHECKING:
    from opsctl.core.run import RunEvents
else:
    RunEvents = object  # importing opsctl.core.run costs ~75 ms of every start; the displays override all of it


# --executor dask's scheduler, for `opsctl run` and `opsctl doctor`: the command line wins over the
# environment, which wins over opsctl.yaml (read by the run); none at all means a local cluster.
SCHEDULER_OPTION = typer.Option(
    None,
    "--scheduler",
    envvar="OPSCTL_DASK_SCHEDULER",
    show_envvar=False,
    metavar="tcp://HOST:8786",
    help="--executor dask: the Dask scheduler (default: $OPSCTL_DASK_SCHEDULER, opsctl.yaml, else a local cluster).",
)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    stages: Optional[list[str]] = typer.Argument(
        None, metavar="STAGE", help="Stages to run, with their stale upstream (default: the whole pipeline)."
    ),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Stages at once (default: the number of cores)."),
    executor: Optional[str] = typer.Option(
        None, "--executor", help=f"{choices_text()} (default: opsctl.yaml's executor)."
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Run the stages even if nothing changed (no run-cache restore)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (what runs, what is restored, why); run nothing."
    ),
    keep_going: bool = typer.Option(
        False, "--keep-going", "-k", help="After a failure, let independent stages carry on."
    ),
    set_params: Optional[list[str]] = typer.Option(
        None,
        "--set-param",
        "-S",
        metavar="[FILE:]KEY=VALUE",
        help="Override a param for this run (written to params.yaml, as `dvc exp run -S`).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan or the run's result as JSON."),
    wait: bool = typer.Option(
        False, "--wait", help="If another run (opsctl run, dvc repro) holds the project, wait for it to end."
    ),
    scheduler: Optional[str] = SCHEDULER_OPTION,
    no_download: bool = typer.Option(
        False,
        "--no-download",
        help="--executor dask: leave on the remote the outputs nothing here reads (`opsctl data pull` gets them).",
    ),
    retries: Optional[int] = typer.Option(
        None, "--retries", min=0, help="--executor dask: times a stage whose task failed is tried again (default 1)."
    ),
) -> None:
    """Run the pipeline's stale stages, in parallel, each in its image.

    Stale means what `opsctl status` says: DVC's change detection, plus a changed
    image. A stage that ran before with the same command, deps and params is
    restored from DVC's run cache. After it, `dvc status` is clean and `dvc repro`
    re-runs nothing.
    """
    from opsctl.core.project import open_project
    from opsctl.core.run import RunOptions, run_pipeline
    from opsctl.core.scheduler import SchedulerInterrupted
    from opsctl.errors import InterruptedByUser, StageFailedError

    project = open_project()
    options = RunOptions(
        targets=list(stages or []),
        jobs=jobs,
        executor=executor,
        force=force,
        dry_run=dry_run,
        keep_going=keep_going,
        overrides=list(set_params or []),
        wait=wait,
        executor_settings={k: v for k, v in (("scheduler", scheduler), ("retries", retries)) if v is not None},
        download=not no_download,
    )
    display = _LiveDisplay() if out.interactive and not out.quiet and not dry_run else _PlainDisplay(as_json, dry_run)
    try:
        with _interrupts_stop_the_run(), showing_build_log_tail(), display:
            report = run_pipeline(project, options, display)
    except SchedulerInterrupted as exc:
        partial = getattr(exc, "report", None)
        if partial is not None:
            stopped = [s.name for s in partial.stages if s.status in ("interrupted", "failed")]
            if as_json:
                out.json(report_json(partial, "interrupted"))
            out.warn(
                f"run {partial.run_id} interrupted; stopped: {', '.join(stopped) or 'nothing was running'}; "
                "their containers are removed and dvc.lock keeps only finished stages"
            )
        raise InterruptedByUser("interrupted") from None

    if dry_run:
        for file in report.params_changed:
            out.info(f"Plan with {', '.join(options.overrides)} ({file} left as it was)")
    for path in report.committed_data:
        out.info(f"Committed changed data {path} (as dvc repro does)")
    if dry_run:
        _print_plan(report, as_json)
        return
    if not report.plan.to_run:
        print_up_to_date(report, as_json)
        return
    failed = report.failed
    if as_json:
        out.json(report_json(report, "failed" if failed else "succeeded"))
    elapsed = (report.finished or time.time()) - report.started
    summary = (
        f"run {report.run_id}: {report.count('ran')} ran, {report.count('cached')} cached"
        + (f", {len(failed)} failed" if failed else "")
        + (f", {report.count('skipped')} not started" if report.count("skipped") else "")
        + f" in {elapsed:.1f} s ({report.executor}, -j {report.jobs})"
    )
    if report.record_error:
        out.warn(f"the run was not recorded in the run store: {report.record_error}")
    for note in report.plots_notes:
        out.warn(note)
    if not failed:
        out.success(summary)
        _print_metrics(report)
        if report.count("ran"):
            out.info(
                f"Logs: {_rel(project.root, report.logs_dir)}/ — commit dvc.lock and opsctl.lock to keep this state.",
                style="dim",
            )
        return
    for stage in failed:
        tail = stage.log_tail()
        out.info(
            f"── {stage.name}: {stage.detail} — last {len(tail)} log lines ({_rel(project.root, stage.log_path)}):"
        )
        for line in tail:
            out.info(f"  │ {line}", style="dim")
    out.info(summary)
    names = ", ".join(s.name for s in failed)
    raise StageFailedError(
        f"stage{'s' if len(failed) > 1 else ''} {names} failed ({failed[0].detail})",
        hint="fix it and run again: finished stages are kept, only what is stale runs",
    )


@contextlib.contextmanager
def _interrupts_stop_the_run():
    """Ctrl-C and SIGTERM (a CI job cancelled, `kill`) stop a run: containers removed,
    finished stages kept, the stopped ones recorded interrupted. The first one does it;
    any more that come while it does (an impatient second Ctrl-C, a supervisor's repeated
    SIGTERM) are ignored rather than cutting that clean-up short — which would leave
    containers running and opsctl waiting for them. Without this SIGTERM would just
    kill the process."""
    import signal
    import threading

    from opsctl.cli.interrupts import interrupt_handler

    if threading.current_thread() is not threading.main_thread():  # in-process callers (tests)
        yield
        return
    handler = interrupt_handler(once=True)
    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for signum, before in previous.items():
            # Once interrupted, the rest is saying so and exiting 130: more signals wait.
            signal.signal(signum, signal.SIG_IGN if interrupted else before)


def _print_metrics(report) -> None:
    """The key metrics, each with its change since the previous run on this branch."""
    if not report.metrics:
        return
    parts = []
    for key, value in sorted(report.metrics.items())[:8]:
        text = f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        before = report.previous_metrics.get(key)
        if is_number(value) and is_number(before):
            delta = value - before
            text += f" ({delta:+.4g})" if delta else " (=)"
        parts.append(text)
    against = f"  (Δ vs run {report.previous_run_id[:8]})" if report.previous_run_id else ""
    out.info("metrics: " + ", ".join(parts) + against)


def _print_plan(report, as_json: bool) -> None:
    plan = report.plan
    if as_json:
        out.json(
            {
                "executor": plan.executor,
                "stages": [
                    {
                        "stage": s.name,
                        "action": _action(s),
                        "reasons": s.reasons,
                        "upstream": s.upstream,
                        "cmd": s.cmd,
                        "image": s.image.ref if s.image else None,
                        "checks": {"before": plan.gates_of(s.name, "before"), "after": plan.gates_of(s.name, "after")},
                        "drift": plan.gates_of(s.name, "drift"),
                    }
                    for s in plan.steps
                ],
            }
        )
        return
    if not plan.steps:
        out.info("No pipeline stages yet: add stages to dvc.yaml (or `dvc stage add`).")
        return
    styles = {"run": "yellow", "restore": "cyan", "up to date": "green"}
    out.table(
        ["stage", "action", "why"],
        [(s.name, Styled(_action(s), styles[_action(s)]), "; ".join(s.reasons)) for s in plan.steps],
    )
    gates = [g for g in plan.gates if any(s.name == g.stage for s in plan.to_run)]
    if gates:
        out.table(
            ["data checks", "dataset"],
            [(f"{'drift before' if g.when == 'drift' else g.when} {g.stage}", g.dataset) for g in gates],
        )
    runs = sum(_action(s) == "run" for s in plan.steps)
    restores = sum(_action(s) == "restore" for s in plan.steps)
    out.info(
        f"Dry run ({plan.executor} executor): {runs} would run, {restores} would be restored from the run cache, "
        f"{len(plan.steps) - runs - restores} up to date. Nothing was changed."
    )


def _action(step) -> str:
    if not step.stale:
        return "up to date"
    return "restore" if step.restorable else "run"


def _rel(root, path) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _finish_line(stage) -> tuple[str, str]:
    took = f" in {stage.duration:.1f} s" if stage.duration is not None else ""
    if stage.worker:  # a remote executor's: where it ran, and whether it had to run again
        from opsctl.core.formatting import worker_label

        took += f" on {worker_label(stage.worker, stage.attempts)}"
    if stage.status == "ran":
        return f"✓ {stage.name} ran{took}" + (f"; {stage.detail}" if stage.detail else ""), "green"
    if stage.status == "cached":
        return f"✓ {stage.name} {stage.detail or 'cached'}", "cyan"
    if stage.status == "failed":
        return f"✗ {stage.name} failed{took}: {stage.detail}", "red"
    return f"- {stage.name} {stage.status}: {stage.detail}", "yellow"


def _checked_line(stage: str, when: str, verdict) -> tuple[str, str]:
    if when == "drift":  # verdict: core.run.DriftVerdict
        if verdict.drift:
            return f"✗ {verdict.path} drifted from {verdict.reference} (before {stage}): {verdict.summary()}", "red"
        return f"✓ no drift of {verdict.path} from {verdict.reference} (before {stage}: {verdict.summary()})", "green"
    rows = f"{verdict.rows:,} rows, "
    where = f"{when} {stage}"
    if verdict.passed:
        again = ", same data passed before" if verdict.cached else ""
        tolerated = f"; {verdict.failing_rows:,} failing rows tolerated" if verdict.failures else ""
        moved = f", moved to {verdict.quarantine}" if verdict.quarantined else ""
        text = f"✓ checks of {verdict.path} passed ({where}: {rows}{verdict.checks} checks{again}{tolerated}{moved})"
        return text, "yellow" if verdict.failures else "green"
    return f"✗ checks of {verdict.path} failed ({where}): {verdict.summary()}", "red"


def _built_line(record) -> str:
    return f"built image {record.name} ({record.ref}) in {record.seconds:.1f} s"


def _waiting_line(holder) -> str:
    return f"waiting for {holder.describe()} to finish (it holds this project)"


def _params_line(overrides: list[str]) -> str:
    return f"Setting {', '.join(overrides)} (written to the params file, as `dvc exp run -S` does)"


class _PlainDisplay(RunEvents):
    """Off a terminal: every log line with its stage as a prefix, one line per finished stage."""

    def __init__(self, logs_to_stderr: bool, dry_run: bool = False) -> None:
        self._stream = sys.stderr if logs_to_stderr else sys.stdout
        self._dry_run = dry_run
        self._closed = False
        self._lock = threading.Lock()
        self._width = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def waiting(self, holder) -> None:
        out.info(_waiting_line(holder))

    def params_set(self, overrides: list[str]) -> None:
        if not self._dry_run:
            out.info(_params_line(overrides))

    def begun(self, run_id: str) -> None:
        pass

    def planned(self, plan) -> None:
        _warn(plan)
        self._width = max((len(s.name) for s in plan.to_run), default=0)
        if plan.to_run and not self._dry_run:
            out.info(f"{len(plan.to_run)} of {len(plan.steps)} stages stale ({plan.executor} executor)")

    def building(self, image: str, line: str) -> None:
        pass  # the build's outcome is what matters off a terminal; a failure shows its tail

    def image_ready(self, record) -> None:
        if record.built:
            out.success(_built_line(record))

    def stage_started(self, name: str) -> None:
        out.info(f"▶ {name}")

    def stage_line(self, name: str, line: str) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._stream.write(f"{name.ljust(self._width)} | {line}\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # The reader went away (`opsctl run | head`): the stages carry on, their logs
                # are still saved; only the echo stops.
                self._closed = True

    def stage_finished(self, stage) -> None:
        text, _style = _finish_line(stage)
        out.info(text)

    def checked(self, stage: str, when: str, verdict) -> None:
        text, _style = _checked_line(stage, when, verdict)
        out.info(text)

    def warning(self, text: str) -> None:
        out.warn(text)


def _warn(plan) -> None:
    """What the planner noticed in the settings (e.g. a stage opsctl.yaml names that dvc.yaml lacks)."""
    for warning in plan.warnings:
        out.warn(warning)


class _LiveDisplay(RunEvents):
    """On a terminal: one line per running stage (elapsed, last log line), finished stages above."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._building: str | None = None
        self._live: Any = None  # a rich Live between __enter__ and __exit__
        self._total = 0
        self._done = 0

    def __enter__(self):
        from rich.live import Live

        self._live = Live(self, console=out._console(stderr=True), refresh_per_second=8, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def __rich__(self):
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        now = time.monotonic()
        with self._lock:
            if self._building:
                grid.add_row(Spinner("dots"), Text("build", style="bold"), "", Text(self._building, style="dim"))
            for name, (started, last) in self._running.items():
                grid.add_row(
                    Spinner("dots"), Text(name, style="bold"), f"{now - started:5.1f}s", Text(last, style="dim")
                )
            if self._total:
                grid.add_row("", Text(f"{self._done}/{self._total} stages done", style="dim"), "", "")
        return grid

    def waiting(self, holder) -> None:
        from rich.text import Text

        self._live.console.print(Text(_waiting_line(holder)))

    def params_set(self, overrides: list[str]) -> None:
        from rich.text import Text

        self._live.console.print(Text(_params_line(overrides)))

    def begun(self, run_id: str) -> None:
        pass

    def planned(self, plan) -> None:
        _warn(plan)
        self._total = len(plan.to_run)

    def building(self, image: str, line: str) -> None:
        with self._lock:
            self._building = f"{image}: {line[:200]}"

    def image_ready(self, record) -> None:
        from rich.text import Text

        with self._lock:
            self._building = None
        if record.built:
            self._live.console.print(Text(f"✓ {_built_line(record)}", style="green"))

    def stage_started(self, name: str) -> None:
        with self._lock:
            self._building = None
            self._running[name] = (time.monotonic(), "")

    def stage_line(self, name: str, line: str) -> None:
        with self._lock:
            if name in self._running:
                self._running[name] = (self._running[name][0], line)

    def stage_finished(self, stage) -> None:
        from rich.text import Text

        with self._lock:
            self._running.pop(stage.name, None)
            self._done += 1
        text, style = _finish_line(stage)
        self._live.console.print(Text(text, style=style))

    def checked(self, stage: str, when: str, verdict) -> None:
        from rich.text import Text

        text, style = _checked_line(stage, when, verdict)
        self._live.console.print(Text(text, style=style))

    def warning(self, text: str) -> None:
        out.warn(text)  # the live display's own console: printed above its lines
