"""Pipeline commands: ``opsctl status``."""

from __future__ import annotations

import typer

from opsctl.cli.output import Styled, out


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which pipeline stages are stale, and why.

    From DVC's own change detection.
    """
    from opsctl.core.pipeline import pipeline_status
    from opsctl.core.project import open_project

    project = open_project()
    stages = pipeline_status(project)
    if as_json:
        out.json([
            {"stage": s.name, "stale": s.stale, "reasons": s.reasons, "upstream": s.upstream, "cmd": s.cmd}
            for s in stages
        ])
        return
    if not stages:
        out.info("No pipeline stages yet: add stages to dvc.yaml (or `dvc stage add`).")
        return
    out.table(
        ["stage", "status", "why"],
        [
            (s.name, Styled("stale", "yellow") if s.stale else Styled("up to date", "green"), "; ".join(s.reasons))
            for s in stages
        ],
    )
    stale = sum(s.stale for s in stages)
    out.info(f"{stale} of {len(stages)} stages stale" if stale else "Everything is up to date.")
