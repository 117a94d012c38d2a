"""The stage scheduler with fake stages: order, parallelism, failures, keep-going, Ctrl-C."""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from opsctl.core.scheduler import (
    CACHED,
    FAILED,
    INTERRUPTED,
    RAN,
    SKIPPED,
    SchedulerInterrupted,
    StageReport,
    StageTask,
    run_stages,
)


class FakeStages:
    """Records start/end order and the most stages ever running at once."""

    def __init__(self, *, fail=(), cached=(), hold: float = 0.05, gate: threading.Event | None = None):
        self.fail, self.cached, self.hold, self.gate = set(fail), set(cached), hold, gate
        self.events: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, name: str) -> StageReport:
        with self.lock:
            self.events.append(("start", name))
            self.running += 1
            self.most = max(self.most, self.running)
        if self.gate is not None:
            self.gate.wait(10)
        else:
            time.sleep(self.hold)
        with self.lock:
            self.running -= 1
            self.events.append(("end", name))
        if name in self.fail:
            return StageReport(FAILED, "exit 1")
        return StageReport(CACHED if name in self.cached else RAN)

    def index(self, kind: str, name: str) -> int:
        return self.events.index((kind, name))


ML = [
    StageTask("prepare"),
    StageTask("featurize", ("prepare",)),
    StageTask("train", ("featurize",)),
    StageTask("evaluate", ("featurize", "train")),
]


def test_dependencies_run_first():
    stages = FakeStages()
    result = run_stages(ML, stages, jobs=4)
    assert result.succeeded and set(result.results) == {"prepare", "featurize", "train", "evaluate"}
    assert stages.index("end", "prepare") < stages.index("start", "featurize")
    assert stages.index("end", "train") < stages.index("start", "evaluate")
    assert stages.most == 1  # a chain never runs two at once


def test_independent_stages_run_in_parallel_up_to_jobs():
    gate = threading.Event()
    stages = FakeStages(gate=gate)
    tasks = [StageTask(f"s{i}") for i in range(8)]

    def open_when_all_running():  # no stage may finish before all 8 have started
        deadline = time.monotonic() + 10
        while stages.running < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()

    threading.Thread(target=open_when_all_running, daemon=True).start()
    result = run_stages(tasks, stages, jobs=8)
    assert result.succeeded and stages.most == 8

    limited = FakeStages(hold=0.02)
    run_stages(tasks, limited, jobs=3)
    assert limited.most == 3


def test_cached_counts_as_success_for_dependants():
    result = run_stages(ML, FakeStages(cached={"prepare"}), jobs=2)
    assert result.results["prepare"].status == CACHED
    assert result.results["evaluate"].status == RAN


def test_failure_skips_dependants_and_starts_nothing_new():
    tasks = [StageTask("a"), StageTask("b", ("a",)), StageTask("c"), StageTask("d", ("c",))]
    stages = FakeStages(fail={"a"}, hold=0.05)
    result = run_stages(tasks, stages, jobs=1)
    statuses = {n: r.status for n, r in result.results.items()}
    assert statuses == {"a": FAILED, "b": SKIPPED, "c": SKIPPED, "d": SKIPPED}
    assert "upstream a" in result.results["b"].detail
    assert "--keep-going" in result.results["c"].detail
    assert ("start", "c") not in stages.events
    assert not result.succeeded and result.failed == ["a"]


def test_running_siblings_finish_after_a_failure():
    tasks = [StageTask("quick-fail"), StageTask("slow"), StageTask("after-slow", ("slow",))]

    def run(name):
        time.sleep(0.3 if name == "slow" else 0.01)
        return StageReport(FAILED if name == "quick-fail" else RAN)

    result = run_stages(tasks, run, jobs=2)
    assert result.results["slow"].status == RAN  # it was running: it finishes
    assert result.results["after-slow"].status == SKIPPED  # but nothing new starts


def test_keep_going_finishes_independent_branches():
    tasks = [StageTask("a"), StageTask("b", ("a",)), StageTask("c"), StageTask("d", ("c",))]
    result = run_stages(tasks, FakeStages(fail={"a"}), jobs=1, keep_going=True)
    statuses = {n: r.status for n, r in result.results.items()}
    assert statuses == {"a": FAILED, "b": SKIPPED, "c": RAN, "d": RAN}


def test_a_crashing_stage_is_that_stages_failure():
    def run(name):
        if name == "featurize":
            raise RuntimeError("boom")
        return StageReport(RAN)

    result = run_stages(ML, run, jobs=2)
    assert result.results["featurize"].status == FAILED and "boom" in result.results["featurize"].detail
    assert result.results["train"].status == SKIPPED


def test_ctrl_c_cancels_waits_and_reports():
    release = threading.Event()
    cancelled = []

    def run(name):
        if name == "prepare":
            threading.Timer(0.2, _thread.interrupt_main).start()  # Ctrl-C while prepare runs
            release.wait(10)
            return StageReport(FAILED, "stopped")  # what a stage whose container was removed reports
        return StageReport(RAN)

    def cancel():
        cancelled.append(True)
        release.set()  # what stopping the container does to a stage that waits on it

    with pytest.raises(SchedulerInterrupted) as caught:
        run_stages(ML, run, jobs=2, cancel=cancel)
    result = caught.value.result
    assert cancelled and result.interrupted
    assert result.results["prepare"].status == INTERRUPTED
    assert {result.results[n].status for n in ("featurize", "train", "evaluate")} == {SKIPPED}


def test_stage_that_finished_as_ctrl_c_came_keeps_its_result():
    """Its dvc.lock entry is written: reporting it interrupted would contradict dvc.lock."""

    def run(name):
        if name == "prepare":
            threading.Timer(0.1, _thread.interrupt_main).start()
            time.sleep(0.5)  # still recording when the interrupt arrives
        return StageReport(RAN, "recorded")

    with pytest.raises(SchedulerInterrupted) as caught:
        run_stages(ML, run, jobs=2, cancel=lambda: None)
    result = caught.value.result
    assert result.interrupted
    assert (result.results["prepare"].status, result.results["prepare"].detail) == (RAN, "recorded")
    assert result.results["featurize"].status == SKIPPED


def test_cycles_and_bad_jobs_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        run_stages([StageTask("a", ("b",)), StageTask("b", ("a",))], FakeStages(), jobs=1)
    with pytest.raises(ValueError, match="jobs"):
        run_stages(ML, FakeStages(), jobs=0)


def test_callbacks_see_every_stage():
    started, finished = [], []
    run_stages(ML, FakeStages(hold=0.01), jobs=2, on_start=started.append, on_finish=lambda r: finished.append(r.name))
    assert started == ["prepare", "featurize", "train", "evaluate"]
    assert sorted(finished) == sorted(started)
