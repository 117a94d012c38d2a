"""Whether a process is still there: the one test behind every "is its owner dead?" question
(a run left running, an orphan container, the holder of DVC's lock)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists on this host, whoever owns it."""
    if pid <= 0:
        return False  # 0 and negatives name process groups, never one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
