"""`opsctl run` with the local executor (host processes), real Git and real DVC:
planning, DVC compatibility, run-cache restores, -S, failures and bad input.
The same engine in Docker is covered in tests/e2e/test_run_docker.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import git_dvc_project, opsctl_inprocess, run, tree


def make_project(root: Path, stages: dict, params: dict | None = None, files: dict | None = None) -> Path:
    """A Git + DVC project with ``stages`` in dvc.yaml, committed."""
    root.mkdir()
    git_dvc_project(root)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    if params is not None:
        (root / "params.yaml").write_text(yaml.safe_dump(params))
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "init"], cwd=root)
    return root


def opsctl_run(root: Path, *args: str, code: int = 0) -> dict:
    result = opsctl_inprocess("run", *args, "--json", cwd=root)
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def statuses(report: dict) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in report["stages"]}


def dvc_is_clean(root: Path) -> None:
    """DVC itself agrees: nothing changed, and `dvc repro` has nothing to do."""
    status = run(["dvc", "status"], cwd=root)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    lock = (root / "dvc.lock").read_bytes()
    repro = run(["dvc", "repro"], cwd=root)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert (root / "dvc.lock").read_bytes() == lock


CHAIN = {
    "first": {"cmd": "echo one > a.txt", "outs": ["a.txt"]},
    "second": {"cmd": "cat a.txt > b.txt && echo two >> b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
    "side": {"cmd": "echo side > side.txt", "outs": ["side.txt"]},
}


def test_ml_pipeline_runs_on_the_host_and_dvc_agrees(ml_project):
    report = opsctl_run(ml_project, "--executor", "local")
    assert report["status"] == "succeeded"
    assert statuses(report) == {"prepare": "ran", "featurize": "ran", "train": "ran", "evaluate": "ran"}
    assert report["executor"] == "local"
    for stage in report["stages"]:
        log = Path(stage["log"])
        assert log.is_file() and log.is_relative_to(ml_project / ".opsctl" / "runs" / report["run_id"])
    assert "accuracy=" in Path(report["stages"][-1]["log"]).read_text()
    dvc_is_clean(ml_project)
    lock = yaml.safe_load((ml_project / "opsctl.lock").read_text())
    assert lock["stages"]["train"] == {"executor": "local"}
    # Nothing to do the second time.
    again = opsctl_run(ml_project, "--executor", "local")
    assert again["status"] == "up to date" and again["stages"] == []


def test_dry_run_plans_and_changes_nothing(ml_project):
    before = tree(ml_project)
    result = opsctl_inprocess("run", "--dry-run", "--executor", "local", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    stages_table, checks_table = result.stdout.split("data checks\tdataset\n")
    lines = [line.split("\t") for line in stages_table.splitlines()]
    assert lines[0] == ["stage", "action", "why"]
    assert [(row[0], row[1]) for row in lines[1:]] == [
        ("prepare", "run"),
        ("featurize", "run"),
        ("train", "run"),
        ("evaluate", "run"),
    ]
    # The template's data checks: the raw data before prepare, the features after featurize.
    assert checks_table.splitlines() == [
        "before prepare\tdata/raw/churn.csv",
        "after featurize\tdata/features/train.csv",
        "after featurize\tdata/features/test.csv",
    ]
    assert "never run" in lines[1][2] and "upstream prepare is stale" in lines[2][2]
    assert "Nothing was changed" in result.stderr
    assert tree(ml_project) == before


def test_named_stage_runs_with_its_stale_upstream_only(tmp_path):
    root = make_project(tmp_path / "p", CHAIN)
    report = opsctl_run(root, "second", "--executor", "local")
    assert statuses(report) == {"first": "ran", "second": "ran"}
    assert (root / "b.txt").read_text() == "one\ntwo\n"
    assert not (root / "side.txt").exists()


def test_unknown_stage_suggests_close_names(tmp_path):
    root = make_project(tmp_path / "p", CHAIN)
    result = opsctl_inprocess("run", "secnd", cwd=root)
    assert result.returncode == 2
    assert "no stage named 'secnd'" in result.stderr and "did you mean second?" in result.stderr
    assert "Traceback" not in result.stderr


def test_set_param_reruns_then_restores_from_run_cache(tmp_path):
    stages = {"use": {"cmd": "cat params.yaml > used.txt", "params": ["x"], "outs": ["used.txt"]}}
    root = make_project(tmp_path / "p", stages, params={"x": 1})
    assert statuses(opsctl_run(root, "--executor", "local")) == {"use": "ran"}
    report = opsctl_run(root, "-S", "x=2", "--executor", "local")
    assert statuses(report) == {"use": "ran"}
    assert yaml.safe_load((root / "params.yaml").read_text()) == {"x": 2}
    assert "x: 2" in (root / "used.txt").read_text()
    # Back to x=1: the same command, deps and params ran before, so DVC's run cache has it.
    report = opsctl_run(root, "-S", "x=1", "--executor", "local")
    assert report["stages"][0]["status"] == "cached"
    assert report["stages"][0]["detail"] == "restored from the run cache"
    assert "x: 1" in (root / "used.txt").read_text()
    dvc_is_clean(root)


def test_set_param_dry_run_shows_the_plan_and_restores_the_file(tmp_path):
    stages = {"use": {"cmd": "cat params.yaml > used.txt", "params": ["train.n"], "outs": ["used.txt"]}}
    root = make_project(tmp_path / "p", stages, params={"train": {"n": 1}})
    opsctl_run(root, "--executor", "local")
    original = (root / "params.yaml").read_bytes()
    result = opsctl_inprocess("run", "--dry-run", "-S", "train.n=5", "--json", "--executor", "local", cwd=root)
    assert result.returncode == 0, result.stderr
    (step,) = json.loads(result.stdout)["stages"]
    assert step["action"] == "run" and step["reasons"] == ["param train.n modified"]
    assert (root / "params.yaml").read_bytes() == original


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_malformed_set_param_is_a_usage_error(tmp_path, bad):
    root = make_project(tmp_path / "p", CHAIN)
    result = opsctl_inprocess("run", "-S", bad, cwd=root)
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr


def test_failure_stops_dependants_keeps_finished_stages_and_shows_the_log_tail(tmp_path):
    stages = {
        "ok": {"cmd": "echo ok > ok.txt", "outs": ["ok.txt"]},
        "bad": {"cmd": "for i in $(seq 1 30); do echo line $i; done; exit 3", "outs": ["bad.txt"]},
        "after": {"cmd": "cp bad.txt after.txt", "deps": ["bad.txt"], "outs": ["after.txt"]},
    }
    root = make_project(tmp_path / "p", stages)
    result = opsctl_inprocess("run", "--executor", "local", "-j", "1", cwd=root)
    assert result.returncode == 5
    assert "stages bad failed (exit code 3)" in result.stderr or "stage bad failed (exit code 3)" in result.stderr
    # The last 20 lines of the failed stage's log, not more.
    assert "line 30" in result.stderr and "line 11" in result.stderr and "line 10\n" not in result.stderr
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"ok"}


def test_keep_going_lets_independent_stages_finish(tmp_path):
    stages = {
        "bad": {"cmd": "exit 1", "outs": ["bad.txt"]},
        "later": {"cmd": "echo later > later.txt", "outs": ["later.txt"]},
    }
    root = make_project(tmp_path / "p", stages)
    stopped = opsctl_run(root, "--executor", "local", "-j", "1", code=5)
    assert statuses(stopped) == {"bad": "failed", "later": "skipped"}
    going = opsctl_run(root, "--executor", "local", "-j", "1", "--keep-going", code=5)
    assert statuses(going) == {"bad": "failed", "later": "ran"}
    assert (root / "later.txt").read_text() == "later\n"


def test_stage_that_writes_no_declared_output_fails_without_a_lock_entry(tmp_path):
    root = make_project(tmp_path / "p", {"lazy": {"cmd": "echo forgot", "outs": ["result.txt"]}})
    report = opsctl_run(root, "--executor", "local", code=5)
    assert report["stages"][0]["detail"] == "exited 0 but did not write its declared output: result.txt"
    assert not (root / "dvc.lock").exists()


def test_parallel_stages_all_reach_dvc_lock(tmp_path):
    """Sixteen stages finishing close together: every lock entry written, none lost or torn."""
    stages = {f"s{i:02d}": {"cmd": f"echo {i} > out/s{i:02d}.txt", "outs": [f"out/s{i:02d}.txt"]} for i in range(16)}
    root = make_project(tmp_path / "p", stages)
    (root / "out").mkdir()
    report = opsctl_run(root, "--executor", "local", "-j", "8")
    assert set(statuses(report).values()) == {"ran"}
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == set(stages)
    dvc_is_clean(root)


def test_stage_below_an_unchanged_rerun_is_not_run_again(tmp_path):
    """As in dvc repro: when an upstream stage re-runs but writes the same output, the
    stage below finds nothing changed."""
    stages = {
        "copy": {"cmd": "cut -c1-3 src.txt > head.txt", "deps": ["src.txt"], "outs": ["head.txt"]},
        "use": {"cmd": "cat head.txt > used.txt", "deps": ["head.txt"], "outs": ["used.txt"]},
    }
    root = make_project(tmp_path / "p", stages, files={"src.txt": "abcdef\n"})
    opsctl_run(root, "--executor", "local")
    (root / "src.txt").write_text("abcxyz\n")  # same first three characters
    report = opsctl_run(root, "--executor", "local")
    assert statuses(report) == {"copy": "ran", "use": "cached"}
    assert report["stages"][1]["detail"] == "up to date once upstream finished"
    dvc_is_clean(root)


def test_logs_are_prefixed_off_a_terminal(tmp_path):
    root = make_project(tmp_path / "p", CHAIN)
    result = opsctl_inprocess("run", "--executor", "local", "-j", "1", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "first  | " not in result.stdout  # first writes to a file, not the log
    side = make_project(tmp_path / "q", {"talk": {"cmd": "echo hello; echo world", "outs": []}})
    result = opsctl_inprocess("run", "--executor", "local", cwd=side)
    assert result.stdout.splitlines() == ["talk | hello", "talk | world"]
    assert "✓ talk ran" in result.stderr


def test_invalid_dvc_yaml_is_dvcs_error_with_the_line(tmp_path):
    root = make_project(tmp_path / "p", CHAIN)
    (root / "dvc.yaml").write_text("stages:\n  a:\n    cmd: echo\n    outs: [x.txt\n")
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 1
    assert "dvc.yaml" in result.stderr and "line 5" in result.stderr
    assert "Traceback" not in result.stderr
    (root / "dvc.yaml").write_text("stages:\n  a:\n    cmd: echo\n    outz: [x.txt]\n")
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 1
    assert "extra keys not allowed in stages -> a -> outz (line 4)" in result.stderr


def test_cycle_is_refused(tmp_path):
    stages = {
        "a": {"cmd": "cp z.txt x.txt", "deps": ["z.txt"], "outs": ["x.txt"]},
        "b": {"cmd": "cp x.txt y.txt", "deps": ["x.txt"], "outs": ["y.txt"]},
        "c": {"cmd": "cp y.txt z.txt", "deps": ["y.txt"], "outs": ["z.txt"]},
    }
    root = make_project(tmp_path / "p", stages)
    before = tree(root)
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 1
    assert "defined as both a dependency and an output" in result.stderr
    assert tree(root) == before


def test_changed_tracked_data_is_committed_first_as_dvc_repro_does(ml_project):
    opsctl_run(ml_project, "--executor", "local")
    raw = ml_project / "data" / "raw" / "churn.csv"
    last = raw.read_text().splitlines()[-1]
    raw.write_text(raw.read_text() + "C9999," + last.split(",", 1)[1] + "\n")  # a new customer (ids are unique)
    result = opsctl_inprocess("run", "--executor", "local", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert "Committed changed data data/raw/churn.csv.dvc" in result.stderr
    dvc_is_clean(ml_project)


def test_outside_a_project_and_bad_options(tmp_path):
    result = opsctl_inprocess("run", cwd=tmp_path)
    assert result.returncode == 3
    root = make_project(tmp_path / "p", CHAIN)
    assert opsctl_inprocess("run", "--executor", "podman", cwd=root).returncode == 2
    assert opsctl_inprocess("run", "-j", "0", cwd=root).returncode == 2


def test_foreach_stages_and_a_nested_dvc_yaml(tmp_path):
    """Stage names as DVC addresses them (gen@a, sub/dvc.yaml:inner); a nested stage runs in its own wdir."""
    root = make_project(
        tmp_path / "p",
        {"gen": {"foreach": ["a", "b"], "do": {"cmd": "echo ${item} > out-${item}.txt", "outs": ["out-${item}.txt"]}}},
    )
    (root / "sub").mkdir()
    (root / "sub" / "dvc.yaml").write_text(
        yaml.safe_dump(
            {"stages": {"inner": {"cmd": "pwd > where.txt", "deps": ["../out-a.txt"], "outs": ["where.txt"]}}}
        )
    )
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "nested"], cwd=root)
    report = opsctl_run(root, "sub/dvc.yaml:inner", "--executor", "local")
    assert statuses(report) == {"gen@a": "ran", "sub/dvc.yaml:inner": "ran"}
    assert (root / "sub" / "where.txt").read_text().strip() == str(root / "sub")
    assert statuses(opsctl_run(root, "--executor", "local")) == {"gen@b": "ran"}
    dvc_is_clean(root)
