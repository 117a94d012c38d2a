"""Entry point (`python -m opsctl` and the `opsctl` console script)."""

import signal
import sys


def run() -> None:
    try:
        from opsctl.cli.main import main_with_exit_code
    except KeyboardInterrupt:  # Ctrl-C while still importing: nothing has been done yet
        sys.exit(130)
    code = main_with_exit_code()
    # The work is done (or rolled back): a Ctrl-C now would only garble the
    # interpreter's shutdown with "Exception ignored in ..." noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    run()
