"""``opsctl runs``: the run records — list, show, compare, logs."""

from __future__ import annotations

import sys
import time
from typing import Optional

import typer

from opsctl.cli.output import Styled, out

app = typer.Typer(help="Runs of the pipeline: what ran, with which code, data, params and image.",
                  no_args_is_help=True)

STATUS_STYLES = {"succeeded": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}


@app.command("list")
def list_cmd(
    limit: int = typer.Option(20, "--limit", "-n", help="At most this many runs (newest first)."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status: succeeded, failed, interrupted, running."),
    where: Optional[list[str]] = typer.Option(None, "--where", "-w", metavar="EXPR", help="Filter on params or metrics, e.g. 'params.train.n_estimators>50' or 'metrics.accuracy>=0.8'; repeatable."),
    sort: Optional[str] = typer.Option(None, "--sort", metavar="KEY", help="Sort by started, duration, metrics.KEY or params.KEY (highest first; +KEY for lowest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """The project's runs, newest first, with their key metrics."""
    from opsctl.core.project import open_project
    from opsctl.core.runs import list_runs

    result = list_runs(open_project(), limit=limit, status=status, where=list(where or []), sort=sort,
                       count=not as_json)
    if as_json:
        out.json([_summary_json(r) for r in result.runs])
        return
    if not result.runs:
        if result.total_in_store:
            out.info("No runs match.")
        else:
            out.info("No runs yet: `opsctl run` records one each time stages run.")
        return
    keys = result.metric_keys
    out.table(
        ["run", "status", "started", "duration", "commit", "stages", *keys],
        [
            (r.id[:8], Styled(r.status, STATUS_STYLES.get(r.status, "")), _when(r.started), _duration(r.duration),
             _commit(r.git_commit, r.dirty), f"{r.ran} ran, {r.cached} cached" + (f", {r.failed} failed" if r.failed else "")
             + (f", {r.skipped} skipped" if r.skipped else ""),
             *(_value(r.metrics.get(k)) for k in keys))
            for r in result.runs
        ],
    )
    if result.total > len(result.runs):
        out.info(f"{len(result.runs)} of {result.total} runs; --limit to see more", style="dim")


@app.command("show")
def show_cmd(
    run: str = typer.Argument(..., metavar="RUN", help="A run id or a unique prefix of it."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """One run: what ran, with which code, params and images, and what each stage did."""
    from opsctl.core.project import open_project
    from opsctl.core.runs import show_run

    detail = show_run(open_project(), run)
    if as_json:
        out.json(_detail_json(detail))
        return
    w = sys.stdout.write
    w(f"run       {detail.id}\n")
    w(f"status    {detail.status}\n")
    w(f"started   {_when(detail.started)}   duration {_duration(detail.duration)}\n")
    w(f"code      {_commit(detail.git_commit, detail.dirty)} on {detail.branch or '(detached)'}"
      + (f"   uncommitted diff {detail.diff_hash[:12]}" if detail.diff_hash else "") + "\n")
    w(f"by        {detail.user}@{detail.host}   executor {detail.executor}, -j {detail.jobs}\n\n")
    out.table(["stage", "outcome", "duration", "exit", "image", "detail"], [
        (s.name, Styled(s.outcome, _outcome_style(s.outcome)), _duration(s.duration),
         "" if s.exit_code is None else s.exit_code, _image(s.image_ref, s.image_id), s.detail)
        for s in detail.stages
    ])
    if detail.params:
        w("\nparams\n")
        for key, value in sorted(detail.params.items()):
            w(f"  {key} = {_value(value)}\n")
    if detail.metrics:
        w("\nmetrics\n")
        for key, value in sorted(detail.metrics.items()):
            w(f"  {key} = {_value(value)}\n")


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
        out.json({
            "runs": comparison.run_ids,
            "rows": [{"key": r.key, "values": r.values, "changed": r.changed, "deltas": r.deltas}
                     for r in comparison.rows],
        })
        return
    ids = [i[:8] for i in comparison.run_ids]
    rows = []
    for r in comparison.rows:
        cells = [Styled(_value(v), "yellow" if r.changed and i else "") for i, v in enumerate(r.values)]
        deltas = [_delta(d) for d in r.deltas[1:]]
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


def _summary_json(r) -> dict:
    return {"id": r.id, "status": r.status, "started": r.started, "finished": r.finished, "duration": r.duration,
            "git_commit": r.git_commit, "dirty": r.dirty, "branch": r.branch,
            "stages": {"ran": r.ran, "cached": r.cached, "failed": r.failed, "skipped": r.skipped},
            "metrics": r.metrics}


def _detail_json(d) -> dict:
    return {
        **_summary_json(d), "user": d.user, "host": d.host, "executor": d.executor, "jobs": d.jobs,
        "diff_hash": d.diff_hash, "params": d.params,
        "stages": [
            {"name": s.name, "outcome": s.outcome, "detail": s.detail, "started": s.started, "duration": s.duration,
             "cmd": s.cmd, "image": s.image_ref, "image_id": s.image_id, "exit_code": s.exit_code, "log": s.log_path,
             "deps": [{"path": a.path, "hash": a.hash} for a in s.artifacts if a.kind == "dep"],
             "params": [{"path": a.path, "hash": a.hash} for a in s.artifacts if a.kind == "param"],
             "outs": [{"path": a.path, "hash": a.hash} for a in s.artifacts if a.kind == "out"]}
            for s in d.stages
        ],
        "stage_counts": {"ran": d.ran, "cached": d.cached, "failed": d.failed, "skipped": d.skipped},
    }


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _commit(commit: str | None, dirty: bool) -> str:
    return (commit[:8] if commit else "(none)") + ("*" if dirty else "")


def _image(ref: str | None, image_id: str | None) -> str:
    if not ref:
        return "(host)"
    return ref + (f" ({image_id.removeprefix('sha256:')[:12]})" if image_id else "")


def _outcome_style(outcome: str) -> str:
    return {"ran": "green", "cached": "cyan", "failed": "red", "skipped": "yellow", "interrupted": "yellow"}.get(outcome, "")


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _delta(delta) -> str:
    if delta is None:
        return ""
    if delta == 0:
        return "0"
    return f"{delta:+.4g}"
