"""`opsctl runs show` of a run whose stages ran on a remote executor's workers: a worker
column (with the attempts when a stage was run again), "worker" and "attempts" per stage
in --json; runs that ran on this host look as they always did. The run is written the
way `opsctl run` writes it, through RunRecorder, into a real Git + DVC project."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from opsctl.cli.fastpath import try_fast_path
from opsctl.cli.main import main_with_exit_code
from opsctl.core.project import open_project
from opsctl.core.run import RunReport, StageRun
from opsctl.core.runs import RunRecorder
from tests.conftest import git_dvc_project, run

REMOTE, LOCAL = "a1b2c3d4e5f6", "0f0f0f0f0f0f"
W1, W2 = "tcp://127.0.0.1:40123", "tcp://10.0.0.7:39001"


def record(root: Path, run_id: str, stages: list) -> None:
    recorder = RunRecorder(open_project(root))
    started = time.time()
    report = RunReport(run_id=run_id, plan=None, executor="dask", jobs=2, started=started)  # type: ignore[arg-type]
    recorder.begin(report, [])
    for stage in stages:
        recorder.stage(run_id, stage)
    report.finished = started + 5
    recorder.finish(report, "succeeded", {}, {})
    recorder.close()
    assert recorder.error is None, recorder.error


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = git_dvc_project(tmp_path_factory.mktemp("workers"), "workers")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=root)
    now = time.time()
    record(
        root,
        REMOTE,
        [
            StageRun("prepare", "ran", "", "python prepare.py", started=now, duration=1.0, exit_code=0, worker=W1),
            StageRun(
                "train", "ran", "", "python train.py", started=now + 1, duration=2.0, exit_code=0, worker=W2, attempts=2
            ),
            StageRun("report", "cached", "", "python report.py", started=now + 3),
        ],
    )
    # A stage result from before remote executors (no worker, no attempts): recorded as on this host.
    old_style = SimpleNamespace(
        name="train",
        status="ran",
        detail="",
        started=now + 10,
        duration=1.0,
        cmd="python train.py",
        image_ref=None,
        image_id=None,
        exit_code=0,
        log_path=None,
        hashes=(),
    )
    record(root, LOCAL, [old_style])
    return root


def opsctl(root: Path, monkeypatch, capsys, *args: str) -> str:
    """The command in this process, through the fast path and through typer: one output."""
    monkeypatch.chdir(root)
    assert try_fast_path(list(args)) == 0
    fast = capsys.readouterr()
    assert main_with_exit_code(list(args)) == 0
    slow = capsys.readouterr()
    assert (fast.out, fast.err) == (slow.out, slow.err)
    return fast.out


def test_show_has_a_worker_column_with_the_attempts(project, monkeypatch, capsys):
    text = opsctl(project, monkeypatch, capsys, "runs", "show", REMOTE[:6])
    lines = text.splitlines()
    assert "stage\toutcome\tduration\texit\timage\tworker\tdetail" in lines, text
    assert f"prepare\tran\t1.0s\t0\t(host)\t{W1}\t" in lines, text
    assert f"train\tran\t2.0s\t0\t(host)\t{W2} (2 attempts)\t" in lines, text
    assert "report\tcached\t\t\t(host)\t\t" in lines, text


def test_show_of_a_run_on_this_host_has_no_worker_column(project, monkeypatch, capsys):
    text = opsctl(project, monkeypatch, capsys, "runs", "show", LOCAL)
    assert "stage\toutcome\tduration\texit\timage\tdetail" in text.splitlines(), text
    assert "worker" not in text


def test_show_json_has_each_stages_worker_and_attempts(project, monkeypatch, capsys):
    remote = json.loads(opsctl(project, monkeypatch, capsys, "runs", "show", REMOTE, "--json"))
    assert [(s["name"], s["worker"], s["attempts"]) for s in remote["stages"]] == [
        ("prepare", W1, 1),
        ("train", W2, 2),
        ("report", None, 1),
    ]
    local = json.loads(opsctl(project, monkeypatch, capsys, "runs", "show", LOCAL, "--json"))
    assert [(s["name"], s["worker"], s["attempts"]) for s in local["stages"]] == [("train", None, 1)]


def test_a_run_kept_aside_keeps_its_workers_when_recorded_later(tmp_path, monkeypatch, capsys):
    """A run the store could not take is kept in .opsctl/pending/ and recorded by the next
    command: its stages' workers and attempts come through that too."""
    from opsctl.core.runs import PENDING_DIR, _keep_aside
    from opsctl.store import NewRun, StageRecord

    root = git_dvc_project(tmp_path / "p", "workers")
    stages = [StageRecord("train", "ran", started=1e9, worker=W2, attempts=3)]
    kept = _keep_aside(open_project(root), None, NewRun(REMOTE, started=1e9), stages, "succeeded", 1e9 + 5, {}, {})
    assert kept == root / ".opsctl" / PENDING_DIR / f"{REMOTE}.json"
    text = opsctl(root, monkeypatch, capsys, "runs", "show", REMOTE, "--json")
    assert [(s["name"], s["worker"], s["attempts"]) for s in json.loads(text)["stages"]] == [("train", W2, 3)]
    assert not kept.exists()
