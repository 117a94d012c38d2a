"""Entry point (`python -m opsctl` and the `opsctl` console script)."""

import signal
import sys


def run() -> None:
    try:
        from opsctl.cli.fastpath import try_fast_path

        code = try_fast_path(sys.argv[1:])
        if code is None:
            from opsctl.cli.main import main_with_exit_code

            code = main_with_exit_code()
        # The work is done (or rolled back): a Ctrl-C now would only garble the
        # interpreter's shutdown with "Exception ignored in ..." noise.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own handling: while importing or setting up,
        # before anything was done. The command's handler covers everything after.
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    run()
