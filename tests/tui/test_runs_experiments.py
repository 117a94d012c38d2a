"""The Runs screen with experiments (`opsctl exp run`): their group as a column, the
``group=NAME`` filter word, and ``b`` comparing the best runs by a metric; driven with the
pilot through the real app over a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.store import NewRun, RunRecord, RunStore
from opsctl.store.experiments import record_experiment
from tests.conftest import git_dvc_project
from tests.tui.test_runs_screen import drive, shown_ids, summary, table, toasts, until

T0 = 1_700_000_000.0
SCORES = {"a": [0.61, 0.92, 0.75, 0.88], "b": [0.5, 0.7]}


def run_id(group: str, n: int) -> str:
    return ("a" if group == "a" else "b") * 4 + f"{n:08x}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = git_dvc_project(tmp_path_factory.mktemp("tui-exps") / "project", "tui-exps")
    records, groups = [], []
    t = T0
    for group, scores in SCORES.items():
        for n, score in enumerate(scores):
            t += 60
            records.append(
                RunRecord(
                    NewRun(run_id(group, n), started=t, executor="local"),
                    "succeeded",
                    t + 10,
                    params={"train.lr": n},
                    metrics={"score": score},
                )
            )
            groups.append((run_id(group, n), f"sweep-{group}", n))
    t += 60
    records.append(RunRecord(NewRun("cccc00000000", started=t), "succeeded", t + 5, metrics={"score": 0.99}))
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        store.record_runs(records)
        for rid, group, n in groups:
            record_experiment(store, rid, group, f"{group}-{n + 1}", [f"train.lr={n}"])
    return root


def test_experiments_show_their_group_and_the_group_filter_keeps_one_sweep(project):
    async def scenario(app, pilot):
        labels = [str(c.label) for c in table(app).columns.values()]
        assert "group" in labels
        column = labels.index("group")
        by_id = {key.value: str(table(app).get_row(key)[column]) for key in table(app).rows}
        assert by_id[run_id("a", 0)] == "sweep-a" and by_id["cccc00000000"] == ""
        await pilot.press("slash", *"group=sweep-a", "enter")
        await until(pilot, lambda: "filter: group=sweep-a" in summary(app))
        assert sorted(shown_ids(app)) == sorted(run_id("a", n) for n in range(4))

    drive(project, scenario)


def test_b_compares_the_best_three_of_a_sweep_by_its_metric(project):
    async def scenario(app, pilot):
        await pilot.press("slash", *"group=sweep-a", "enter")
        await until(pilot, lambda: "filter: group=sweep-a" in summary(app))
        await pilot.press("b")  # not sorted by a metric yet: sorts by score, then compares
        await until(pilot, lambda: type(app.screen).__name__ == "CompareScreen")
        best = sorted(range(4), key=lambda n: -SCORES["a"][n])[:3]
        assert app.screen.run_ids == [run_id("a", n) for n in best]

    drive(project, scenario)


def test_b_without_metrics_says_so(tmp_path):
    root = git_dvc_project(tmp_path / "p", "tui-nometrics")
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        store.record_runs(
            [RunRecord(NewRun(f"dddd0000000{n}", started=T0 + n), "succeeded", T0 + n + 1) for n in range(3)]
        )

    async def scenario(app, pilot):
        await pilot.press("b")
        await until(pilot, lambda: toasts(app))
        assert "no metrics" in toasts(app)[-1]

    drive(root, scenario)
