"""Starting the dashboard from a project directory: what `opsctl ui` runs, through typer
(cli/ui.py) or without it (cli/fastpath.py)."""

from __future__ import annotations


def start_dashboard(refresh: float) -> int:
    """Run the dashboard over the project here; its exit code (Textual prints what went
    wrong if it crashed). Outside a project or a terminal it raises, before drawing."""
    import signal
    import sys

    from opsctl.core.dashboard import Dashboard
    from opsctl.core.project import open_project
    from opsctl.errors import EXIT_INTERRUPTED, UsageError

    project = open_project()  # not a project: exit 3 before anything is drawn
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "opsctl ui needs a terminal (stdin and stdout)",
            hint="for scripts use `opsctl runs list --json`, `opsctl runs show RUN --json`",
        )
    from opsctl.tui.app import OpsctlApp

    app = OpsctlApp(Dashboard(project), refresh_interval=refresh)

    def on_sigterm(_signum, _frame) -> None:
        # Python's default would end the process at once, leaving the terminal raw and on
        # the alternate screen: exit through the app instead, which restores it.
        app.exit(return_code=EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        app.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return app.return_code or 0
