"""The executor interface: given one stage invocation, run it and report how it went."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opsctl.secrets import masker as masker  # re-exported to the executors: the one rule, in opsctl/secrets.py

_MEMORY_RE = re.compile(r"(\d+(?:\.\d+)?)([bkmg]?)b?", re.IGNORECASE)  # Docker's units (docker-py parse_bytes)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

DEFAULT_PIDS = 4096  # processes (and threads) a stage container may have at once: a fork bomb stops there


def memory_bytes(text: str) -> float | None:
    """A memory size in Docker's notation ("512m", "2g", "1024", "4gb") as bytes; None when it
    is not one."""
    match = _MEMORY_RE.fullmatch(text.strip())
    return None if match is None else float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class ContainerSettings:
    """How a stage's container is shaped (from ``opsctl.yaml``'s per-stage settings)."""

    image: str
    cpus: float | None = None
    memory: str | None = None
    gpus: int | str | None = None
    network: str = "none"
    user: str | None = None  # "uid:gid"; default: the invoking user's, so outputs are never root-owned
    pids: int = DEFAULT_PIDS


@dataclass(frozen=True)
class Input:
    """One thing a stage away from the project reads: a DVC-tracked file or directory by hash
    (fetched from the DVC remote), or a small file by its bytes (Git-tracked code, a params
    file, an uncommitted edit)."""

    path: str  # relative to the project root, POSIX
    md5: str | None = None  # DVC's hash (a directory's ends in ".dir")
    content: bytes | None = None


@dataclass(frozen=True)
class Output:
    """A stage output as the node hashed and pushed it (DVC's md5, as ``dvc.lock`` records it)."""

    path: str
    md5: str
    size: int | None = None
    nfiles: int | None = None
    isdir: bool = False


@dataclass(frozen=True)
class RemoteWork:
    """What a remote executor needs beyond the command (docs/architecture.md, *Pipeline
    execution*): the stage's inputs, the outputs to hash and push, and the DVC remote both
    sides reach (its URL and options without credentials: those come from the worker's
    own environment)."""

    inputs: tuple[Input, ...]
    outs: tuple[str, ...]
    remote_url: str
    remote_options: dict[str, str] = field(default_factory=dict)
    wdir: str = "."  # the stage's working directory, relative to the project root
    remote_name: str = "origin"  # as the project names it, so the node's errors name it the same way
    # The remote is the project's own DVC cache (a cluster on the project's machine, no remote
    # set): a node there uses it as its cache too, so nothing is copied from one cache to another.
    remote_is_cache: bool = False


@dataclass(frozen=True)
class StageInvocation:
    """Everything an executor needs to run one stage; nothing about DVC."""

    stage: str
    cmd: str
    workdir: Path  # where the command runs (the stage's wdir)
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # passed through by name from the caller's environment
    run_id: str | None = None
    container: ContainerSettings | None = None  # required by the docker executor
    root: Path | None = None  # the project root (mounted at /workspace by the docker executor); default: workdir
    remote: RemoteWork | None = None  # for an executor whose stages run away from the project
    # Called once the stage's container has started (the docker executor; others never call it).
    on_started: Callable[[], None] | None = None

    @property
    def project_root(self) -> Path:
        return self.root or self.workdir


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    exit_code: int
    duration: float
    log_path: Path
    outputs: tuple[Output, ...] = ()  # a remote executor's: what the node pushed to the DVC remote
    worker: str | None = None  # where it ran, when that is not this machine (e.g. a Dask worker's address)
    attempts: int = 1  # more when a remote executor ran it again (a worker died mid-stage)

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


LogSink = Callable[[str, str], None]  # (stage, line) -> None


class Executor(Protocol):
    name: str

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome: ...

    def open(self, run_id: str, image: str) -> None:
        """A run with stages in ``image`` is about to start: get ready (optional)."""
        ...

    def cancel(self, run_id: str) -> None:
        """Stop every stage of ``run_id`` still running (called from another thread on Ctrl-C)."""
        ...

    def close(self, run_id: str) -> None:
        """The run is over: release what the executor holds for it."""
        ...


class RemoteExecutor(Executor, Protocol):
    """An executor whose stages run away from the project (``remote=True`` in the registry).
    Before any stage the run asks it for these; each stage's ``StageInvocation.remote`` then
    says what travels, and the ``StageOutcome`` says which outputs came back (core/run.py)."""

    @property
    def local(self) -> bool:
        """Whether its workers share this machine's files (then the project's cache may serve as the remote)."""
        ...

    def connect(self) -> None:
        """Reach the cluster (an error with exit 4 when it does not answer)."""
        ...

    def capacity(self) -> int:
        """How many stages it runs at once (``-j``'s default)."""
        ...

    def place_images(self, refs: list[str], registry: str | None, project: str) -> dict[str, str]:
        """Local image ref -> what the workers run (pushed to ``registry`` and named by digest, or
        the same ref when they share this engine); a UsageError when neither works."""
        ...
