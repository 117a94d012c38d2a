"""``opsctl worker``: a Dask worker with what opsctl's stages need.

A plain ``dask worker tcp://HOST:8786`` serves ``opsctl run --executor dask`` too; this one
checks the machine first (a Docker engine, Dask installed) and declares its resources, so
stages asking for ``cpus``, ``memory`` or ``gpus`` are placed by them: ``CPU`` (cores),
``MEMORY`` (bytes) and ``GPU`` (NVIDIA devices ``nvidia-smi -L`` lists), each overridable
with ``--resources``. Then it becomes the Dask worker (the process is replaced).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import ToolUnavailableError, UsageError
from opsctl.executors.dask import NODE_DIR_ENV, resources_text


@dataclass(frozen=True)
class WorkerPlan:
    argv: list[str]
    env: dict[str, str]
    resources: dict[str, float]

    @property
    def resources_text(self) -> str:
        return resources_text(self.resources)


def parse_resources(text: str | None) -> dict[str, float]:
    """``GPU=2,MEMORY=8e9`` -> {"GPU": 2.0, "MEMORY": 8e9}; UsageError naming a bad item."""
    resources: dict[str, float] = {}
    for item in (text or "").replace(" ", ",").split(","):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not sep or not name.isidentifier() or amount < 0:
            raise UsageError(f"--resources {item}: expected NAME=NUMBER (e.g. GPU=1,MEMORY=8e9)")
        resources[name] = amount
    return resources


def detected_resources() -> dict[str, float]:
    """This machine's cores, memory and NVIDIA GPUs, as Dask resources."""
    found: dict[str, float] = {"CPU": float(os.cpu_count() or 1)}
    try:
        found["MEMORY"] = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    if shutil.which("nvidia-smi"):
        try:
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        gpus = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
        if gpus:
            found["GPU"] = float(gpus)
    return found


def plan_worker(
    scheduler: str,
    *,
    name: str | None = None,
    nthreads: int | None = None,
    resources: str | None = None,
    node_dir: Path | None = None,
) -> WorkerPlan:
    """The ``dask worker`` command line and environment; ToolUnavailableError (exit 4) when
    this machine can't run stages: no Docker engine, or Dask not installed."""
    from opsctl.adapters.docker import engine_info

    try:
        import distributed  # noqa: F401 — only checking that it is there
    except ImportError:
        raise ToolUnavailableError(
            "Dask distributed is not installed here", hint="pip install 'opsctl[dask]'"
        ) from None
    engine_info()  # EngineUnavailableError (exit 4) naming DOCKER_HOST and how to start an engine
    threads = nthreads if nthreads is not None else os.cpu_count() or 1
    if threads < 1:
        raise UsageError("--nthreads must be at least 1")
    declared = {**detected_resources(), **parse_resources(resources)}
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--nthreads", str(threads)]
    argv += ["--resources", resources_text(declared)]
    if name:
        argv += ["--name", name]
    env = dict(os.environ)
    if node_dir is not None:
        node_dir.mkdir(parents=True, exist_ok=True)
        env[NODE_DIR_ENV] = str(node_dir.resolve())
        argv += ["--local-directory", str(node_dir.resolve())]
    return WorkerPlan(argv, env, declared)


def become_worker(plan: WorkerPlan) -> None:
    """Replace this process with the Dask worker (signals and exit code are then Dask's)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(plan.argv[0], plan.argv, plan.env)
