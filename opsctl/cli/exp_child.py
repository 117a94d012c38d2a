"""Experiments in processes of their own, forked from a *zygote* that an experiment runner
(core/experiments.py: ``run_queue``) starts. Not a command for people.

    python -m opsctl.cli.exp_child --zygote PROJECT

The zygote imports what an experiment needs once (DVC, Docker's SDK, opsctl's run), then
reads requests from stdin, one JSON line each: ``{"argv": [PROJECT, QUEUE_ID, WORK_TREE,
EXECUTOR, JOBS, SLOTS_DIR, SETTINGS_JSON]}``. For each it forks an experiment, which says what
happens as JSON lines on the shared stdout, each tagged with its queue id; the zygote adds
``{"event": "pid"}`` and ``{"event": "exit", "code"}`` (0, 5 a stage failed, 130 interrupted,
or an error's code). Ctrl-C and SIGTERM stop an experiment as they stop `opsctl run`; the
zygote ignores Ctrl-C (it must live to report its experiments' ends) and, when its stdin
closes — its runner is done, or died — it stops every experiment still running and exits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from pathlib import Path

MAX_MESSAGE = 3500  # bytes: a write to a pipe up to PIPE_BUF (4096) is never interleaved with another's


def _write(message: dict) -> None:
    data = json.dumps(message, default=str)
    # Too long for one atomic write: what can be spared goes first (the failure detail cut, the
    # metrics left to the run store, where the final table reads them), never the JSON itself.
    spares: list[dict] = [
        {"detail": str(message.get("detail", ""))[:1000]},
        {"metrics": {}},
        {"detail": "", "failed": []},
    ]
    for spare in spares:
        if len(data) <= MAX_MESSAGE:
            break
        message = {**message, **spare}
        data = json.dumps(message, default=str)
    try:
        os.write(1, data.encode() + b"\n")
    except (BrokenPipeError, OSError):  # the runner is gone: the run store still hears it all
        pass


def zygote() -> int:
    import opsctl.cli.interrupts  # noqa: F401 — every experiment's, loaded once
    from opsctl.core.experiments import preload

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload()
    children: dict[int, int] = {}  # pid -> queue id
    buffer = b""
    open_input = True
    while open_input or children:
        if open_input:
            ready, _, _ = select.select([0], [], [], 0.2)
            if ready:
                chunk = os.read(0, 1 << 16)
                if not chunk:
                    open_input = False
                    for pid in children:  # the runner is done or gone: stop what still runs
                        _signal(pid, signal.SIGTERM)
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        argv = json.loads(line)["argv"]
                        pid = os.fork()
                        if pid == 0:
                            os._exit(_experiment(argv))
                        children[pid] = int(argv[1])
                        _write({"qid": int(argv[1]), "event": "pid", "pid": pid})
        else:
            select.select([], [], [], 0.2)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            qid = children.pop(pid, None)
            if qid is not None:
                _write({"qid": qid, "event": "exit", "code": os.waitstatus_to_exitcode(status)})
    return 0


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _experiment(argv: list[str]) -> int:
    """In the forked process: run one experiment; its exit code. A crash (a bug) is said as an
    error, with its traceback on stderr (the runner's log), and never returns into the zygote's loop."""
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        return main(argv)
    except BaseException as exc:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        _write({"qid": int(argv[1]), "event": "error", "message": f"internal error: {type(exc).__name__}: {exc}"})
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def main(argv: list[str]) -> int:
    from opsctl.cli.interrupts import interrupt_handler
    from opsctl.core.experiments import run_one
    from opsctl.core.project import Project
    from opsctl.errors import OpsctlError

    root, qid, work_tree, executor, jobs, slots_dir, settings = argv
    handler = interrupt_handler(once=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)

    def say(message: dict) -> None:
        _write({"qid": int(qid), **message})

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


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote"] and len(sys.argv) == 3:  # (PROJECT: for `ps` to say whose it is)
        sys.exit(zygote())
    sys.stderr.write("usage: python -m opsctl.cli.exp_child --zygote PROJECT (started by `opsctl exp`)\n")
    sys.exit(2)
