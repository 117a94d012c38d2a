"""``opsctl doctor``: can this machine run this project, and if not, how to fix it."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.errors import OpsctlError
from opsctl.executors.registry import EXECUTORS, executor_spec

if TYPE_CHECKING:
    from opsctl.core.config import ProjectConfig
    from opsctl.core.project import Project

MIN_PYTHON = (3, 10)
MIN_FREE_BYTES = 1 << 30  # below this DVC's cache and image builds fail in confusing ways
LOW_FREE_BYTES = 5 << 30

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    required: bool
    fix: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL and c.required]

    @property
    def ok(self) -> bool:
        return not self.failed


def run_checks(
    cwd: Path | None = None,
    *,
    require_docker: bool | None = None,
    executor: str | None = None,
    executor_settings: dict | None = None,
) -> DoctorReport:
    """Run every check. A Docker engine is required when the executor (``executor``, else the
    project's default) needs one (executors/registry.py), or ``require_docker`` says so;
    otherwise a missing engine is a warning. An unknown ``executor`` is a UsageError."""
    if executor is not None:
        executor_spec(executor)
    cwd = Path(cwd or os.getcwd())
    checks = [_python()]
    checks.append(_guard("git", True, _git))
    checks.append(_guard("dvc", True, _dvc))
    project_check, project = _project(cwd)
    checks.append(project_check)
    if require_docker is None:
        if executor is None and project is not None:
            executor = project.config.executor
        needs_engine = executor is not None and executor in EXECUTORS and EXECUTORS[executor].docker_engine
        require_docker = needs_engine or os.environ.get("OPSCTL_REQUIRE_DOCKER") == "1"
    engine = _guard("docker engine", require_docker, _docker)
    checks.append(engine)
    if project is not None:
        config = project.config
        checks.append(_guard("stage networks", require_docker, lambda: _networks(config, engine.status == OK)))
    checks.append(_disk(cwd))
    if executor is not None and executor in EXECUTORS and EXECUTORS[executor].doctor:
        checks += _executor_checks(executor, project, executor_settings or {})
    return DoctorReport(checks)


def _executor_checks(name: str, project: Project | None, cli_settings: dict) -> list[Check]:
    """The executor's own checks (executors/registry.py), with the project's remote and registry."""
    spec = EXECUTORS[name]
    settings = {**(project.config.executors.get(name, {}) if project else {}), **cli_settings}
    remote_url, remote_options, registry = None, {}, None
    if project is not None:
        from opsctl.adapters.dvc import remote_for_workers

        registry = project.config.registry
        try:
            info = remote_for_workers(project.root)
        except OpsctlError:
            info = None
        if info is not None:
            remote_url, remote_options = info.url, info.options
    try:
        rows = spec.doctor_checks(settings, remote_url, remote_options, registry)
    except OpsctlError as exc:
        return [Check(f"{name} executor", FAIL, exc.message, True, exc.hint)]
    return [Check(check, status, detail, True, fix) for check, status, detail, fix in rows]


def _guard(name: str, required: bool, probe: Callable[[], tuple[str, str, str | None]]) -> Check:
    try:
        status, detail, fix = probe()
    except OpsctlError as exc:
        return Check(name, FAIL if required else WARN, exc.message, required, exc.hint)
    if status == FAIL and not required:
        status = WARN
    return Check(name, status, detail, required, fix)


def _python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", FAIL, version, True, f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    return Check("python", OK, f"{version} ({sys.executable})", True)


def _git() -> tuple[str, str, str | None]:
    from opsctl.adapters.git import git_version, identity_configured

    version = git_version()
    if not identity_configured(Path.home()):
        return (
            WARN,
            f"{version}; no user.name/user.email configured",
            ('git config --global user.name "Your Name" && git config --global user.email you@example.com'),
        )
    return OK, version, None


def _dvc() -> tuple[str, str, str | None]:
    from opsctl.adapters.dvc import dvc_version
    from opsctl.adapters.dvc_compat import check_dvc_version

    return OK, check_dvc_version(dvc_version()), None


def _project(cwd: Path) -> tuple[Check, Project | None]:
    from opsctl.core.project import CREATE_HINT, open_project

    try:
        project = open_project(cwd)
    except OpsctlError as exc:
        # Not being in a project is information, not a failure: doctor also runs before `init`.
        return Check("project", WARN, exc.message, False, exc.hint or CREATE_HINT), None
    source = "opsctl.yaml" if project.has_config_file else "defaults, no opsctl.yaml"
    detail = f"{project.config.project} at {project.root} (executor {project.config.executor}, {source})"
    return Check("project", OK, detail, False), project


def _networks(config: ProjectConfig, engine_ok: bool) -> tuple[str, str, str | None]:
    """The ``network:`` settings: a user-defined network the engine lacks fails (when the
    engine answers), ``host`` is a warning (loopback services become reachable)."""
    from opsctl.adapters.docker import network_exists
    from opsctl.core.config import BUILTIN_NETWORKS
    from opsctl.core.networks import host_network_keys, host_network_warning

    used = {name: spec.network for name, spec in config.stages.items() if spec.network}
    user_defined = sorted({network for network in used.values() if network not in BUILTIN_NETWORKS})
    missing = [network for network in user_defined if engine_ok and not network_exists(network)]
    if missing:
        keys = [f"stages.{name}.network" for name, network in sorted(used.items()) if network in missing]
        return (
            FAIL,
            f"no Docker network named {', '.join(missing)} ({', '.join(keys)} in opsctl.yaml)",
            f"docker network create {missing[0]}",
        )
    host = host_network_keys(config)
    if host:
        return (
            WARN,
            host_network_warning(host),
            "use network: none or bridge unless the stage needs the host's services",
        )
    if not used:
        return OK, "none for every stage (no network)", None
    return OK, ", ".join(f"{name}: {network}" for name, network in sorted(used.items())), None


def _docker() -> tuple[str, str, str | None]:
    from opsctl.adapters.docker import engine_info

    info = engine_info(timeout=3)
    return OK, f"engine {info.version} (API {info.api_version}, {info.os}/{info.arch})", None


def _disk(cwd: Path) -> Check:
    probe = cwd if cwd.exists() else Path.home()
    free = shutil.disk_usage(probe).free
    detail = f"{_gib(free)} free at {probe}"
    if free < MIN_FREE_BYTES:
        return Check("disk", FAIL, detail, True, "free some disk space: DVC's cache and image builds need room")
    if free < LOW_FREE_BYTES:
        return Check("disk", WARN, detail, True, "disk is nearly full; `dvc gc` frees unused cache")
    return Check("disk", OK, detail, True)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"
