"""Run a stage as a host process, the way ``dvc repro`` does."""

from __future__ import annotations

import os
import subprocess
import time

from opsctl.executors.base import LogSink, StageInvocation, StageOutcome, masker


class LocalExecutor:
    name = "local"

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        env = {**os.environ, **invocation.env}
        # dvc.yaml commands are shell command lines by definition (DVC runs them
        # through the shell too); they come from the project, not from user input.
        mask = masker(invocation.env)
        with open(invocation.log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                invocation.cmd, shell=True, cwd=invocation.workdir, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            )
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = mask(raw.rstrip("\n"))
                log.write(line + "\n")
                if on_line is not None:
                    on_line(invocation.stage, line)
            exit_code = proc.wait()
        return StageOutcome(invocation.stage, exit_code, time.monotonic() - started, invocation.log_path)
