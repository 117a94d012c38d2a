"""The executor interface: given one stage invocation, run it and report how it went."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class StageInvocation:
    """Everything an executor needs to run one stage; nothing about DVC."""

    stage: str
    cmd: str
    workdir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    exit_code: int
    duration: float
    log_path: Path

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


LogSink = Callable[[str, str], None]  # (stage, line) -> None


class Executor(Protocol):
    name: str

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome: ...
