"""The Plots view, over a real project whose pipeline writes known plots (an ROC curve, a
confusion matrix, an image) and two real `opsctl run`s of it with different params, so each
run recorded different plots: opened from a run (`g`) and from Compare (the runs overlaid),
cycled with `[` and `]`, drawn off the UI thread to fit the view, and the empty states.

pytest-asyncio is not a dependency: each test runs its pilot with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import threading
from pathlib import Path

import pytest
from textual.widgets import Static

from opsctl.core import plot_text
from opsctl.core.dashboard import NO_PLOTS_DECLARED, Dashboard
from opsctl.core.project import open_project
from opsctl.store import RunStore
from opsctl.tui.app import OpsctlApp
from opsctl.tui.screens.compare import CompareScreen
from opsctl.tui.screens.help import HelpScreen
from opsctl.tui.screens.plots import PLACEHOLDER, PlotArea, PlotsScreen
from opsctl.tui.screens.run import RunScreen
from tests.conftest import git_dvc_project, one_stage_run, opsctl_inprocess
from tests.tui.test_runs_screen import toasts, until

# A 1x1 PNG: the pipeline's image plot.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
EVALUATE = f"""\
import json

shift = float(open("params.yaml").read().split(":")[1])
roc = [{{"fpr": i / 10, "tpr": round(min(1.0, (i / 10) ** 0.5 + shift), 4)}} for i in range(11)]
json.dump(roc, open("roc.json", "w"))
pairs = [(0, 0)] * 6 + [(0, 1)] * (2 + round(shift * 10)) + [(1, 1)] * 5 + [(1, 0)] * 3
json.dump([{{"actual": a, "predicted": p}} for a, p in pairs], open("confusion.json", "w"))
open("sample.png", "wb").write({PNG!r})
"""
DVC_YAML = """\
stages:
  evaluate:
    cmd: python3 evaluate.py
    deps: [evaluate.py]
    params: [shift]
    plots:
      - confusion.json:
          cache: false
          template: confusion
          x: predicted
          y: actual
          title: Confusion matrix
      - roc.json:
          cache: false
          x: fpr
          y: tpr
          title: ROC curve
      - sample.png:
          cache: false
"""
# DVC's order: as dvc.yaml declares them
CONFUSION, ROC, IMAGE = "confusion.json", "roc.json", "sample.png"
OLD_RUN = "01d01d01d01d"  # recorded before the project had plots: it recorded none
BRAILLE = re.compile("[\u2801-\u28ff]")


def pipeline_run(root: Path, shift: float) -> str:
    (root / "params.yaml").write_text(f"shift: {shift}\n")
    opsctl_inprocess("run", "--executor", "local", cwd=root, check=True)
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        return store.list_runs(limit=1)[0].id


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, str, str]:
    """The project and its two runs: the first (shift 0), the second (shift 0.1)."""
    root = git_dvc_project(tmp_path_factory.mktemp("plots") / "project", "plots")
    (root / "evaluate.py").write_text(EVALUATE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        store.record_run(one_stage_run(OLD_RUN, 1e9, 1, params={}, metrics={}))
    first = pipeline_run(root, 0.0)
    second = pipeline_run(root, 0.1)
    return root, first, second


def drive(root: Path, scenario, *, services: Dashboard | None = None, size=(120, 36)) -> None:
    app = OpsctlApp(services or Dashboard(open_project(root)), refresh_interval=3600)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.screen.__class__.__name__ == "RunsScreen" and app.screen.page is not None)
            await scenario(app, pilot)

    asyncio.run(main())


async def open_plots_of_run(app, pilot, run_id: str) -> None:
    app.open_run(run_id)
    await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.detail is not None)
    await pilot.press("g")
    await until(pilot, lambda: isinstance(app.screen, PlotsScreen))


async def drawn(app, pilot, title: str) -> None:
    """Until the plot titled TITLE is drawn for the view's present size."""

    def done() -> bool:
        screen = app.screen
        region = screen.query_one(PlotArea).content_region
        return (
            title_of(app) == title
            and screen.shown is not None
            and screen.shown == (screen.index, region.width, region.height)
        )

    await until(pilot, done)


def title_of(app) -> str:
    return str(app.screen.query_one("#plot-title", Static).render())


def plot_of(app) -> str:
    return str(app.screen.query_one("#plot", Static).render())


def errors_of(app) -> str:
    errors = app.screen.query_one("#plot-errors", Static)
    return str(errors.render()) if errors.display else ""


def keybar(app) -> str:
    return str(app.screen.query_one("#keybar", Static).render())


def test_g_on_a_run_shows_its_plots_one_at_a_time_cycled_with_brackets(project):
    root, _first, second = project

    async def scenario(app, pilot):
        app.open_run(second)
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.detail is not None)
        assert "g Plots" in keybar(app)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, PlotsScreen))
        assert app.screen.sub_title == f"plots of run {second}"
        await drawn(app, pilot, f"plot 1/3: {CONFUSION}")
        matrix = plot_of(app)
        assert "Confusion matrix" in matrix and "actual \\ predicted" in matrix
        # shift 0.1: six 0→0, three 0→1, three 1→0, five 1→1
        assert [re.findall(r"\d+", line)[1:] for line in matrix.splitlines() if re.match(r"│\s+[01] │", line)] == [
            ["6", "3"],
            ["3", "5"],
        ]
        assert errors_of(app) == ""

        await pilot.press("right_square_bracket")
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        chart = plot_of(app)
        assert "ROC curve" in chart and BRAILLE.search(chart) and second in chart  # the legend names the run
        # Drawn to the view's width, not plotext's idea of the terminal (80 columns without one).
        width = app.screen.query_one(PlotArea).content_region.width
        assert width == 120 and max(len(line) for line in chart.splitlines()) == width

        await pilot.press("right_square_bracket")
        await until(pilot, lambda: title_of(app) == f"plot 3/3: {IMAGE}")
        assert plot_of(app) == (
            f"{IMAGE} is an image: `opsctl plots show --run {second} --html plots.html` shows it in a browser."
        )

        await pilot.press("right_square_bracket")  # past the last: the first again
        await drawn(app, pilot, f"plot 1/3: {CONFUSION}")
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: title_of(app) == f"plot 3/3: {IMAGE}")
        await pilot.press("left_square_bracket")
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        assert "ROC curve" in plot_of(app)

        await pilot.press("r")  # read again: the same plot stays in view
        await until(pilot, lambda: app.screen.loads == 2)
        await drawn(app, pilot, f"plot 2/3: {ROC}")

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = str(app.screen.query_one("#help-keys", Static).render())
        assert re.search(r"^\]\s+Next plot$", keys, re.M) and re.search(r"^\[\s+Previous plot$", keys, re.M)
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        assert not toasts(app)

    drive(root, scenario)


def test_compare_g_overlays_the_runs_in_every_plot(project):
    root, first, second = project

    async def scenario(app, pilot):
        app.open_compare([first, second])
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None)
        assert "g Plots overlaid" in keybar(app)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, PlotsScreen))
        assert app.screen.sub_title == "plots of the runs overlaid"
        await drawn(app, pilot, f"plot 1/3: {CONFUSION}")
        matrices = plot_of(app)
        assert first in matrices and second in matrices  # one matrix per run, headed by its id
        await pilot.press("right_square_bracket")
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        legend = [line for line in plot_of(app).splitlines() if first in line or second in line]
        assert any(first in line for line in legend) and any(second in line for line in legend)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: title_of(app) == f"plot 3/3: {IMAGE}")
        assert f"--run {first} --run {second} --html plots.html" in plot_of(app)

    drive(root, scenario)


def test_a_run_without_recorded_plots_says_how_to_get_them(project):
    root, _first, second = project

    async def scenario(app, pilot):
        await open_plots_of_run(app, pilot, OLD_RUN)
        await until(pilot, lambda: title_of(app) == "no plots")
        text = plot_of(app)
        assert text.startswith(f"Run {OLD_RUN} recorded no plots") and "`opsctl run`" in text
        await pilot.press("right_square_bracket", "left_square_bracket")  # nothing to cycle: nothing breaks
        assert title_of(app) == "no plots" and not toasts(app)

        # Beside a run that has plots: that run's, and a line about the other.
        await pilot.press("escape", "escape")
        app.open_compare([OLD_RUN, second])
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, PlotsScreen))
        await drawn(app, pilot, f"plot 1/3: {CONFUSION}")
        assert errors_of(app) == f"run {OLD_RUN} recorded no plots"

    drive(root, scenario)


def test_a_project_without_plots_says_what_to_declare(tmp_path):
    root = git_dvc_project(tmp_path / "bare", "bare")
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        store.record_run(one_stage_run("ba5eba5eba5e", 1e9, 1, params={}, metrics={}))

    async def scenario(app, pilot):
        await open_plots_of_run(app, pilot, "ba5eba5eba5e")
        await until(pilot, lambda: title_of(app) == "no plots")
        assert plot_of(app) == NO_PLOTS_DECLARED
        assert "dvc.yaml declares none" in NO_PLOTS_DECLARED and "`plots:`" in NO_PLOTS_DECLARED

    drive(root, scenario)


def test_a_plot_file_gone_from_the_cache_is_said_under_the_plot(project, tmp_path):
    root, first, _second = project
    copy = Path(shutil.copytree(root, tmp_path / "project", symlinks=True))
    with RunStore(copy / ".opsctl" / "opsctl.db") as store:
        from opsctl.store.plots import run_plots

        md5 = next(f.md5 for f in run_plots(store, first).files if f.path == ROC)
    (copy / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()

    async def scenario(app, pilot):
        await open_plots_of_run(app, pilot, first)
        await drawn(app, pilot, f"plot 1/3: {CONFUSION}")
        assert errors_of(app) == ""  # the confusion matrix is still in the cache
        await pilot.press("right_square_bracket")
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        errors = errors_of(app)
        assert f"{ROC}: gone from the DVC cache (md5 {md5[:8]}; " in errors and f"(in run {first})" in errors
        assert "no data points to draw" in plot_of(app)

    drive(copy, scenario)


class Watched(Dashboard):
    """The real services, noting the thread the plots are read in."""

    threads: list[threading.Thread] = []

    def plots(self, run_ids):
        self.threads.append(threading.current_thread())
        return super().plots(run_ids)


def test_plots_are_read_and_drawn_off_the_ui_thread_with_a_placeholder_meanwhile(project, monkeypatch):
    root, _first, second = project
    real_draw = plot_text.draw
    drawing = threading.Event()
    release = threading.Event()
    draw_threads: list[threading.Thread] = []

    def held_draw(plot, width, height, *, color=True):
        draw_threads.append(threading.current_thread())
        drawing.set()
        assert release.wait(30), "the test never let the drawing finish"
        return real_draw(plot, width, height, color=color)

    monkeypatch.setattr(plot_text, "draw", held_draw)
    services = Watched(open_project(root))

    async def scenario(app, pilot):
        await open_plots_of_run(app, pilot, second)
        await until(pilot, drawing.is_set)
        # The drawing is held in its worker: the screen shows the placeholder and still answers keys.
        assert title_of(app) == f"plot 1/3: {CONFUSION}" and plot_of(app) == PLACEHOLDER
        await pilot.press("right_square_bracket")
        assert title_of(app) == f"plot 2/3: {ROC}" and plot_of(app) == PLACEHOLDER
        release.set()
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        assert "ROC curve" in plot_of(app)
        assert services.threads and draw_threads
        assert all(t is not threading.main_thread() for t in services.threads + draw_threads)

    drive(root, scenario, services=services)


def test_a_resize_draws_the_plot_again_for_the_new_size(project):
    root, _first, second = project

    async def scenario(app, pilot):
        await open_plots_of_run(app, pilot, second)
        await pilot.press("right_square_bracket")
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        assert max(len(line) for line in plot_of(app).splitlines()) == 120
        before = app.screen.shown
        await pilot.resize_terminal(90, 30)
        await until(pilot, lambda: app.screen.shown not in (None, before))
        await drawn(app, pilot, f"plot 2/3: {ROC}")
        lines = plot_of(app).splitlines()
        region = app.screen.query_one(PlotArea).content_region
        assert (max(len(line) for line in lines), len(lines)) == (90, region.height)

    drive(root, scenario)
