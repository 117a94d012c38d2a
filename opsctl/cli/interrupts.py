"""How opsctl turns Ctrl-C (and, during a run, SIGTERM) into KeyboardInterrupt."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

Handler = Callable[[int, "FrameType | None"], None]


def interrupt_handler(*, once: bool = False) -> Handler:
    """A signal handler that raises KeyboardInterrupt, as Python's default one for SIGINT
    does, except inside a ``__del__``: Python swallows exceptions there ("Exception
    ignored in ..."), so the interrupt would be lost (seen with dulwich's object store,
    which DVC uses). Then the signal is re-sent a moment later, when the finaliser has
    returned — while this handler is still the one.

    ``once``: only the first signal raises; later ones are ignored, so that a second
    Ctrl-C (or SIGTERM) cannot cut short the clean-up that the first one started."""
    raised = threading.Event()

    def resend(signum: int) -> None:
        # Only while this handler is still the one: once the command has ended,
        # opsctl ignores Ctrl-C, and Python's shutdown puts the default (kill) back.
        if signal.getsignal(signum) is handler:
            os.kill(os.getpid(), signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        if once and raised.is_set():
            return
        probe = frame
        while probe is not None:
            if probe.f_code.co_name == "__del__":
                timer = threading.Timer(0.05, resend, (signum,))
                timer.daemon = True  # never holds up the exit
                timer.start()
                return
            probe = probe.f_back
        raised.set()
        raise KeyboardInterrupt

    return handler
