"""A failure that escaped a command becomes one line on stderr and an exit code.

Shared by the typer CLI (cli/main.py) and the fast path (cli/fastpath.py), so both
report the same way. Typer-free: the fast path must not import typer.
"""

from __future__ import annotations

import os
import sys

from opsctl.cli.output import out


def traceback_wanted(args: list[str]) -> bool:
    return os.environ.get("OPSCTL_DEBUG") == "1" or "--traceback" in args


def report_failure(exc: BaseException, *, show_traceback: bool) -> int:
    """Print what went wrong (the full traceback too when asked) and return the exit code."""
    from opsctl.errors import EXIT_ERROR, EXIT_INTERRUPTED, OpsctlError

    if isinstance(exc, BrokenPipeError):
        # The reader went away (`opsctl runs list | head`): nothing to say to anyone.
        # Exit 1 with stdout pointed at /dev/null, so the interpreter's final flush is
        # quiet too: what click does for the typer commands.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        return 1
    if show_traceback:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, OpsctlError):
        out.error(exc.message, exc.hint)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        out.error("interrupted")
        return EXIT_INTERRUPTED
    out.error(
        f"internal error: {type(exc).__name__}: {exc}",
        hint="re-run with --traceback (or OPSCTL_DEBUG=1) to see where, and please report it",
    )
    return EXIT_ERROR
