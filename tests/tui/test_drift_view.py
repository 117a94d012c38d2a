"""The Data screen's drift view (key 4, then d) and the drift verdicts of the Models screen,
over a real Git + DVC project and its real run store: drift checks recorded as
`opsctl monitor drift` records them (core/monitoring.record_drift of a real comparison of two
CSV files), and rows of the store's own shape for a history. Driven through the real app."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable

from opsctl.core.drift import compare_datasets
from opsctl.core.drift_data import read_dataset
from opsctl.core.formatting import when
from opsctl.core.monitoring import record_drift
from opsctl.core.project import open_project
from opsctl.core.runs import open_store
from opsctl.store.drift_checks import DriftRecord, add_drift_checks
from opsctl.tui.screens.data import DRIFT_EMPTY, DataScreen, share_chart, sparkline
from opsctl.tui.screens.help import HelpScreen
from tests.conftest import BIN, git_dvc_project, run
from tests.tui.pilot import settle
from tests.tui.test_data_screen import drive, open_data, shown, until

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def column(name: str, statistic: float, drift: bool, method: str = "wasserstein", threshold: float = 0.1) -> dict:
    return {
        "column": name,
        "kind": "numeric",
        "method": method,
        "statistic": statistic,
        "p_value": None,
        "threshold": threshold,
        "drift": drift,
        "compared": True,
        "detail": None,
    }


def check(at: float, tenure: float, fee: float, *, path: str = "data/batch.csv", rows: int = 500) -> DriftRecord:
    columns = [column("tenure", tenure, tenure >= 0.1), column("fee", fee, fee >= 0.1)]
    drifted = sum(c["drift"] for c in columns)
    return DriftRecord(
        path=path,
        data_hash="c" * 32,
        reference="monitor/train.profile.json",
        reference_hash="f" * 32,
        drift=drifted / 2 >= 0.5,
        share=drifted / 2,
        threshold_share=0.5,
        columns=columns,
        rows=rows,
        at=at,
    )


HISTORY = [  # (hours after T0, tenure's statistic, fee's statistic): drift appears in the third check
    (0, 0.01, 0.02),
    (1, 0.02, 0.03),
    (2, 0.25, 0.04),
    (3, 0.40, 0.30),
]


def record(root, records: list[DriftRecord]) -> None:
    with open_store(open_project(root), reap=False) as store:
        assert add_drift_checks(store, records)


@pytest.fixture
def project(tmp_path):
    root = git_dvc_project(tmp_path / "p")
    (root / "opsctl.yaml").write_text("project: churn\n")
    (root / "data").mkdir()
    # a real comparison: the current batch's `plan` moved, `tenure` and `fee` did not
    (root / "data" / "train.csv").write_text(
        "tenure,fee,plan\n" + "".join(f"{n % 50},{n % 7}.5,{'basic' if n % 2 else 'pro'}\n" for n in range(400))
    )
    (root / "data" / "live.csv").write_text(
        "tenure,fee,plan\n" + "".join(f"{n % 50},{n % 7}.5,{'gold' if n % 3 else 'pro'}\n" for n in range(400))
    )
    report = compare_datasets(read_dataset(root, "data/train.csv"), read_dataset(root, "data/live.csv"))
    assert [c.column for c in report.drifted] == ["plan"]
    assert record_drift(open_project(root), [report]) is None
    record(root, [check(T0 + hours * 3600, tenure, fee) for hours, tenure, fee in HISTORY])
    return root


def rows(screen: DataScreen) -> list[list[str]]:
    table = screen.query_one("#drift-table", DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_drift(app, pilot) -> DataScreen:
    screen = await open_data(app, pilot)
    await pilot.press("d")
    await settle(pilot)
    assert screen.view == "drift"
    return screen


def test_d_shows_each_dataset_with_drift_checks_and_its_last_verdict(project):
    async def scenario(app, pilot):
        screen = await open_drift(app, pilot)
        assert not screen.query_one("#datasets").display and screen.query_one("#drift-table").display
        table = rows(screen)
        assert [r[:3] for r in table] == [
            ["✗ drift 2/2", "data/batch.csv", "monitor/train.profile.json"],
            ["✓ no drift 1/3", "data/live.csv", "data/train.csv"],
        ]
        assert table[0][3] == when(T0 + 3 * 3600) and table[0][5:7] == ["500", "100%"]
        assert table[1][5:7] == ["400", "33%"]
        assert table[0][7] == "▁▁▅█"  # the share of each check, oldest first
        assert shown(screen, "#summary") == "2 datasets with drift checks · 1 drifting at the last check"

        detail = shown(screen, "#drift-chart")
        assert detail.startswith("data/batch.csv  ✗ drift 2/2")
        assert "by opsctl monitor drift" in detail
        assert "against monitor/train.profile.json (md5 ffffffffffff) · 500 rows" in detail
        assert f"{when(T0)} → {when(T0 + 3 * 3600)}  (4 checks)" in detail
        lines = detail.splitlines()
        tenure = next(line for line in lines if line.strip().startswith("tenure"))
        fee = next(line for line in lines if line.strip().startswith("fee"))
        assert tenure.split()[1:] == ["▁▁▅█", "wasserstein", "0.4", "threshold", "0.1", "drifted"]
        assert fee.split()[1:] == ["▁▂▂█", "wasserstein", "0.3", "threshold", "0.1", "drifted"]

        # the other dataset: a real comparison, its column results as recorded
        await pilot.press("down")
        await pilot.pause()
        detail = shown(screen, "#drift-chart")
        assert detail.startswith("data/live.csv  ✓ no drift 1/3") and "(1 check)" in detail
        plan = next(line for line in detail.splitlines() if line.strip().startswith("plan"))
        tenure = next(line for line in detail.splitlines() if line.strip().startswith("tenure"))
        assert "chi2" in plan and plan.endswith("drifted") and "  p " in plan
        assert tenure.endswith("no drift")

        # d again: back to the checks as they were
        await pilot.press("d")
        await pilot.pause()
        assert screen.view == "checks" and screen.query_one("#data-empty").display
        assert not screen.query_one("#drift-table").display

    drive(project, scenario)


def test_a_new_drift_check_shows_by_itself(project):
    async def scenario(app, pilot):
        screen = await open_drift(app, pilot)
        assert rows(screen)[0][7] == "▁▁▅█"
        record(project, [check(T0 + 4 * 3600, 0.01, 0.01)])  # back to normal
        await until(pilot, lambda: rows(screen)[0][0] == "✓ no drift", "the new check")
        assert rows(screen)[0][7] == "▁▁▅█▁" and rows(screen)[0][6] == "0%"
        assert screen.selected_drift_path() == "data/batch.csv"
        assert "(5 checks)" in shown(screen, "#drift-chart")

    drive(project, scenario, refresh_interval=0.2)


def test_without_drift_checks_the_view_says_how_to_make_one(tmp_path):
    root = git_dvc_project(tmp_path / "bare", "bare")

    async def scenario(app, pilot):
        screen = await open_drift(app, pilot)
        assert screen.query_one("#drift-empty").display and not screen.query_one("#drift-table").display
        assert shown(screen, "#drift-empty") == DRIFT_EMPTY
        assert "`opsctl monitor drift DATASET --reference" in DRIFT_EMPTY
        assert shown(screen, "#summary") == "no drift checks"
        assert screen.sub_title == "data · drift"

    drive(root, scenario)
    assert not (root / ".opsctl").exists()  # looking created no store


def test_help_and_the_key_bar_name_d(project):
    async def scenario(app, pilot):
        screen = await open_data(app, pilot)
        assert "d Checks | drift" in shown(screen, "#keybar")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        keys = shown(app.screen, "#help-keys")
        assert any(line.split() == ["d", "Checks", "|", "drift"] for line in keys.splitlines())
        assert "d switches to the drift view" in shown(app.screen, "#help-description")

    drive(project, scenario)


def test_the_share_chart_draws_bars_a_threshold_and_red_for_drift():
    checks = [check(T0 + n * 60, tenure, fee) for n, (_, tenure, fee) in enumerate(HISTORY)]
    chart = share_chart(checks, height=4)
    lines = chart.plain.splitlines()
    assert lines[:4] == [
        "100% ┤   █",
        " 50% ┤┈┈┈█  threshold",  # the threshold share: a check drifts when its bar reaches the line
        "     │  ██",
        "  0% ┤··██",
    ]
    assert lines[4].strip() == f"{when(T0)} → {when(T0 + 180)}  (4 checks)"
    red = {chart.plain[s.start : s.end] for s in chart.spans if s.style == "red"}
    green = {chart.plain[s.start : s.end] for s in chart.spans if s.style == "green"}
    assert red == {"█"} and green == {"·"}  # the 50% and 100% checks drifted, the first two had no drifted column


def test_a_sparkline_runs_from_zero_to_the_highest_and_leaves_gaps():
    assert sparkline([0.0, 0.5, 1.0]).plain == "▁▅█"
    assert sparkline([0.2, None, 0.2]).plain == "█ █"
    assert sparkline([]).plain == ""
    assert sparkline([0.0, 0.0]).plain == "▁▁"


# -- the Models screen: the newest drift check against each staged version's profile ---------------


@pytest.fixture
def registry_project(tmp_path):
    """churn v0.0.1 (prod, registered with the reference profile of data/train.csv),
    v0.0.2 (staging, no profile) and v0.0.3 (no stage, with the profile); one drift check
    of data/live.csv against churn@v0.0.1 as `opsctl monitor drift` makes it (1 of 3 columns
    drifted), an older one against it with none, and one against another reference."""
    from opsctl.core import registry
    from opsctl.core.monitoring import check_drift, profile_dataset, settings_for

    root = git_dvc_project(tmp_path / "m", "churn")
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text(
        "tenure,fee,plan\n" + "".join(f"{n % 50},{n % 7}.5,{'basic' if n % 2 else 'pro'}\n" for n in range(400))
    )
    (root / "data" / "live.csv").write_text(
        "tenure,fee,plan\n" + "".join(f"{n % 50},{n % 7}.5,{'gold' if n % 3 else 'pro'}\n" for n in range(400))
    )
    (root / "models").mkdir()
    (root / "models" / "churn.pkl").write_bytes(b"a trained model\n")
    run([BIN / "dvc", "add", "-q", "models/churn.pkl"], cwd=root)
    project = open_project(root)
    written = profile_dataset(project, "data/train.csv")
    assert written.path == "monitor/train.profile.json"
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "the model and its reference"], cwd=root)
    for n, profile in enumerate([written.path, None, written.path]):
        if n:
            run(["git", "commit", "-q", "--allow-empty", "-m", f"release {n}"], cwd=root)
        registry.register_model(project, "churn", "models/churn.pkl", cwd=root, profile=profile)
    registry.promote_model(project, "churn", "v0.0.1", "prod")
    registry.promote_model(project, "churn", "v0.0.2", "staging")
    md5 = registry.profile_of_version(project, "churn", "v0.0.1")[1]

    older = check(T0, 0.01, 0.01)._replace(reference="churn@v0.0.1", reference_hash=md5)
    other = check(time.time() + 3600, 0.5, 0.5)._replace(reference_hash="e" * 32)  # the newest, of another reference
    record(root, [older, other])
    report, error = check_drift(project, settings_for(project, "data/live.csv", "churn@v0.0.1"))
    assert error is None and report.reference_hash == md5 and [c.column for c in report.drifted] == ["plan"]
    return root, md5


def drive_models(root, scenario, *, refresh_interval: float = 3600):
    import asyncio
    import contextlib

    from opsctl.core.dashboard import Dashboard
    from opsctl.tui.app import OpsctlApp
    from opsctl.tui.screens.models import ModelsScreen

    app = OpsctlApp(Dashboard(open_project(root)), refresh_interval=refresh_interval)

    async def main() -> None:
        async with app.run_test(size=(130, 40)) as pilot:
            await settle(pilot)
            await pilot.press("3")
            await until(
                pilot, lambda: isinstance(app.screen, ModelsScreen) and app.screen.drift_loads > 0, "the models"
            )
            await settle(pilot)
            await scenario(app, app.screen, pilot)

    with contextlib.chdir(root):
        asyncio.run(main())


def versions(screen) -> list[tuple[str, str, str]]:
    """(version, stages, drift) of each row of the versions table."""
    table = screen.query_one("#models-versions", DataTable)
    cells = [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return [(r[0], r[1], r[2]) for r in cells]


def said_ago(cell: str, verdict: str) -> bool:
    """``VERDICT · 3s ago`` (or ``· just now``): the clock moves while the test runs."""
    import re

    head, _, tail = cell.partition(" · ")
    return head == verdict and re.fullmatch(r"just now|\d+[smhd] ago", tail) is not None


def test_models_show_the_newest_drift_verdict_beside_each_staged_version(registry_project):
    root, md5 = registry_project

    async def scenario(app, screen, pilot):
        table = screen.query_one("#models-versions", DataTable)
        assert [str(c.label) for c in table.ordered_columns][:4] == ["version", "stages", "drift", "run"]
        shown_versions = versions(screen)
        assert [v[:2] for v in shown_versions] == [("v0.0.3", ""), ("v0.0.2", "staging"), ("v0.0.1", "prod")]
        assert shown_versions[0][2] == ""  # in no stage: nothing to say
        assert shown_versions[1][2] == "—"  # no reference profile registered with it
        # the newest check (plan moved: 1 of 3 columns, under the share), not the older one
        assert said_ago(shown_versions[2][2], "✓ no drift 1/3")
        assert table.get_row_at(2)[2].style == "green"

        # a check recorded elsewhere (`opsctl monitor drift`) shows by itself
        record(root, [check(time.time() + 1, 0.4, 0.3)._replace(reference="churn@v0.0.1", reference_hash=md5)])
        await until(pilot, lambda: versions(screen)[2][2].startswith("✗"), "the new verdict")
        assert said_ago(versions(screen)[2][2], "✗ drift 2/2")
        assert table.get_row_at(2)[2].style == "red"

    drive_models(root, scenario, refresh_interval=0.2)


def test_the_dashboard_reads_the_newest_hundred_checks_of_each_dataset(project):
    from opsctl.core.dashboard import Dashboard
    from opsctl.core.monitoring import DRIFT_POINTS

    record(project, [check(T0 + 86400 + n * 60, 0.01 * (n % 7), 0.02, rows=n) for n in range(120)])
    drift = Dashboard(open_project(project)).drift()
    assert [d.path for d in drift] == ["data/batch.csv", "data/live.csv"]
    batch = drift[0]
    assert DRIFT_POINTS == 100 and len(batch.checks) == 100
    assert [c.rows for c in batch.checks] == list(range(20, 120))  # the newest, oldest first
    assert batch.last.rows == 119

    async def scenario(app, pilot):
        screen = await open_drift(app, pilot)
        detail = shown(screen, "#drift-chart")
        assert "(100 checks)" in detail and "per column: its statistic per check (the last 60)" in detail
        tenure = next(line for line in detail.splitlines() if line.strip().startswith("tenure"))
        assert len(tenure.split()[1]) == 60  # a character per check

    drive(project, scenario)


def test_the_detail_says_which_columns_were_not_compared_and_keeps_markup_as_text():
    from opsctl.core.monitoring import DatasetDrift
    from opsctl.tui.screens.data import drift_detail

    ks = {**column("[b]tenure[/b]", 0.31, True, method="ks", threshold=0.05), "p_value": 0.0004}
    skipped = {"column": "customer_id", "compared": False, "drift": False, "detail": "an identifier"}
    first = check(T0, 0.01, 0.01)._replace(path="data/[x].csv", run_id="abcdef0123456789", stage="score")
    last = first._replace(at=T0 + 60, columns=[ks, skipped], drift=True, share=1.0)
    text = drift_detail(DatasetDrift("data/[x].csv", [first, last])).plain
    assert text.startswith("data/[x].csv  ✗ drift 1/1")
    assert "by run abcdef01 (gate score)" in text
    lines = text.splitlines()
    tenure = next(line for line in lines if line.strip().startswith("[b]tenure[/b]"))
    assert tenure.split()[1:] == ["█", "ks", "0.31", "p", "0.0004", "threshold", "0.05", "drifted"]
    assert any(line.split()[:1] == ["customer_id"] and line.endswith("not compared: an identifier") for line in lines)
