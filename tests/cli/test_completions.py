"""completions/ is generated from the CLI, is current, and actually completes in bash, zsh and fish."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

COMPLETIONS = REPO / "completions"


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # scripts/setup-machine.sh installs bash, zsh and fish; their absence is a setup bug
        pytest.fail(f"{name} is not installed; run scripts/setup-machine.sh")
    return path


def test_completions_are_up_to_date():
    result = subprocess.run(
        [sys.executable, "scripts/gen_completions.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


BASH_PROBE = r"""
source completions/opsctl.bash
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _opsctl; echo "${COMPREPLY[*]}"; }
t opsctl ""
t opsctl template ""
t opsctl init --template ""
t opsctl -q init --def
t opsctl status --
t opsctl data remote ""
t opsctl data remote add --
"""


def test_bash_completes_commands_options_and_template_names():
    out = subprocess.run([_shell("bash"), "-c", BASH_PROBE], cwd=REPO, capture_output=True, text=True)
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "build",
        "dag",
        "data",
        "doctor",
        "exp",
        "init",
        "lineage",
        "model",
        "monitor",
        "plots",
        "report",
        "run",
        "runs",
        "status",
        "template",
        "ui",
        "worker",
    ]
    assert lines[1] == "list"
    assert lines[2].split() == ["ml-pipeline", "data-pipeline", "minimal"]
    assert lines[3] == "--defaults"
    assert lines[4].split() == ["--json", "--help"]
    assert lines[5].split() == ["add", "default", "list"]
    assert "--endpoint-url" in lines[6].split() and "--json" not in lines[6].split()


ZSH_PROBE = r"""
compdef() { :; }
compadd() { shift $(( ${@[(i)--]} )); print -l -- "$@"; }
_describe() { print -l -- "${(@P)4}"; }
_files() { print FILES; }
source completions/_opsctl
words=(opsctl template ""); CURRENT=3; _opsctl; print -r -- '---'
words=(opsctl init --template ""); CURRENT=4; _opsctl; print -r -- '---'
words=(opsctl init --f); CURRENT=3; _opsctl; print -r -- '---'
words=(opsctl init ""); CURRENT=3; _opsctl
"""


def test_zsh_completes():
    out = subprocess.run([_shell("zsh"), "-f", "-c", ZSH_PROBE], cwd=REPO, capture_output=True, text=True)
    assert out.stderr == ""
    parts = out.stdout.split("---\n")
    assert parts[0].startswith("list:The built-in templates")
    assert parts[1].split() == ["ml-pipeline", "data-pipeline", "minimal"]
    assert "--force:" in parts[2]
    assert parts[3].strip() == "FILES"  # init's DIRECTORY argument


def test_fish_completes():
    probe = (
        "source completions/opsctl.fish; complete -C 'opsctl '; echo ---; "
        "complete -C 'opsctl init --template '; echo ---; complete -C 'opsctl template '"
    )
    out = subprocess.run([_shell("fish"), "--no-config", "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.stderr == ""
    top, templates, group = out.stdout.split("---\n")
    assert [line.split("\t")[0] for line in top.splitlines()] == [
        "build",
        "dag",
        "data",
        "doctor",
        "exp",
        "init",
        "lineage",
        "model",
        "monitor",
        "plots",
        "report",
        "run",
        "runs",
        "status",
        "template",
        "ui",
        "worker",
    ]
    assert sorted(line.split("\t")[0] for line in templates.splitlines()) == ["data-pipeline", "minimal", "ml-pipeline"]
    assert group.split("\t")[0] == "list"
