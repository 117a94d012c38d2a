"""What a run did, stage by stage (:class:`RunReport`): apart from core/run.py so that the
answer of an up-to-date pipeline (the no-op fast path, cli/run_view.py) is given without
importing the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsctl.core.pipeline import Plan

LOG_TAIL = 20
# How a stage of a run ended (core/scheduler.py).
RAN, CACHED, FAILED, SKIPPED, INTERRUPTED = "ran", "cached", "failed", "skipped", "interrupted"


@dataclass
class StageRun:
    """How one stage of a run went."""

    name: str
    status: str  # ran | cached | failed | skipped | interrupted
    detail: str
    cmd: str
    duration: float | None = None
    exit_code: int | None = None
    log_path: Path | None = None
    image: str | None = None  # name in opsctl.yaml
    image_ref: str | None = None
    image_id: str | None = None
    started: float | None = None  # unix time
    hashes: tuple = ()  # PathHash of every dep, param and out, as dvc.lock records them
    worker: str | None = None  # a remote executor's worker it ran on (the address Dask names)
    attempts: int = 1  # more when a remote executor ran it again (its worker died mid-stage)

    def log_tail(self, lines: int = LOG_TAIL) -> list[str]:
        if self.log_path is None or not self.log_path.is_file():
            return []
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()[-lines:]


@dataclass
class RunReport:
    run_id: str
    plan: Plan
    executor: str
    jobs: int
    started: float
    finished: float | None = None
    stages: list[StageRun] = field(default_factory=list)
    interrupted: bool = False
    committed_data: list[str] = field(default_factory=list)  # .dvc files committed first, as dvc repro does
    params_changed: list[str] = field(default_factory=list)  # files -S wrote to
    logs_dir: Path | None = None
    recorded: bool = False  # in the run store
    record_error: str | None = None  # the store could not be written (the run itself is unaffected)
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    previous_run_id: str | None = None  # the last finished run on the same branch, for metric deltas
    previous_metrics: dict = field(default_factory=dict)
    plots_notes: list[str] = field(default_factory=list)  # plot data the run could not keep, one line each

    @property
    def failed(self) -> list[StageRun]:
        return [s for s in self.stages if s.status == FAILED]

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.stages)
