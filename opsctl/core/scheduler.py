"""Run pipeline stages in dependency order, up to ``jobs`` at once.

Pure scheduling: what "running a stage" means is the caller's ``run_stage``
function (an executor, a run-cache restore, a fake in tests). Rules, from
docs/architecture.md:

- a stage starts when every upstream stage succeeded (ran or was restored);
- a failed stage's dependants never start;
- after a failure nothing new starts, and stages already running finish,
  unless ``keep_going``, which lets independent branches carry on;
- Ctrl-C (KeyboardInterrupt in the calling thread) calls ``cancel`` (e.g. remove
  the run's containers), waits for the running stages to return, marks them
  interrupted (unless one finished before the cancel reached it), and re-raises;
  more Ctrl-C meanwhile do not cut that short.
"""

from __future__ import annotations

import concurrent.futures as futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from opsctl.core.run_report import CACHED, FAILED, INTERRUPTED, RAN, SKIPPED

T = TypeVar("T")


@dataclass(frozen=True)
class StageTask:
    name: str
    upstream: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageReport:
    """What ``run_stage`` returns: ``ran``, ``cached`` or ``failed``, with any detail."""

    status: str
    detail: str = ""


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str  # ran | cached | failed | skipped | interrupted
    detail: str
    started: float | None
    finished: float | None


@dataclass
class ScheduleResult:
    results: dict[str, StageResult] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r.status == FAILED]

    @property
    def succeeded(self) -> bool:
        return not self.interrupted and all(r.status in (RAN, CACHED) for r in self.results.values())


class SchedulerInterrupted(KeyboardInterrupt):
    """Ctrl-C during a schedule; ``result`` says what ran, what was interrupted, what never started."""

    def __init__(self, result: ScheduleResult) -> None:
        super().__init__("interrupted")
        self.result = result


def run_stages(
    tasks: Sequence[StageTask],
    run_stage: Callable[[str], StageReport],
    *,
    jobs: int,
    keep_going: bool = False,
    on_start: Callable[[str], None] | None = None,
    on_finish: Callable[[StageResult], None] | None = None,
    cancel: Callable[[], None] | None = None,
) -> ScheduleResult:
    """Run ``tasks`` (upstream names must be among them or already satisfied) and report each."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    names = {t.name for t in tasks}
    upstream = {t.name: {u for u in t.upstream if u in names} for t in tasks}
    order = [t.name for t in tasks]
    _check_acyclic(upstream)

    result = ScheduleResult()
    started: dict[str, float] = {}
    running: dict[futures.Future, str] = {}
    stopping = False  # a failure without keep_going: start nothing new

    def finish(name: str, status: str, detail: str) -> None:
        record = StageResult(name, status, detail, started.get(name), time.time() if name in started else None)
        result.results[name] = record
        if on_finish is not None:
            on_finish(record)

    def blocked_by_failure(name: str) -> str | None:
        for up in upstream[name]:
            state = result.results.get(up)
            if state is not None and state.status in (FAILED, SKIPPED, INTERRUPTED):
                return up
        return None

    with futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="opsctl-stage") as pool:
        try:
            while len(result.results) < len(order):
                # Settle stages that can never start.
                for name in order:
                    if name in result.results or name in started:
                        continue
                    cause = blocked_by_failure(name)
                    if cause is not None:
                        finish(name, SKIPPED, f"upstream {cause} did not succeed")
                if stopping:
                    for name in order:
                        if name not in result.results and name not in started:
                            finish(name, SKIPPED, "not started: an earlier stage failed (use --keep-going)")
                # Start what is ready, in the pipeline's order.
                if not stopping:
                    for name in order:
                        if len(running) >= jobs:
                            break
                        if name in result.results or name in started:
                            continue
                        if all(
                            result.results.get(u) is not None and result.results[u].status in (RAN, CACHED)
                            for u in upstream[name]
                        ):
                            started[name] = time.time()
                            if on_start is not None:
                                on_start(name)
                            running[pool.submit(run_stage, name)] = name
                if not running:
                    if len(result.results) < len(order):  # nothing runs and nothing can start
                        for name in order:
                            if name not in result.results:
                                finish(name, SKIPPED, "upstream did not succeed")
                    break
                # A short timeout keeps the main thread responsive to Ctrl-C.
                done, _ = futures.wait(list(running), timeout=0.2, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    try:
                        report = future.result()
                    except Exception as exc:  # noqa: BLE001 — a crash in run_stage is that stage's failure, not the run's
                        report = StageReport(FAILED, f"{type(exc).__name__}: {exc}")
                    finish(name, report.status, report.detail)
                    if report.status == FAILED and not keep_going:
                        stopping = True
        except KeyboardInterrupt:
            result.interrupted = True
            if cancel is not None:
                try:
                    _despite_interrupts(cancel)
                except Exception:  # noqa: BLE001 — the stages are still waited for and recorded
                    pass
            for future, name in list(running.items()):
                try:
                    report = _despite_interrupts(future.result)
                except Exception:  # noqa: BLE001 — a stage that broke off under the cancel was interrupted
                    report = None
                if report is not None and report.status in (RAN, CACHED):
                    # It finished (and recorded itself) before the cancel reached it: say so,
                    # or the report would disagree with dvc.lock.
                    finish(name, report.status, report.detail)
                else:
                    finish(name, INTERRUPTED, "stopped: the run was interrupted (Ctrl-C or SIGTERM)")
            for name in order:
                if name not in result.results:
                    finish(name, SKIPPED, "not started: interrupted")
            raise SchedulerInterrupted(result) from None
    return result


def _despite_interrupts(call: Callable[[], T]) -> T:
    """``call()`` to its end even when more Ctrl-C come meanwhile: a second Ctrl-C must not
    cut the clean-up of the first short (each one just starts ``call`` again; the callers'
    calls may be repeated)."""
    while True:
        try:
            return call()
        except KeyboardInterrupt:
            continue


def _check_acyclic(upstream: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise ValueError("stage cycle: " + " -> ".join(cycle))
        state[name] = 1
        for up in sorted(upstream[name]):
            visit(up, path + [name])
        state[name] = 2

    for name in upstream:
        visit(name, [])
