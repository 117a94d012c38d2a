"""The Docker engine through the docker SDK."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opsctl.errors import EngineUnavailableError

START_HINT = (
    "start the engine: `sudo systemctl start docker` (or `sudo dockerd &`); "
    "install it with `sudo apt-get install docker.io` or Docker Desktop; "
    "set DOCKER_HOST if it listens elsewhere"
)


def _short_reason(text: str) -> str:
    for needle, reason in (
        ("No such file or directory", "no engine socket there"),
        ("Permission denied", "permission denied on the socket"),
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
    ):
        if needle in text:
            return reason
    return " ".join(text.split())[:160]


def _hint_for(text: str) -> str:
    if "Permission denied" in text:
        return "add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again), or use sudo"
    return START_HINT


@dataclass(frozen=True)
class EngineInfo:
    version: str
    api_version: str
    os: str
    arch: str


def engine_info(timeout: float = 5.0) -> EngineInfo:
    """Ask the engine (``DOCKER_HOST`` or the default socket) for its version."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        try:
            info = client.version()
        finally:
            client.close()
    except DockerException as exc:
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineUnavailableError(
            f"Docker engine not reachable at {host} ({_short_reason(str(exc))})", hint=_hint_for(str(exc))
        ) from None
    return EngineInfo(
        version=str(info.get("Version", "?")),
        api_version=str(info.get("ApiVersion", "?")),
        os=str(info.get("Os", "?")),
        arch=str(info.get("Arch", "?")),
    )
