"""Run a stage in a container of its image, with the safe defaults of DESIGN.md:
workspace at /workspace, the invoking uid:gid, no capabilities, no-new-privileges,
network none unless the stage asks, limits from opsctl.yaml, labelled, removed after."""

from __future__ import annotations

import os
import time

from opsctl.adapters.docker import ContainerSpec, remove_containers, run_container
from opsctl.executors.base import LogSink, StageInvocation, StageOutcome, masker

RUN_LABEL = "org.opsctl.run"
STAGE_LABEL = "org.opsctl.stage"


class DockerExecutor:
    name = "docker"

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        settings = invocation.container
        if settings is None:
            raise ValueError(f"stage {invocation.stage}: the docker executor needs container settings (an image)")
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        mask = masker(invocation.env)
        root = invocation.project_root.resolve()
        relative = invocation.workdir.resolve().relative_to(root).as_posix()
        spec = ContainerSpec(
            image=settings.image,
            command=invocation.cmd,
            workspace=str(root),
            working_dir="/workspace" if relative == "." else f"/workspace/{relative}",
            user=settings.user or f"{os.getuid()}:{os.getgid()}",
            env={**invocation.env, "DVC_ROOT": "/workspace", "DVC_STAGE": invocation.stage},
            network=settings.network or "none",
            labels={RUN_LABEL: invocation.run_id or "", STAGE_LABEL: invocation.stage},
            cpus=settings.cpus,
            memory=settings.memory,
            gpus=settings.gpus,
        )
        started = time.monotonic()
        with open(invocation.log_path, "w", encoding="utf-8") as log:
            def emit(raw: str) -> None:
                line = mask(raw)
                log.write(line + "\n")
                log.flush()
                if on_line is not None:
                    on_line(invocation.stage, line)

            exit_code = run_container(spec, emit)
        return StageOutcome(invocation.stage, exit_code, time.monotonic() - started, invocation.log_path)

    def cancel(self, run_id: str) -> None:
        remove_containers(RUN_LABEL, run_id)
