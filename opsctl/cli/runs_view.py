"""What `opsctl runs list` and `opsctl runs show` print (the formatters are
core/formatting.py's, shared with the dashboard).

Free of typer on purpose: the typer commands (cli/runs.py) and the fast path
(cli/fastpath.py) both call these, so the two give the same output by construction.
"""

from __future__ import annotations

import sys

from opsctl.cli.output import Styled, out
from opsctl.core.formatting import (
    DRIFT_STYLES,
    STATUS_STYLES,
    VERDICT_STYLES,
    commit_label,
    drift_verdict_text,
    duration_text,
    failure_label,
    image_label,
    outcome_style,
    shows_workers,
    value_text,
    verdict_text,
    when,
    worker_label,
)


def print_run_list(limit: int, status: str | None, where: list[str], sort: str | None, as_json: bool) -> None:
    """The project's runs, newest first, with their key metrics."""
    from opsctl.core.project import open_project
    from opsctl.core.runs import list_runs

    result = list_runs(
        open_project(read_config=False), limit=limit, status=status, where=list(where), sort=sort, count=not as_json
    )
    if as_json:
        out.json([summary_json(r) for r in result.runs])
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
            (
                r.id[:8],
                Styled(r.status, STATUS_STYLES.get(r.status, "")),
                when(r.started),
                duration_text(r.duration),
                commit_label(r.git_commit, r.dirty),
                f"{r.ran} ran, {r.cached} cached"
                + (f", {r.failed} failed" if r.failed else "")
                + (f", {r.skipped} skipped" if r.skipped else ""),
                *(value_text(r.metrics.get(k)) for k in keys),
            )
            for r in result.runs
        ],
    )
    if result.total > len(result.runs):
        out.info(f"{len(result.runs)} of {result.total} runs; --limit to see more", style="dim")


def print_run(run: str, as_json: bool) -> None:
    """One run: what ran, with which code, params and images, and what each stage did."""
    from opsctl.core.check_records import run_drift_checks, run_verdicts
    from opsctl.core.project import open_project
    from opsctl.core.runs import show_run

    project = open_project(read_config=False)
    detail = show_run(project, run)
    verdicts = run_verdicts(project, detail.id)
    drift = run_drift_checks(project, detail.id)
    if as_json:
        out.json(
            {
                **detail_json(detail),
                "checks": [v.as_json() for v in verdicts],
                "drift": [
                    {
                        "dataset": d.path,
                        "stage": d.stage,
                        "reference": d.reference,
                        "drift": d.drift,
                        "share": d.share,
                        "drifted": d.drifted,
                    }
                    for d in drift
                ],
            }
        )
        return
    w = sys.stdout.write
    w(f"run       {detail.id}\n")
    w(f"status    {detail.status}\n")
    w(f"started   {when(detail.started)}   duration {duration_text(detail.duration)}\n")
    w(
        f"code      {commit_label(detail.git_commit, detail.dirty)} on {detail.branch or '(detached)'}"
        + (f"   uncommitted diff {detail.diff_hash[:12]}" if detail.diff_hash else "")
        + "\n"
    )
    w(f"by        {detail.user}@{detail.host}   executor {detail.executor}, -j {detail.jobs}\n\n")
    workers = shows_workers(detail.stages)  # a column only for runs with remote stages
    out.table(
        ["stage", "outcome", "duration", "exit", "image", *(["worker"] if workers else []), "detail"],
        [
            (
                s.name,
                Styled(s.outcome, outcome_style(s.outcome)),
                duration_text(s.duration),
                "" if s.exit_code is None else s.exit_code,
                image_label(s.image_ref, s.image_id),
                *([worker_label(s.worker, s.attempts)] if workers else []),
                s.detail,
            )
            for s in detail.stages
        ],
    )
    if verdicts:
        w("\nchecks\n")
        out.table(
            ["dataset", "stage", "verdict", "rows", "failing checks"],
            [
                (
                    v.path,
                    v.stage or "",
                    Styled(verdict_text(v.passed, v.failed_checks, cached=v.cached), VERDICT_STYLES[v.passed]),
                    v.rows,
                    ", ".join(failure_label(f) for f in v.failures),
                )
                for v in verdicts
            ],
        )
    if drift:
        w("\ndrift\n")
        out.table(
            ["dataset", "stage", "reference", "verdict", "drifted columns"],
            [
                (
                    d.path,
                    d.stage or "",
                    d.reference,
                    Styled(drift_verdict_text(d.drift, len(d.drifted), d.compared), DRIFT_STYLES[d.drift]),
                    ", ".join(d.drifted[:4]),
                )
                for d in drift
            ],
        )
    if detail.params:
        w("\nparams\n")
        for key, value in sorted(detail.params.items()):
            w(f"  {key} = {value_text(value)}\n")
    if detail.metrics:
        w("\nmetrics\n")
        for key, value in sorted(detail.metrics.items()):
            w(f"  {key} = {value_text(value)}\n")


def summary_json(r) -> dict:
    return {
        "id": r.id,
        "status": r.status,
        "started": r.started,
        "finished": r.finished,
        "duration": r.duration,
        "git_commit": r.git_commit,
        "dirty": r.dirty,
        "branch": r.branch,
        "stages": {"ran": r.ran, "cached": r.cached, "failed": r.failed, "skipped": r.skipped},
        "metrics": r.metrics,
    }


def detail_json(d) -> dict:
    return {
        **summary_json(d),
        "user": d.user,
        "host": d.host,
        "executor": d.executor,
        "jobs": d.jobs,
        "diff_hash": d.diff_hash,
        "params": d.params,
        "stages": [
            {
                "name": s.name,
                "outcome": s.outcome,
                "detail": s.detail,
                "started": s.started,
                "duration": s.duration,
                "cmd": s.cmd,
                "image": s.image_ref,
                "image_id": s.image_id,
                "exit_code": s.exit_code,
                "log": s.log_path,
                "worker": s.worker,
                "attempts": s.attempts,
                "deps": [{"path": a.path, "hash": a.hash} for a in s.artifacts if a.kind == "dep"],
                "params": [{"path": a.path, "hash": a.hash} for a in s.artifacts if a.kind == "param"],
                "outs": [{"path": a.path, "hash": a.hash} for a in s.artifacts if a.kind == "out"],
            }
            for s in d.stages
        ],
        "stage_counts": {"ran": d.ran, "cached": d.cached, "failed": d.failed, "skipped": d.skipped},
    }
