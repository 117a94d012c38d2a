"""``opsctl plots show``: DVC's plots in the terminal, overlaid across runs and revisions, or
as exact SVG and self-contained HTML."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from opsctl.cli.output import out

app = typer.Typer(
    help="Plots declared in dvc.yaml (ROC curves, confusion matrices, training curves): "
    "in the terminal, across runs and revisions, or as SVG/HTML.",
    no_args_is_help=True,
)

MAX_HEIGHT = 24  # rows a chart takes at most: a few plots fit on a screen


@app.command("show")
def show(
    targets: Optional[list[str]] = typer.Argument(
        None, metavar="[TARGET]...", help="Plot ids or files (a regular expression matched at the start); default: all."
    ),
    runs: Optional[list[str]] = typer.Option(
        None, "--run", metavar="RUN", help="A recorded run's plots (repeat to overlay runs)."
    ),
    revs: Optional[list[str]] = typer.Option(
        None, "--rev", metavar="REV", help="A Git revision's plots; `workspace` for the working tree (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Each plot's data and Vega-Lite spec, for scripts."),
    html: Optional[Path] = typer.Option(
        None, "--html", metavar="FILE", help="Write one self-contained HTML page (works offline)."
    ),
    svg: Optional[Path] = typer.Option(None, "--svg", metavar="DIR", help="Write one SVG file per plot into DIR."),
) -> None:
    """Draw the plots of dvc.yaml: curves as braille charts, confusion matrices as tables,
    images inline where the terminal can show them. With several --run/--rev the same plot
    overlays them, each series named by its run or revision (as `dvc plots diff`)."""
    from opsctl.core import plots as core_plots
    from opsctl.core.project import open_project
    from opsctl.errors import OpsctlError, UsageError

    if html is not None and svg is not None:
        raise UsageError("give --html FILE or --svg DIR, not both")
    if html is not None and html.is_dir():
        raise UsageError(f"--html {html}: is a directory (give a file name)")
    if svg is not None and svg.exists() and not svg.is_dir():
        raise UsageError(f"--svg {svg}: is a file (give a directory)")
    project = open_project(read_config=False)
    with out.status("Reading plots"):
        plot_set = core_plots.load(project, targets or [], runs=runs or [], revs=revs or [])
    if not plot_set.plots:
        if plot_set.errors:  # none could be read: say why, not "no plots"
            raise OpsctlError("; ".join(plot_set.errors))
        _nothing(targets or [])
        return
    if as_json:
        out.json(core_plots.as_json(plot_set))
    elif html is not None:
        written = core_plots.write_html(plot_set, html)
        out.success(f"Wrote {written} ({len(plot_set.plots)} plots)")
    elif svg is not None:
        with out.status("Rendering SVG"):
            files = core_plots.write_svgs(plot_set, svg)
        out.success(f"Wrote {len(files)} files to {svg}/")
    else:
        _draw(plot_set)
    for error in plot_set.errors:
        out.warn(error)
    if not all(core_plots.has_data(plot) for plot in plot_set.plots):
        raise typer.Exit(1)  # a plot with no data at all: its lines above say why


def _nothing(targets: list[str]) -> None:
    from opsctl.errors import UsageError

    if targets:
        raise UsageError(f"no plot matches {', '.join(targets)}", hint="`opsctl plots show` lists every plot")
    out.info(
        "No plots: dvc.yaml declares none. Declare a stage's output under `plots:` "
        "(with x, y, template, title), then run the pipeline.",
    )


def _draw(plot_set) -> None:
    from opsctl.core.plot_text import draw

    size = shutil.get_terminal_size((100, 30))
    width, height = size.columns, max(12, min(MAX_HEIGHT, size.lines - 3))
    color = out.color and out.is_tty(sys.stdout)
    for plot in plot_set.plots:
        if plot.kind == "vega":
            if plot.datapoints:
                sys.stdout.write(draw(plot, width, height, color=color) + "\n\n")
            continue
        for rev, files in plot.sources.items():
            for path, data in files.items():
                _image(f"{rev}: {path}" if len(plot_set.sources) > 1 else path, data, width)
    sys.stdout.flush()


def _image(label: str, data: bytes, width: int) -> None:
    from opsctl.cli.inline_images import show_image

    show_image(data, label, sys.stdout, os.environ, width)
