"""Run a stage in a container of its image, with the rules of docs/architecture.md
("Containers"): workspace at /workspace with the pipeline's own files read-only and
.opsctl/ hidden, the invoking uid:gid, no capabilities, no-new-privileges, network none
unless the stage asks, a pids limit and limits from opsctl.yaml, labelled, removed after."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import NamedTuple

from opsctl.adapters.docker import (
    ContainerSpec,
    create_network_sandbox,
    remove_containers,
    remove_orphans,
    run_container,
    start_network_sandbox,
    stop_network_sandbox,
)
from opsctl.adapters.processes import pid_alive
from opsctl.adapters.reaper import Reaper, start_reaper
from opsctl.executors.base import LogSink, StageInvocation, StageOutcome, masker

RUN_LABEL = "org.opsctl.run"
STAGE_LABEL = "org.opsctl.stage"
# "<host>:<pid>" of the opsctl process that owns a container. A killed opsctl's reaper
# (adapters/reaper.py) removes its containers at once; should the reaper be gone too (a
# reboot, `kill -9` of both), the next run removes containers whose owner is gone.
OWNER_LABEL = "org.opsctl.owner"


class DockerExecutor:
    name = "docker"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, _RunContainers] = {}  # run id -> its reaper and network sandbox

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        settings = invocation.container
        if settings is None:
            raise ValueError(f"stage {invocation.stage}: the docker executor needs container settings (an image)")
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        mask = masker(invocation.env)
        network = settings.network or "none"
        network_ready = None
        if invocation.run_id:
            run = self._run_for(invocation.run_id, settings.image)
            run.sandbox.reaped.wait()  # orphans of killed runs are gone before this run's first container
            if network == "none":
                # Still no network at all, only loopback: the namespace is shared with the
                # run's other stages instead of created (and paid for) per container.
                run.sandbox.created.wait()
                if run.sandbox.container_id is not None:
                    network = f"container:{run.sandbox.container_id}"
                    network_ready = run.sandbox.wait_running
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

            exit_code = run_container(spec, emit, network_ready=network_ready, on_started=invocation.on_started)
        return StageOutcome(invocation.stage, exit_code, time.monotonic() - started, invocation.log_path)

    def cancel(self, run_id: str) -> None:
        """Ctrl-C: kill and remove the run's containers now (the stages' and the sandbox);
        their stage threads then see them gone and return."""
        remove_containers(RUN_LABEL, run_id)

    def close(self, run_id: str) -> None:
        """The run is over: remove its network sandbox, then let its reaper go."""
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return
        run.sandbox.stop()
        run.reaper.close()

    def release_network(self, run_id: str) -> None:
        """No stage of the run will start a container any more (each has started one, or
        ended): stop the network sandbox now, in the background, instead of at the end.
        The stages still running keep the namespace — the kernel holds it while a process
        is in it — and the engine lets them run on; :meth:`close` waits for the stop."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            run.sandbox.stop_in_background()

    def _labels(self, run_id: str | None, stage: str | None) -> dict:
        labels = {RUN_LABEL: run_id or "", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
        if stage is not None:
            labels[STAGE_LABEL] = stage
        return labels

    def open(self, run_id: str, image: str) -> None:
        """Before the run's first container: start its reaper, and (in the background) reap
        what killed runs left and make its network sandbox, so that both are done by the
        time the first stage has been prepared instead of in front of every stage."""
        self._run_for(run_id, image)

    def _run_for(self, run_id: str, image: str) -> _RunContainers:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                # The reaper first: from now on, whatever happens to this process, no
                # container of the run outlives it by more than a moment.
                reaper = start_reaper(RUN_LABEL, run_id)
                run = self._runs[run_id] = _RunContainers(reaper, _Sandbox())
                threading.Thread(
                    target=run.sandbox.start,
                    args=(image, self._labels(run_id, None)),
                    name="opsctl-sandbox",
                    daemon=True,
                ).start()
            return run


class _RunContainers(NamedTuple):
    reaper: Reaper
    sandbox: _Sandbox


class _Sandbox:
    """The run's network sandbox, made in the background: ``reaped`` once the containers
    of killed runs are removed (before it, no container of the run is made), ``created``
    once its id is known (stage containers can be created to join it), ``running`` once
    it started (or failed)."""

    def __init__(self) -> None:
        self.reaped = threading.Event()
        self.created = threading.Event()
        self.running = threading.Event()
        self.container_id: str | None = None
        self.ok = False
        self._stop_lock = threading.Lock()
        self._stopping: threading.Thread | None = None  # the thread stopping it, once one does

    def start(self, image: str, labels: dict) -> None:
        try:
            remove_orphans(OWNER_LABEL, pid_alive)
        except Exception:  # noqa: BLE001 — an engine error shows itself when the stage's container is made
            pass
        finally:
            self.reaped.set()
        try:
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

    def stop(self) -> None:
        """Remove the sandbox (once it has started, or failed to); when a background stop
        was begun, wait for that one instead."""
        with self._stop_lock:
            stopping = self._stopping
            self._stopping = self._stopping or threading.current_thread()
        if stopping is None:
            self._stop()
        elif stopping is not threading.current_thread():
            stopping.join()

    def stop_in_background(self) -> None:
        with self._stop_lock:
            if self._stopping is not None:
                return
            self._stopping = threading.Thread(target=self._stop, name="opsctl-sandbox-stop")
            self._stopping.start()

    def _stop(self) -> None:
        self.running.wait()
        if self.ok and self.container_id is not None:
            stop_network_sandbox(self.container_id)
