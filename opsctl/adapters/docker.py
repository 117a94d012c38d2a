"""The Docker engine through the docker SDK."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from opsctl.errors import BuildFailedError, EngineUnavailableError

START_HINT = (
    "start the engine: `sudo systemctl start docker` (or `sudo dockerd &`); "
    "install it with `sudo apt-get install docker.io` or Docker Desktop; "
    "set DOCKER_HOST if it listens elsewhere"
)


def _client(timeout: float | None = None, **kwargs):
    """A docker SDK client for DOCKER_HOST (or the default socket); EngineUnavailableError if there is none."""
    import docker
    from docker.errors import DockerException

    if timeout:
        kwargs["timeout"] = timeout
    try:
        return docker.from_env(**kwargs)
    except DockerException as exc:
        raise _unreachable(exc) from None


def _unreachable(exc: Exception) -> EngineUnavailableError:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return EngineUnavailableError(
        f"Docker engine not reachable at {host} ({_short_reason(str(exc))})", hint=_hint_for(str(exc))
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
    from docker.errors import DockerException

    client = _client(timeout)
    try:
        info = client.version()
    except DockerException as exc:
        raise _unreachable(exc) from None
    finally:
        client.close()
    return EngineInfo(
        version=str(info.get("Version", "?")),
        api_version=str(info.get("ApiVersion", "?")),
        os=str(info.get("Os", "?")),
        arch=str(info.get("Arch", "?")),
    )


# What a stage may read but never write: Git runs hooks and config from .git on the host,
# DVC and opsctl read the pipeline and its locks. A writable copy would let a stage plant
# code that the host runs later (a post-commit hook, core.fsmonitor) or rewrite the pipeline.
READ_ONLY_PATHS = (".git", ".dvc", "dvc.yaml", "dvc.lock", "opsctl.yaml", "opsctl.lock")
HIDDEN_PATHS = (".opsctl",)  # opsctl's own state: the run store, logs
# Of those, what opsctl never writes during a run: one that a stage creates is removed afterwards.
_NEVER_CREATED_BY_A_RUN = (".git", ".dvc", "dvc.yaml", "opsctl.yaml")


@dataclass(frozen=True)
class ContainerSpec:
    """One stage container: what runs, where the workspace is, and its limits."""

    image: str
    command: str
    workspace: str  # host path bind-mounted at /workspace
    user: str  # "uid:gid"
    env: dict
    network: str
    labels: dict
    cpus: float | None = None
    memory: str | None = None
    gpus: int | str | None = None
    working_dir: str = "/workspace"
    pids: int | None = None  # at most this many processes at once


def run_container(spec: ContainerSpec, on_line, network_ready=None, on_started=None) -> int:
    """Run ``spec`` to completion, streaming its output lines to ``on_line``; return its exit code.

    The container is always removed afterwards — on success, failure or Ctrl-C
    (KeyboardInterrupt stops and removes it, then propagates). Defaults are the
    safe ones: no capabilities, ``no-new-privileges``, never privileged, never
    the Docker socket. Low-level API calls: the high-level ``containers.create``
    inspects each container once more, which parallel stages pay for.

    ``network_ready``: for ``spec.network`` ``container:<id>`` of a sandbox still
    starting, called between create and start; it waits and says whether the
    sandbox runs — if not, the container is made again with network ``none``.
    ``on_started``: called once the container has started.
    """
    from docker.errors import DockerException, ImageNotFound, NotFound
    from docker.types import DeviceRequest

    api = _stage_client().api
    limits: dict[str, Any] = {}
    if spec.cpus:
        limits["nano_cpus"] = int(spec.cpus * 1e9)
    if spec.memory:
        limits["mem_limit"] = spec.memory
    if spec.gpus:
        count = -1 if spec.gpus == "all" else int(spec.gpus)
        limits["device_requests"] = [DeviceRequest(count=count, capabilities=[["gpu"]])]
    if spec.pids:
        limits["pids_limit"] = spec.pids
    binds, absent = _workspace_binds(spec.workspace)
    limits["tmpfs"] = {f"/workspace/{path}": "ro,nosuid,nodev,noexec,size=4k" for path in HIDDEN_PATHS}

    def create(network: str) -> str:
        try:
            host_config = api.create_host_config(
                binds=binds,
                network_mode=network,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                privileged=False,
                **limits,
            )
            return api.create_container(
                image=spec.image,
                # The stage's command line through the image's shell, whatever its ENTRYPOINT.
                entrypoint=["/bin/sh", "-c"],
                command=[spec.command],
                working_dir=spec.working_dir,
                user=spec.user,
                environment={"HOME": "/tmp", **spec.env},
                labels=spec.labels,
                host_config=host_config,
                detach=True,
            )["Id"]
        except ImageNotFound:
            raise EngineUnavailableError(
                f"image {spec.image} is not available locally (opsctl never pulls implicitly)",
                hint="build it with `opsctl build`, or `docker pull`/`docker load` it yourself",
            ) from None
        except DockerException as exc:
            raise EngineUnavailableError(
                f"cannot create a container from {spec.image}: {_short_reason(str(exc))}"
            ) from None

    container_id = create(spec.network)
    if network_ready is not None and not network_ready():
        _remove_quietly(api, container_id)
        container_id = create("none")
    try:
        start_container(lambda: api.start(container_id))
        if on_started is not None:
            on_started()
        pending = b""
        for chunk in api.logs(container_id, stream=True, follow=True, stdout=True, stderr=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace"))
        if pending:
            on_line(pending.decode("utf-8", "replace"))
        try:
            exit_code = int(api.wait(container_id).get("StatusCode", 1))
        except NotFound:  # removed under us: the run was cancelled
            exit_code = 137
    finally:
        _remove_quietly(api, container_id)
        planted = _remove_planted(spec.workspace, absent)
    if planted:
        left = [p for p in planted if os.path.lexists(os.path.join(spec.workspace, p))]
        on_line(
            f"opsctl: the stage created {', '.join(planted)}, which stages may not write; "
            + (f"could not remove {', '.join(left)}: delete it before using Git here" if left else "removed it")
        )
        return exit_code or 1
    return exit_code


_START_TRIES = 5


def start_container(start) -> None:
    """``start()`` (the engine's container start), tried again when it fails only because a
    read-only bind's source was replaced as it was mounted. opsctl replaces dvc.lock and
    opsctl.lock by rename after each stage; a parallel stage's container starting at that
    moment has the engine open the old file and mount it once it is gone ("error mounting
    .../dvc.lock ... no such file or directory"). The file is there; a new try mounts it."""
    import time

    from docker.errors import APIError

    for attempt in range(1, _START_TRIES + 1):
        try:
            start()
            return
        except APIError as exc:
            if attempt == _START_TRIES or not _replaced_as_mounted(str(exc)):
                raise
            time.sleep(0.02 * attempt)


def _replaced_as_mounted(message: str) -> bool:
    return (
        "error mounting" in message
        and "no such file or directory" in message
        and any(f"/workspace/{path}" in message for path in READ_ONLY_PATHS)
    )


def _workspace_binds(workspace: str) -> tuple[dict, list[str]]:
    """The workspace read-write at /workspace, with :data:`READ_ONLY_PATHS` read-only on top
    (the engine mounts by destination depth); also which of those to watch because they are absent.

    Only what exists is mounted: a missing bind source is an error, and a mountpoint made for
    it inside the workspace would be a new file on the host. ``.git`` is mounted whatever it
    is (a worktree's or submodule's ``.git`` is a file pointing outside the workspace, which the
    container cannot see). What this leaves open:
    - dvc.lock and opsctl.lock absent at a project's first run can be created by a stage (opsctl
      itself creates them between stages, so they cannot be watched); they hold hashes, not code.
    - opsctl replaces dvc.lock and opsctl.lock by rename after each stage; the kernel then detaches
      the read-only mount in containers of stages still running in parallel, which can write the
      new file. Again data, not code; the next stage's container gets the mount again.
    - a stage that creates one of :data:`_NEVER_CREATED_BY_A_RUN` (e.g. ``.git`` where the
      repository lives above the project) gets it removed when the container ends, and fails.
    - a protected path that is a symlink: its target is mounted read-only, but the link itself
      lives in the writable workspace and a stage can replace it.
    """
    binds = {workspace: {"bind": "/workspace", "mode": "rw"}}
    absent = []
    for path in READ_ONLY_PATHS:
        source = os.path.join(workspace, path)
        if os.path.lexists(source):
            binds[source] = {"bind": f"/workspace/{path}", "mode": "ro"}
        elif path in _NEVER_CREATED_BY_A_RUN:
            absent.append(path)
    for path in HIDDEN_PATHS:  # the tmpfs needs its mountpoint; .opsctl is opsctl's own directory
        os.makedirs(os.path.join(workspace, path), exist_ok=True)
    return binds, absent


def _remove_planted(workspace: str, absent: list[str]) -> list[str]:
    """Remove what a stage created among the protected paths that were ``absent``; which."""
    import shutil

    planted = []
    for path in absent:
        target = os.path.join(workspace, path)
        if not os.path.lexists(target):
            continue
        planted.append(path)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            try:
                os.unlink(target)
            except OSError:
                pass
    return planted


_stage_client_instance = None
_stage_client_lock = threading.Lock()


def _stage_client():
    """One client shared by the stage threads of a run (and the image checks before them): a
    client per call would ask the engine for its API version each time, and parallel stages
    would each open a pool."""
    global _stage_client_instance
    with _stage_client_lock:
        if _stage_client_instance is None:
            _stage_client_instance = _client(max_pool_size=64)
        return _stage_client_instance


def _remove_quietly(api, container_id: str) -> None:
    """Stop and remove, even while a second Ctrl-C arrives: no orphan containers."""
    import signal
    import threading

    from docker.errors import DockerException

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        api.remove_container(container_id, force=True)
    except DockerException:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def network_exists(name: str) -> bool:
    """Whether the engine has a network called exactly ``name``."""
    from docker.errors import DockerException

    client = _client()
    try:
        # The engine's name filter matches substrings: compare the names themselves.
        return any(n.get("Name") == name for n in client.api.networks(names=[name]))
    except DockerException as exc:
        raise EngineUnavailableError(f"Docker engine error: {_short_reason(str(exc))}", hint=START_HINT) from None
    finally:
        client.close()


def remove_containers(label: str, value: str) -> int:
    """Force-remove every container carrying ``label=value`` (a running one is killed, not
    stopped: nothing waits for a stage to end); how many. Listed with one engine call, so
    a container that goes meanwhile (its stage thread removed it) is no error."""
    api = _stage_client().api
    removed = 0
    for container in api.containers(all=True, filters={"label": f"{label}={value}"}):
        removed += _force_remove(api, container["Id"])
    return removed


def _force_remove(api, container_id: str) -> bool:
    """Remove a container, running or not; False when it was gone already. When another
    process is removing it at that moment (a parallel run reaping the same orphan), wait
    until it is gone: after this call the container is never still listed."""
    from docker.errors import APIError, NotFound

    try:
        api.remove_container(container_id, force=True)
        return True
    except NotFound:
        return False
    except APIError as exc:
        if exc.status_code != 409:  # 409: "removal already in progress"
            return False
    try:
        api.wait(container_id, timeout=10, condition="removed")
    except Exception:  # noqa: BLE001 — gone before the wait (404), or a wait that timed out: nothing more to do
        pass
    return False


def create_network_sandbox(image: str, labels: dict) -> str | None:
    """A container that will hold one empty network namespace (loopback only) for other
    containers to join with ``network_mode=container:<id>`` — as a Kubernetes pod's
    pause container does. Creating a namespace per container costs the engine ~0.2 s
    of CPU each; parallel stages pay it once this way. It runs ``sleep`` from
    ``image`` as nobody, with nothing else. Created, not started (see
    :func:`start_network_sandbox`): stage containers can be created meanwhile."""
    from docker.errors import DockerException

    api = _stage_client().api
    try:
        return api.create_container(
            image,
            command=["exec sleep 2147483647"],
            entrypoint=["/bin/sh", "-c"],
            user="65534:65534",
            labels=labels,
            detach=True,
            host_config=api.create_host_config(
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                privileged=False,
                mem_limit="16m",
                auto_remove=True,  # ending it is then one quick kill; the engine removes it
            ),
        )["Id"]
    except DockerException:
        return None


def start_network_sandbox(container_id: str) -> bool:
    """Start a created sandbox; False (and it is removed) when it does not keep running."""
    from docker.errors import DockerException

    api = _stage_client().api
    try:
        api.start(container_id)
        if api.inspect_container(container_id)["State"]["Running"]:
            return True
    except DockerException:
        pass
    _remove_quietly(api, container_id)
    return False


def stop_network_sandbox(container_id: str) -> None:
    """Kill the sandbox and wait until the engine has removed it (auto-remove); a no-op
    when it is already gone."""
    from docker.errors import DockerException

    api = _stage_client().api
    try:
        api.kill(container_id)
        # Gone before we return: nothing of the run outlives opsctl.
        api.wait(container_id, timeout=10, condition="removed")
    except DockerException:
        pass
    except Exception:  # noqa: BLE001 — a wait that timed out (requests' ReadTimeout): force it
        _remove_quietly(api, container_id)


def remove_orphans(owner_label: str, alive) -> int:
    """Remove containers labelled ``owner_label=<host>:<pid>`` for this host whose process
    ``alive(pid)`` says is gone (an opsctl killed with SIGKILL whose reaper died too, a
    reboot); how many."""
    import socket

    api = _stage_client().api
    removed = 0
    host = socket.gethostname()
    for container in api.containers(all=True, filters={"label": owner_label}):
        owner_host, _, pid = (container.get("Labels") or {}).get(owner_label, "").rpartition(":")
        if owner_host == host and pid.isdigit() and not alive(int(pid)):
            removed += _force_remove(api, container["Id"])
    return removed


def containers_labelled(label: str, value: str) -> list[str]:
    """Ids of containers (running or not) carrying ``label=value``."""
    client = _client()
    try:
        return [c["Id"] for c in client.api.containers(all=True, filters={"label": f"{label}={value}"})]
    finally:
        client.close()


# -- images ---------------------------------------------------------------------------


def context_files(context: str, dockerfile: str) -> list[str]:
    """The files of a build context that ``.dockerignore`` lets through (Docker's own rules), sorted."""
    from pathlib import Path

    from docker.utils.build import exclude_paths

    root = Path(context)
    patterns = []
    ignore = root / ".dockerignore"
    if ignore.is_file():
        patterns = [
            ln.strip()
            for ln in ignore.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.strip().startswith("#")
        ]
    return sorted(
        p
        for p in exclude_paths(str(root), patterns, dockerfile=dockerfile)
        if (root / p).is_file() or (root / p).is_symlink()
    )


def image_id(ref: str) -> str | None:
    """The local image id (``sha256:...``) of ``ref``, or None when it is not here. Never pulls."""
    from docker.errors import DockerException, ImageNotFound

    # The shared client: a run asks this while planning and again before its stages start;
    # a client of its own would ask the engine for its API version each time.
    api = _stage_client().api
    try:
        return str(api.inspect_image(ref)["Id"])
    except ImageNotFound:
        return None
    except DockerException as exc:
        raise EngineUnavailableError(f"Docker engine error: {_short_reason(str(exc))}", hint=START_HINT) from None


def build_image(
    *,
    context: str,
    dockerfile: str,
    tags: list[str],
    build_args: dict,
    target: str | None,
    no_cache: bool,
    on_line,
    labels: dict | None = None,
) -> str:
    """Build through the engine's API, streaming the log to ``on_line``; returns the image id."""
    from docker.errors import APIError

    client = _client()
    tail: list[str] = []

    def log(line: str) -> None:
        tail.append(line)
        del tail[:-40]
        on_line(line)

    try:
        built_id = None
        stream = client.api.build(
            path=context,
            dockerfile=dockerfile,
            tag=tags[0],
            buildargs=build_args or None,
            target=target,
            nocache=no_cache,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels=labels or None,
        )
        for event in stream:
            if "stream" in event:
                for line in event["stream"].splitlines():
                    if line.strip():
                        log(line.rstrip())
            if "aux" in event and isinstance(event["aux"], dict) and "ID" in event["aux"]:
                built_id = event["aux"]["ID"]
            if "error" in event:
                log(event["error"].strip())
                raise BuildFailedError(event["error"].strip().splitlines()[-1], list(tail))
        if built_id is None:
            built_id = client.images.get(tags[0]).id
        image = client.images.get(built_id)
        for tag in tags[1:]:
            repository, _, version = tag.rpartition(":")
            image.tag(repository, version)
        return built_id
    except APIError as exc:
        raise BuildFailedError(_short_reason(str(exc.explanation or exc)), list(tail)) from None
    finally:
        client.close()


def engine_id(timeout: float = 5.0) -> str:
    """What tells engines apart: two processes talking to the same engine see the same id,
    whatever socket path or DOCKER_HOST each uses. ``docker info``'s ID alone is not enough:
    engines of one machine can share it (it comes from /etc/docker/key.json), so its host
    name and data root go with it."""
    from docker.errors import DockerException

    client = _client(timeout)
    try:
        info = client.info()
        return "|".join(str(info.get(key) or "") for key in ("ID", "Name", "DockerRootDir"))
    except DockerException as exc:
        raise _unreachable(exc) from None
    finally:
        client.close()


def push_image(image: str, repository: str, tag: str) -> str:
    """Tag the local ``image`` as ``repository:tag``, push it, and return the pushed image by
    digest (``repository@sha256:...``): what a remote engine pulls, so every worker runs the
    very bytes the coordinator built whatever the tag later points at."""
    import json

    from docker.errors import APIError, DockerException

    client = _client()
    try:
        client.images.get(image).tag(repository, tag)
        digest = None
        for line in client.api.push(repository, tag=tag, stream=True, decode=True):
            if isinstance(line, dict):
                if line.get("error"):
                    raise EngineUnavailableError(
                        f"could not push {repository}:{tag}: {_short_reason(str(line['error']))}",
                        hint="is the registry running, and reachable from this machine? (`registry:` in opsctl.yaml)",
                    )
                aux = line.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        if digest is None:  # an engine that does not report it: the registry's digest after the push
            data = client.api.inspect_image(f"{repository}:{tag}")
            digests = [d for d in data.get("RepoDigests", []) if d.startswith(repository + "@")]
            if not digests:
                raise EngineUnavailableError(f"pushed {repository}:{tag} but the engine reports no digest for it")
            return digests[0]
        return f"{repository}@{digest}"
    except APIError as exc:
        detail = exc.explanation or exc
        try:
            detail = json.loads(str(detail)).get("message", detail)
        except ValueError:
            pass
        raise EngineUnavailableError(f"could not push {repository}:{tag}: {_short_reason(str(detail))}") from None
    except DockerException as exc:
        raise _unreachable(exc) from None
    finally:
        client.close()


def ensure_image(ref: str) -> str:
    """The local id of ``ref`` (an id, a tag, or ``repo@sha256:...``), pulled first when this
    engine does not have it. A pull failure names the reference and the engine's reason."""
    from docker.errors import APIError, DockerException, ImageNotFound

    client = _client()
    try:
        try:
            return str(client.images.get(ref).id)
        except ImageNotFound:
            pass
        if ref.startswith("sha256:"):
            raise EngineUnavailableError(
                f"image {ref[:19]} is not on this node's Docker engine",
                hint="set `registry:` in opsctl.yaml so the images travel to the workers through it",
            )
        client.api.pull(ref)  # "repo@sha256:..." pulls by digest; "repo:tag" by tag
        return str(client.images.get(ref).id)
    except APIError as exc:
        raise EngineUnavailableError(f"could not pull {ref}: {_short_reason(str(exc.explanation or exc))}") from None
    except DockerException as exc:
        raise _unreachable(exc) from None
    finally:
        client.close()


def preload() -> None:
    """Import Docker's SDK (for a process that forks runs: core/experiments.py); no client is
    made, so no connection is shared with the forks."""
    import docker
    import docker.utils.build  # noqa: F401
