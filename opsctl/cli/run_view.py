"""What ``opsctl run`` prints when the pipeline is up to date, and its ``--json`` report,
without typer: the typer-free way in (cli/fastpath.py) answers ``opsctl run`` in an
up-to-date project from the no-op fast path (core/plan_cache.py) with exactly the output
the typer command gives (tests/cli/test_fastpath.py compares the two)."""

from __future__ import annotations

import os
import time

from opsctl.cli.output import out


def answer_if_up_to_date(*, executor: str | None, jobs: int | None, as_json: bool) -> bool:
    """Print ``opsctl run``'s answer and return True when the fast path knows nothing would run;
    False whenever the run might have anything to do, or any question (a bad -j, an unknown
    executor, no project): the full command then runs and answers, errors included."""
    import secrets

    from opsctl.core.pipeline import nothing_to_run
    from opsctl.core.project import find_root, open_project
    from opsctl.core.run_report import RunReport
    from opsctl.errors import OpsctlError
    from opsctl.executors.registry import EXECUTORS

    if find_root() is None or (jobs is not None and jobs < 1):
        return False
    try:
        project = open_project()
        executor = executor or project.config.executor
        plan = nothing_to_run(project, [], executor) if executor in EXECUTORS else None
    except OpsctlError:
        return False
    if plan is None:
        return False
    # The report run_pipeline returns for an up-to-date pipeline (core/run.py).
    started = time.time()
    report = RunReport(secrets.token_hex(6), plan, executor, jobs or (os.cpu_count() or 1), started, finished=started)
    for warning in plan.warnings:
        out.warn(warning)
    print_up_to_date(report, as_json)
    return True


def print_up_to_date(report, as_json: bool) -> None:
    if as_json:
        out.json(report_json(report, "up to date"))
    else:
        out.success("Everything is up to date; nothing to run.")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def report_json(report, status: str) -> dict:
    return {
        "run_id": report.run_id,
        "status": status,
        "executor": report.executor,
        "jobs": report.jobs,
        "started": report.started,
        "finished": report.finished,
        "logs": str(report.logs_dir) if report.logs_dir else None,
        "stages": [
            {
                "stage": s.name,
                "status": s.status,
                "detail": s.detail,
                "duration": s.duration,
                "exit_code": s.exit_code,
                "log": str(s.log_path) if s.log_path else None,
                "image": s.image_ref,
                "image_id": s.image_id,
                "worker": s.worker,
                "attempts": s.attempts,
            }
            for s in report.stages
        ],
        "up_to_date": [s.name for s in report.plan.steps if not s.stale],
        "recorded": report.recorded,
        "metrics": report.metrics,
        "previous_run": report.previous_run_id,
        "plots_notes": report.plots_notes,
        "metric_deltas": {
            k: v - report.previous_metrics[k]
            for k, v in report.metrics.items()
            if is_number(v) and is_number(report.previous_metrics.get(k))
        },
    }
