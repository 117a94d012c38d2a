"""`opsctl exp run` in a real terminal (tmux): while the sweep runs, a line per running
experiment (its values, the stage it is in); then the finished ones, best first."""

from __future__ import annotations

import re
import shlex
import sys

from tests.e2e.test_experiments import make_project
from tests.e2e.test_ui_terminal import pane

__all__ = ["pane"]


def test_a_sweep_shows_its_running_experiments_then_the_best_first(pane, tmp_path):
    outside = tmp_path / "out"
    root = make_project(tmp_path / "p", outside)
    hold = outside / "hold"
    hold.touch()  # every train waits: the experiments are caught running
    status = tmp_path / "status"
    command = (
        f"cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} -m opsctl exp run "
        f"-S train.lr=1,2,3 -j 2 --name live; echo \"exit=$?\" > {shlex.quote(str(status))}"
    )
    term = pane(command)
    # each running experiment's line: its name, its values, the stage it is in, how long it has run
    in_stage = re.compile(r"live-[123]\s+train\.lr=[123]\s+(prep|train)\s+\d+s")
    running = term.wait_for(
        "the running experiments",
        lambda t: len(in_stage.findall(t)) >= 2 and "train.lr=" in t,
        status,
    )
    assert "Sweep live: 3 experiments over train.lr" in running

    hold.unlink()
    done = term.wait_for("the end of the sweep", lambda t: "3 experiments in" in t, status)
    table = [line for line in done.splitlines() if line.split() and line.split()[-1] in ("31", "21", "11")]
    assert [line.split()[-1] for line in table][:3] == ["31", "21", "11"], done  # best first: score 31 > 21 > 11
    assert "3 succeeded" in done
    term.wait_for("the exit code", lambda t: status.exists() and status.read_text().strip() == "exit=0", status)
