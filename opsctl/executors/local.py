"""Run a stage as a host process, the way ``dvc repro`` does."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from opsctl.executors.base import LogSink, StageInvocation, StageOutcome, masker


class LocalExecutor:
    name = "local"

    def __init__(self) -> None:
        self._running: dict[int, tuple[str | None, subprocess.Popen]] = {}
        self._lock = threading.Lock()

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # The environment DVC gives a stage command: the caller's, plus DVC_ROOT and DVC_STAGE.
        env = {**os.environ, **invocation.env, "DVC_ROOT": str(invocation.project_root), "DVC_STAGE": invocation.stage}
        mask = masker(env)  # the whole environment reaches a host process, so mask all of it
        with open(invocation.log_path, "w", encoding="utf-8") as log:
            # dvc.yaml commands are shell command lines by definition (DVC runs them
            # through the shell too); they come from the project, not from user input.
            # Own session: Ctrl-C reaches opsctl, which stops the stage through cancel().
            proc = subprocess.Popen(  # noqa: S602
                invocation.cmd,
                shell=True,
                cwd=invocation.workdir,
                env=env,
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                errors="replace",
            )
            with self._lock:
                self._running[proc.pid] = (invocation.run_id, proc)
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = mask(raw.rstrip("\n"))
                    log.write(line + "\n")
                    log.flush()
                    if on_line is not None:
                        on_line(invocation.stage, line)
                exit_code = proc.wait()
            finally:
                with self._lock:
                    self._running.pop(proc.pid, None)
                if proc.poll() is None:
                    _stop(proc)
        return StageOutcome(invocation.stage, exit_code, time.monotonic() - started, invocation.log_path)

    def open(self, run_id: str, image: str) -> None:
        pass  # nothing to prepare for a host process

    def close(self, run_id: str) -> None:
        pass  # nothing outlives a host process

    def cancel(self, run_id: str) -> None:
        with self._lock:
            procs = [p for rid, p in self._running.values() if rid == run_id]
        for proc in procs:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the stage's whole process group, SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
