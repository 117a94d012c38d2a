"""The Data screen (key 4) and the run screen's checks, over a real Git + DVC project with
checks in opsctl.yaml, a real run record and verdicts recorded through core/check_records.py
(as the check engine records them). Driven through the real app."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from opsctl.core.check_records import record_verdicts
from opsctl.core.checks import DatasetVerdict, Example, Failure
from opsctl.core.dashboard import Dashboard
from opsctl.core.project import open_project
from opsctl.core.runs import store_path
from opsctl.store import NewRun, RunRecord, RunStore, StageRecord
from opsctl.tui.app import OpsctlApp
from opsctl.tui.screens.data import DataScreen
from opsctl.tui.screens.help import HelpScreen
from opsctl.tui.screens.run import RunScreen
from opsctl.tui.screens.runs import RunsScreen
from tests.conftest import git_dvc_project
from tests.tui.pilot import settle

SIZE = (130, 36)
RUN = "abcdef012345"
CHECKS = """\
project: churn
checks:
  data/raw.csv:
    rows: {min: 1}
    columns:
      tenure: {type: int, min: 0}
  data/features.csv:
    columns:
      plan: {in: [basic, pro]}
  data/later.csv:
    rows: {min: 1}
"""


def verdicts(project) -> tuple[DatasetVerdict, DatasetVerdict]:
    checks = project.config.checks
    raw = DatasetVerdict("data/raw.csv", "a" * 32, checks["data/raw.csv"].digest, rows=1200, checks=4)
    features = DatasetVerdict(
        "data/features.csv",
        "b" * 32,
        checks["data/features.csv"].digest,
        rows=1150,
        checks=3,
        failures=[
            Failure("in", "plan", 2, (Example(17, "gold"), Example(230, "platinum"))),
            Failure("nullable", "plan", 1, (Example(44, None),)),
        ],
    )
    return raw, features


@pytest.fixture
def project(tmp_path) -> Path:
    root = git_dvc_project(tmp_path / "p")
    (root / "opsctl.yaml").write_text(CHECKS)
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("tenure\n1\n")
    (root / "data" / "features.csv").write_text("plan\nbasic\n")
    with RunStore(store_path(open_project(root))) as store:
        store.record_run(
            RunRecord(
                NewRun(RUN, started=1_767_225_600.0, user="ana", host="box", branch="main", executor="local", jobs=1),
                "failed",
                1_767_225_700.0,
                [StageRecord("prepare", "ran", started=1_767_225_601.0), StageRecord("featurize", "failed")],
            )
        )
    project = open_project(root)
    raw, features = verdicts(project)
    assert record_verdicts(project, [raw], run_id=RUN, stage="prepare") is None
    assert record_verdicts(project, [features], run_id=RUN, stage="featurize") is None
    return root


def drive(root: Path, scenario, *, refresh_interval: float = 3600) -> OpsctlApp:
    app = OpsctlApp(Dashboard(open_project(root)), refresh_interval=refresh_interval)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, RunsScreen)
            await scenario(app, pilot)

    with contextlib.chdir(root):
        asyncio.run(main())
    return app


async def until(pilot, condition, what: str, tries: int = 400) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"never happened: {what}")


async def open_data(app, pilot) -> DataScreen:
    await pilot.press("4")
    await until(pilot, lambda: isinstance(app.screen, DataScreen) and app.screen.loads > 0, "the data screen")
    await settle(pilot)
    return app.screen


def rows(screen: DataScreen) -> list[list[str]]:
    table = screen.query_one("#datasets", DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


def shown(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def test_key_4_lists_the_datasets_with_their_last_verdicts(project):
    async def scenario(app, pilot):
        screen = await open_data(app, pilot)
        table = rows(screen)
        assert [r[:3] for r in table] == [
            ["✓ checks passed", "data/raw.csv", "yes"],
            ["✗ 2 checks failed", "data/features.csv", "yes"],
            ["– not validated", "data/later.csv", "missing"],
        ]
        assert table[0][4:] == ["1,200", "", "aaaaaaaa", "1"]
        assert table[1][4:] == ["1,150", "2", "bbbbbbbb", "1"]
        assert shown(screen, "#summary") == (
            "3 datasets with checks · 1 failed · 1 not validated · 1 not in the workspace"
        )
        detail = shown(screen, "#data-failures")
        assert "data/raw.csv  ✓ checks passed" in detail and f"by run {RUN[:8]} (gate prepare)" in detail
        assert "1,200 rows · 4 checks · data md5 aaaaaaaaaaaa · 1 verdict recorded" in detail

        await pilot.press("down")  # the failed one: its failing checks and their rows
        await pilot.pause()
        detail = shown(screen, "#data-failures")
        assert "(gate featurize)" in detail
        assert "in(plan) 2 rows\n    row 17: 'gold'\n    row 230: 'platinum'" in detail
        assert "nullable(plan) 1 row\n    row 44: None" in detail

        await pilot.press("down")
        await pilot.pause()
        detail = shown(screen, "#data-failures")
        assert "not in the workspace" in detail and "never validated: `opsctl data validate data/later.csv`" in detail

        await pilot.press("4")  # already there: no second screen
        await pilot.pause()
        assert sum(isinstance(s, DataScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(project, scenario)


def test_r_reads_again_and_new_verdicts_show_by_themselves(project):
    root = project

    async def scenario(app, pilot):
        screen = await open_data(app, pilot)
        await pilot.press("down")
        await pilot.pause()
        p = open_project(root)
        raw, features = verdicts(p)
        features.failures.clear()  # the data was fixed
        record_verdicts(p, [features])
        # the screen watches the store: the new verdict shows without a key
        await until(pilot, lambda: rows(screen)[1][0] == "✓ checks passed", "the new verdict")
        assert rows(screen)[1][7] == "2"  # two verdicts recorded for it now
        assert screen.selected_path() == "data/features.csv"  # the cursor stayed on it
        assert "by opsctl data validate" in shown(screen, "#data-failures")
        loads = screen.loads
        await pilot.press("r")
        await until(pilot, lambda: screen.loads > loads, "a reload")

    drive(root, scenario, refresh_interval=0.2)


def test_changed_checks_say_the_last_verdict_is_old(project):
    (project / "opsctl.yaml").write_text(CHECKS.replace("min: 0", "min: 1"))

    async def scenario(app, pilot):
        screen = await open_data(app, pilot)
        assert "the checks changed since" in shown(screen, "#data-failures")

    drive(project, scenario)


def test_without_checks_the_screen_says_how_to_declare_them(tmp_path):
    root = git_dvc_project(tmp_path / "bare", "bare")

    async def scenario(app, pilot):
        screen = await open_data(app, pilot)
        assert screen.query_one("#data-empty").display and not screen.query_one("#datasets").display
        empty = shown(screen, "#data-empty")
        assert "`checks:` in opsctl.yaml" in empty and "`opsctl data profile PATH --write`" in empty
        assert shown(screen, "#summary") == "no data checks"

    drive(root, scenario)
    assert not (root / ".opsctl").exists()  # looking created no store


def test_the_run_screen_lists_the_runs_checks(project):
    async def scenario(app, pilot):
        app.open_run(RUN)
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None, "the run screen")
        await settle(pilot)
        values = shown(app.screen, "#values")
        lines = values.splitlines()
        assert lines[0] == "checks  2, 1 failed"
        assert lines[1] == "  ✓ checks passed  data/raw.csv  (prepare)"
        assert lines[2] == "  ✗ 2 checks failed  data/features.csv  (featurize)"
        assert lines[3:5] == ["      in(plan) 2 rows", "      nullable(plan) 1 row"]
        assert "params  none" in values

    drive(project, scenario)


def test_help_lists_key_4(project):
    async def scenario(app, pilot):
        await open_data(app, pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        keys = shown(app.screen, "#help-keys")
        assert any(line.split() == ["4", "Data"] for line in keys.splitlines())
        assert "Data" in shown(app.screen, ".title") and "last verdict" in shown(app.screen, "#help-description")

    drive(project, scenario)


def test_the_lineage_screen_shows_a_data_nodes_verdict():
    """The lineage screen's words come from core/lineage.py (tested over a real project in
    tests/cli/test_check_verdicts.py); here: its colour and its detail pane."""
    from opsctl.core.lineage import Node
    from opsctl.tui.screens.lineage import LineageItem, describe, details

    checks = {"passed": False, "checks_hash": "e" * 16, "at": 1_767_225_600.0, "failed": 2, "run": RUN}
    node = Node("artifact:data/f@x", "artifact", "data/f", {"path": "data/f", "hash": "x", "checks": checks})
    label = describe(node)
    assert label.plain.endswith("✗ 2 checks failed")
    assert any(
        span.style == "red" and label.plain[span.start : span.end] == "✗ 2 checks failed" for span in label.spans
    )
    text = details(LineageItem(node, None)).plain
    assert f"checks: ✗ 2 checks failed (checks {'e' * 16}, " in text and f"run {RUN[:8]})" in text
