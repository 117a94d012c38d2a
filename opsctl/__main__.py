"""Entry point (`python -m opsctl` and the `opsctl` console script)."""

import signal
import sys


def run() -> None:
    code = 130  # EXIT_INTERRUPTED, unless the command returns its own code
    try:
        from opsctl.cli.help_cache import serve

        fast_code = serve(sys.argv[1:])  # --help, no arguments, --version: typer's recorded text
        if fast_code is None:
            from opsctl.cli.fastpath import try_fast_path

            fast_code = try_fast_path(sys.argv[1:])
        if fast_code is None:
            from opsctl.cli.main import main_with_exit_code

            code = main_with_exit_code()
        else:
            code = fast_code
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own handling: while importing or setting up,
        # before anything was done. The command's handler covers everything after.
        pass
    finally:
        # The work is done (or rolled back): a Ctrl-C now would only garble the
        # interpreter's shutdown with "Exception ignored in ..." noise, or end the
        # process by the signal once Python has put the default handler back.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # CPython (3.11 at least) marks a KeyboardInterrupt raised inside exec() as
    # "unhandled" even when it was caught, and under `python -m` then ends the
    # process with SIGINT after exit: status -2, not our 130. dataclasses build
    # their methods with exec(), so a Ctrl-C during an import can hit one. Every
    # exec() resets that mark; this one raises nothing, so the mark is cleared.
    exec("")  # noqa: S102 - an empty string: clears the interpreter's mark, runs nothing
    sys.exit(code)


if __name__ == "__main__":
    run()
