"""Several processes writing one run store at once while another reads it: no
"database is locked", no lost run, no run seen half written."""

from __future__ import annotations

import multiprocessing
import time
import traceback
from pathlib import Path

from opsctl.store import ArtifactRecord, Filter, NewRun, RunRecord, RunStore, StageRecord

WRITERS = 4
WHOLE_RUNS = 150  # per writer, each one record_run transaction
LIVE_RUNS = 25  # per writer, each begin_run + STAGES record_stage + finish_run
STAGES = 3


def _stages(run_id: str, started: float) -> list[StageRecord]:
    return [
        StageRecord(
            f"stage{s}",
            "ran" if s % 2 == 0 else "cached",
            started=started + s,
            duration=0.5,
            cmd=f"python stage{s}.py",
            artifacts=[
                ArtifactRecord("dep", f"data/in{s}", "d" * 32),
                ArtifactRecord("out", f"data/out{s}", f"{run_id}{s:020x}"),
            ],
        )
        for s in range(STAGES)
    ]


def _writer(db: str, writer: int, start, errors: str) -> None:
    """One opsctl process recording runs; a traceback goes to ``errors`` for the parent to show."""
    try:
        start.wait(30)  # every writer opens the brand-new store at the same moment
        with RunStore(db) as store:
            for i in range(WHOLE_RUNS + LIVE_RUNS):
                run_id = f"{writer:04x}{i:08x}"
                started = time.time()
                run = NewRun(id=run_id, started=started, host="box", pid=writer, branch=f"w{writer}")
                params = {"writer": writer, "i": i, "opt": "adam" if i % 2 else "sgd"}
                metrics = {"acc": i / 1000, "loss": 1 - i / 1000}
                if i < WHOLE_RUNS:
                    store.record_run(
                        RunRecord(run, "succeeded", started + 1, _stages(run_id, started), params, metrics)
                    )
                else:
                    store.begin_run(run)
                    for stage in _stages(run_id, started):
                        store.record_stage(run_id, stage)
                    store.finish_run(run_id, "succeeded", time.time(), params, metrics)
    except BaseException:
        Path(errors).write_text(traceback.format_exc())
        raise


def _cli_list(project: Path) -> list:
    """`opsctl runs list --json`, as a user in another terminal would run it."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "opsctl", "runs", "list", "--limit", "5", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "locked" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def test_four_writers_and_a_reader(tmp_path):
    import subprocess

    # The directory is a project too, so the real `opsctl runs list` reads the same store.
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    db = tmp_path / ".opsctl" / "opsctl.db"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    writers = [
        ctx.Process(target=_writer, args=(str(db), w, start, str(tmp_path / f"writer{w}.err"))) for w in range(WRITERS)
    ]
    for p in writers:
        p.start()
    start.set()
    total = WRITERS * (WHOLE_RUNS + LIVE_RUNS)
    seen: list[int] = []
    cli_reads = 0
    with RunStore(db) as reader:  # opens (and may create) the store while the writers do
        while any(p.is_alive() for p in writers) or not seen:
            count = reader.count_runs()
            assert (seen or [0])[-1] <= count <= total  # runs only ever appear
            seen.append(count)
            for run in reader.list_runs(limit=20):
                # a whole run is never seen in part; a live one shows only whole stages
                assert run.ran + run.cached == STAGES if run.status == "succeeded" else run.ran + run.cached <= STAGES
            reader.list_runs(limit=10, sort="metrics.acc", filters=[Filter("params", "opt", "=", "adam")])
            reader.count_runs(status="running")
            if cli_reads < 3 and any(p.is_alive() for p in writers):
                assert len(_cli_list(tmp_path)) <= 5
                cli_reads += 1
        for p in writers:
            p.join(60)
        failures = {
            p.name: (tmp_path / f"writer{w}.err").read_text()
            for w, p in enumerate(writers)
            if p.exitcode != 0 and (tmp_path / f"writer{w}.err").exists()
        }
        assert failures == {}, "\n".join(failures.values())
        assert [p.exitcode for p in writers] == [0] * WRITERS

        assert any(0 < count < total for count in seen)  # the reads overlapped the writes
        assert cli_reads >= 1
        assert len(_cli_list(tmp_path)) == 5
        assert reader.count_runs() == total
        assert reader.count_runs(status="succeeded") == total
        for w in range(WRITERS):  # nothing lost, nothing half written
            runs = reader.list_runs(
                limit=total,
                filters=[Filter("params", "writer", "=", w)],
                sort="params.i",
                descending=False,
                metric_keys=["acc"],
            )
            assert [r.id for r in runs] == [f"{w:04x}{i:08x}" for i in range(WHOLE_RUNS + LIVE_RUNS)]
            assert all((r.ran, r.cached, r.failed) == (2, 1, 0) for r in runs)
            assert [r.metrics["acc"] for r in runs] == [i / 1000 for i in range(WHOLE_RUNS + LIVE_RUNS)]
        for run_id in (f"{0:04x}{0:08x}", f"{WRITERS - 1:04x}{WHOLE_RUNS + LIVE_RUNS - 1:08x}"):
            detail = reader.get_run(run_id)
            assert len(detail.stages) == STAGES and len(detail.params) == 3 and len(detail.metrics) == 2
            assert all(len(s.artifacts) == 2 for s in detail.stages)
            assert reader.producers("data/out1", f"{run_id}{1:020x}") == [(run_id, "stage1", detail.started)]
