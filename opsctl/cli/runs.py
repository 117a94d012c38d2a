"""``opsctl runs``: the run records — list, show, compare, logs."""

from __future__ import annotations

import sys
import time
from typing import Optional

import typer

from opsctl.cli import runs_view
from opsctl.cli.output import Styled, out
from opsctl.core.formatting import delta_text, value_text

app = typer.Typer(help="Runs of the pipeline: what ran, with which code, data, params and image.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    limit: int = typer.Option(20, "--limit", "-n", help="At most this many runs (newest first)."),
    status: Optional[str] = typer.Option(
        None, "--status", help="Only runs with this status: succeeded, failed, interrupted, running."
    ),
    where: Optional[list[str]] = typer.Option(
        None,
        "--where",
        "-w",
        metavar="EXPR",
        help="Filter on params or metrics, e.g. 'params.train.n_estimators>50' or 'metrics.accuracy>=0.8'; repeatable.",
    ),
    sort: Optional[str] = typer.Option(
        None,
        "--sort",
        metavar="KEY",
        help="Sort by started, duration, status, commit, branch, id, stages, metrics.KEY or params.KEY (highest first; +KEY for lowest first).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """The project's runs, newest first, with their key metrics."""
    runs_view.print_run_list(limit, status, list(where or []), sort, as_json)


@app.command("show")
def show_cmd(
    run: str = typer.Argument(..., metavar="RUN", help="A run id or a unique prefix of it."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """One run: what ran, with which code, params and images, and what each stage did."""
    runs_view.print_run(run, as_json)


@app.command("compare")
def compare_cmd(
    runs: list[str] = typer.Argument(..., metavar="RUN...", help="Two or more run ids (or unique prefixes)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Params and metrics of runs side by side; changed values marked, numeric deltas
    against the first run."""
    from opsctl.core.project import open_project
    from opsctl.core.runs import compare_runs
    from opsctl.errors import UsageError

    if len(runs) < 2:
        raise UsageError("compare needs two or more runs")
    comparison = compare_runs(open_project(), runs)
    if as_json:
        out.json(
            {
                "runs": comparison.run_ids,
                "rows": [
                    {"key": r.key, "values": r.values, "changed": r.changed, "deltas": r.deltas}
                    for r in comparison.rows
                ],
            }
        )
        return
    ids = [i[:8] for i in comparison.run_ids]
    rows = []
    for r in comparison.rows:
        cells = [Styled(value_text(v), "yellow" if r.changed and i else "") for i, v in enumerate(r.values)]
        deltas = [delta_text(d) for d in r.deltas[1:]]
        rows.append((Styled(r.key, "bold" if r.changed else ""), *cells, *deltas))
    out.table(["key", *ids, *(f"Δ {i}" for i in ids[1:])], rows)
    changed = sum(r.changed for r in comparison.rows)
    out.info(f"{changed} of {len(comparison.rows)} params and metrics differ")


@app.command("logs")
def logs_cmd(
    run: str = typer.Argument(..., metavar="RUN", help="A run id or a unique prefix of it."),
    stage: Optional[str] = typer.Argument(None, metavar="STAGE", help="One stage (default: every stage, in order)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing as a running stage writes."),
) -> None:
    """The saved logs of a run's stages."""
    from opsctl.core.project import open_project
    from opsctl.core.runs import run_is_running, stage_logs

    project = open_project()
    logs = stage_logs(project, run, stage)
    prefix = len(logs) > 1
    if not follow:
        for name, path in logs:
            for line in _read_lines(path):
                sys.stdout.write((f"{name} | " if prefix else "") + line)
        return
    offsets = {name: 0 for name, _ in logs}
    while True:
        for name, path in stage_logs(project, run, stage):
            offsets.setdefault(name, 0)
            if path is None or not path.is_file():
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(offsets[name])
                chunk = f.read()
                offsets[name] = f.tell()
            for line in chunk.splitlines(keepends=True):
                sys.stdout.write((f"{name} | " if prefix or stage is None else "") + line)
        sys.stdout.flush()
        if not run_is_running(project, run):
            return
        time.sleep(0.3)


def _read_lines(path):
    if path is None or not path.is_file():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readlines()


@app.command("repair")
def repair_cmd(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Repair a damaged run store, keeping every run that can still be read.

    The damaged file is kept beside it as opsctl.db.damaged-TIME. Runs finished while the
    store could not be written (kept in .opsctl/pending/) are recorded.
    """
    from opsctl.core.project import open_project
    from opsctl.core.runs import repair_store

    result = repair_store(open_project())
    if as_json:
        out.json(result._asdict())
        return
    if result.backup is None:
        out.success("The run store is sound: nothing to repair.")
    else:
        kept = result.kept
        out.success(
            f"Repaired the run store: kept {kept.get('runs', 0)} run{'s' if kept.get('runs', 0) != 1 else ''} "
            f"({kept.get('stages', 0)} stages)"
            + (f"; rows lost from: {', '.join(result.damaged)}" if result.damaged else "; nothing lost")
        )
        out.info(f"The damaged file is kept as {result.backup} (delete it when you no longer need it).")
    if result.settled:
        out.info(
            f"Recorded {len(result.settled)} run(s) kept aside meanwhile: {', '.join(r[:8] for r in result.settled)}"
        )
