"""``opsctl report``: a pull request's review of a pipeline change, and its gates."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from opsctl.cli.output import out

FORMATS = ("md", "json", "html")


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    base: Optional[str] = typer.Option(
        None,
        "--base",
        metavar="REV",
        help="The revision to compare with (default: in CI the pull request's base; else the merge base with "
        "the default branch; else HEAD~1, or HEAD when the workspace has uncommitted changes).",
    ),
    head: Optional[str] = typer.Option(
        None, "--head", metavar="REV", help="Report on this revision instead of the workspace."
    ),
    fmt: str = typer.Option("md", "--format", metavar="md|json|html", help="Markdown (default), JSON or HTML."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the report to FILE (default: standard output)."
    ),
    fail_on: Optional[list[str]] = typer.Option(
        None,
        "--fail-on",
        metavar="EXPR",
        help="Exit 6 when EXPR holds: metrics.KEY<N, metrics.KEY.delta<N, metrics.KEY.delta_pct>N, checks, drift "
        "(repeatable).",
    ),
    comment: bool = typer.Option(
        False, "--comment", help="Post the report on the pull/merge request (updating opsctl's earlier comment)."
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Compare the plots too (the slowest section)."),
) -> None:
    """Compare the workspace (or --head) with a base revision: metrics with deltas and their trend,
    params, data, stale stages and the run, data checks and drift on the head's data, changed plots,
    registry events. Each section appears only when it has something to say."""
    from opsctl.core import ci, report_gates, report_render
    from opsctl.core import report as core_report
    from opsctl.core.project import open_project
    from opsctl.errors import DataCheckFailedError, OpsctlError, UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: not one of {', '.join(FORMATS)}")
    if output is not None and output.is_dir():
        raise UsageError(f"-o {output}: is a directory (give a file name)")
    gates = [report_gates.parse_gate(text) for text in fail_on or []]
    project = open_project()
    context = ci.detect(os.environ)
    sides = core_report.resolve_sides(project, base, head, suggested_base=context.base_rev)
    gate_metrics = [g.name for g in gates if g.kind == "metric"]
    with out.status("Comparing") as status:
        built = core_report.build_report(
            project,
            *sides,
            gate_metrics=gate_metrics,
            with_plots=plots,
            progress=lambda what: status.update(what) if status is not None else None,
        )
    built.gates = report_gates.evaluate(gates, built)

    images = _write_plot_images(built, output) if fmt == "md" and output is not None else {}
    markdown = report_render.markdown(built, images=images)
    if fmt == "md":
        text = markdown
    elif fmt == "json":
        text = report_render.json_text(core_report.as_json(built))
    else:
        with out.status("Rendering SVG"):
            text = report_render.html(built)
    if output is not None:
        from opsctl.core.files import write_atomically

        write_atomically(output, text.encode("utf-8"))
        out.success(f"Wrote {output}")
    elif fmt == "md" and out.is_tty(sys.stdout):
        out.markdown(report_render.markdown(built, terminal=True))
    else:
        sys.stdout.write(text)

    summary = ci.append_step_summary(markdown, os.environ)
    if summary is not None:
        out.info(f"Added the report to the job summary ({summary})")
    failed = built.failed_gates
    gate_error = None
    if failed:
        listed = "; ".join(f"{g.gate} ({g.detail})" for g in failed)
        gate_error = DataCheckFailedError(f"{len(failed)} of {len(built.gates)} gates failed: {listed}")
    if comment:
        try:
            posted = ci.post_comment(markdown, os.environ, marker=ci.marker_for(_subdir(project.root)))
        except OpsctlError as exc:
            if gate_error is None:
                raise
            out.warn(f"{exc}")  # the gates' verdict (exit 6) is what the job must report
        else:
            if posted.action == "skipped":
                out.warn(posted.summary)
            else:
                out.success(posted.summary)
                if posted.truncated and posted.note:
                    out.warn(posted.note)
    if gate_error is not None:
        raise gate_error


def _write_plot_images(built, output: Path) -> dict[str, str]:
    """SVGs of the changed plots Mermaid can't draw, beside the report (``REPORT-plots/``), for
    CI to upload with it; plot id -> the path relative to the report."""
    from opsctl.core import plots as core_plots
    from opsctl.core.files import write_atomically
    from opsctl.core.report_render import LINE_TEMPLATES

    wanted = [c for c in built.plots if not (c.plot.kind == "vega" and c.template in LINE_TEMPLATES)]
    if not wanted:
        return {}
    directory = output.parent / f"{output.stem}-plots"
    directory.mkdir(parents=True, exist_ok=True)
    images = {}
    with out.status("Rendering plot images"):
        for change in wanted:
            if change.plot.kind != "vega":
                continue  # an image plot: its files are in the repository already
            name = f"{core_plots.file_name(change.id)}.svg"
            write_atomically(directory / name, core_plots.svg(change.plot).encode("utf-8"))
            images[change.id] = f"{directory.name}/{name}"
    return images


def _subdir(root: Path) -> str | None:
    """The project's place inside its Git repository (None at the top): monorepos get one comment per project."""
    from opsctl.core.report import repository_subdir

    return repository_subdir(root)
