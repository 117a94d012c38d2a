"""The Docker engine through the docker SDK."""

from __future__ import annotations

from dataclasses import dataclass

from opsctl.errors import EngineUnavailableError

START_HINT = (
    "start the engine: `sudo systemctl start docker` (or `sudo dockerd &`); "
    "install it with `sudo apt-get install docker.io` or Docker Desktop; "
    "set DOCKER_HOST if it listens elsewhere"
)


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
        reason = " ".join(str(exc).split())
        raise EngineUnavailableError(f"Docker engine not reachable ({reason})", hint=START_HINT) from None
    return EngineInfo(
        version=str(info.get("Version", "?")),
        api_version=str(info.get("ApiVersion", "?")),
        os=str(info.get("Os", "?")),
        arch=str(info.get("Arch", "?")),
    )
