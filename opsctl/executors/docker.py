"""Run a stage in a container of its image, with the safe defaults of DESIGN.md:
workspace at /workspace, the invoking uid:gid, no capabilities, no-new-privileges,
network none unless the stage asks, limits from opsctl.yaml, labelled, removed after."""

from __future__ import annotations

import os
import socket
import threading
import time

from opsctl.adapters.docker import (
    ContainerSpec,
    remove_containers,
    remove_orphans,
    run_container,
    start_network_sandbox,
    stop_network_sandbox,
)
from opsctl.executors.base import LogSink, StageInvocation, StageOutcome, masker

RUN_LABEL = "org.opsctl.run"
STAGE_LABEL = "org.opsctl.stage"
# "<host>:<pid>" of the opsctl process that owns a container: a later run removes
# containers whose owner died without cleaning up (SIGKILL, power loss).
OWNER_LABEL = "org.opsctl.owner"


class DockerExecutor:
    name = "docker"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sandboxes: dict[str, str | None] = {}  # run id -> network sandbox container (None: per-container)
        self._reaped = False

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        settings = invocation.container
        if settings is None:
            raise ValueError(f"stage {invocation.stage}: the docker executor needs container settings (an image)")
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        mask = masker(invocation.env)
        network = settings.network or "none"
        if network == "none" and invocation.run_id:
            # Still no network at all, only loopback: the namespace is shared with the
            # run's other stages instead of created (and paid for) per container.
            sandbox = self._sandbox(invocation.run_id, settings.image)
            if sandbox is not None:
                network = f"container:{sandbox}"
        root = invocation.project_root.resolve()
        relative = invocation.workdir.resolve().relative_to(root).as_posix()
        spec = ContainerSpec(
            image=settings.image,
            command=invocation.cmd,
            workspace=str(root),
            working_dir="/workspace" if relative == "." else f"/workspace/{relative}",
            user=settings.user or f"{os.getuid()}:{os.getgid()}",
            env={**invocation.env, "DVC_ROOT": "/workspace", "DVC_STAGE": invocation.stage},
            network=network,
            labels=self._labels(invocation.run_id, invocation.stage),
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
        remove_containers(RUN_LABEL, run_id)  # the stages' containers and the sandbox

    def close(self, run_id: str) -> None:
        """The run is over: remove its network sandbox."""
        with self._lock:
            sandbox = self._sandboxes.pop(run_id, None)
        if sandbox is not None:
            stop_network_sandbox(sandbox)

    def _labels(self, run_id: str | None, stage: str | None) -> dict:
        labels = {RUN_LABEL: run_id or "", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
        if stage is not None:
            labels[STAGE_LABEL] = stage
        return labels

    def _sandbox(self, run_id: str, image: str) -> str | None:
        with self._lock:
            if run_id not in self._sandboxes:
                if not self._reaped:
                    remove_orphans(OWNER_LABEL, _alive)
                    self._reaped = True
                self._sandboxes[run_id] = start_network_sandbox(image, self._labels(run_id, None))
            return self._sandboxes[run_id]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
