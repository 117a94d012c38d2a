"""The compare screen over a real project (a Git + DVC repository whose run store holds
runs that differ in some params and metrics), driven through the real app and Dashboard.

pytest-asyncio is not a dependency: each test runs its pilot with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label, LoadingIndicator, Sparkline, Static

from opsctl.core.dashboard import Dashboard
from opsctl.core.project import open_project
from opsctl.store import RunStore
from opsctl.tui.app import OpsctlApp
from opsctl.tui.screens.compare import CompareScreen, short_ids
from tests.conftest import git_dvc_project, one_stage_run
from tests.tui.pilot import settle

BASE, MORE, SGD, BARE, ALSO_BARE = "aaaa00000001", "aaaa00000002", "bbbb00000003", "cccc00000004", "dddd00000005"
RUNS = {
    BASE: (
        {"train.n_estimators": 10, "train.optimizer": "adam", "train.shuffle": True, "data.seed": 1},
        {"accuracy": 0.5, "loss": 1.0, "rows": 100},
    ),
    MORE: (
        {"train.n_estimators": 20, "train.optimizer": "adam", "train.shuffle": True, "data.seed": 1},
        {"accuracy": 0.6, "loss": 0.9, "rows": 100},
    ),
    SGD: (
        {"train.n_estimators": 30, "train.optimizer": "sgd", "train.shuffle": True, "data.seed": 1},
        {"accuracy": 0.7, "loss": 0.8, "rows": 100, "f1": 0.3},
    ),
    BARE: ({}, {}),
    ALSO_BARE: ({}, {}),
}
ALL_KEYS = [
    "params.data.seed",
    "params.train.n_estimators",
    "params.train.optimizer",
    "params.train.shuffle",
    "metrics.accuracy",
    "metrics.f1",
    "metrics.loss",
    "metrics.rows",
]
DIFFERING = ["params.train.n_estimators", "params.train.optimizer", "metrics.accuracy", "metrics.f1", "metrics.loss"]
# Column keys of the first run's values, then of each further run's values and delta.
FIRST, SECOND, SECOND_DELTA, THIRD, THIRD_DELTA = "run-0", "run-1", "delta-1", "run-2", "delta-2"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = git_dvc_project(tmp_path_factory.mktemp("compare"), "compare")
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        for n, (run_id, (params, metrics)) in enumerate(RUNS.items()):
            store.record_run(one_stage_run(run_id, 1e9 + 60 * n, n, params=params, metrics=metrics))
    return root


def drive(
    project: Path, run_ids: list[str], scenario, *, services: Dashboard | None = None, wait_for_comparison: bool = True
) -> None:
    """Open the compare screen over the runs table and play ``scenario(app, pilot)``."""
    app = OpsctlApp(services or Dashboard(open_project(project)), refresh_interval=3600)

    async def main() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.open_compare(run_ids)
            await pilot.pause()
            assert isinstance(app.screen, CompareScreen)
            if wait_for_comparison:
                await settle(pilot)
            await scenario(app, pilot)

    asyncio.run(main())


def table_of(app) -> DataTable:
    return app.screen.query_one("#comparison", DataTable)


def cell(app, key: str, column: str) -> str:
    return str(table_of(app).get_cell(key, column))


def shown_keys(app) -> list[str]:
    return [row.key.value for row in table_of(app).ordered_rows]


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def errors(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


def test_a_row_per_key_changed_rows_marked_deltas_against_the_first_run(project):
    async def scenario(app, pilot):
        table = table_of(app)
        assert shown_keys(app) == ALL_KEYS
        assert [cell(app, key, "changed") for key in ALL_KEYS] == ["≠" if k in DIFFERING else "" for k in ALL_KEYS]
        assert [cell(app, "metrics.accuracy", c) for c in (FIRST, SECOND, SECOND_DELTA, THIRD, THIRD_DELTA)] == [
            "0.5",
            "0.6",
            "+0.1",
            "0.7",
            "+0.2",
        ]
        assert [cell(app, "metrics.loss", c) for c in (SECOND_DELTA, THIRD_DELTA)] == ["-0.1", "-0.2"]
        assert [cell(app, "params.train.n_estimators", c) for c in (SECOND_DELTA, THIRD_DELTA)] == ["+10", "+20"]
        assert [cell(app, "params.data.seed", c) for c in (SECOND_DELTA, THIRD_DELTA)] == ["0", "0"]
        # Words, booleans and keys the first run lacks have no delta.
        assert [cell(app, "params.train.optimizer", c) for c in (FIRST, THIRD, THIRD_DELTA)] == ["adam", "sgd", ""]
        assert cell(app, "params.train.shuffle", SECOND_DELTA) == ""
        assert [cell(app, "metrics.f1", c) for c in (FIRST, SECOND, THIRD, THIRD_DELTA)] == ["-", "-", "0.3", ""]
        # Only a value that differs from the first run's is highlighted.
        assert "yellow" in str(table.get_cell("params.train.optimizer", THIRD).style)
        assert "yellow" not in str(table.get_cell("params.train.optimizer", SECOND).style)
        assert "yellow" not in str(table.get_cell("params.data.seed", THIRD).style)
        # A delta column after every run but the first, headed by ids that tell the runs apart.
        assert [str(c.label) for c in table.ordered_columns] == [
            "",
            "key",
            "aaaa00000001",
            "aaaa00000002",
            "Δ",
            "bbbb00000003",
            "Δ",
        ]
        summary = text_of(app, "#summary")
        assert "3 runs" in summary and "8 keys, 5 differ" in summary

    drive(project, [BASE, MORE, SGD], scenario)


def test_run_ids_are_shortened_only_as_far_as_they_stay_apart():
    assert short_ids([BASE, SGD]) == ["aaaa0000", "bbbb0000"]
    assert short_ids([BASE, MORE, SGD]) == [BASE, MORE, SGD]
    assert short_ids([BASE, BASE]) == ["aaaa0000", "aaaa0000"]


def test_d_shows_only_the_rows_that_differ_and_back(project):
    async def scenario(app, pilot):
        table = table_of(app)
        table.move_cursor(row=shown_keys(app).index("metrics.accuracy"), column=3)
        await pilot.press("d")
        assert shown_keys(app) == DIFFERING
        assert "showing the 5 that differ" in text_of(app, "#summary")
        assert (shown_keys(app)[table.cursor_row], table.cursor_column) == ("metrics.accuracy", 3)
        await pilot.press("d")
        assert shown_keys(app) == ALL_KEYS
        assert "showing" not in text_of(app, "#summary")
        assert shown_keys(app)[table.cursor_row] == "metrics.accuracy"

    drive(project, [BASE, MORE, SGD], scenario)


def test_a_sparkline_for_each_numeric_metric_that_differs(project):
    async def scenario(app, pilot):
        charts = list(app.screen.query(".chart"))
        # f1 differs but two runs lack it; rows is the same everywhere; params are not charted.
        assert [str(chart.query_one(".chart-label", Label).render()) for chart in charts] == ["accuracy", "loss"]
        assert [list(chart.query_one(Sparkline).data) for chart in charts] == [[0.5, 0.6, 0.7], [1.0, 0.9, 0.8]]
        assert str(charts[1].query_one(".chart-range", Label).render()) == "min 0.8 · max 1"
        assert app.screen.query_one("#charts").display

    drive(project, [BASE, MORE, SGD], scenario)


def test_a_metric_some_runs_lack_is_charted_over_those_that_have_it(project):
    async def scenario(app, pilot):
        charts = {str(chart.query_one(".chart-label", Label).render()): chart for chart in app.screen.query(".chart")}
        # BARE has no metrics; f1 only SGD has (one point: no chart); rows is 100 in both.
        assert list(charts) == ["accuracy", "loss"]
        assert list(charts["accuracy"].query_one(Sparkline).data) == [0.5, 0.7]
        assert str(charts["accuracy"].query_one(".chart-range", Label).render()) == "min 0.5 · max 0.7 · 2 of 3 runs"

    drive(project, [BASE, SGD, BARE], scenario)


def test_runs_alike_in_their_metrics_have_no_charts_and_d_can_hide_every_row(project):
    async def scenario(app, pilot):
        assert shown_keys(app) == [k for k in ALL_KEYS if k != "metrics.f1"]
        assert [cell(app, key, "changed") for key in shown_keys(app)] == [""] * 7
        assert not app.screen.query(Sparkline)
        assert not app.screen.query_one("#charts").display
        await pilot.press("d")
        assert not table_of(app).display
        assert "No differences" in text_of(app, "#empty")
        await pilot.press("d")
        assert table_of(app).display and not app.screen.query_one("#empty").display

    drive(project, [MORE, MORE], scenario)


def test_runs_without_params_or_metrics_say_so(project):
    async def scenario(app, pilot):
        assert not table_of(app).display
        assert app.screen.query_one("#empty").display
        assert "no params or metrics" in text_of(app, "#empty")
        assert not errors(app)

    drive(project, [BARE, ALSO_BARE], scenario)


def test_escape_goes_back(project):
    async def scenario(app, pilot):
        below = app.screen_stack[-2]
        await pilot.press("escape")
        assert app.screen is below
        assert not any(isinstance(s, CompareScreen) for s in app.screen_stack)

    drive(project, [BASE, MORE], scenario)


def test_an_unknown_run_is_a_toast_and_the_screen_stays_usable(project):
    async def scenario(app, pilot):
        assert isinstance(app.screen, CompareScreen)
        assert any("no run" in message for message in errors(app)), list(app._notifications)
        assert not table_of(app).loading and not table_of(app).display
        assert "Could not compare" in text_of(app, "#empty")
        await pilot.press("r")  # tries again, fails the same way, still no crash
        await settle(pilot)
        assert len(errors(app)) == 2 and isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)

    drive(project, [BASE, "ffffffffffff"], scenario)


class SlowDashboard(Dashboard):
    """The real services, with compare held until the test lets it answer."""

    def __init__(self, project) -> None:
        super().__init__(project)
        self.answer = threading.Event()

    def compare(self, run_ids):
        self.answer.wait()
        return super().compare(run_ids)


MIDDLE = (60, 20)  # of the 120 x 40 screen: inside the table


def test_a_loading_indicator_until_the_comparison_arrives(project):
    services = SlowDashboard(open_project(project))

    async def scenario(app, pilot):
        try:
            table = table_of(app)
            await pilot.pause()
            assert table.loading
            assert isinstance(app.get_widget_at(*MIDDLE)[0], LoadingIndicator)
        finally:
            services.answer.set()
        await settle(pilot)
        assert not table.loading
        assert app.get_widget_at(*MIDDLE)[0] is table
        assert shown_keys(app) == ALL_KEYS

    drive(project, [BASE, MORE, SGD], scenario, services=services, wait_for_comparison=False)


def test_o_enter_and_a_header_click_open_that_columns_run(project):
    async def scenario(app, pilot):
        opened = []
        app.open_run = lambda run_id, stage=None: opened.append(run_id)
        table = table_of(app)
        await pilot.press("o")  # the cursor starts on the first run's values
        await pilot.press("right", "right", "o")  # the second run's delta column
        await pilot.press("right", "enter")
        assert opened == [BASE, MORE, SGD]
        columns = table.ordered_columns
        second_header = sum(c.get_render_width(table) for c in columns[:3]) + 1
        await pilot.click("#comparison", offset=(second_header, 0))
        assert opened == [BASE, MORE, SGD, MORE]
        table.move_cursor(column=1)  # the keys: no run to open
        await pilot.press("o")
        assert opened == [BASE, MORE, SGD, MORE]
        assert any(n.severity == "warning" for n in app._notifications)

    drive(project, [BASE, MORE, SGD], scenario)


def test_help_lists_every_key_with_what_it_does(project):
    async def scenario(app, pilot):
        assert CompareScreen.HELP
        assert all(binding.description for binding in CompareScreen.BINDINGS)
        await pilot.press("question_mark")
        keys = dict(app.screen.keys)
        assert keys["esc"] == "Back" and keys["d"] == "Only differences"
        assert {b.description for b in CompareScreen.BINDINGS} <= set(keys.values())

    drive(project, [BASE, MORE], scenario)
