"""`opsctl exp` end to end with real Git and DVC and the local executor: a sweep runs its
experiments in isolated work trees (the user's files untouched, shared stages run once),
records them as runs, fails as a whole when one fails; two sweeps at once; Ctrl-C,
SIGTERM and SIGKILL put the running experiments back in the durable queue; the queue is
fed while it runs; bad input is refused before anything is queued; `exp apply` and
`exp branch` bring an experiment back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, PYTHON, git_dvc_project, opsctl_inprocess, run, tree

COMBOS = [{"train.lr": lr, "train.depth": d} for lr in (1, 2, 3) for d in (1, 2)]


# -- a small pipeline --------------------------------------------------------------------------

PREP = """\
import os, time, yaml
open({counter!r}, "a").write("prep\\n")
while os.path.exists({hold!r}):  # a test holds prep here: the other experiments wait for it
    time.sleep(0.05)
n = yaml.safe_load(open("params.yaml"))["prep"]["n"]
os.makedirs("data", exist_ok=True)
open("data/prep.txt", "w").write(f"n={{n}}\\n")
"""

TRAIN = """\
import json, os, sys, time, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
open({counter!r}, "a").write(f"train {{p['lr']}} {{p['depth']}}\\n")
while os.path.exists({hold!r}):  # a test holds train here to catch experiments mid-run
    time.sleep(0.05)
os.makedirs("model", exist_ok=True)
open("model/m.txt", "w").write(f"lr={{p['lr']}} depth={{p['depth']}} " + open("data/prep.txt").read())
if p["lr"] == {fail_lr!r}:  # fails half-way: its model written, no metrics
    sys.exit("train: lr {fail_lr} diverges")
json.dump({{"score": p["lr"] * 10 + p["depth"]}}, open("metrics.json", "w"))
"""

DVC_YAML = {
    "stages": {
        "prep": {"cmd": "python prep.py", "deps": ["prep.py"], "params": ["prep.n"], "outs": ["data/prep.txt"]},
        "train": {
            "cmd": "python train.py",
            "deps": ["train.py", "data/prep.txt"],
            "params": ["train"],
            "outs": ["model/m.txt"],
            "metrics": [{"metrics.json": {"cache": False}}],
        },
    }
}


def make_project(root: Path, outside: Path, *, fail_lr: object = None) -> Path:
    """A committed Git + DVC project (executor local) with `prep` and `train`; each stage adds
    a line to ``outside/counter`` when it runs; train waits while ``outside/hold`` exists, prep
    while ``outside/hold-prep`` does."""
    outside.mkdir(parents=True, exist_ok=True)
    counter, hold = str(outside / "counter"), str(outside / "hold")
    git_dvc_project(root, "exps", executor="local")
    (root / ".gitignore").write_text(".opsctl/\n")
    (root / "params.yaml").write_text(yaml.safe_dump({"prep": {"n": 3}, "train": {"lr": 1, "depth": 1}}))
    (root / "prep.py").write_text(PREP.format(counter=counter, hold=hold + "-prep"))
    (root / "train.py").write_text(TRAIN.format(counter=counter, hold=hold, fail_lr=fail_lr))
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "pipeline"], cwd=root)
    return root


def counted(outside: Path) -> list[str]:
    path = outside / "counter"
    return path.read_text().splitlines() if path.exists() else []


def git(root: Path, *args: str) -> str:
    return run(["git", *args], cwd=root).stdout


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd=root, check=check)


def exp_json(root: Path, *args: str) -> dict | list:
    result = opsctl_inprocess("exp", *args, "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def queue(root: Path) -> list[dict]:
    entries = exp_json(root, "queue", "list")
    assert isinstance(entries, list)
    return entries


def work_trees(root: Path) -> list[str]:
    return [line for line in git(root, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def assert_no_leftovers(root: Path) -> None:
    """No work tree but the project's, none under .dvc/tmp/opsctl-exps, and no snapshot ref but
    those a queue entry or a recorded experiment still starts from (`exp apply` reads them)."""
    import sqlite3

    assert work_trees(root) == [f"worktree {root}"]
    base = root / ".dvc" / "tmp" / "opsctl-exps"
    assert not base.exists() or list(base.iterdir()) == []
    refs = {line.split()[0] for line in git(root, "for-each-ref", "refs/opsctl/snapshots").splitlines()}
    db = sqlite3.connect(root / ".opsctl" / "opsctl.db")
    try:
        named = {b for (b,) in db.execute("SELECT base FROM exp_queue UNION SELECT base FROM experiments")}
    finally:
        db.close()
    assert refs <= named


def assert_cache_intact(root: Path) -> None:
    """Every object in the project's DVC cache holds what its name (its md5) says."""
    import hashlib

    objects = [p for p in (root / ".dvc" / "cache" / "files" / "md5").rglob("*") if p.is_file()]
    assert objects
    for obj in objects:
        if obj.name.endswith(".dir"):
            json.loads(obj.read_text())
            continue
        assert hashlib.md5(obj.read_bytes()).hexdigest() == obj.parent.name + obj.name, f"corrupted: {obj}"


def exp_children(root: Path) -> list[int]:
    """Live `opsctl.cli.exp_child` processes of this project: its zygote and the experiments forked from it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"opsctl.cli.exp_child" in cmdline and os.fsencode(root) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(what, timeout: float = 60.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {getattr(what, '__name__', what)}")


def start_opsctl(root: Path, *args: str, new_session: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "opsctl", *args],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"opsctl did not end in {timeout} s\n{out}\n{err}") from None
    return proc.returncode, out, err


def group_runs(root: Path, group: str) -> list[dict]:
    shown = exp_json(root, "show", group)
    assert isinstance(shown, dict)
    return shown["experiments"]


def run_detail(root: Path, run_id: str) -> dict:
    result = opsctl_inprocess("runs", "show", run_id, "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def outcomes(root: Path, run_ids, stage: str) -> list[str]:
    return sorted(next(s["outcome"] for s in run_detail(root, r)["stages"] if s["name"] == stage) for r in run_ids)


# -- 1. a sweep ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One project after `exp run -S train.lr=1,2,3 -S train.depth=1,2 -j 2 --name g`, run from a
    work tree with an uncommitted change (prep.n 3 -> 4): (root, outside, result, before, head)."""
    parent = tmp_path_factory.mktemp("swept")
    root = make_project(parent / "p", parent / "outside")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("n: 3", "n: 4"))
    before = {
        "status": git(root, "status", "--porcelain"),
        "params": params.read_bytes(),
        "refs": git(root, "for-each-ref", "refs/heads"),
    }
    head = git(root, "rev-parse", "HEAD").strip()
    result = opsctl_inprocess(
        "exp", "run", "-S", "train.lr=1,2,3", "-S", "train.depth=1,2", "-j", "2", "--name", "g", cwd=root
    )
    return root, parent / "outside", result, before, head


def test_a_sweep_runs_every_combination_once_sharing_prep_and_leaves_the_work_tree_alone(swept):
    root, outside, result, before, _head = swept
    assert result.returncode == 0, result.stderr
    lines = counted(outside)
    assert lines.count("prep") == 1, lines  # the shared stage ran once for six experiments
    assert sorted(ln for ln in lines if ln.startswith("train")) == sorted(
        f"train {c['train.lr']} {c['train.depth']}" for c in COMBOS
    )
    # the user's work tree: as it was, no dvc.lock made, no output checked out
    assert git(root, "status", "--porcelain") == before["status"]
    assert (root / "params.yaml").read_bytes() == before["params"]
    assert not (root / "dvc.lock").exists() and not (root / "model").exists() and not (root / "data").exists()
    assert git(root, "for-each-ref", "refs/heads") == before["refs"]
    assert_no_leftovers(root)
    assert exp_children(root) == []
    assert queue(root) == []


def test_a_sweep_is_recorded_as_a_group_of_runs_best_first(swept):
    root, _outside, _result, _before, _head = swept
    shown = exp_json(root, "show", "g")
    assert isinstance(shown, dict)
    exps = shown["experiments"]
    assert len(exps) == 6
    assert sorted(sorted(e["params"].items()) for e in exps) == sorted(sorted(c.items()) for c in COMBOS)
    assert all(e["status"] == "succeeded" for e in exps)
    assert [e["metrics"]["score"] for e in exps] == [32, 31, 22, 21, 12, 11]  # best first by the first metric
    for e in exps:
        assert e["metrics"]["score"] == e["params"]["train.lr"] * 10 + e["params"]["train.depth"]
    assert shown["sort"] == "metrics.score"
    assert sorted(shown["varying"]) == ["train.depth", "train.lr"]
    lowest = exp_json(root, "show", "g", "--sort", "+metrics.score")
    assert isinstance(lowest, dict)
    assert [e["metrics"]["score"] for e in lowest["experiments"]] == [11, 12, 21, 22, 31, 32]
    # one experiment commit per run, holding its params (and the uncommitted prep.n the sweep started from)
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/opsctl/exps").split()
    assert sorted(refs) == sorted(f"refs/opsctl/exps/{e['run']}" for e in exps)
    for e in exps:
        params = yaml.safe_load(git(root, "show", f"refs/opsctl/exps/{e['run']}:params.yaml"))
        assert params == {
            "prep": {"n": 4},
            "train": {"lr": e["params"]["train.lr"], "depth": e["params"]["train.depth"]},
        }
        assert git(root, "rev-parse", f"refs/opsctl/exps/{e['run']}").strip() == e["commit"]
    # they are runs too
    listed = opsctl_inprocess("runs", "list", "--json", cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert {e["run"] for e in exps} <= {r["id"] for r in json.loads(listed.stdout)}


def test_zip_pairs_the_values(tmp_path):
    root = make_project(tmp_path / "p", tmp_path / "out")
    args = ["exp", "run", "--queue", "--zip", "-S", "train.lr=1,2,3", "-S", "train.depth=4,5,6", "--name", "z"]
    result = opsctl_inprocess(*args, "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    assert [e["overrides"] for e in queue(root)] == [
        ["train.lr=1", "train.depth=4"],
        ["train.lr=2", "train.depth=5"],
        ["train.lr=3", "train.depth=6"],
    ]
    grid = opsctl_inprocess(*[a for a in args if a != "--zip"], "--grid", cwd=root)
    assert grid.returncode == 0, grid.stderr
    assert len(queue(root)) == 3 + 9


# -- 3. a failing experiment ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_sweep(tmp_path_factory):
    """A project after `exp run -S train.lr=1,2,3 -j 2 --name f` where train fails for lr 2."""
    parent = tmp_path_factory.mktemp("failed")
    root = make_project(parent / "p", parent / "out", fail_lr=2)
    result = opsctl_inprocess("exp", "run", "-S", "train.lr=1,2,3", "-j", "2", "--name", "f", cwd=root)
    return root, parent / "out", result


def test_one_failing_experiment_lets_the_others_finish_and_the_sweep_exits_5(failed_sweep):
    root, outside, result = failed_sweep
    assert result.returncode == 5, result.stderr
    assert "1 of 3 experiments failed" in result.stderr
    assert "f-2" in result.stderr and "train.lr=2" in result.stderr  # the failed one, named
    exps = {e["params"]["train.lr"]: e for e in group_runs(root, "f")}
    assert {lr: e["status"] for lr, e in exps.items()} == {1: "succeeded", 2: "failed", 3: "succeeded"}
    assert exps[3]["metrics"]["score"] == 31 and exps[1]["metrics"]["score"] == 11
    assert counted(outside).count("prep") == 1
    assert_no_leftovers(root)
    assert queue(root) == []  # a failed experiment is an outcome, not something to retry


def test_applying_a_failed_experiment_is_refused_and_writes_nothing(failed_sweep):
    """It has no complete outputs (train wrote its model, then failed): nothing half-applied."""
    root = failed_sweep[0]
    failed = next(e for e in group_runs(root, "f") if e["status"] == "failed")
    before = tree(root)
    applied = opsctl_inprocess("exp", "apply", failed["run"], cwd=root)
    assert applied.returncode == 2, applied.stderr
    assert "failed" in _one_line(applied.stderr)
    assert tree(root) == before


def test_no_experiment_commits_a_dvc_output_into_git(failed_sweep):
    """The failed train wrote model/m.txt without DVC ignoring it: the experiment's commit (what
    `exp branch` puts on a branch) must still not carry a pipeline output as a Git file."""
    root = failed_sweep[0]
    runs = group_runs(root, "f")
    for e in runs:
        ref = f"refs/opsctl/exps/{e['run']}"
        if e["status"] != "succeeded":  # a failed experiment is not kept as a commit at all
            assert git(root, "for-each-ref", ref) == ""
            continue
        files = git(root, "ls-tree", "-r", "--name-only", ref).split()
        assert "model/m.txt" not in files and "data/prep.txt" not in files, (e["status"], files)
    assert {e["status"] for e in runs} == {"succeeded", "failed"}
    branch = opsctl_inprocess(
        "exp", "branch", next(e["run"] for e in runs if e["status"] == "failed"), "nope", cwd=root
    )
    assert branch.returncode == 2 and "failed" in _one_line(branch.stderr)


# -- 4. two sweeps at once -----------------------------------------------------------------------


def test_two_sweeps_at_once_share_prep_and_corrupt_nothing(tmp_path):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    one = start_opsctl(root, "exp", "run", "-S", "train.lr=1,2", "-j", "2", "--name", "s1")
    two = start_opsctl(root, "exp", "run", "-S", "train.lr=3,4", "-j", "2", "--name", "s2")
    (code1, _o1, err1), (code2, _o2, err2) = finish(one), finish(two)
    assert code1 == 0, err1
    assert code2 == 0, err2
    assert counted(outside).count("prep") == 1, counted(outside)
    picked = {}
    for group, lrs in (("s1", (1, 2)), ("s2", (3, 4))):
        exps = group_runs(root, group)
        assert sorted(e["params"]["train.lr"] for e in exps) == list(lrs)
        for e in exps:
            assert e["status"] == "succeeded"
            assert e["metrics"]["score"] == e["params"]["train.lr"] * 10 + 1
        picked[group] = exps[0]
    assert_no_leftovers(root)
    for group in ("s1", "s2"):
        e = picked[group]
        applied = opsctl_inprocess("exp", "apply", e["run"], "--force", cwd=root)
        assert applied.returncode == 0, applied.stderr
        lr = e["params"]["train.lr"]
        assert (root / "model" / "m.txt").read_text() == f"lr={lr} depth=1 n=3\n"
        assert json.loads((root / "metrics.json").read_text())["score"] == lr * 10 + 1
        status = dvc(root, "status")
        assert "Data and pipelines are up to date" in status.stdout, status.stdout + status.stderr
    assert_cache_intact(root)


def test_two_queue_runners_at_once_run_each_entry_once(tmp_path):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    queued = opsctl_inprocess("exp", "run", "--queue", "-S", "train.lr=1,2,3,4", "--name", "two", cwd=root)
    assert queued.returncode == 0, queued.stderr
    one = start_opsctl(root, "exp", "queue", "start", "-j", "1")
    two = start_opsctl(root, "exp", "queue", "start", "-j", "1")
    (code1, _o1, err1), (code2, _o2, err2) = finish(one), finish(two)
    assert code1 == 0, err1
    assert code2 == 0, err2
    exps = group_runs(root, "two")
    assert sorted(e["params"]["train.lr"] for e in exps) == [1, 2, 3, 4]  # none twice, none missed
    assert all(e["status"] == "succeeded" for e in exps)
    lines = counted(outside)
    assert lines.count("prep") == 1 and sorted(ln for ln in lines if ln != "prep") == [
        f"train {lr} 1" for lr in (1, 2, 3, 4)
    ]
    assert queue(root) == []
    assert_no_leftovers(root)


# -- 5, 6. Ctrl-C, SIGTERM, SIGKILL ------------------------------------------------------------------


def _running(root: Path, n: int = 1):
    def running() -> list[dict]:
        entries = [e for e in queue(root) if e["status"] == "running" and e["run"]]
        return entries if len(entries) >= n else []

    return running


@pytest.mark.parametrize(
    "how, held",
    [
        ("SIGINT to the process group", "train"),
        ("SIGTERM to the runner", "train"),
        ("SIGINT to the process group", "prep"),  # one experiment runs the shared prep, the other waits for it
    ],
)
def test_interrupting_a_sweep_puts_its_experiments_back_in_the_queue(tmp_path, how, held):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    hold = outside / ("hold" if held == "train" else "hold-prep")
    hold.touch()
    proc = start_opsctl(root, "exp", "run", "-S", "train.lr=1,2", "-j", "2", "--name", "i", new_session=True)
    try:
        wait_for(_running(root, 2))
        if held == "train":
            wait_for(lambda: sum(ln.startswith("train") for ln in counted(outside)) >= 2)  # both in train, held
        else:
            wait_for(lambda: "prep" in counted(outside))
        assert len(exp_children(root)) == 3  # the zygote and its two experiments (what the check below finds gone)
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        code, _out, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, err
    assert err.count("Traceback") == 0, err
    assert exp_children(root) == []
    assert work_trees(root) == [f"worktree {root}"]
    base = root / ".dvc" / "tmp" / "opsctl-exps"
    assert not base.exists() or list(base.iterdir()) == []
    entries = queue(root)
    assert sorted(e["overrides"][0] for e in entries) == ["train.lr=1", "train.lr=2"]
    assert all(e["status"] == "queued" for e in entries), entries
    # they were not recorded as finished experiments
    assert all(e["status"] != "succeeded" for e in group_runs(root, "i"))

    hold.unlink()
    result = opsctl_inprocess("exp", "queue", "start", "-j", "2", cwd=root)
    assert result.returncode == 0, result.stderr
    done = [e for e in group_runs(root, "i") if e["status"] == "succeeded"]
    assert sorted(e["params"]["train.lr"] for e in done) == [1, 2]
    assert queue(root) == []
    assert_no_leftovers(root)


def test_a_killed_queue_runner_stops_its_experiments_and_they_run_again(tmp_path):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    queued = opsctl_inprocess("exp", "run", "--queue", "-S", "train.lr=1,2", "--name", "k", cwd=root)
    assert queued.returncode == 0, queued.stderr
    (outside / "hold").touch()
    proc = start_opsctl(root, "exp", "queue", "start", "-j", "2", new_session=True)
    try:
        running = wait_for(_running(root, 2))
        wait_for(lambda: sum(ln.startswith("train") for ln in counted(outside)) >= 2)
        assert len(exp_children(root)) == 3  # the zygote and its two experiments (what the check below finds gone)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        # its experiment processes notice their runner is gone and stop by themselves
        wait_for(lambda: exp_children(root) == [], timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    entries = queue(root)
    assert sorted(e["overrides"] for e in entries) == [["train.lr=1"], ["train.lr=2"]]
    assert all(e["status"] == "queued" for e in entries), entries
    for entry in running:
        assert run_detail(root, entry["run"])["status"] == "interrupted"

    (outside / "hold").unlink()
    result = opsctl_inprocess("exp", "queue", "start", cwd=root)
    assert result.returncode == 0, result.stderr
    done = [e for e in group_runs(root, "k") if e["status"] == "succeeded"]
    assert sorted(e["params"]["train.lr"] for e in done) == [1, 2]
    assert queue(root) == []
    assert_no_leftovers(root)


# -- 7. the queue ----------------------------------------------------------------------------------


def test_the_queue_holds_lists_removes_and_clears(tmp_path):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    result = opsctl_inprocess("exp", "run", "--queue", "-S", "train.lr=1,2,3", "--name", "q", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["group"] == "q" and len(report["queued"]) == 3
    assert counted(outside) == []  # nothing ran
    entries = queue(root)
    assert [(e["name"], e["overrides"], e["status"]) for e in entries] == [
        ("q-1", ["train.lr=1"], "queued"),
        ("q-2", ["train.lr=2"], "queued"),
        ("q-3", ["train.lr=3"], "queued"),
    ]
    first = entries[0]["id"]
    assert opsctl_inprocess("exp", "queue", "remove", str(first), cwd=root).returncode == 0
    assert [e["name"] for e in queue(root)] == ["q-2", "q-3"]
    unknown = opsctl_inprocess("exp", "queue", "remove", "99999", cwd=root)
    assert unknown.returncode == 2
    assert "99999" in unknown.stderr
    assert [e["name"] for e in queue(root)] == ["q-2", "q-3"]
    cleared = opsctl_inprocess("exp", "queue", "clear", cwd=root)
    assert cleared.returncode == 0, cleared.stderr
    assert queue(root) == []
    assert_no_leftovers(root)  # the dropped entries' snapshot too
    assert counted(outside) == []


def test_the_queue_takes_entries_added_while_it_runs(tmp_path):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    assert opsctl_inprocess("exp", "run", "--queue", "-S", "train.lr=1", "--name", "a", cwd=root).returncode == 0
    (outside / "hold").touch()
    proc = start_opsctl(root, "exp", "queue", "start", "-j", "2")
    try:
        wait_for(_running(root, 1))
        later = opsctl_inprocess("exp", "run", "--queue", "-S", "train.lr=2", "--name", "b", cwd=root)
        assert later.returncode == 0, later.stderr
        wait_for(lambda: sum(ln.startswith("train") for ln in counted(outside)) >= 2)  # b began, a still held
        (outside / "hold").unlink()
        code, _out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert [e["status"] for e in group_runs(root, "a")] == ["succeeded"]
    assert [e["status"] for e in group_runs(root, "b")] == ["succeeded"]
    assert queue(root) == []


# -- 8. bad input ---------------------------------------------------------------------------------


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2, stderr  # the error, and maybe a hint
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, says",
    [
        (["-S", "train.nope=1,2"], "train.nope"),
        (["-S", "train.lr=range(100000000)"], "train.lr"),
        (["--grid", "--zip", "-S", "train.lr=1,2"], "--zip"),
        (["-S", "train.lr=1,2", "--executor", "nosuchexecutor"], "nosuchexecutor"),
        (["-S", "train.lr=1,2", "--name", "bad name!"], "--name"),
        (["-S", "train.lr=1,2", "-j", "0"], "-j"),
        (["-S", "train.lr=1,2", "--sort", "started"], "--sort"),
    ],
)
def test_a_bad_sweep_is_refused_before_anything_is_queued(tmp_path, args, says):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    result = opsctl_inprocess("exp", "run", *args, cwd=root)
    assert result.returncode == 2, result.stderr
    assert says in _one_line(result.stderr)
    assert queue(root) == []
    assert counted(outside) == []
    assert git(root, "for-each-ref", "refs/opsctl") == ""


def test_an_engine_that_does_not_answer_is_exit_4_and_leaves_nothing_queued(tmp_path):
    """--executor docker with no engine at DOCKER_HOST: one error line (and its hint), exit 4;
    the experiments it queued to run now are taken off the queue, not left for a later runner."""
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    (root / "opsctl.yaml").write_text(
        "project: exps\nexecutor: local\nimages: {b: {ref: 'busybox:latest'}}\nstages: {default: {image: b}}\n"
    )
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = opsctl_inprocess("exp", "run", "-S", "train.lr=1,2", "--executor", "docker", cwd=root, env=env)
    assert result.returncode == 4, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not reachable" in errors[0] and "Traceback" not in result.stderr
    assert "2 experiments not started were taken off the queue" in result.stderr
    assert queue(root) == []
    assert counted(outside) == []
    assert git(root, "for-each-ref", "refs/opsctl") == ""  # its snapshot went with its entries


def test_bad_names_for_show_apply_and_branch(tmp_path):
    root = make_project(tmp_path / "p", tmp_path / "out")
    nothing = opsctl_inprocess("exp", "show", cwd=root)  # no experiment yet: said, not an error
    assert nothing.returncode == 0 and "No experiments yet" in nothing.stderr + nothing.stdout
    empty = opsctl_inprocess("exp", "queue", "start", cwd=root)
    assert empty.returncode == 0 and "nothing to run" in empty.stderr + empty.stdout
    missing = opsctl_inprocess("exp", "show", "nosuchgroup", cwd=root)
    assert missing.returncode == 2 and "nosuchgroup" in _one_line(missing.stderr)
    ran = opsctl_inprocess("run", "--json", cwd=root)  # a plain run: not an experiment
    assert ran.returncode == 0, ran.stderr
    plain = json.loads(ran.stdout)["run_id"]
    not_exp = opsctl_inprocess("exp", "apply", plain, cwd=root)
    assert not_exp.returncode == 2 and "not an experiment" in _one_line(not_exp.stderr)
    not_exp = opsctl_inprocess("exp", "branch", plain, "b", cwd=root)
    assert not_exp.returncode == 2 and "not an experiment" in _one_line(not_exp.stderr)
    unknown = opsctl_inprocess("exp", "apply", "ffffffffffff", cwd=root)
    assert unknown.returncode == 2 and "ffffffffffff" in _one_line(unknown.stderr)
    assert opsctl_inprocess("exp", "queue", "remove", "1", cwd=root).returncode == 2
    assert git(root, "branch", "--list", "b") == ""


# -- 9. exp apply ----------------------------------------------------------------------------------


def _copy(swept, tmp_path: Path) -> tuple[Path, dict, str]:
    root = tmp_path / "p"
    shutil.copytree(swept[0], root, symlinks=True)
    best = group_runs(root, "g")[0]
    lock = git(root, "show", f"refs/opsctl/exps/{best['run']}:dvc.lock")
    return root, best, lock


@pytest.fixture
def applied_copy(swept, tmp_path):
    """A copy of the swept project (its store, cache and refs) with its uncommitted params edit
    undone (a clean work tree), the best experiment, and that experiment's dvc.lock."""
    root, best, lock = _copy(swept, tmp_path)
    git(root, "checkout", "--", "params.yaml")
    return root, best, lock


def _md5_of(lock_text: str, path: str) -> str:
    for stage in yaml.safe_load(lock_text)["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise AssertionError(f"{path} not in dvc.lock")


def _cache_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def test_apply_brings_params_lock_and_outputs_and_dvc_agrees(applied_copy):
    root, best, lock = applied_copy
    assert best["params"] == {"train.lr": 3, "train.depth": 2}
    result = opsctl_inprocess("exp", "apply", best["run"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((root / "params.yaml").read_text()) == {"prep": {"n": 4}, "train": {"lr": 3, "depth": 2}}
    assert (root / "dvc.lock").read_text() == lock
    assert (root / "model" / "m.txt").read_text() == "lr=3 depth=2 n=4\n"
    assert (root / "data" / "prep.txt").read_text() == "n=4\n"
    assert json.loads((root / "metrics.json").read_text())["score"] == 32
    status = dvc(root, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout + status.stderr


def test_apply_right_after_a_sweep_from_uncommitted_params_takes_the_experiment(swept, tmp_path):
    """The sweep started from an uncommitted params.yaml; the experiment's params.yaml contains
    that edit, so applying it loses nothing of the user's and must not be refused."""
    root, best, lock = _copy(swept, tmp_path)
    assert git(root, "status", "--porcelain") == " M params.yaml\n"
    result = opsctl_inprocess("exp", "apply", best["run"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((root / "params.yaml").read_text()) == {"prep": {"n": 4}, "train": {"lr": 3, "depth": 2}}
    assert (root / "dvc.lock").read_text() == lock
    status = dvc(root, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout + status.stderr


def test_apply_refuses_a_dirty_params_file_and_force_overwrites_it(applied_copy):
    root, best, _lock = applied_copy
    params = root / "params.yaml"
    params.write_text(params.read_text() + "# my own edit\n")
    edited = params.read_bytes()
    refused = opsctl_inprocess("exp", "apply", best["run"], cwd=root)
    assert refused.returncode == 2, refused.stderr
    assert "params.yaml" in _one_line(refused.stderr)
    assert params.read_bytes() == edited
    assert not (root / "dvc.lock").exists() and not (root / "model").exists()

    forced = opsctl_inprocess("exp", "apply", best["run"], "--force", cwd=root)
    assert forced.returncode == 0, forced.stderr
    assert yaml.safe_load(params.read_text())["train"] == {"lr": 3, "depth": 2}
    assert (root / "model" / "m.txt").read_text() == "lr=3 depth=2 n=4\n"


def test_apply_refuses_to_overwrite_an_output_edited_by_hand(applied_copy):
    root, best, _lock = applied_copy
    other = next(e for e in group_runs(root, "g") if e["params"] == {"train.lr": 1, "train.depth": 1})
    assert opsctl_inprocess("exp", "apply", other["run"], cwd=root).returncode == 0
    git(root, "add", "params.yaml", "dvc.lock", "metrics.json")
    git(root, "commit", "-qm", "keep lr=1 depth=1")
    model = root / "model" / "m.txt"
    model.chmod(0o644)
    model.unlink()  # (a checked-out output may be a link into the cache: replace it, never write through)
    model.write_text("my own model\n")
    refused = opsctl_inprocess("exp", "apply", best["run"], cwd=root)
    assert refused.returncode == 2, refused.stderr
    assert "model/m.txt" in _one_line(refused.stderr)
    assert model.read_text() == "my own model\n"
    assert yaml.safe_load((root / "params.yaml").read_text())["train"] == {"lr": 1, "depth": 1}


def test_apply_fetches_outputs_missing_from_the_cache_from_the_remote(applied_copy, tmp_path):
    root, best, lock = applied_copy
    dvc(root, "remote", "add", "--local", "-d", "store", str(tmp_path / "remote"))
    # the experiment's outputs reach the remote as a user's would: applied, then pushed
    assert opsctl_inprocess("exp", "apply", best["run"], cwd=root).returncode == 0
    pushed = dvc(root, "push")
    assert "pushed" in pushed.stdout, pushed.stdout
    git(root, "checkout", "--", "params.yaml")
    for name in ("dvc.lock", "metrics.json"):
        (root / name).unlink()
    shutil.rmtree(root / "model")
    shutil.rmtree(root / "data")
    obj = _cache_object(root, _md5_of(lock, "model/m.txt"))
    obj.unlink()

    result = opsctl_inprocess("exp", "apply", best["run"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert "fetched" in result.stderr + result.stdout
    assert obj.is_file()
    assert (root / "model" / "m.txt").read_text() == "lr=3 depth=2 n=4\n"
    assert (root / "dvc.lock").read_text() == lock
    status = dvc(root, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout + status.stderr


def test_apply_without_the_outputs_anywhere_fails_and_changes_nothing(applied_copy):
    root, best, lock = applied_copy
    _cache_object(root, _md5_of(lock, "model/m.txt")).unlink()
    params = (root / "params.yaml").read_bytes()
    result = opsctl_inprocess("exp", "apply", best["run"], cwd=root)
    assert result.returncode == 1, result.stderr
    line = _one_line(result.stderr)
    assert "not in the DVC cache" in line and "model/m.txt" in line
    assert (root / "params.yaml").read_bytes() == params
    assert not (root / "dvc.lock").exists() and not (root / "model").exists()


# -- 10. exp branch ----------------------------------------------------------------------------------


def test_branch_commits_the_experiment_on_the_commit_it_ran_from(swept, applied_copy):
    head = swept[4]
    root, best, _lock = applied_copy
    before = git(root, "status", "--porcelain")
    result = opsctl_inprocess("exp", "branch", best["run"], "b1", cwd=root)
    assert result.returncode == 0, result.stderr
    tip = git(root, "rev-parse", "refs/heads/b1").strip()
    assert tip == best["commit"]
    # its parent is the commit the sweep ran from (the uncommitted work it started from is in it)
    assert git(root, "rev-list", "--parents", "-n", "1", "b1").split()[1:] == [head]
    assert yaml.safe_load(git(root, "show", "b1:params.yaml")) == {"prep": {"n": 4}, "train": {"lr": 3, "depth": 2}}
    assert "model/m.txt" in git(root, "show", "b1:dvc.lock")
    again = opsctl_inprocess("exp", "branch", best["run"], "b1", cwd=root)
    assert again.returncode == 1, again.stderr  # a GitError
    assert "b1" in _one_line(again.stderr)
    assert git(root, "rev-parse", "refs/heads/b1").strip() == tip
    assert git(root, "status", "--porcelain") == before  # the user's files untouched
