"""The typer-free way in for `opsctl runs list` and `opsctl runs show` (cli/fastpath.py):
same output and exit code as the typer commands, the same options, anything unusual
left to typer, and none of typer, rich, YAML or dataclasses imported on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from tests.conftest import git_dvc_project, run_opsctl

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
