"""``opsctl ui``: the Textual dashboard (opsctl/tui/), started only here so that no other
command pays Textual's import."""

from __future__ import annotations

import sys

import typer


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    refresh: float = typer.Option(1.0, "--refresh", min=0.2, metavar="SECONDS",
                                  help="How often the dashboard looks at the store for new runs."),
) -> None:
    """The dashboard: runs, stages and their logs, comparisons, lineage, the pipeline and
    the model registry, live, in the terminal. Press ? in it for the keys."""
    from opsctl.core.dashboard import Dashboard
    from opsctl.core.project import open_project
    from opsctl.errors import UsageError

    project = open_project()  # not a project: exit 3 before anything is drawn
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("opsctl ui needs a terminal (stdin and stdout)",
                         hint="for scripts use `opsctl runs list --json`, `opsctl runs show RUN --json`")
    from opsctl.tui.app import OpsctlApp

    app = OpsctlApp(Dashboard(project), refresh_interval=refresh)
    app.run()
    if app.return_code:
        raise typer.Exit(app.return_code)
