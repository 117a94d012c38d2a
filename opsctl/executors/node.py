"""A stage's workspace on a machine that shares nothing with the project but its DVC remote.

The worker side of a remote executor (issue 14's Dask executor runs it in a task): from what
the coordinating ``opsctl run`` knows about one stage — its Git-tracked inputs as bytes, its
DVC-tracked inputs as hashes, the remote — make a node-local workspace in which the stage can
run as it would in the project, then hash its outputs and push them to the remote, so the
coordinator can write ``dvc.lock`` and fetch them (docs/architecture.md, *Pipeline execution*).

- The workspace is a Git + DVC repository of its own, so the container rules that protect
  ``.git`` and DVC's files apply there as in a project.
- DVC-tracked inputs are checked out from the remote by hash through a ``.dvc`` file each (a
  directory's ``.dir`` hash fetches its whole tree), into a node-local DVC cache kept between
  tasks: an input already fetched for an earlier stage is not downloaded again.
- Outputs are added to DVC (the same md5s ``dvc repro`` records) and pushed.
"""

from __future__ import annotations

import os
import posixpath
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.errors import UsageError
from opsctl.executors.base import ContainerSettings, LogSink, Output, RemoteWork, StageInvocation, StageOutcome

if TYPE_CHECKING:
    from opsctl.executors.docker import DockerExecutor


@dataclass(frozen=True)
class NodeStage:
    """One stage as a node gets it: the command, its data (inputs, outputs, the remote) and
    how its container is shaped (the image by digest, or by id on a shared engine)."""

    stage: str
    work: RemoteWork
    cmd: str = ""
    container: ContainerSettings | None = None
    run_id: str | None = None  # labels its containers, so a Ctrl-C on the coordinator finds them
    # The stage's pass-through variables, by name: their values come from the node's own
    # environment, as credentials do, so no secret travels through the cluster.
    env_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeResult:
    outcome: StageOutcome
    outputs: list[Output]  # empty when the stage failed


def run_stage(node_dir: Path, name: str, task: NodeStage, on_line: LogSink | None = None) -> NodeResult:
    """Prepare the workspace, run the stage's command in its container on this node's Docker
    engine (the same container rules as the docker executor: read-only ``.git`` and pipeline
    files, the invoking uid, no capabilities, no network unless the stage asks; pulled by
    digest first when the engine does not have the image), and publish its outputs when it
    succeeds. The workspace is removed afterwards: the outputs are on the remote, and the
    inputs stay in the node's cache for the next task."""
    import shutil

    from opsctl.adapters.docker import ensure_image

    if task.container is None:
        raise UsageError(f"stage {task.stage} has no container settings (an image) to run on a node")
    ensure_image(task.container.image)
    workspace = prepare(node_dir, name, task)
    try:
        invocation = StageInvocation(
            stage=task.stage,
            cmd=task.cmd,
            workdir=_inside(workspace, task.work.wdir) if task.work.wdir not in ("", ".") else workspace,
            log_path=node_dir / "logs" / f"{name}.log",
            container=task.container,
            root=workspace,
            run_id=node_run_id(task.run_id) if task.run_id else None,
            env={k: os.environ[k] for k in task.env_names if k in os.environ},
        )
        outcome = node_executor().run(invocation, on_line)
        outputs = publish(workspace, task) if outcome.succeeded else []
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return NodeResult(outcome, outputs)


_executor_lock = threading.Lock()
_executor: DockerExecutor | None = None


def node_executor() -> DockerExecutor:
    """This process's docker executor: one per node process, so the containers of one run on
    this node share its reaper (they go when the process dies, e.g. a killed worker) and its
    network sandbox, and :func:`cancel_run` finds them."""
    global _executor
    from opsctl.executors.docker import DockerExecutor

    with _executor_lock:
        if _executor is None:
            _executor = DockerExecutor()
        return _executor


def node_run_id(run_id: str) -> str:
    """The run id this node labels its containers with: the run's, plus this process, so that
    when this node dies its reaper removes its own containers and not those of another worker
    on the same engine."""
    return f"{run_id}.{socket.gethostname()}.{os.getpid()}"


def cancel_run(run_id: str) -> None:
    """Kill and remove every container of ``run_id`` this node started (Ctrl-C on the coordinator)."""
    node_executor().cancel(node_run_id(run_id))


def close_run(run_id: str) -> None:
    """The run is over: remove its network sandbox on this node and let its reaper go."""
    node_executor().close(node_run_id(run_id))


def engine_of_node() -> str:
    """The id of this node's Docker engine ("error: ..." when it has none): the coordinator
    compares it with its own to know whether images need a registry."""
    from opsctl.adapters.docker import engine_id
    from opsctl.errors import OpsctlError

    try:
        return engine_id()
    except OpsctlError as exc:
        return f"error: {exc}"


def prepare(node_dir: Path, name: str, task: NodeStage) -> Path:
    """Make the workspace ``node_dir/workspaces/NAME`` for ``task`` (replacing an earlier one of
    that name) with every input in place; the node's DVC cache is ``node_dir/cache`` (see
    :func:`_skeleton`)."""
    import shutil

    from opsctl.adapters import dvc

    workspace = node_dir / "workspaces" / name
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    # A copy of a skeleton made once per remote and cache: `git init`, `dvc init` and DVC's
    # config edits cost a tenth of a second a stage; a copy of their result, milliseconds.
    shutil.copytree(_skeleton(node_dir, task), workspace, symlinks=True)
    targets = []
    for item in task.work.inputs:
        path = _inside(workspace, item.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if item.content is not None:
            path.write_bytes(item.content)
        elif item.md5:
            dvcfile = path.with_name(path.name + ".dvc")
            # "hash: md5" as DVC 3 writes it: without it DVC reads the entry as DVC 2's md5-dos2unix
            dvcfile.write_text(f"outs:\n- md5: {item.md5}\n  path: {path.name}\n  hash: md5\n")
            targets.append(dvcfile.relative_to(workspace).as_posix())
        else:
            raise UsageError(f"input {item.path} of stage {task.stage} has neither a hash nor content")
    if targets:
        dvc.pull(workspace, targets, remote=task.work.remote_name, jobs=None)
    for out in task.work.outs:
        # In the project an output's directory is usually there already (kept in Git, or made
        # by an earlier run); here it is made, so `cmd > out/x.txt` works as it does at home.
        _inside(workspace, out).parent.mkdir(parents=True, exist_ok=True)
    return workspace


def _skeleton(node_dir: Path, task: NodeStage) -> Path:
    """An empty Git + DVC repository with the task's remote and the node's cache configured,
    made on first use (in a temporary directory, then renamed: tasks in other threads may be
    making the same one)."""
    import hashlib
    import json
    import shutil
    import tempfile

    from opsctl.adapters import dvc
    from opsctl.adapters.git import GitRepo

    work = task.work
    # A remote that is the project's own cache (a cluster on the project's machine) is this
    # node's cache too: nothing is copied from one cache to the other.
    cache = Path(work.remote_url) if work.remote_is_cache else node_dir / "cache"
    key = json.dumps([work.remote_name, work.remote_url, sorted(work.remote_options.items()), str(cache)])
    skeleton = node_dir / "skeletons" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if skeleton.is_dir():
        return skeleton
    skeleton.parent.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(dir=skeleton.parent, prefix=".new-"))
    try:
        GitRepo.init(made)
        dvc.init_repo(made)
        dvc.configure_remote(
            made, work.remote_name, url=work.remote_url, options=dict(work.remote_options), default=True, create=True
        )
        dvc.set_cache_dir(made, cache)
        os.rename(made, skeleton)
    except OSError:
        if not skeleton.is_dir():  # not another task's skeleton in the way: a real failure
            raise
    finally:
        shutil.rmtree(made, ignore_errors=True)
    return skeleton


def publish(workspace: Path, task: NodeStage) -> list[Output]:
    """Hash the stage's outputs as DVC does and push them to the remote."""
    from opsctl.adapters import dvc

    for out in task.work.outs:
        if not _inside(workspace, out).exists():
            raise UsageError(f"stage {task.stage} did not write its output {out}")
    tracked = dvc.add_and_push(workspace, list(task.work.outs), remote=task.work.remote_name)
    return [Output(t.path, t.hash or "", t.size, t.nfiles, t.isdir) for t in tracked]


def _inside(workspace: Path, rel: str) -> Path:
    normal = posixpath.normpath(rel)
    if normal.startswith(("../", "/")) or normal in ("..", ".") or normal.split("/")[0] in (".git", ".dvc"):
        raise UsageError(f"{rel}: not a path inside the workspace")
    return workspace / normal


def node_checks(remote_url: str | None, remote_options: dict[str, str], registry: str | None) -> dict[str, str]:
    """What ``opsctl doctor --executor dask`` asks every worker: its Docker engine, and whether
    the DVC remote and the image registry answer from there. Each value is "ok: ..." or
    "error: ..." (plain strings: they travel back through the cluster)."""
    import urllib.error
    import urllib.request

    from opsctl.adapters import dvc_compat
    from opsctl.adapters.docker import engine_info
    from opsctl.errors import OpsctlError

    found = {}
    try:
        info = engine_info()
        found["engine"] = f"ok: Docker {info.version}"
    except OpsctlError as exc:
        found["engine"] = f"error: {exc}"
    if remote_url:
        try:
            dvc_compat.remote_reachable(remote_url, remote_options)
            found["remote"] = f"ok: {remote_url}"
        except Exception as exc:  # noqa: BLE001 — whatever the storage library raises: reported, not raised
            found["remote"] = f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    if registry:
        try:
            # Docker's registry API answers /v2/ with 200 (open) or 401 (wants a login): both mean it is there.
            with urllib.request.urlopen(f"http://{registry}/v2/", timeout=5):
                found["registry"] = f"ok: {registry}"
        except urllib.error.HTTPError as exc:
            found["registry"] = f"ok: {registry}" if exc.code == 401 else f"error: HTTP {exc.code}"
        except OSError as exc:
            found["registry"] = f"error: {exc}"
    return found
