"""One experiment, in a process of its own (``python -m opsctl.cli.exp_child``), started by
an experiment runner (core/experiments.py: ``run_queue``). Not a command for people.

    python -m opsctl.cli.exp_child PROJECT QUEUE_ID WORK_TREE EXECUTOR JOBS SLOTS_DIR SETTINGS_JSON

It says what happens as JSON lines on stdout (its runner reads them) and exits 0, 5 (a
stage failed), 130 (interrupted) or the code of the error that stopped it. Ctrl-C and
SIGTERM stop it as they stop `opsctl run`; so does its stdin closing, which happens when
its runner dies: an experiment never runs on with nobody to see it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path


def main(argv: list[str]) -> int:
    from opsctl.cli.interrupts import interrupt_handler
    from opsctl.core.experiments import run_one
    from opsctl.core.project import Project
    from opsctl.errors import OpsctlError

    root, qid, work_tree, executor, jobs, slots_dir, settings = argv
    handler = interrupt_handler(once=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    lock = threading.Lock()

    def say(message: dict) -> None:
        with lock:
            try:
                sys.stdout.write(json.dumps(message, default=str) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):  # the runner is gone: the run store still hears it all
                pass

    threading.Thread(target=_stop_when_orphaned, name="opsctl-exp-parent", daemon=True).start()
    try:
        return run_one(
            Project(Path(root)),
            int(qid),
            Path(work_tree),
            executor,
            int(jobs),
            Path(slots_dir),
            say,
            json.loads(settings),
        )
    except KeyboardInterrupt:
        return 130
    except OpsctlError as exc:
        say({"event": "error", "message": str(exc)})
        return exc.exit_code
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # the clean-up above is done: nothing may cut the exit short


def _stop_when_orphaned() -> None:
    """Block on stdin (a pipe only the runner writes to); EOF means the runner is gone."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
