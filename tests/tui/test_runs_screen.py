"""The runs screen (home) and the run screen, driven with the pilot through the real app
and the real Dashboard over a real Git + DVC project whose store holds 130 runs:
paging, filters, sorting, marking and comparing, opening a run, its log (followed
while the run is going), live refresh, help, the empty state and quitting.

pytest-asyncio is not a dependency: each test runs its pilot with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Log, Static

from opsctl.core.dashboard import Dashboard
from opsctl.core.project import open_project
from opsctl.store import NewRun, RunRecord, RunStore, StageRecord
from opsctl.tui.app import OpsctlApp
from opsctl.tui.screens.runs import PAGE_SIZE, RunsScreen
from tests.conftest import git_dvc_project

COUNT = 130
T0 = 1_600_000_000.0
STATUSES = ["succeeded", "succeeded", "failed", "succeeded", "interrupted"]


def run_id(n: int) -> str:
    return f"{n:04x}" + "beef" + f"{n * 7919 % 65536:04x}"


def accuracy(n: int) -> float:
    return round(0.5 + (n * 37 % 50) / 100, 2)


NEWEST = run_id(COUNT - 1)
LOG_LINE = "epoch 3/3 loss=0.125"


def make_project(root: Path, count: int = COUNT) -> Path:
    git_dvc_project(root, "tui-runs")
    log_dir = root / ".opsctl" / "runs" / NEWEST
    log_dir.mkdir(parents=True)
    (log_dir / "train.log").write_text(f"loading data\n{LOG_LINE}\n")
    records = []
    for n in range(count):
        started = T0 + 600 * n
        status = STATUSES[n % len(STATUSES)]
        stages = [
            StageRecord("prepare", "cached", started=started, duration=0.5, cmd="python prepare.py"),
            StageRecord(
                "train",
                "failed" if status == "failed" else "ran",
                started=started + 1,
                duration=30.0 + n,
                cmd="python train.py",
                image_ref="opsctl/app:1",
                image_id="sha256:" + "ab" * 32,
                exit_code=1 if status == "failed" else 0,
                log_path=f".opsctl/runs/{run_id(n)}/train.log" if n == count - 1 else None,
            ),
        ]
        records.append(
            RunRecord(
                NewRun(
                    run_id(n),
                    started=started,
                    user="ana",
                    host="box",
                    git_commit=f"{n:08x}" + "0" * 32,
                    branch="main" if n % 2 else "exp",
                    executor="local",
                    jobs=2,
                ),
                status=status,
                finished=started + 40 + n,
                stages=stages,
                params={"train.lr": round(0.01 * (n % 10 + 1), 2), "train.optimizer": "adam"},
                metrics={"accuracy": accuracy(n), "loss": round(1 - accuracy(n), 2)},
            )
        )
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        store.record_runs(records)
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("tui-runs") / "project")


@pytest.fixture
def project(template, tmp_path) -> Path:
    """A copy per test: some tests write runs."""
    return Path(shutil.copytree(template, tmp_path / "project", symlinks=True))


def drive(root: Path, scenario, *, refresh: float = 60.0, size=(140, 40), services: Dashboard | None = None):
    """Run ``scenario(app, pilot)`` against the app over ROOT; the app's poll is slow
    unless a test wants live refresh."""
    app = OpsctlApp(services or Dashboard(open_project(root)), refresh_interval=refresh)

    async def main():
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.page is not None)
            await scenario(app, pilot)

    asyncio.run(main())
    return app


async def until(pilot, condition, timeout: float = 20.0) -> None:
    """Let the app work until CONDITION holds (a guard against hanging, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app never reached the expected state")
        await pilot.pause(0.02)


def begin_live_run(project: Path, live: str) -> None:
    """A run in progress, of this process's pid and host (so no reaper marks it dead)."""
    with RunStore(project / ".opsctl" / "opsctl.db") as store:
        store.begin_run(
            NewRun(
                live,
                started=time.time(),
                user="ana",
                host=socket.gethostname(),
                pid=os.getpid(),
                executor="local",
                jobs=1,
            )
        )


def table(app) -> DataTable:
    return app.screen.query_one("#runs", DataTable)


def shown_ids(app) -> list[str]:
    return [key.value for key in table(app).rows]


def summary(app) -> str:
    return str(app.screen.query_one("#summary", Static).render())


def toasts(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def store_ids(root: Path, **kw) -> list[str]:
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        return [r.id for r in store.list_runs(limit=1000, **kw)]


# -- the table and paging ----------------------------------------------------------------------


def test_the_first_page_is_the_newest_runs_and_pages_come_from_the_store(template):
    async def scenario(app, pilot):
        assert shown_ids(app) == store_ids(template)[:PAGE_SIZE]
        assert table(app).row_count == PAGE_SIZE
        assert summary(app).startswith(f"runs 1–{PAGE_SIZE} of {COUNT}")
        labels = [str(c.label) for c in table(app).columns.values()]
        assert labels[:7] == ["", "run", "status", "started ▼", "duration", "commit", "stages"]
        assert labels[7:] == ["accuracy", "loss"]
        first = table(app).get_row_at(0)
        assert (str(first[1]), str(first[2])) == (NEWEST[:8], STATUSES[(COUNT - 1) % len(STATUSES)])
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: table(app).row_count == COUNT - PAGE_SIZE)
        assert shown_ids(app) == store_ids(template)[PAGE_SIZE:]
        assert summary(app).startswith(f"runs {PAGE_SIZE + 1}–{COUNT} of {COUNT}")
        await pilot.press("right_square_bracket")  # no page after the last
        await pilot.pause(0.2)
        assert summary(app).startswith(f"runs {PAGE_SIZE + 1}–{COUNT}")
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: table(app).row_count == PAGE_SIZE)
        assert shown_ids(app)[0] == NEWEST

    drive(template, scenario)


# -- filter ------------------------------------------------------------------------------------


def test_filter_by_status_expression_and_prefix_then_escape_clears(template):
    async def scenario(app, pilot):
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.display and box.has_focus
        await pilot.press(*"failed", "enter")
        await until(pilot, lambda: "filter: failed" in summary(app))
        assert shown_ids(app) == store_ids(template, status="failed")
        assert not box.display and table(app).has_focus

        await pilot.press("slash")
        box.value = "metrics.accuracy>=0.9 succeeded"
        await pilot.press("enter")
        await until(pilot, lambda: "metrics.accuracy>=0.9" in summary(app))
        expected = [run_id(n) for n in reversed(range(COUNT)) if accuracy(n) >= 0.9 and STATUSES[n % 5] == "succeeded"]
        assert shown_ids(app) == expected and expected

        await pilot.press("slash")
        box.value = NEWEST[:6]
        await pilot.press("enter")
        await until(pilot, lambda: shown_ids(app) == [NEWEST])

        await pilot.press("slash")
        box.value = "xp"  # inside the branch name "exp", not at its start
        await pilot.press("enter")
        on_exp = [run_id(n) for n in reversed(range(COUNT)) if n % 2 == 0]
        await until(pilot, lambda: shown_ids(app) == on_exp)

        await pilot.press("escape")
        await until(pilot, lambda: table(app).row_count == PAGE_SIZE)
        assert "filter" not in summary(app)

    drive(template, scenario)


def test_a_malformed_filter_says_why_and_keeps_the_box_open(template):
    async def scenario(app, pilot):
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        box.value = "params>1"
        await pilot.press("enter")
        await until(pilot, lambda: toasts(app))
        assert any("params.KEY" in t for t in toasts(app)), toasts(app)
        assert box.display
        await pilot.press("escape")  # closes the box, keeps the table as it was
        assert not box.display
        assert table(app).row_count == PAGE_SIZE

    drive(template, scenario)


def test_no_match_says_so(template):
    async def scenario(app, pilot):
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "metrics.accuracy>5"
        await pilot.press("enter")
        empty = app.screen.query_one("#empty", Static)
        await until(pilot, lambda: empty.display)
        assert "No runs match" in str(empty.render())

    drive(template, scenario)


# -- sort ---------------------------------------------------------------------------------------


def test_sort_cycles_columns_in_the_store_and_o_reverses(template):
    async def scenario(app, pilot):
        await pilot.press("s")  # started -> duration
        await until(pilot, lambda: "sorted by duration ▼" in summary(app))
        assert shown_ids(app) == store_ids(template, sort="duration")[:PAGE_SIZE]
        assert shown_ids(app)[0] == NEWEST  # the longest run is the last one made
        await pilot.press("o")
        await until(pilot, lambda: "sorted by duration ▲" in summary(app))
        assert shown_ids(app)[0] == run_id(0)
        for _ in range(3):  # commit, stages, accuracy
            await pilot.press("s")
        await until(pilot, lambda: "sorted by metrics.accuracy ▼" in summary(app))
        assert shown_ids(app) == store_ids(template, sort="metrics.accuracy")[:PAGE_SIZE]
        header = [str(c.label) for c in table(app).columns.values()]
        assert "accuracy ▼" in header and "started" in header

    drive(template, scenario)


def test_clicking_a_header_sorts_by_it(template):
    async def scenario(app, pilot):
        table(app).post_message(
            DataTable.HeaderSelected(
                table(app), table(app).ordered_columns[2].key, 2, table(app).ordered_columns[2].label
            )
        )
        await until(pilot, lambda: "sorted by status ▼" in summary(app))
        assert shown_ids(app) == store_ids(template, sort="status")[:PAGE_SIZE]

    drive(template, scenario)


# -- marks and compare ---------------------------------------------------------------------------


def test_space_marks_runs_and_c_compares_them(template):
    shown_ids_before: list[str] = []

    async def scenario(app, pilot):
        await pilot.press("c")  # nothing marked
        await until(pilot, lambda: toasts(app))
        assert "Mark two or more" in toasts(app)[-1]
        await pilot.press("space")  # marks the first run, moves down
        await pilot.press("space")
        assert app.screen.marked == [shown_ids(app)[0], shown_ids(app)[1]]
        assert str(table(app).get_row_at(0)[0]) == "●" and str(table(app).get_row_at(2)[0]) == ""
        assert "2 marked" in summary(app)
        await pilot.press("up", "space")  # unmark the second
        assert app.screen.marked == [shown_ids(app)[0]]
        await pilot.press("space")  # the cursor moved on: marks the third
        shown_ids_before.extend(shown_ids(app))
        await pilot.press("c")
        await until(pilot, lambda: type(app.screen).__name__ == "CompareScreen")
        assert app.screen.run_ids == [NEWEST, shown_ids_before[2]]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("escape")  # clears the marks
        await until(pilot, lambda: not app.screen.marked)

    drive(template, scenario)


# -- a run ----------------------------------------------------------------------------------------


def test_enter_opens_the_run_with_its_stages_values_and_log(template):
    async def scenario(app, pilot):
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "RunScreen")
        screen = app.screen
        assert screen.run_id == NEWEST
        stages = screen.query_one("#stages", DataTable)
        await until(pilot, lambda: stages.row_count == 2)
        assert [str(stages.get_row_at(i)[0]) for i in range(2)] == ["prepare", "train"]
        assert str(stages.get_row_at(1)[4]).startswith("opsctl/app:1 (abababababab)")
        info = str(screen.query_one("#run-info", Static).render())
        assert NEWEST in info and "tui" not in info
        values = str(screen.query_one("#values", Static).render()).splitlines()
        assert [line.split()[0] for line in values] == [
            "params",
            "train.lr",
            "train.optimizer",
            "metrics",
            "accuracy",
            "loss",
        ]
        assert values[1].split()[1] == "0.1" and values[3].split()[1] == "2"
        log = screen.query_one(Log)
        assert screen.stage == "prepare"
        await until(pilot, lambda: "no log saved" in "\n".join(log.lines))
        await pilot.press("down")  # train: its saved log
        await until(pilot, lambda: LOG_LINE in "\n".join(log.lines))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))

    drive(template, scenario)


def test_a_running_run_is_followed_and_the_table_refreshes_itself(project):
    """A run in progress (this process's pid and host, so no reaper marks it dead): new
    runs appear in the table, the running stage's log grows on screen, and the run's
    end shows without a key pressed."""
    live = "cafe00000001"
    log = project / ".opsctl" / "runs" / live / "train.log"

    async def scenario(app, pilot):
        begin_live_run(project, live)
        log.parent.mkdir(parents=True)
        log.write_text("step 1\n")
        await until(pilot, lambda: shown_ids(app)[0] == live)
        assert "running" in str(table(app).get_row_at(0)[2])
        assert table(app).cursor_row == 1  # the cursor stayed on the run it was on
        await pilot.press("up", "enter")
        await until(pilot, lambda: type(app.screen).__name__ == "RunScreen")
        screen = app.screen
        assert screen.run_id == live
        view = screen.query_one(Log)
        await until(pilot, lambda: "step 1" in "\n".join(view.lines))
        assert "following" in str(screen.query_one("#log-title", Static).render())
        with open(log, "a") as f:
            f.write("step 2\n")
        await until(pilot, lambda: "step 2" in "\n".join(view.lines))
        await pilot.pause(0.3)  # a few more follow-ups: none may repeat what is shown
        assert [line for line in view.lines if line] == ["step 1", "step 2"]
        with RunStore(project / ".opsctl" / "opsctl.db") as store:
            store.record_stage(
                live,
                StageRecord(
                    "train",
                    "ran",
                    started=time.time(),
                    duration=1.0,
                    exit_code=0,
                    log_path=f".opsctl/runs/{live}/train.log",
                ),
            )
            store.finish_run(live, "succeeded", time.time(), {}, {"accuracy": 0.99})
        await until(pilot, lambda: "succeeded" in str(screen.query_one("#run-info", Static).render()))
        await pilot.press("escape")
        await until(pilot, lambda: "succeeded" in str(table(app).get_row_at(0)[2]))

    drive(project, scenario, refresh=0.1)


class HeldPages(Dashboard):
    """Its pages wait while ``hold`` is clear: a reload slower than the user's keys."""

    def __init__(self, project) -> None:
        super().__init__(project)
        self.hold, self.asked = threading.Event(), threading.Event()
        self.hold.set()

    def runs_page(self, *args, **kwargs):
        self.asked.set()
        self.hold.wait(20)
        return super().runs_page(*args, **kwargs)


def test_a_refresh_keeps_the_cursor_where_the_user_moved_it_meanwhile(project):
    """A run starts, the table reloads, and the user presses keys before the new page
    arrives: the cursor stays on the run the user went to, not the one it was on when
    the reload began."""
    services = HeldPages(open_project(project))
    live = "cafe00000003"

    async def scenario(app, pilot):
        services.hold.clear()
        services.asked.clear()
        begin_live_run(project, live)
        await until(pilot, services.asked.is_set)
        await pilot.press("down", "down")
        chosen = shown_ids(app)[table(app).cursor_row]
        assert chosen == run_id(COUNT - 3)
        services.hold.set()
        await until(pilot, lambda: shown_ids(app)[0] == live)
        assert shown_ids(app)[table(app).cursor_row] == chosen

    drive(project, scenario, refresh=0.1, services=services)


def test_a_run_opened_before_its_first_stage_shows_the_stage_when_it_starts(project):
    """Opened between `opsctl run` recording the run and its first stage's log appearing:
    the screen keeps looking, and the stage and its log show up."""
    live = "cafe00000002"
    log = project / ".opsctl" / "runs" / live / "prepare.log"

    async def scenario(app, pilot):
        begin_live_run(project, live)
        app.open_run(live)
        await until(pilot, lambda: type(app.screen).__name__ == "RunScreen" and app.screen.detail is not None)
        stages = app.screen.query_one("#stages", DataTable)
        assert stages.row_count == 0
        log.parent.mkdir(parents=True)
        log.write_text("preparing\n")
        await until(pilot, lambda: stages.row_count == 1)
        assert [str(c) for c in stages.get_row_at(0)[:2]] == ["prepare", "running"]
        await until(pilot, lambda: "preparing" in "\n".join(app.screen.query_one(Log).lines))

    drive(project, scenario, refresh=0.1)


def test_a_run_on_remote_workers_shows_each_stages_worker_and_a_run_on_this_host_does_not(project):
    """The worker column is there while a run with remote stages is shown, and gone again
    for the next run opened on the same screen (which runs on this host look as before)."""
    remote, w1, w2 = "d15c00000001", "tcp://127.0.0.1:40123", "tcp://10.0.0.7:39001"
    with RunStore(project / ".opsctl" / "opsctl.db") as store:
        store.record_run(
            RunRecord(
                NewRun(remote, started=T0 - 600, executor="dask", jobs=2),
                "succeeded",
                T0 - 500,
                [
                    StageRecord("prepare", "ran", started=T0 - 599, duration=1.0, exit_code=0, worker=w1),
                    StageRecord("train", "ran", started=T0 - 598, duration=2.0, exit_code=0, worker=w2, attempts=2),
                    StageRecord("report", "cached", started=T0 - 597),
                ],
            )
        )

    def headers(stages: DataTable) -> list[str]:
        return [str(c.label) for c in stages.ordered_columns]

    async def scenario(app, pilot):
        app.open_run(remote)
        await until(pilot, lambda: type(app.screen).__name__ == "RunScreen" and app.screen.detail is not None)
        stages = app.screen.query_one("#stages", DataTable)
        await until(pilot, lambda: stages.row_count == 3)
        assert headers(stages) == ["stage", "outcome", "duration", "exit", "image", "worker"]
        assert [str(stages.get_row_at(i)[5]) for i in range(3)] == [w1, f"{w2} (2 attempts)", ""]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        app.open_run(NEWEST)
        await until(
            pilot, lambda: type(app.screen).__name__ == "RunScreen" and getattr(app.screen.detail, "id", None) == NEWEST
        )
        await until(pilot, lambda: stages.row_count == 2)
        assert headers(stages) == ["stage", "outcome", "duration", "exit", "image"]
        assert len(stages.get_row_at(1)) == 5

    drive(project, scenario)


# -- states and global keys ------------------------------------------------------------------------


def test_no_runs_yet_says_which_command_makes_one(tmp_path):
    root = git_dvc_project(tmp_path / "empty")

    async def scenario(app, pilot):
        empty = app.screen.query_one("#empty", Static)
        await until(pilot, lambda: empty.display)
        assert "No runs yet" in str(empty.render()) and "opsctl run" in str(empty.render())
        assert not table(app).display

    drive(root, scenario)


def test_help_lists_the_screen_keys_and_q_quits(template):
    async def scenario(app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        listing = str(app.screen.query_one("#help-keys", Static).render())
        actions = [line.split(maxsplit=1)[1] for line in listing.splitlines()]
        assert actions[:4] == ["Open run", "Mark", "Compare marked", "Compare best"]
        assert "Quit" in actions and "Help" in actions
        assert "Cursor left" not in actions  # the table's own keys are summed up, not listed
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "RunScreen")
        await pilot.press("1")  # home from anywhere
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("q")

    app = drive(template, scenario)
    assert app.return_code == 0


def test_a_click_on_a_key_in_the_bar_runs_it(template):
    async def scenario(app, pilot):
        bar = app.screen.query_one("#keybar")
        text = str(bar.render())
        column = text.index("? Help")  # the bar's own text; +1 for its left padding
        await pilot.click("#keybar", offset=(column + 1, 0))
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        column = text.index("c Compare marked")
        await pilot.click("#keybar", offset=(column + 1, 0))
        await until(pilot, lambda: toasts(app))
        assert "Mark two or more" in toasts(app)[-1]

    drive(template, scenario)


def test_the_key_bar_shows_the_filter_boxs_keys_while_it_is_open(template):
    async def scenario(app, pilot):
        bar = app.screen.query_one("#keybar")
        screen_keys = str(bar.render())
        assert "/ Filter" in screen_keys
        await pilot.press("slash")
        text = str(bar.render())
        assert text.startswith("enter Apply filter  esc Cancel") and "/ Filter" not in text
        await pilot.press("escape")
        assert str(bar.render()) == screen_keys
        await pilot.press("slash", "f", "a", "i", "l", "e", "d")  # a status
        await pilot.click("#keybar", offset=(text.index("Apply") + 1, 0))  # a click applies it too
        await until(pilot, lambda: "filter: failed" in summary(app))
        assert str(bar.render()) == screen_keys
        await pilot.press("slash")
        await pilot.click("#keybar", offset=(text.index("Cancel") + 1, 0))
        assert not app.screen.query_one("#filter").display and str(bar.render()) == screen_keys

    drive(template, scenario)


def test_in_a_narrow_terminal_the_key_bar_keeps_quit_and_help(template):
    async def scenario(app, pilot):
        bar = app.screen.query_one("#keybar")
        text = str(bar.render())
        assert len(text) <= 78 and "…" in text
        assert text.startswith("space Mark") and text.endswith("q Quit  ? Help  ^p palette")
        await pilot.click("#keybar", offset=(text.index("? Help") + 1, 0))
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")

    drive(template, scenario, size=(80, 24))


def test_ctrl_c_quits_even_from_the_filter_box(template):
    async def scenario(app, pilot):
        await pilot.press("slash", "f")
        assert app.screen.query_one("#filter", Input).has_focus
        assert app.return_code is None  # running
        await pilot.press("ctrl+c")
        assert app.return_code == 0  # told to exit by the key, not by the test ending

    drive(template, scenario)
