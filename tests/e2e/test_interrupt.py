"""Interrupting opsctl: Ctrl-C during `opsctl init` leaves no half-made project behind;
Ctrl-C, SIGTERM (any number of them) or SIGKILL during `opsctl run` with the docker
executor leave no container behind and the run recorded interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_opsctl, tree
from tests.e2e import test_run_docker as docker_e2e

# The Docker fixtures are test_run_docker.py's.
busybox_image = docker_e2e.busybox_image
busybox_project = docker_e2e.busybox_project
RUN_LABEL, STAGE_LABEL, _containers_of_run = docker_e2e.RUN_LABEL, docker_e2e.STAGE_LABEL, docker_e2e._containers_of_run


def _interrupt_when(cmd: list[str], cwd: Path, ready) -> subprocess.CompletedProcess | None:
    """Start ``cmd``, send SIGINT as soon as ``ready()`` is true; None if it finished first."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
            return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        time.sleep(0.002)
    proc.kill()
    proc.communicate()
    return None


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((".opsctl-init-", ".opsctl-backup-")))


INIT = [sys.executable, "-m", "opsctl", "init", "proj", "--defaults"]


@pytest.mark.parametrize(
    "phase, ready",
    [
        # while Copier renders into the staging directory
        ("render", lambda parent: any(p.name.startswith(".opsctl-init-") for p in parent.iterdir())),
        # after the project was moved into place, while Git and DVC are set up
        ("setup", lambda parent: (parent / "proj" / ".git").exists()),
    ],
)
def test_interrupted_init_leaves_nothing(tmp_path, phase, ready):
    for _attempt in range(5):
        parent = tmp_path / f"try{_attempt}"
        parent.mkdir()
        result = _interrupt_when(INIT, parent, lambda parent=parent: ready(parent))
        if result is None or result.returncode == 0:
            continue  # init won the race; try again
        assert result.returncode == 130, result.stderr
        assert "interrupted" in result.stderr
        assert list(parent.iterdir()) == [], f"left behind after Ctrl-C during {phase}: {list(parent.iterdir())}"
        return
    pytest.fail(f"could not interrupt init during {phase} in 5 attempts")


def test_interrupted_forced_init_restores_the_directory(tmp_path):
    target = tmp_path / "proj"
    target.mkdir()
    (target / "README.md").write_text("my own readme\n")  # the template has a README.md too
    (target / "keep.txt").write_text("keep\n")
    before = tree(target)
    for _attempt in range(5):
        result = _interrupt_when(INIT + ["--force"], tmp_path, lambda: (target / ".git").exists())
        if result is None or result.returncode == 0:
            pytest.fail("init finished before it could be interrupted")
        assert result.returncode == 130, result.stderr
        assert tree(target) == before
        assert sorted(p.name for p in target.iterdir()) == ["README.md", "keep.txt"]
        assert _leftovers(tmp_path) == []
        return


def test_ctrl_c_at_any_moment_leaves_all_or_nothing(tmp_path):
    """Interrupt at spread-out moments: each run ends with a complete project (exit 0)
    or with nothing at all (exit 130) — never something in between."""
    interrupted = 0
    for i, delay in enumerate([0.05 + 0.15 * k for k in range(12)]):
        parent = tmp_path / f"d{i}"
        parent.mkdir()
        proc = subprocess.Popen(INIT, cwd=parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        # A signal during the interpreter's own start-up (runpy finding the package)
        # comes before any opsctl code can handle it; that trace is Python's, not ours.
        if "Traceback" in err:
            assert "/opsctl/cli/" not in err and "/opsctl/core/" not in err, err
            assert list(parent.iterdir()) == [], err
        project = parent / "proj"
        if project.exists():
            # A signal that lands after the commit (even during interpreter exit) finds a finished project.
            done = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True)
            assert done.returncode == 0 and done.stdout == "", (
                f"half-made project after {delay:.2f}s: {done.stdout}{err}"
            )
            assert (project / "data/raw/churn.csv.dvc").exists()
        else:
            assert proc.returncode != 0
            assert list(parent.iterdir()) == [], f"Ctrl-C after {delay:.2f}s left {list(parent.iterdir())}: {err}"
            interrupted += 1
    assert interrupted, "no run was interrupted mid-way; the sweep tested nothing"


# -- `opsctl run` with the docker executor: Ctrl-C, SIGTERM, SIGKILL ----------------------------


# A finished stage, then one that writes into the workspace until it is stopped.
TICKING = {
    "quick": {"cmd": "echo quick > q.txt", "outs": ["q.txt"]},
    "slow": {
        "cmd": "i=0; while [ $i -lt 300 ]; do echo $i >> ticks.txt; i=$((i+1)); sleep 0.1; done; echo > o.txt",
        "deps": ["q.txt"],
        "outs": ["o.txt"],
    },
}


def _ticking_run(busybox_project) -> tuple[Path, docker_e2e._LiveRun]:
    root = busybox_project(TICKING)
    live = docker_e2e._LiveRun(root, "-j", "2", new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and live.proc.poll() is None:
        if live.stage_running("slow") and (root / "ticks.txt").is_file():
            return root, live
        time.sleep(0.05)
    live.kill()
    pytest.fail(f"the slow stage never started\n{live.stderr}")


def _recorded_stages(root: Path, run_id: str) -> tuple[str, dict]:
    shown = run_opsctl("runs", "show", run_id, "--json", cwd=root, check=True)
    detail = json.loads(shown.stdout)
    return detail["status"], {s["name"]: s["outcome"] for s in detail["stages"]}


@pytest.mark.docker
@pytest.mark.parametrize(
    "signals",
    [
        ("SIGINT", "SIGINT"),  # an impatient second Ctrl-C, 50 ms after the first
        ("SIGINT", "SIGINT", "SIGINT"),
        ("SIGTERM",),
        ("SIGTERM", "SIGTERM"),
        ("SIGINT", "SIGTERM"),
        ("group:SIGINT", "group:SIGINT"),  # Ctrl-C at a terminal: the whole foreground process group
    ],
)
def test_any_number_of_interrupts_remove_the_containers_and_record_the_stages(busybox_project, signals):
    root, live = _ticking_run(busybox_project)
    run_id = live.run_id()
    try:
        for i, name in enumerate(signals):
            if i:
                time.sleep(0.05)
            group, _, name = name.rpartition(":")
            if group:
                os.killpg(live.proc.pid, getattr(signal, name))
            else:
                live.proc.send_signal(getattr(signal, name))
        # Waiting the stage out (30 s) would time out here: it is stopped, not waited for.
        live.proc.wait(timeout=20)
    finally:
        live.kill()
    assert live.proc.returncode == 130, live.stderr
    assert f"run {run_id} interrupted; stopped: slow" in live.stderr
    assert _containers_of_run(run_id) == []
    assert _recorded_stages(root, run_id) == ("interrupted", {"quick": "ran", "slow": "interrupted"})
    assert sorted(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == ["quick"]


def _wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.docker
def test_the_containers_of_a_killed_opsctl_are_removed_and_the_run_marked_interrupted(busybox_project):
    root, live = _ticking_run(busybox_project)
    run_id = live.run_id()
    try:
        live.proc.kill()  # SIGKILL: opsctl cleans nothing up itself
        live.proc.wait(timeout=30)
    finally:
        live.kill()
    # Its reaper notices and removes the run's containers (stage and network sandbox).
    assert _wait_until(lambda: _containers_of_run(run_id) == []), f"still there: {_containers_of_run(run_id)}"
    ticks = (root / "ticks.txt").read_text()
    time.sleep(0.5)  # the stage wrote every 0.1 s while it ran
    assert (root / "ticks.txt").read_text() == ticks, "the stage still writes into the workspace"

    status = run_opsctl("status", cwd=root)
    assert status.returncode == 0, status.stderr
    assert f"run {run_id} was left running by an opsctl that is gone: marked interrupted; stopped: slow" in (
        status.stderr
    )
    listed = run_opsctl("runs", "list", "--json", cwd=root, check=True)
    assert [(r["id"], r["status"], r["stages"]["ran"]) for r in json.loads(listed.stdout)] == [
        (run_id, "interrupted", 1)
    ]
    # The stage it had recorded is kept; the one it was running shows as interrupted, with its log.
    assert _recorded_stages(root, run_id) == ("interrupted", {"quick": "ran", "slow": "interrupted"})
    shown = json.loads(run_opsctl("runs", "show", run_id, "--json", cwd=root, check=True).stdout)
    slow = next(s for s in shown["stages"] if s["name"] == "slow")
    assert slow["log"] == f".opsctl/runs/{run_id}/slow.log"
    # A second look marks nothing again.
    again = run_opsctl("status", cwd=root)
    assert "left running" not in again.stderr
