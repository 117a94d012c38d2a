"""`opsctl exp run` with the docker executor against the real engine: the experiments' stages
run in containers, the shared stage runs in one experiment only, no container is left."""

from __future__ import annotations

import json
import os
import signal

import pytest
import yaml

from tests.conftest import opsctl_inprocess, run
from tests.e2e import test_run_docker as docker_e2e
from tests.e2e.test_experiments import assert_no_leftovers, exp_children, finish, queue, start_opsctl, wait_for

pytestmark = pytest.mark.docker

busybox_image = docker_e2e.busybox_image
busybox_project = docker_e2e.busybox_project
RUN_LABEL = docker_e2e.RUN_LABEL

STAGES = {
    "prep": {"cmd": "sh prep.sh", "deps": ["prep.sh"], "params": ["prep.n"], "outs": ["data/prep.txt"]},
    "train": {
        "cmd": "sh train.sh",
        "deps": ["train.sh", "data/prep.txt"],
        "params": ["train"],
        "outs": ["model/m.txt"],
        "metrics": [{"metrics.json": {"cache": False}}],
    },
}
PREP = "mkdir -p data\nn=$(sed -n 's/^  n: *//p' params.yaml)\necho \"n=$n\" > data/prep.txt\n"
TRAIN = (
    "lr=$(sed -n 's/^  lr: *//p' params.yaml)\nmkdir -p model\n"
    'echo "lr=$lr $(cat data/prep.txt)" > model/m.txt\n'
    'echo "{\\"score\\": $lr}" > metrics.json\n'
)


def sweep_project(busybox_project, *, run_first: bool = False, stages: dict = STAGES):
    """prep -> train in busybox, committed (after one `opsctl run` when ``run_first``)."""
    root = busybox_project(stages, params={"prep": {"n": 3}, "train": {"lr": 1}})
    (root / "prep.sh").write_text(PREP)
    (root / "train.sh").write_text(TRAIN)
    (root / ".gitignore").write_text(".opsctl/\n")
    if run_first:
        opsctl_inprocess("run", cwd=root, check=True)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "scripts"], cwd=root)
    return root


def test_a_sweep_in_docker_runs_shared_prep_once_and_leaves_no_container(busybox_project):
    root = sweep_project(busybox_project)

    result = opsctl_inprocess("exp", "run", "-S", "train.lr=1,2,3", "-j", "2", "--name", "d", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["succeeded"] == 3 and report["failed"] == 0
    runs = {e["overrides"][0]: e for e in report["experiments"]}
    assert sorted(runs) == ["train.lr=1", "train.lr=2", "train.lr=3"]
    for lr in (1, 2, 3):
        assert runs[f"train.lr={lr}"]["metrics"] == {"score": lr}

    prep_outcomes = []
    for e in report["experiments"]:
        shown = opsctl_inprocess("runs", "show", e["run"], "--json", cwd=root)
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert detail["executor"] == "docker"
        stages = {s["name"]: s for s in detail["stages"]}
        assert stages["train"]["outcome"] == "ran"
        assert stages["train"]["image_id"], stages["train"]  # it ran in a container of the image
        prep_outcomes.append(stages["prep"]["outcome"])
        # no container of the run is left
        assert run(["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}={e['run']}"]).stdout.split() == []
    assert prep_outcomes.count("ran") == 1, prep_outcomes
    assert all(o in ("ran", "cached") for o in prep_outcomes), prep_outcomes

    # the experiment's files are those its container wrote
    best = json.loads(opsctl_inprocess("exp", "show", "d", "--json", cwd=root).stdout)["experiments"][0]
    assert best["params"] == {"train.lr": 3}
    lock = yaml.safe_load(run(["git", "show", f"refs/opsctl/exps/{best['run']}:dvc.lock"], cwd=root).stdout)
    assert set(lock["stages"]) == {"prep", "train"}
    assert run(["git", "worktree", "list", "--porcelain"], cwd=root).stdout.count("worktree ") == 1
    assert run(["git", "status", "--porcelain"], cwd=root).stdout == ""


def test_ctrl_c_during_a_docker_sweep_removes_its_containers_and_requeues(busybox_project):
    slow = {**STAGES, "train": {**STAGES["train"], "cmd": "sh train.sh && sleep 60"}}
    root = sweep_project(busybox_project, stages=slow)

    proc = start_opsctl(root, "exp", "run", "-S", "train.lr=1,2", "-j", "2", "--name", "c", new_session=True)
    try:

        def training() -> list[str]:
            ids = [e["run"] for e in queue(root) if e["status"] == "running" and e["run"]]
            busy = [
                r
                for r in ids
                if run(
                    [
                        "docker",
                        "ps",
                        "-q",
                        "--filter",
                        f"label={RUN_LABEL}={r}",
                        "--filter",
                        "label=org.opsctl.stage=train",
                    ]
                ).stdout.strip()
            ]
            return busy if len(busy) == 2 else []

        run_ids = wait_for(training, timeout=120)
        os.killpg(proc.pid, signal.SIGINT)
        code, _out, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, err
    for r in run_ids:
        assert run(["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}={r}"]).stdout.split() == []
    assert exp_children(root) == []
    assert_no_leftovers(root)
    entries = queue(root)
    assert sorted(e["overrides"][0] for e in entries) == ["train.lr=1", "train.lr=2"]
    assert all(e["status"] == "queued" for e in entries), entries
    assert opsctl_inprocess("exp", "queue", "clear", cwd=root).returncode == 0
    assert queue(root) == []


def test_an_experiment_that_changes_nothing_is_a_run_with_every_stage_up_to_date(busybox_project):
    """Its value is the workspace's and the pipeline ran: nothing is stale in its work tree, no
    image is even asked for, and it is still recorded (a sweep's every experiment is a run)."""
    root = sweep_project(busybox_project, run_first=True)

    result = opsctl_inprocess("exp", "run", "-S", "train.lr=1,2", "-j", "2", "--name", "same", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_value = {e["overrides"][0]: e for e in report["experiments"]}
    assert {e["status"] for e in report["experiments"]} == {"succeeded"}
    assert by_value["train.lr=1"]["metrics"] == {"score": 1} and by_value["train.lr=2"]["metrics"] == {"score": 2}
    same = json.loads(opsctl_inprocess("runs", "show", by_value["train.lr=1"]["run"], "--json", cwd=root).stdout)
    assert same["status"] == "succeeded" and same["stages"] == []  # nothing was stale: nothing ran
    assert queue(root) == []
