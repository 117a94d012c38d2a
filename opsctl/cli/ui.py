"""``opsctl ui``: the Textual dashboard (opsctl/tui/), started only here so that no other
command pays Textual's import."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    refresh: float = typer.Option(
        1.0, "--refresh", min=0.2, metavar="SECONDS", help="How often the dashboard looks at the store for new runs."
    ),
) -> None:
    """The dashboard: runs, stages and their logs, comparisons, lineage, the pipeline and
    the model registry, live, in the terminal. Press ? in it for the keys."""
    from opsctl.tui.launch import start_dashboard

    code = start_dashboard(refresh)
    if code:
        raise typer.Exit(code)
