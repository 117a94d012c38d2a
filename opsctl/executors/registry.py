"""The executors opsctl knows: each one's name, implementation and what it needs.

One table read by everything that cares which executors exist: opsctl.yaml's parser (valid
``executor:`` values and ``executors: {NAME: {...}}`` settings), ``opsctl run --executor``
(its choices and help), the planner and the run (does a stage run in a container image?
which class runs it?) and ``opsctl doctor`` (is a Docker engine required?). Adding an
executor is one module with a class implementing :mod:`opsctl.executors.base`'s interface
plus one entry in :data:`EXECUTORS` (docs/architecture.md, *Pipeline execution*).

Light on purpose: it is imported on ``opsctl --help``'s path, and an executor's module is
imported only when a run uses it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from opsctl.errors import UsageError

DOCKER, LOCAL, DASK = "docker", "local", "dask"
STRING, COUNT = "string", "count"  # the kinds of value an executor setting takes


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    summary: str  # one line, for help texts and `opsctl doctor`
    implementation: str  # "module:Class": constructed with no arguments when a run uses it
    containers: bool  # stages run in container images: images are built, identified and locked
    docker_engine: bool  # needs a Docker engine where `opsctl run` runs
    # Stages run away from the project: their inputs and outputs travel through the DVC remote
    # by hash and their images through a registry by digest (core/remote_stage.py).
    remote: bool = False
    # The keys `executors: {NAME: {...}}` in opsctl.yaml may set, each with its kind of value
    # (STRING or COUNT); an executor with settings is constructed with them.
    settings: tuple[tuple[str, str], ...] = ()
    # "module:function" adding `opsctl doctor --executor NAME` checks: called with (settings,
    # remote URL, remote options, registry), it returns (check, ok|warn|fail, detail, fix) rows.
    doctor: str | None = None

    @property
    def setting_names(self) -> tuple[str, ...]:
        return tuple(name for name, _kind in self.settings)

    def doctor_checks(self, settings: dict[str, Any], remote_url, remote_options, registry) -> list[tuple]:
        """The executor's own `opsctl doctor` checks (none when it declares no ``doctor``)."""
        if self.doctor is None:
            return []
        module, _, function = self.doctor.partition(":")
        return list(getattr(importlib.import_module(module), function)(settings, remote_url, remote_options, registry))

    def create(self, settings: dict[str, Any] | None = None) -> Any:
        """A new instance of the executor (its module imported now)."""
        module, _, cls = self.implementation.partition(":")
        factory = getattr(importlib.import_module(module), cls)
        return factory(settings or {}) if self.settings else factory()


EXECUTORS: dict[str, ExecutorSpec] = {
    spec.name: spec
    for spec in (
        ExecutorSpec(
            DOCKER,
            "each stage in a container of its image, on this machine's Docker engine",
            "opsctl.executors.docker:DockerExecutor",
            containers=True,
            docker_engine=True,
        ),
        ExecutorSpec(
            LOCAL,
            "each stage as a process on this machine (no isolation)",
            "opsctl.executors.local:LocalExecutor",
            containers=False,
            docker_engine=False,
        ),
        ExecutorSpec(
            DASK,
            "each stage in a container on a worker of a Dask cluster, data through the DVC remote",
            "opsctl.executors.dask:DaskExecutor",
            containers=True,
            docker_engine=True,  # the images are built here, then pushed to the registry
            remote=True,
            settings=(("scheduler", STRING), ("retries", COUNT)),
            doctor="opsctl.executors.dask:doctor_checks",
        ),
    )
}


def is_remote(name: str | None) -> bool:
    """Whether stages of executor ``name`` run away from the project (through the DVC remote)."""
    spec = EXECUTORS.get(name or "")
    return spec is not None and spec.remote


def names() -> tuple[str, ...]:
    return tuple(EXECUTORS)


def choices_text() -> str:
    """The executors as a reader lists them: "docker or local", "a, b or c"."""
    listed = names()
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"


def executor_spec(name: str) -> ExecutorSpec:
    """The executor called ``name``; UsageError naming the choices when there is none."""
    spec = EXECUTORS.get(name)
    if spec is None:
        raise UsageError(f"unknown executor '{name}' (choose from {', '.join(names())})")
    return spec


def runs_in_containers(name: str | None) -> bool:
    """Whether stages of executor ``name`` run in container images (False for an unknown one,
    e.g. a name an older or newer opsctl wrote into opsctl.lock)."""
    spec = EXECUTORS.get(name or "")
    return spec is not None and spec.containers
