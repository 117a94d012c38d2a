"""How opsctl turns Ctrl-C (and, during a run, SIGTERM) into KeyboardInterrupt."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

ONCE_FOR = 10.0  # seconds: a run's clean-up after Ctrl-C takes about one

Handler = Callable[[int, "FrameType | None"], None]


def interrupt_handler(*, once: bool = False) -> Handler:
    """A signal handler that raises KeyboardInterrupt, as Python's default one for SIGINT
    does, except inside a ``__del__``: Python swallows exceptions there ("Exception
    ignored in ..."), so the interrupt would be lost (seen with dulwich's object store,
    which DVC uses). Then the signal is re-sent a moment later, when the finaliser has
    returned — while this handler is still the one.

    ``once``: the first signal raises; those that follow within ``ONCE_FOR`` seconds are
    ignored, so that a second Ctrl-C (or SIGTERM) cannot cut short the clean-up that the
    first one started. Later ones raise again: should the first have been swallowed by
    some library, Ctrl-C still works."""
    raised_at: list[float] = []

    def resend(signum: int) -> None:
        # Only while this handler is still the one: once the command has ended,
        # opsctl ignores Ctrl-C, and Python's shutdown puts the default (kill) back.
        if signal.getsignal(signum) is handler:
            os.kill(os.getpid(), signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        if once and raised_at and time.monotonic() - raised_at[-1] < ONCE_FOR:
            return
        probe = frame
        while probe is not None:
            if probe.f_code.co_name == "__del__":
                timer = threading.Timer(0.05, resend, (signum,))
                timer.daemon = True  # never holds up the exit
                timer.start()
                return
            probe = probe.f_back
        raised_at.append(time.monotonic())
        raise KeyboardInterrupt

    return handler
