"""``opsctl status`` without typer: the command's body, shared by the typer command
(cli/pipeline.py) and the typer-free way in (cli/fastpath.py), which with the no-op fast path
(core/plan_cache.py) answers an unchanged pipeline without importing typer or DVC."""

from __future__ import annotations

from opsctl.cli.output import Styled, out
from opsctl.core.formatting import STAGE_STATE_STYLES


def print_status(as_json: bool) -> None:
    from opsctl.core.pipeline import make_plan
    from opsctl.core.project import open_project
    from opsctl.core.runs import mark_dead_runs

    project = open_project()
    plan = make_plan(project, [], executor=None, force=False)
    for warning in plan.warnings:
        out.warn(warning)
    stages = plan.steps
    for dead in mark_dead_runs(project):  # a run killed half way: say so where the user looks next
        stopped = f"; stopped: {', '.join(dead.stopped)}" if dead.stopped else ""
        out.warn(f"run {dead.run_id} was left running by an opsctl that is gone: marked interrupted{stopped}")
    if as_json:
        out.json(
            [
                {"stage": s.name, "stale": s.stale, "reasons": s.reasons, "upstream": s.upstream, "cmd": s.cmd}
                for s in stages
            ]
        )
        return
    if not stages:
        out.info("No pipeline stages yet: add stages to dvc.yaml (or `dvc stage add`).")
        return
    out.table(
        ["stage", "status", "why"],
        [(s.name, _state(s.stale), "; ".join(s.reasons)) for s in stages],
    )
    stale = sum(s.stale for s in stages)
    out.info(f"{stale} of {len(stages)} stages stale" if stale else "Everything is up to date.")


def _state(stale: bool) -> Styled:
    state = "stale" if stale else "up to date"
    return Styled(state, STAGE_STATE_STYLES[state])
