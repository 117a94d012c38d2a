"""The coordinator's side of a stage that runs away from the project (a remote executor).

Before the command: which of the stage's inputs travel by hash through the DVC remote (data
in the local cache: pushed first, only what the remote lacks) and which by their bytes (code,
params files, uncommitted edits: small files the cache does not hold). After it: the outputs
the node pushed are fetched by hash into the local cache and checked out, so the stage is
recorded — hashed, committed, written to ``dvc.lock`` — by the same code as a local run
(docs/architecture.md, *Pipeline execution*).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from opsctl.core.project import Project
from opsctl.errors import UsageError
from opsctl.executors.base import Input, RemoteWork, StageOutcome

# Inputs sent as bytes are meant to be code and params: past this a dep must be DVC-tracked.
MAX_INLINE_BYTES = 64 << 20


@dataclass(frozen=True)
class RunRemote:
    """The DVC remote of a remote run, as the project names it and as workers reach it."""

    name: str | None  # the project's remote; None: the project's own cache serves as the remote
    url: str
    options: dict[str, str] = field(default_factory=dict)


def run_remote(project: Project, *, shared_filesystem: bool) -> RunRemote:
    """The project's default DVC remote; on a cluster that shares this machine's files (a local
    one) and with no remote set, the project's cache. UsageError when there is neither."""
    from opsctl.adapters.dvc import cache_dir, remote_for_workers

    info = remote_for_workers(project.root)
    if info is not None:
        return RunRemote(info.name, info.url, info.options)
    if shared_filesystem:
        return RunRemote(None, str(cache_dir(project.root).resolve()))
    raise UsageError(
        "a run on a cluster needs a DVC remote the workers can reach: there is none",
        hint="add one as the default: `opsctl data remote add NAME URL --default` (S3, GCS, Azure, SSH, "
        "or a path every machine mounts); the workers bring their own credentials",
    )


def stage_work(session, project: Project, name: str, wdir: str, remote: RunRemote) -> RemoteWork:
    """What a node needs to run stage ``name`` (prepared to EXECUTE): its inputs, with every
    DVC-tracked one pushed to ``remote`` first, and the outputs to send back."""
    inputs: list[Input] = []
    by_hash: list[str] = []
    inline = 0
    for dep in session.stage_deps(name):
        if dep.cached and dep.md5:
            inputs.append(Input(dep.path, md5=dep.md5))
            by_hash.append(dep.md5)
            continue
        for path, size in _files(project.root, dep.path):
            inline += size  # counted from the file's size before it is read: a huge file is never loaded
            if inline > MAX_INLINE_BYTES:
                raise UsageError(
                    f"stage {name}: its inputs that DVC does not track pass {MAX_INLINE_BYTES >> 20} MiB "
                    f"(at {path}); only code and params travel as files",
                    hint=f"track the data with DVC (`opsctl data add {dep.path}`) so it goes through the remote",
                )
            inputs.append(Input(path, content=(project.root / path).resolve().read_bytes()))
    if by_hash and remote.name is not None:
        session.push_objects(sorted(set(by_hash)), remote.name)
    return RemoteWork(
        tuple(inputs),
        tuple(session.stage_outs(name)),
        remote.url,
        dict(remote.options),
        wdir,
        remote_name=remote.name or "origin",
        remote_is_cache=remote.name is None,
    )


def take_outputs(session, name: str, outcome: StageOutcome, remote: RunRemote) -> None:
    """Fetch and check out the outputs the node pushed, ready for ``session.record``."""
    session.place_outputs(name, {o.path: o.md5 for o in outcome.outputs}, remote.name)


def needed_here(plan) -> set[str]:
    """The stages of ``plan`` whose outputs this machine needs even with ``--no-download``:
    those a later stage reads (DVC hashes a stage's deps in the workspace) or a data check or
    drift gate reads."""
    from opsctl.core.gates import overlap

    read = [dep for step in plan.to_run for dep in step.deps] + [gate.dataset for gate in plan.gates]
    return {step.name for step in plan.to_run if any(overlap(out, path) for out in step.outs for path in read)}


def leave_outputs(session, name: str, outcome: StageOutcome, remote: RunRemote):
    """``--no-download``: write the stage's ``dvc.lock`` entry from the hashes the node pushed,
    leaving its data on the remote; only its metrics, plots and uncached outputs (small, and
    read by the run record or kept by Git) are fetched."""
    small = set(session.small_outs(name))
    session.place_outputs(name, {o.path: o.md5 for o in outcome.outputs if o.path in small}, remote.name)
    return session.record_remote(name, {o.path: (o.md5, o.size, o.nfiles) for o in outcome.outputs})


def _files(root: Path, rel: str) -> list[tuple[str, int]]:
    """A dep the cache does not hold, as (path, size) per file: a file, or a directory's
    files. Nothing outside the project is read (a symlink out of it is refused)."""
    base = root / rel
    real_root = root.resolve()
    if not base.exists():
        raise UsageError(f"dependency {rel} is missing")
    paths = [base] if not base.is_dir() else sorted(p for p in base.rglob("*") if not p.is_dir())
    files = []
    for path in paths:
        resolved = path.resolve()
        if not resolved.is_relative_to(real_root):
            raise UsageError(f"{path.relative_to(root).as_posix()} points outside the project; it can't be shipped")
        files.append((path.relative_to(root).as_posix(), resolved.stat().st_size))
    return files
