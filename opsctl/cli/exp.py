"""``opsctl exp ...``: parameter sweeps in isolated work trees, their queue, and bringing
the best one back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

import typer

from opsctl.cli.output import Styled, out
from opsctl.cli.run import SCHEDULER_OPTION, _interrupts_stop_the_run
from opsctl.executors.registry import choices_text

if TYPE_CHECKING:
    from opsctl.core.experiments import SweepEvents
else:
    SweepEvents = object  # core.experiments is imported only when a sweep runs

app = typer.Typer(
    help="Experiments: sweep params in parallel, isolated work trees; compare; apply the best.\n\n"
    "Each experiment is a run of the pipeline with some params set, in a work tree of its own "
    "(your files are not touched); stages whose inputs are the same in several experiments run once.",
    no_args_is_help=True,
)
queue_app = typer.Typer(help="The durable queue of experiments (`exp run --queue` adds to it).", no_args_is_help=True)
app.add_typer(queue_app, name="queue")

JSON = typer.Option(False, "--json", help="Print as JSON.")
SORT = typer.Option(
    None,
    "--sort",
    metavar="metrics.KEY",
    help="Best first by this metric or param (highest first; +metrics.KEY: lowest first). Default: the first metric.",
)


def _project():
    from opsctl.core.project import open_project

    return open_project()


@app.command("run")
def run(
    set_params: Optional[list[str]] = typer.Option(
        None,
        "--set-param",
        "-S",
        metavar="[FILE:]KEY=VALUES",
        help="Values to sweep: a=1,2,3  a=range(1,10,2)  a=choice(x,y)  (Hydra's syntax). Repeatable.",
    ),
    grid: bool = typer.Option(False, "--grid", help="Every combination of the -S values (the default)."),
    zip_values: bool = typer.Option(False, "--zip", help="Pair the -S values by position instead of combining them."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1, help="Stages at once, across all experiments (default: the number of cores)."
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", help=f"{choices_text()} (default: opsctl.yaml's executor)."
    ),
    queue: bool = typer.Option(
        False, "--queue", help="Only add the experiments to the queue (`exp queue start` runs it)."
    ),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="The sweep's group name (default: sweep-DATE-ID)."),
    scheduler: Optional[str] = SCHEDULER_OPTION,
    sort: Optional[str] = SORT,
    as_json: bool = JSON,
) -> None:
    """Run a sweep: one experiment per combination of the -S values.

    Each runs in its own work tree (the current commit plus your uncommitted changes, plus
    its params), sharing the project's DVC cache and run cache; results are runs in the run
    store, grouped. Exit 5 when an experiment failed.
    """
    from opsctl.core.experiments import experiment_sort, plan_sweep, queue_sweep, runner_id

    if grid and zip_values:
        raise typer.BadParameter("--grid and --zip exclude each other", param_hint="--zip")
    experiment_sort(sort)  # a bad --sort is refused before anything is queued
    project = _project()
    plan = plan_sweep(project, list(set_params or []), zip_mode=zip_values, name=name)
    runner = None if queue else runner_id()
    entries = queue_sweep(project, plan, executor=executor, for_runner=runner)
    if queue:
        if as_json:
            out.json({"group": plan.group, "queued": [_entry_json(e) for e in entries]})
            return
        out.success(
            f"Queued {len(entries)} experiment{'s' if len(entries) != 1 else ''} in {plan.group} "
            f"(queue ids {entries[0].qid}-{entries[-1].qid}); `opsctl exp queue start` runs them"
        )
        return
    out.info(
        f"Sweep {plan.group}: {len(entries)} experiment{'s' if len(entries) != 1 else ''}"
        + (f" over {', '.join(plan.varying)}" if plan.varying else "")
    )
    _run_and_report(
        project, jobs, runner=runner, executor=None, scheduler=scheduler, sort=sort, as_json=as_json, group=plan.group
    )


def _run_and_report(project, jobs, *, runner, executor, scheduler, sort, as_json, group) -> None:
    import os

    from opsctl.core.experiments import drop_unstarted, experiment_sort, run_queue
    from opsctl.errors import InterruptedByUser, OpsctlError, StageFailedError

    experiment_sort(sort)

    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    display = _LiveSweep(sort) if out.interactive and not out.quiet and not as_json else _PlainSweep()
    started = time.time()
    try:
        with _interrupts_stop_the_run(), display:
            results = run_queue(
                project,
                jobs=jobs,
                runner=runner,
                executor=executor,
                executor_settings={"scheduler": scheduler} if scheduler else {},
                events=display,
            )
    except KeyboardInterrupt:
        out.warn(
            "sweep interrupted: finished experiments are recorded; the running ones were stopped (containers and "
            "work trees removed) and are back in the queue with the rest — `opsctl exp queue start` runs them, "
            "`opsctl exp queue clear` drops them"
        )
        raise InterruptedByUser("interrupted") from None
    except OpsctlError:
        if runner is not None:
            dropped = drop_unstarted(project, runner)
            if dropped:
                out.warn(f"{dropped} experiment{'s' if dropped != 1 else ''} not started were taken off the queue")
        raise
    failed = [r for r in results if r.status not in ("succeeded",)]
    if as_json:
        out.json(
            {
                "group": group,
                "experiments": [_result_json(r) for r in results],
                "succeeded": len(results) - len(failed),
                "failed": len(failed),
                "seconds": round(time.time() - started, 3),
            }
        )
    else:
        groups = sorted({r.entry.group for r in results if r.run_id})
        for name in groups:
            _print_table(project, name, sort)
        took = time.time() - started
        summary = f"{len(results)} experiment{'s' if len(results) != 1 else ''} in {took:.1f} s: {len(results) - len(failed)} succeeded"
        if failed:
            out.info(summary + f", {len(failed)} failed")
        elif results:
            out.success(summary)
        else:
            out.info("The queue has nothing to run.")
        for r in failed:
            out.info(f"  ✗ {r.entry.name} ({_values(r.entry.overrides)}): {r.detail or r.status}", style="red")
        if results and not failed:
            out.info(
                "Bring one into your work tree with `opsctl exp apply RUN`, or `opsctl exp branch RUN BRANCH`.",
                style="dim",
            )
    if failed:
        raise StageFailedError(
            f"{len(failed)} of {len(results)} experiments failed",
            hint="`opsctl runs show RUN` has each failure and its log",
        )


def _values(overrides) -> str:
    return " ".join(overrides) or "workspace params"


def _entry_json(e) -> dict:
    return {
        "id": e.qid,
        "group": e.group,
        "name": e.name,
        "overrides": e.overrides,
        "status": e.status,
        "executor": e.executor,
        "queued": e.queued,
        "run": e.run_id,
    }


def _result_json(r) -> dict:
    return {
        "name": r.entry.name,
        "group": r.entry.group,
        "run": r.run_id,
        "status": r.status,
        "overrides": r.entry.overrides,
        "failed_stages": r.failed_stages,
        "detail": r.detail,
        "metrics": r.metrics,
    }


class _SweepDisplay(SweepEvents):
    def images(self, names: list[str]) -> None:
        out.info(f"Building or confirming image{'s' if len(names) > 1 else ''} {', '.join(names)} once for the sweep")

    def started(self, result) -> None: ...

    def progress(self, result) -> None: ...

    def finished(self, result) -> None: ...

    def stopping(self, running: int) -> None:
        if running:
            out.info(
                f"Stopping {running} experiment{'s' if running != 1 else ''}: removing their containers and work trees…"
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class _PlainSweep(_SweepDisplay):
    """Off a terminal: one line per experiment as it finishes (stderr; --json on stdout at the end)."""

    def finished(self, result) -> None:
        metrics = ", ".join(f"{k} {_num(v)}" for k, v in list(sorted(result.metrics.items()))[:4])
        out.info(
            f"{'✓' if result.status == 'succeeded' else '✗'} {result.entry.name} {result.status}"
            f" ({_values(result.entry.overrides)})"
            + (f": {metrics}" if metrics else "")
            + (f" — {result.detail}" if result.detail and result.status != "succeeded" else "")
            + (f" [run {result.run_id}]" if result.run_id else "")
        )


class _LiveSweep(_SweepDisplay):
    """On a terminal: a line per running experiment, and the finished ones, best first."""

    def __init__(self, sort: str | None) -> None:
        from opsctl.core.experiments import experiment_sort

        self.sort_key, self.descending = experiment_sort(sort)
        self.running: dict[int, Any] = {}
        self.done: list = []
        self._live = None

    def __enter__(self):
        from rich.live import Live

        self._live = Live(
            self._render(),
            console=out._console(stderr=True),
            refresh_per_second=4,
            transient=True,
            get_renderable=self._render,
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def started(self, result) -> None:
        self.running[result.entry.qid] = result

    def finished(self, result) -> None:
        self.running.pop(result.entry.qid, None)
        self.done.append(result)

    def stopping(self, running: int) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        super().stopping(running)

    def _render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from opsctl.core.experiments import rank

        parts: list[Any] = []
        for r in list(self.running.values()):
            took = time.time() - r.started
            parts.append(
                Text(
                    f"⠿ {r.entry.name:<24} {_values(r.entry.overrides):<40} {r.stage or 'starting'}  {took:5.0f}s",
                    style="yellow",
                )
            )
        if self.done:
            key = self._key()
            rows = sorted(self.done, key=lambda r: rank(r.metrics.get(key) if key else None, self.descending))
            table = Table(box=None, header_style="bold", pad_edge=False)
            for column in ("experiment", "status", "values", key or "metrics"):
                table.add_column(column)
            for r in rows[:15]:
                value = r.metrics.get(key) if key else None
                table.add_row(
                    r.entry.name,
                    Text(r.status, style="green" if r.status == "succeeded" else "red"),
                    _values(r.entry.overrides),
                    _num(value) if value is not None else "",
                )
            parts.append(table)
        return Group(*parts)

    def _key(self) -> str | None:
        """The metric the finished ones are ranked by: --sort's, else the first one they have."""
        if self.sort_key is not None:
            return self.sort_key.removeprefix("metrics.")
        for r in self.done:
            if r.metrics:
                return sorted(r.metrics)[0]
        return None


def _num(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("show")
def show(
    group: Optional[str] = typer.Argument(None, metavar="GROUP", help="A sweep's group (default: the newest)."),
    sort: Optional[str] = SORT,
    as_json: bool = JSON,
) -> None:
    """A sweep's experiments as a table, best first: the params that vary and the metrics."""
    from opsctl.core.experiments import show_experiments

    table = show_experiments(_project(), group, sort)
    if as_json:
        out.json(_table_json(table))
        return
    if not table.experiments:
        out.info("No experiments yet: `opsctl exp run -S train.lr=0.01,0.1` runs a sweep.")
        return
    _render_table(table)


def _print_table(project, group: str, sort: str | None) -> None:
    from opsctl.core.experiments import show_experiments

    _render_table(show_experiments(project, group, sort))


def _render_table(table) -> None:
    from opsctl.core.experiments import override_values

    metric_keys = table.metric_keys[:6]
    rows = []
    for i, e in enumerate(table.experiments):
        values = override_values(e.overrides)
        status = Styled(e.status, {"succeeded": "green", "failed": "red", "running": "yellow"}.get(e.status, "dim"))
        rows.append(
            [
                "★" if i == 0 and e.status == "succeeded" and _has(e, table.sort_key) else "",
                e.run_id,
                e.name,
                status,
                *(values.get(k, "") for k in table.varying),
                *(_num(e.metrics[k]) if k in e.metrics else "" for k in metric_keys),
            ]
        )
    sorted_by = f", best first by {table.sort_key}" if table.sort_key else ""
    out.table(
        ["", "run", "experiment", "status", *table.varying, *metric_keys],
        rows,
        title=f"{table.group}: {len(table.experiments)} experiments{sorted_by}",
    )


def _has(experiment, key: str | None) -> bool:
    """Whether the experiment has a value for the sort key (then it is the best, first)."""
    if key is None:
        return False
    kind, _, name = key.partition(".")
    return (experiment.metrics if kind == "metrics" else experiment.params).get(name) is not None


def _table_json(table) -> dict:
    from opsctl.core.experiments import typed_values

    return {
        "group": table.group,
        "sort": table.sort_key,
        "varying": table.varying,
        "metric_keys": table.metric_keys,
        "experiments": [
            {
                "run": e.run_id,
                "name": e.name,
                "status": e.status,
                "params": typed_values(e.overrides),
                "overrides": e.overrides,
                "metrics": e.metrics,
                "started": e.started,
                "finished": e.finished,
                "commit": e.git_ref,
            }
            for e in table.experiments
        ],
        "groups": [{"group": g, "experiments": n, "newest": t} for g, n, t in table.groups],
    }


@app.command("apply")
def apply(
    run: str = typer.Argument(..., metavar="RUN", help="The experiment's run id (or a unique prefix)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite uncommitted changes to the files it writes."),
) -> None:
    """Bring an experiment's params, dvc.lock and outputs into your work tree.

    Files come from the experiment's commit, outputs from the DVC cache (fetched from the
    default remote when missing), so `dvc status` is clean afterwards.
    """
    from opsctl.core.experiments import apply_experiment

    with out.status(f"Applying {run}…"):
        applied = apply_experiment(_project(), run, force=force)
    fetched = f"; {applied.fetched} object(s) fetched from the remote" if applied.fetched else ""
    out.success(
        f"Applied experiment {applied.run_id}: {len(applied.files)} file(s) "
        f"({', '.join(applied.files[:6]) or 'none changed'}), {len(applied.outputs)} output(s) checked out{fetched}"
    )
    out.info("Commit it with git (dvc.lock included) to keep it, or `opsctl exp branch RUN BRANCH`.", style="dim")


@app.command("branch")
def branch(
    run: str = typer.Argument(..., metavar="RUN", help="The experiment's run id (or a unique prefix)."),
    name: str = typer.Argument(..., metavar="BRANCH", help="The new branch's name."),
) -> None:
    """Make a Git branch with the experiment's state committed (params, dvc.lock, metrics)."""
    from opsctl.core.experiments import branch_experiment

    run_id, commit = branch_experiment(_project(), run, name)
    out.success(f"Branch {name} at {commit[:10]}: experiment {run_id} committed on top of the commit it ran from")
    out.info(f"`git switch {name} && opsctl data pull` (or `dvc checkout`) gets its outputs.", style="dim")


@queue_app.command("list")
def queue_list(as_json: bool = JSON) -> None:
    """The queued experiments, oldest first (running ones too, with their run)."""
    from opsctl.core.experiments import queue_list as entries

    rows = entries(_project())
    if as_json:
        out.json([_entry_json(e) for e in rows])
        return
    if not rows:
        out.info("The queue is empty: `opsctl exp run --queue -S KEY=V1,V2` adds to it.")
        return
    out.table(
        ["id", "group", "experiment", "status", "values", "queued"],
        [
            (
                e.qid,
                e.group,
                e.name,
                Styled(e.status, "yellow" if e.status == "running" else ""),
                _values(e.overrides),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.queued)),
            )
            for e in rows
        ],
    )


@queue_app.command("remove")
def queue_remove(ids: list[int] = typer.Argument(..., metavar="ID...", help="Queue ids (`exp queue list`).")) -> None:
    """Take experiments off the queue (not the running ones)."""
    from opsctl.core.experiments import queue_remove as remove
    from opsctl.errors import UsageError

    removed, running, unknown = remove(_project(), ids)
    if removed:
        out.success(f"Removed {len(removed)} from the queue: {', '.join(map(str, removed))}")
    if running:
        out.warn(f"still running (stop its runner with Ctrl-C): {', '.join(map(str, running))}")
    if unknown:
        raise UsageError(f"no queue entry {', '.join(map(str, unknown))}", hint="`opsctl exp queue list` shows them")


@queue_app.command("clear")
def queue_clear() -> None:
    """Empty the queue (running experiments go on)."""
    from opsctl.core.experiments import queue_remove as remove

    removed, running, _unknown = remove(_project(), None)
    out.success(f"Removed {len(removed)} queued experiment{'s' if len(removed) != 1 else ''}")
    if running:
        out.info(f"{len(running)} running experiment(s) go on: their runner owns them")


@queue_app.command("start")
def queue_start(
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1, help="Stages at once, across all experiments (default: the number of cores)."
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", help=f"{choices_text()} (default: what each was queued with, else opsctl.yaml's)."
    ),
    scheduler: Optional[str] = SCHEDULER_OPTION,
    sort: Optional[str] = SORT,
    as_json: bool = JSON,
) -> None:
    """Run the queue until it is empty; entries added meanwhile are picked up.

    Ctrl-C (or a killed runner) puts the running experiments back in the queue; finished
    ones are recorded. Exit 5 when an experiment failed.
    """
    _run_and_report(
        _project(), jobs, runner=None, executor=executor, scheduler=scheduler, sort=sort, as_json=as_json, group=None
    )
