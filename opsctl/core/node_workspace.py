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

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.errors import UsageError
from opsctl.executors.base import ContainerSettings, LogSink, StageInvocation, StageOutcome

REMOTE = "origin"  # the remote's name inside a node workspace


@dataclass(frozen=True)
class Input:
    """One thing a stage reads: a DVC-tracked file or directory by hash, or a small file by
    its bytes (Git-tracked code, params files, an uncommitted edit)."""

    path: str  # relative to the project root, POSIX
    md5: str | None = None  # DVC's hash (a directory's ends in ".dir")
    content: bytes | None = None


@dataclass(frozen=True)
class Output:
    path: str
    md5: str
    size: int | None
    nfiles: int | None
    isdir: bool


@dataclass(frozen=True)
class NodeStage:
    stage: str
    inputs: tuple[Input, ...]
    outs: tuple[str, ...]
    remote_url: str
    remote_options: Mapping[str, str] = field(default_factory=dict)  # e.g. endpointurl (never secrets)
    cmd: str = ""
    wdir: str = "."  # the stage's working directory, relative to the project root
    container: ContainerSettings | None = None  # how its container is shaped (image by digest)


@dataclass(frozen=True)
class NodeResult:
    outcome: StageOutcome
    outputs: list[Output]  # empty when the stage failed
    workspace: Path


def run_stage(node_dir: Path, name: str, task: NodeStage, on_line: LogSink | None = None) -> NodeResult:
    """Prepare the workspace, run the stage's command in its container on this node's Docker
    engine (the same container rules as the docker executor: read-only ``.git`` and pipeline
    files, the invoking uid, no capabilities, no network unless the stage asks), and publish
    its outputs when it succeeds."""
    from opsctl.executors.docker import DockerExecutor

    if task.container is None:
        raise UsageError(f"stage {task.stage} has no container settings (an image) to run on a node")
    workspace = prepare(node_dir, name, task)
    invocation = StageInvocation(
        stage=task.stage,
        cmd=task.cmd,
        workdir=_inside(workspace, task.wdir) if task.wdir not in ("", ".") else workspace,
        log_path=node_dir / "logs" / f"{name}.log",
        container=task.container,
        root=workspace,
    )
    outcome = DockerExecutor().run(invocation, on_line)
    outputs = publish(workspace, task) if outcome.succeeded else []
    return NodeResult(outcome, outputs, workspace)


def prepare(node_dir: Path, name: str, task: NodeStage) -> Path:
    """Make the workspace ``node_dir/workspaces/NAME`` for ``task`` (replacing an earlier one of
    that name) with every input in place; the node's DVC cache is ``node_dir/cache``."""
    import shutil

    from opsctl.adapters import dvc
    from opsctl.adapters.git import GitRepo

    workspace = node_dir / "workspaces" / name
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    GitRepo.init(workspace)
    dvc.init_repo(workspace)
    dvc.configure_remote(
        workspace, REMOTE, url=task.remote_url, options=dict(task.remote_options), default=True, create=True
    )
    dvc.set_cache_dir(workspace, node_dir / "cache")
    targets = []
    for item in task.inputs:
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
        dvc.pull(workspace, targets, remote=REMOTE, jobs=None)
    return workspace


def publish(workspace: Path, task: NodeStage) -> list[Output]:
    """Hash the stage's outputs as DVC does and push them to the remote."""
    from opsctl.adapters import dvc

    for out in task.outs:
        if not _inside(workspace, out).exists():
            raise UsageError(f"stage {task.stage} did not write its output {out}")
    tracked, _staged = dvc.add_paths(workspace, list(task.outs))
    dvc.push(workspace, [t.dvcfile for t in tracked], remote=REMOTE, jobs=None)
    return [Output(t.path, t.hash or "", t.size, t.nfiles, t.isdir) for t in tracked]


def _inside(workspace: Path, rel: str) -> Path:
    normal = posixpath.normpath(rel)
    if normal.startswith(("../", "/")) or normal in ("..", ".") or normal.split("/")[0] in (".git", ".dvc"):
        raise UsageError(f"{rel}: not a path inside the workspace")
    return workspace / normal
