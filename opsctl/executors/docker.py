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
    create_network_sandbox,
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
        self._sandboxes: dict[str, _Sandbox] = {}  # run id -> its network sandbox
        self._reaped = False

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        settings = invocation.container
        if settings is None:
            raise ValueError(f"stage {invocation.stage}: the docker executor needs container settings (an image)")
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        mask = masker(invocation.env)
        network = settings.network or "none"
        network_ready = None
        if network == "none" and invocation.run_id:
            # Still no network at all, only loopback: the namespace is shared with the
            # run's other stages instead of created (and paid for) per container.
            sandbox = self._sandbox_for(invocation.run_id, settings.image)
            sandbox.created.wait()
            if sandbox.container_id is not None:
                network = f"container:{sandbox.container_id}"
                network_ready = sandbox.wait_running
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
            pids=settings.pids,
        )
        started = time.monotonic()
        with open(invocation.log_path, "w", encoding="utf-8") as log:

            def emit(raw: str) -> None:
                line = mask(raw)
                log.write(line + "\n")
                log.flush()
                if on_line is not None:
                    on_line(invocation.stage, line)

            exit_code = run_container(spec, emit, network_ready=network_ready)
        return StageOutcome(invocation.stage, exit_code, time.monotonic() - started, invocation.log_path)

    def cancel(self, run_id: str) -> None:
        remove_containers(RUN_LABEL, run_id)  # the stages' containers and the sandbox

    def close(self, run_id: str) -> None:
        """The run is over: remove its network sandbox."""
        with self._lock:
            sandbox = self._sandboxes.pop(run_id, None)
        if sandbox is not None:
            sandbox.running.wait()
            if sandbox.ok and sandbox.container_id is not None:  # (ok implies an id)
                stop_network_sandbox(sandbox.container_id)

    def _labels(self, run_id: str | None, stage: str | None) -> dict:
        labels = {RUN_LABEL: run_id or "", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
        if stage is not None:
            labels[STAGE_LABEL] = stage
        return labels

    def open(self, run_id: str, image: str) -> None:
        """Start the run's network sandbox in the background, so that it is ready by the time
        the first stage has been prepared (and not started in front of every stage)."""
        self._sandbox_for(run_id, image)

    def _sandbox_for(self, run_id: str, image: str) -> _Sandbox:
        with self._lock:
            sandbox = self._sandboxes.get(run_id)
            if sandbox is None:
                sandbox = self._sandboxes[run_id] = _Sandbox()
                reap = not self._reaped
                self._reaped = True
                threading.Thread(
                    target=sandbox.start,
                    args=(image, self._labels(run_id, None), reap),
                    name="opsctl-sandbox",
                    daemon=True,
                ).start()
            return sandbox


class _Sandbox:
    """The run's network sandbox, made in the background: ``created`` once its id is known
    (stage containers can be created to join it), ``running`` once it started (or failed)."""

    def __init__(self) -> None:
        self.created = threading.Event()
        self.running = threading.Event()
        self.container_id: str | None = None
        self.ok = False

    def start(self, image: str, labels: dict, reap_orphans: bool) -> None:
        try:
            if reap_orphans:
                remove_orphans(OWNER_LABEL, _alive)
            self.container_id = create_network_sandbox(image, labels)
        except Exception:  # noqa: BLE001 — no sandbox: each container gets its own empty namespace instead
            self.container_id = None
        finally:
            self.created.set()
        try:
            self.ok = self.container_id is not None and start_network_sandbox(self.container_id)
        except Exception:  # noqa: BLE001
            self.ok = False
        finally:
            self.running.set()

    def wait_running(self) -> bool:
        self.running.wait()
        return self.ok


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
