"""The ``opsctl`` command: the app, its groups, and the one error handler."""

from __future__ import annotations

import sys

import typer

from opsctl import __version__
from opsctl.cli import data as data_cmd
from opsctl.cli import doctor as doctor_cmd
from opsctl.cli import exp as exp_cmd
from opsctl.cli import init as init_cmd
from opsctl.cli import lineage as lineage_cmd
from opsctl.cli import model as model_cmd
from opsctl.cli import monitor as monitor_cmd
from opsctl.cli import pipeline as pipeline_cmd
from opsctl.cli import plots as plots_cmd
from opsctl.cli import report as report_cmd
from opsctl.cli import run as run_cmd
from opsctl.cli import runs as runs_cmd
from opsctl.cli import templates as templates_cmd
from opsctl.cli import ui as ui_cmd
from opsctl.cli import worker as worker_cmd
from opsctl.cli.output import out

app = typer.Typer(
    name="opsctl",
    help="One command for the DataOps/MLOps loop: scaffold, version data, run pipelines in containers, "
    "track lineage, promote models. Built on Git, DVC and Docker.",
    no_args_is_help=True,
    add_completion=False,  # static scripts in completions/ instead: no Python start-up per <TAB>
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich help costs ~0.15 s of imports on every --help
    context_settings={"help_option_names": ["-h", "--help"]},
)

_show_traceback = False  # --traceback, OPSCTL_DEBUG=1: set by main_with_exit_code


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"opsctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
    traceback: bool = typer.Option(False, "--traceback", help="Show the full traceback when a command fails."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    global _show_traceback
    _show_traceback = _show_traceback or traceback
    out.quiet = quiet


init_cmd.register(app)
app.add_typer(templates_cmd.app, name="template")
app.add_typer(data_cmd.app, name="data")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(model_cmd.app, name="model")
app.add_typer(monitor_cmd.app, name="monitor")
app.add_typer(exp_cmd.app, name="exp")
app.add_typer(plots_cmd.app, name="plots")
doctor_cmd.register(app)
pipeline_cmd.register(app)
run_cmd.register(app)
lineage_cmd.register(app)
report_cmd.register(app)
ui_cmd.register(app)
worker_cmd.register(app)


def main_with_exit_code(argv: list[str] | None = None) -> int:
    """Run the CLI; map every failure to one line on stderr and an exit code."""
    # typer vendors click (typer._click) since 0.2x; its exceptions are the ones raised.
    from typer._click import exceptions as click

    from opsctl.cli.failures import report_failure, traceback_wanted
    from opsctl.errors import EXIT_INTERRUPTED, EXIT_USAGE, OpsctlError

    global _show_traceback
    args = list(sys.argv[1:] if argv is None else argv)
    _show_traceback = _show_traceback or traceback_wanted(args)
    command = typer.main.get_command(app)
    _install_sigint_handler()
    if not _show_traceback:
        # Finalisers of half-built library objects (tqdm bars cut short by Ctrl-C)
        # raise in __del__; Python prints those as "Exception ignored in ...". They
        # change nothing and would bury our one-line message.
        sys.unraisablehook = lambda _unraisable: None
    try:
        result = command.main(args=args, prog_name="opsctl", standalone_mode=False)
        if result == EXIT_INTERRUPTED:
            # typer turns a KeyboardInterrupt raised in a command into a silent Exit(130).
            out.error("interrupted")
        return result if isinstance(result, int) else 0
    except (OpsctlError, KeyboardInterrupt) as exc:
        return report_failure(exc, show_traceback=_show_traceback)
    except typer.Abort:
        return report_failure(KeyboardInterrupt(), show_traceback=_show_traceback)
    except click.NoArgsIsHelpError as exc:
        # `opsctl data` with no subcommand: show that group's help, as --help would.
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except click.UsageError as exc:
        hint = None
        if exc.ctx is not None:
            hint = f"see `{exc.ctx.command_path} --help`"
        out.error(exc.format_message(), hint)
        return EXIT_USAGE
    except click.ClickException as exc:
        out.error(exc.format_message())
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 — the last line of defence: one line, not a raw traceback
        return report_failure(exc, show_traceback=_show_traceback)


def _install_sigint_handler() -> None:
    """Ctrl-C raises KeyboardInterrupt, as by default, except inside a ``__del__``
    (see :func:`opsctl.cli.interrupts.interrupt_handler`)."""
    import signal
    import threading

    from opsctl.cli.interrupts import interrupt_handler

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt_handler())
