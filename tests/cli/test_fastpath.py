"""The typer-free way in for `opsctl runs list` and `opsctl runs show` (cli/fastpath.py):
same output and exit code as the typer commands, the same options, anything unusual
left to typer, and none of typer, rich, YAML or dataclasses imported on the way. And for
`opsctl status` and `opsctl run` on an up-to-date pipeline (the no-op fast path): what typer
and DVC's full check print, without DVC, Git, Docker or typer; a run with anything to do, or
a project another command holds, goes to typer as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from opsctl.cli.fastpath import (
    COMMANDS,
    DISABLE_ENV,
    GLOBAL_FLAGS,
    parse,
    try_fast_path,
)
from opsctl.cli.main import app, main_with_exit_code
from opsctl.store import ArtifactRecord, NewRun, RunRecord, RunStore, StageRecord
from tests.conftest import git_dvc_project, opsctl_inprocess, run, run_opsctl

RUN_IDS = ["a1b2c3d4e5f6", "a1b2c3d4ffff", "0f0f0f0f0f0f"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A real Git + DVC project (with an opsctl.yaml) and three recorded runs."""
    root = git_dvc_project(tmp_path_factory.mktemp("fastpath"), "fastpath")
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        for n, (run_id, status) in enumerate(zip(RUN_IDS, ["succeeded", "failed", "succeeded"])):
            stages = [
                StageRecord(
                    "train",
                    "ran" if status == "succeeded" else "failed",
                    started=1e9 + n,
                    duration=2.5,
                    cmd="python train.py",
                    exit_code=0 if status == "succeeded" else 1,
                    artifacts=[ArtifactRecord("out", "model.pkl", f"{n:032x}")],
                )
            ]
            store.record_run(
                RunRecord(
                    NewRun(
                        run_id,
                        started=1e9 + 60 * n,
                        user="ana",
                        host="box",
                        git_commit=f"{n:040x}",
                        branch="main",
                        executor="local",
                        jobs=2,
                    ),
                    status=status,
                    finished=1e9 + 60 * n + 3,
                    stages=stages,
                    params={"train.n_estimators": 10 * (n + 1), "train.optimizer": "adam"},
                    metrics={"accuracy": 0.5 + n / 10, "loss": 1.0 - n / 10},
                )
            )
    return root


SAME_ARGS = [
    ["runs", "list"],
    ["runs", "list", "--json"],
    ["runs", "list", "-n", "2", "--json"],
    ["runs", "list", "--limit=1"],
    ["runs", "list", "--status", "failed"],
    ["runs", "list", "--status", "bogus"],
    ["runs", "list", "-n", "0"],
    ["runs", "list", "-w", "params.train.n_estimators>10", "--where", "metrics.loss<0.95", "--json"],
    ["runs", "list", "--sort", "+metrics.accuracy", "--json"],
    ["runs", "list", "--sort", "colour"],
    ["runs", "list", "--where", "nonsense"],
    ["-q", "runs", "list"],
    ["--quiet", "runs", "list", "--status", "interrupted"],
    ["runs", "show", RUN_IDS[2]],
    ["runs", "show", "0f0f", "--json"],
    ["runs", "show", "--json", "0f0f"],
    ["runs", "show", "a1b2"],  # ambiguous
    ["runs", "show", "nope"],
    ["runs", "show", "123456"],
]


@pytest.mark.parametrize("args", SAME_ARGS, ids=" ".join)
def test_fast_path_prints_what_typer_prints(project, args, monkeypatch, capsys):
    monkeypatch.chdir(project)
    fast = try_fast_path(args)
    fast_out = capsys.readouterr()
    slow = main_with_exit_code(args)
    slow_out = capsys.readouterr()
    assert fast is not None, f"{args} should take the fast path"
    assert (fast, fast_out.out, fast_out.err) == (slow, slow_out.out, slow_out.err)


def test_ui_takes_the_fast_path_with_its_refresh():
    assert parse(["ui"]) == (("ui",), {}, {})
    assert parse(["-q", "ui", "--refresh", "0.5"]) == (("ui",), {"refresh": 0.5}, {"quiet": True})
    assert parse(["ui", "--refresh=2"]) == (("ui",), {"refresh": 2.0}, {})


def test_outside_a_project_exit_3_as_typer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert try_fast_path(["runs", "list", "--json"]) == 3
    fast_err = capsys.readouterr().err
    assert main_with_exit_code(["runs", "list", "--json"]) == 3
    assert fast_err == capsys.readouterr().err
    assert fast_err.startswith("error: not an opsctl project")


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--help"],
        ["runs", "list", "-h"],
        ["runs", "list", "-n"],
        ["runs", "list", "-n", "x"],
        ["runs", "list", "-n", "-1"],
        ["runs", "list", "-n5"],
        ["runs", "list", "--limit", "1", "--limit", "2"],
        ["runs", "list", "--json=yes"],
        ["runs", "list", "extra"],
        ["runs", "list", "--colour"],
        ["runs", "list", "--"],
        ["runs", "show"],
        ["runs", "show", "a", "b"],
        ["runs", "show", "-x"],
        ["runs", "compare", "a", "b"],
        ["runs"],
        ["--version"],
        ["--help"],
        ["-q", "--version"],
        ["status", "--verbose"],
        ["status", "x"],
        ["run", "train"],
        ["run", "--force"],
        ["run", "-S", "a=1"],
        ["run", "--dry-run"],
        ["run", "-j", "x"],
        [],
        ["ui", "--help"],
        ["ui", "--refresh", "0.1"],
        ["ui", "--refresh", "nan"],
        ["ui", "--refresh", "x"],
        ["ui", "x"],
    ],
)
def test_anything_unusual_is_left_to_typer(args):
    assert parse(args) is None


def test_known_options_are_the_typer_commands_options():
    """A new option on `runs list` or `runs show` must be taught to the fast path too
    (or the command would ignore it there): this fails until it is."""
    root = typer.main.get_command(app)
    for words, grammar in COMMANDS.items():
        command = root
        for word in words:
            command = command.commands[word]
        flags = {opt for p in command.params if getattr(p, "is_flag", False) for opt in p.opts}
        values = {
            opt
            for p in command.params
            if p.param_type_name == "option" and not getattr(p, "is_flag", False)
            for opt in p.opts
        }
        positionals = tuple(p.name for p in command.params if p.param_type_name == "argument")
        params = {p.name: p for p in command.params}
        repeatable = {n for n, p in params.items() if getattr(p, "multiple", False)}
        integers = {n for n, p in params.items() if p.type.name in ("int", "integer")}
        floats = {n: p.type.min for n, p in params.items() if p.type.name in ("float", "float range")}
        if grammar.partial:  # a subset, each option of the same kind as typer's, no positionals
            known = set(grammar.flags.values()) | set(grammar.values.values())
            assert set(grammar.flags) <= flags and set(grammar.values) <= values, words
            assert grammar.positionals == (), words
            assert set(grammar.repeatable) == repeatable & known, words
            assert set(grammar.integers) == integers & known, words
            assert grammar.floats == {n: m for n, m in floats.items() if n in known}, words
            continue
        assert set(grammar.flags) == flags - {"--help", "-h"}, words
        assert set(grammar.values) == values, words
        assert grammar.positionals == positionals, words
        assert set(grammar.repeatable) == repeatable
        assert set(grammar.integers) == integers
        assert grammar.floats == floats, words
    root_flags = {opt for p in root.params if getattr(p, "is_flag", False) for opt in p.opts}
    assert set(GLOBAL_FLAGS) <= root_flags


IMPORT_PROBE = """
import json, sys
from opsctl.cli.fastpath import try_fast_path
code = try_fast_path({args!r})
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["runs", "list", "--limit", "50", "--json"], ["runs", "show", "0f0f", "--json"]])
def test_fast_path_imports_no_typer_rich_yaml_or_dataclasses(project, args):
    """What bench/runs.py's figure rests on: each of these costs 5-120 ms at start-up."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(args=args)], cwd=project, capture_output=True, text=True
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    assert json.loads(result.stdout)
    loaded = {m.split(".")[0] for m in report["modules"]}
    assert not loaded & {"typer", "click", "rich", "yaml", "dataclasses", "dvc", "git", "docker"}


def test_the_opsctl_command_takes_it_and_can_be_told_not_to(project):
    """Through `python -m opsctl` (what the console script runs): the same JSON either way."""
    fast = run_opsctl("runs", "list", "--json", cwd=project, check=True)
    slow = run_opsctl("runs", "list", "--json", cwd=project, check=True, env={DISABLE_ENV: "1"})
    assert json.loads(fast.stdout) == json.loads(slow.stdout)
    assert [r["id"] for r in json.loads(fast.stdout)] == [RUN_IDS[2], RUN_IDS[1], RUN_IDS[0]]
    probe = (
        "import sys, runpy; sys.argv = ['opsctl', 'runs', 'list', '--json']\n"
        "try:\n    runpy.run_module('opsctl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('typer' in sys.modules, file=sys.stderr)"
    )
    for env, typer_loaded in (({}, "False"), ({DISABLE_ENV: "1"}, "True")):
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, env={**os.environ, **env}
        )
        assert result.stderr.strip().splitlines()[-1] == typer_loaded, result.stderr


# -- `opsctl status` and `opsctl run` on an up-to-date pipeline (the no-op fast path) -------------

UP_TO_DATE_ARGS = [["status"], ["status", "--json"], ["run"], ["run", "--json"], ["-q", "run"]]
NOOP_STAGES = {
    "make": {"cmd": "cp src.txt made.txt", "deps": ["src.txt"], "outs": ["made.txt"]},
    "use": {"cmd": "cat made.txt made.txt > used.txt", "deps": ["made.txt"], "outs": ["used.txt"]},
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """A real Git + DVC project whose two-stage pipeline ran (local executor) and is up to date."""
    from tests.cli.test_run import make_project

    root = make_project(tmp_path_factory.mktemp("noop") / "p", NOOP_STAGES, files={"src.txt": "source\n"})
    (root / "opsctl.yaml").write_text("project: noop\nexecutor: local\n")
    (root / ".gitignore").write_text(".opsctl/\n")
    opsctl_inprocess("run", cwd=root, check=True)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "ran"], cwd=root)
    return root


def recorded(root: Path) -> None:
    """The plan kept for the no-op fast path, made now if it is not there (or no longer holds)."""
    from opsctl.core import plan_cache
    from opsctl.core.pipeline import cached_plan, make_plan
    from opsctl.core.project import open_project

    project = open_project(root)
    if cached_plan(project, [], executor="local", force=False) is None:
        time.sleep(plan_cache.RACY_NS / 1e9 + 0.02)  # past the window in which a new record is refused
        make_plan(project, [], executor=None, force=False)
    stats = plan_cache.Stats()
    assert cached_plan(project, [], executor="local", force=False, stats=stats) is not None, stats.reason


def masked(text: str, args: list[str]) -> str:
    """`run --json` without what differs between two runs (their id and times)."""
    if "run" not in args or "--json" not in args:
        return text
    report = json.loads(text)
    return json.dumps({**report, "run_id": "-", "started": "-", "finished": "-"})


@pytest.mark.parametrize("args", UP_TO_DATE_ARGS, ids=" ".join)
def test_an_up_to_date_pipeline_is_answered_without_typer_as_typer_answers(pipeline, args, monkeypatch, capsys):
    from opsctl.cli.output import out
    from opsctl.core.plan_cache import DISABLE_ENV as NO_PLAN_CACHE

    monkeypatch.setattr(out, "quiet", out.quiet)  # put back after `-q`
    monkeypatch.chdir(pipeline)
    recorded(pipeline)
    capsys.readouterr()
    fast = try_fast_path(args)
    fast_out = capsys.readouterr()
    typer_code = main_with_exit_code(args)
    typer_out = capsys.readouterr()
    monkeypatch.setenv(NO_PLAN_CACHE, "1")  # DVC's full check, as before the fast path
    full_code = main_with_exit_code(args)
    full_out = capsys.readouterr()
    assert fast == 0, fast_out.err
    answers = [(code, masked(o.out, args), o.err) for code, o in ((fast, fast_out), (typer_code, typer_out))]
    assert answers[0] == answers[1] == (full_code, masked(full_out.out, args), full_out.err)
    if args == ["-q", "run"]:
        assert fast_out.out == fast_out.err == ""
    elif "--json" not in args:
        assert "Everything is up to date" in fast_out.err


NOOP_PROBE = """
import json, sys
from opsctl.cli.fastpath import try_fast_path
from opsctl.core import plan_cache
stats = plan_cache.Stats()
load = plan_cache.load
plan_cache.load = lambda *a, **k: load(*a, **{{**k, "stats": stats}})
code = try_fast_path({args!r})
print(json.dumps({{"code": code, "hit": stats.hit, "modules": sorted(sys.modules)}}), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["status", "--json"], ["run", "--json"]], ids=" ".join)
def test_an_up_to_date_pipeline_is_answered_without_dvc_git_docker_or_typer(pipeline, args):
    """What bench/noop.py's figure rests on: none of DVC, GitPython, the docker SDK or typer."""
    recorded(pipeline)
    result = subprocess.run(
        [sys.executable, "-c", NOOP_PROBE.format(args=args)], cwd=pipeline, capture_output=True, text=True
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 0 and report["hit"], result.stderr
    assert json.loads(result.stdout)
    loaded = {m.split(".")[0] for m in report["modules"]}
    assert not loaded & {"typer", "click", "dvc", "dvc_data", "dvc_objects", "git", "docker"}


def test_a_stale_pipeline_is_run_by_typer(pipeline, tmp_path, monkeypatch, capsys):
    """The record says a stage is stale: the typer-free way in declines `opsctl run` (typer runs it)."""
    from opsctl.core.pipeline import cached_plan
    from opsctl.core.project import open_project

    root = shutil.copytree(pipeline, tmp_path / "p", symlinks=True)
    (root / "src.txt").write_text("changed\n")
    recorded(root)
    plan = cached_plan(open_project(root), [], executor="local", force=False)
    assert plan is not None and [s.name for s in plan.to_run] == ["make", "use"]
    monkeypatch.chdir(root)
    assert try_fast_path(["run"]) is None
    assert try_fast_path(["run", "--json"]) is None
    assert (root / "made.txt").read_text() == "source\n"  # nothing ran
    assert try_fast_path(["status"]) == 0  # status answers from the record
    assert "2 of 2 stages stale" in capsys.readouterr().err


def test_run_while_another_process_holds_the_project_is_refused_as_before(pipeline, tmp_path):
    """The record says there is nothing to do, but a DVC or opsctl command holds the project's
    lock: `opsctl run` must not answer "up to date" past it, and is refused exactly as without
    the fast path (after OPSCTL_LOCK_TIMEOUT, exit 1, naming the holder)."""
    from opsctl.core.plan_cache import DISABLE_ENV as NO_PLAN_CACHE
    from tests.cli.test_run_lock import HOLD_LOCK

    root = shutil.copytree(pipeline, tmp_path / "p", symlinks=True)
    recorded(root)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(root / ".dvc" / "tmp" / "lock"), "60"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = {"OPSCTL_LOCK_TIMEOUT": "1"}
        results = [
            opsctl_inprocess("run", cwd=root, env=env),
            opsctl_inprocess("run", "--json", cwd=root, env=env),
            opsctl_inprocess("run", cwd=root, env={**env, NO_PLAN_CACHE: "1"}),
        ]
    finally:
        holder.kill()
        holder.communicate()
    refusal = f"error: another DVC or opsctl command holds this project's lock (waited 1 s): pid {holder.pid} ("
    for result in results:
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.startswith(refusal) and result.stdout == "", result.stderr
    assert results[0].stderr == results[1].stderr == results[2].stderr
    recorded(root)  # once it is gone, the fast path answers again
    assert opsctl_inprocess("run", cwd=root).stderr == "✓ Everything is up to date; nothing to run.\n"
