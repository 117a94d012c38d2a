"""The lineage and pipeline screens over a real project: Git + DVC, three stages run once
with `opsctl run --executor local`, the last output registered as a model version, then
one param edited so one stage is stale. Driven through the real app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from textual.widgets import DataTable, Static, Tree

from opsctl.core.dashboard import Dashboard
from opsctl.core.lineage import Lineage, Node
from opsctl.core.project import open_project
from opsctl.store import NewRun, RunRecord, RunStore, StageRecord
from opsctl.tui.app import OpsctlApp
from opsctl.tui.screens.lineage import LineageItem, LineageScreen
from opsctl.tui.screens.pipeline import PipelineScreen
from opsctl.tui.screens.run import RunScreen
from opsctl.tui.screens.runs import RunsScreen
from tests.cli.test_runs import copy_project
from tests.conftest import git_dvc_project, opsctl_inprocess, run, run_opsctl
from tests.tui.pilot import settle

SIZE = (120, 40)

STAGES = {
    "prepare": {"cmd": "python3 src/prep.py", "deps": ["src/prep.py", "data/raw.csv"], "outs": ["prepared.txt"]},
    "train": {
        "cmd": "cat prepared.txt params.yaml > model.txt",
        "deps": ["prepared.txt"],
        "params": ["train"],
        "outs": ["model.txt"],
    },
    "evaluate": {
        "cmd": "wc -c model.txt > metrics.txt",
        "deps": ["model.txt"],
        "params": ["evaluate.k"],
        "outs": ["metrics.txt"],
    },
}
PARAMS = {"train": {"lr": 0.1, "depth": 3}, "evaluate": {"k": 5}}
PREP = 'import pathlib\npathlib.Path("prepared.txt").write_text(pathlib.Path("data/raw.csv").read_text().upper())\n'


def git_commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", message], cwd=root)


def set_param(root: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """Read only: tests that change it work on a copy."""
    root = git_dvc_project(tmp_path_factory.mktemp("lineage-pipeline") / "p")
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("a,b\n1,2\n")
    run([sys.executable, "-m", "dvc", "add", "-q", "data/raw.csv"], cwd=root)
    (root / "src").mkdir()
    (root / "src" / "prep.py").write_text(PREP)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGES}, sort_keys=False))
    git_commit(root, "init")
    result = opsctl_inprocess("run", "--executor", "local", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    git_commit(root, "first run")
    result = opsctl_inprocess("model", "register", "churn", "model.txt", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    set_param(root, "evaluate", "k", 7)  # evaluate stale, the rest up to date
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    md5 = {out["path"]: out["md5"] for stage in lock.values() for out in stage.get("outs", [])}
    md5["data/raw.csv"] = yaml.safe_load((root / "data" / "raw.csv.dvc").read_text())["outs"][0]["md5"]
    return {"root": root, "run": run_id, "md5": md5}


def drive(root: Path, scenario, *, refresh_interval: float = 3600, services: Dashboard | None = None) -> OpsctlApp:
    """The real app over the project, its runs table loaded, then ``scenario(app, pilot)``.
    From the project's root, as `opsctl ui` is started: DVC names stages relative to the
    working directory."""
    app = OpsctlApp(services or Dashboard(open_project(root)), refresh_interval=refresh_interval)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, RunsScreen)
            await scenario(app, pilot)

    with contextlib.chdir(root):
        asyncio.run(main())
    return app


async def until(pilot, condition, what: str, tries: int = 400) -> None:
    """Pauses until ``condition()`` holds (the app's workers answer in their own time)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"never happened: {what}")


# -- lineage ---------------------------------------------------------------------------
def tree_of(app) -> Tree:
    return app.screen.query_one(Tree)


def label(node) -> str:
    return node.label.plain


def child(node, *, kind: str, relation: str | None = None, text: str = ""):
    (found,) = [
        c
        for c in node.children
        if isinstance(c.data, LineageItem)
        and c.data.node.kind == kind
        and (relation is None or c.data.relation == relation)
        and text in label(c)
    ]
    return found


def all_nodes(node):
    yield node
    for c in node.children:
        yield from all_nodes(c)


def visible_lines(tree: Tree) -> list[str]:
    return [label(tree.get_node_at_line(i)) for i in range(tree.last_line + 1)]


async def open_lineage(app, pilot, target: str) -> LineageScreen:
    app.open_lineage(target)
    # The screen is mounted, and starts its worker, a few messages after the push:
    # waiting for workers before that would return at once.
    await until(pilot, lambda: isinstance(app.screen, LineageScreen) and app.screen.is_mounted, "the lineage screen")
    await pilot.pause()
    await settle(pilot)
    return app.screen


async def cursor_to(pilot, tree: Tree, node) -> None:
    tree.move_cursor(node)
    await pilot.pause()


def test_lineage_tree_from_an_output_back_to_data_and_source(project):
    run_id, md5 = project["run"], project["md5"]

    async def scenario(app, pilot):
        screen = await open_lineage(app, pilot, "metrics.txt")
        tree = tree_of(app)
        root = tree.root
        assert label(root).startswith(f"metrics.txt  md5 {md5['metrics.txt'][:12]}  (output of evaluate)")
        assert root.is_expanded
        evaluate = child(root, kind="stage", relation="produced by")
        assert evaluate.is_expanded and "stage evaluate: ran  `wc -c model.txt > metrics.txt`" in label(evaluate)
        # how it was made before what it read, as `opsctl lineage` prints it
        assert [c.data.relation for c in evaluate.children] == ["in run", "used params", "read"]
        run_node = child(evaluate, kind="run")
        assert f"run {run_id[:8]} (succeeded" in label(run_node) and label(run_node).startswith("in run")
        assert "params params.yaml: evaluate.k=5" in label(child(evaluate, kind="params"))
        model = child(evaluate, kind="artifact", relation="read")
        assert f"model.txt  md5 {md5['model.txt'][:12]}  (output of train)" in label(model)
        assert not model.is_expanded  # deeper levels start folded
        assert not any("stage train" in line for line in visible_lines(tree))

        # enter on a node that opens nothing expands it
        await cursor_to(pilot, tree, model)
        assert "output_of: train" in str(screen.query_one("#lineage-detail", Static).render())
        await pilot.press("enter")
        await pilot.pause()
        assert model.is_expanded and isinstance(app.screen, LineageScreen)
        assert any("stage train: ran" in line for line in visible_lines(tree))

        await pilot.press("e")
        await pilot.pause()
        lines = visible_lines(tree)
        prepare = next(n for n in all_nodes(root) if isinstance(n.data, LineageItem) and n.data.stage == "prepare")
        raw = child(prepare, kind="data", relation="read")
        assert f"data/raw.csv  md5 {md5['data/raw.csv'][:12]}  (data, data/raw.csv.dvc)" in label(raw)
        assert "src/prep.py" in label(child(prepare, kind="source", relation="read"))
        assert any("train.depth=3, train.lr=0.1" in line for line in lines)
        assert sum(f"run {run_id[:8]}" in line for line in lines) == 3  # one per stage on the way
        assert lines.index(label(raw)) > lines.index(label(prepare))

        await pilot.press("c")
        await pilot.pause()
        assert not model.is_expanded and evaluate.is_expanded

        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(project["root"], scenario)


def test_lineage_of_a_model_version_names_it_at_the_root(project):
    async def scenario(app, pilot):
        await open_lineage(app, pilot, "churn@v0.0.1")
        root = tree_of(app).root
        assert label(root).startswith(f"churn@v0.0.1 → model.txt  md5 {project['md5']['model.txt'][:12]}")
        train = child(root, kind="stage", relation="produced by")
        assert "stage train: ran" in label(train)
        assert child(train, kind="run").data.run_id == project["run"]

    drive(project["root"], scenario)


def test_enter_on_a_run_or_a_stage_opens_the_run(project):
    run_id = project["run"]

    async def scenario(app, pilot):
        await open_lineage(app, pilot, "metrics.txt")
        tree = tree_of(app)
        evaluate = child(tree.root, kind="stage")
        await cursor_to(pilot, tree, child(evaluate, kind="run"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_id == run_id and app.screen.initial_stage is None

        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LineageScreen)
        await cursor_to(pilot, tree, evaluate)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_id == run_id and app.screen.initial_stage == "evaluate"

    drive(project["root"], scenario)


def test_a_bad_target_is_an_error_toast_and_the_screen_stays_usable(project):
    async def scenario(app, pilot):
        screen = await open_lineage(app, pilot, "nope.txt")
        messages = [n.message for n in app._notifications]
        assert any("nope.txt is not a DVC-tracked output" in m and "metrics.txt" in m for m in messages), messages
        assert [n.severity for n in app._notifications] == ["error"]
        assert not tree_of(app).display
        assert "No lineage for nope.txt" in str(screen.query_one("#lineage-empty", Static).render())
        await pilot.press("r")  # tries again, fails the same way, still no crash
        await settle(pilot)
        assert app.screen is screen and len(app._notifications) == 2
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(project["root"], scenario)


class LoopedLineage(Dashboard):
    """A graph no real store makes (a stage reading its own output, and a second stage
    reading the same input): the tree must still end."""

    def lineage(self, target: str) -> Lineage:
        graph = Lineage(root="artifact:out")
        for node in (
            Node("artifact:out", "artifact", "out", {"hash": "f" * 32, "output_of": "loop"}),
            Node("stage:r:loop", "stage", "loop", {"run": "r" * 12, "stage": "loop", "outcome": "ran", "cmd": "loop"}),
            Node(
                "stage:r:other", "stage", "other", {"run": "r" * 12, "stage": "other", "outcome": "ran", "cmd": "other"}
            ),
            Node("artifact:in", "artifact", "in", {"hash": "e" * 32, "output_of": "other"}),
        ):
            graph.add(node)
        graph.link("artifact:out", "stage:r:loop", "produced by")
        graph.link("stage:r:loop", "artifact:out", "read")
        graph.link("stage:r:loop", "artifact:in", "read")
        graph.link("artifact:in", "stage:r:other", "produced by")
        graph.link("stage:r:loop", "stage:r:other", "read")
        return graph


def test_cycles_and_repeated_nodes_end_the_tree(project):
    async def scenario(app, pilot):
        await open_lineage(app, pilot, "out")
        tree = tree_of(app)
        await pilot.press("e")
        await pilot.pause()
        assert visible_lines(tree) == [
            "out  md5 ffffffffffff  (output of loop)",
            "produced by  stage loop: ran  `loop`",
            "read  out  md5 ffffffffffff  (output of loop)  (see above)",
            "read  in  md5 eeeeeeeeeeee  (output of other)",
            "produced by  stage other: ran  `other`",
            "read  stage other: ran  `other`  (see above)",
        ]

    drive(project["root"], scenario, services=LoopedLineage(open_project(project["root"])))


# -- pipeline --------------------------------------------------------------------------
def rows(app) -> list[tuple[str, str, str, str]]:
    table = app.screen.query_one("#pipeline-stages", DataTable)
    return [tuple(str(getattr(cell, "plain", cell)) for cell in table.get_row_at(i)) for i in range(table.row_count)]


def statuses(app) -> dict[str, str]:
    return {stage: status.split(" ", 1)[1] for _layer, status, stage, _waits in rows(app)}


def summary(app) -> str:
    return str(app.screen.query_one("#summary", Static).render())


async def open_pipeline(app, pilot) -> PipelineScreen:
    await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, PipelineScreen)
    await until(pilot, lambda: screen.loads >= 1, "the pipeline loaded")
    await pilot.pause()
    return screen


def test_pipeline_lists_every_stage_in_layers_with_its_status(project):
    async def scenario(app, pilot):
        screen = await open_pipeline(app, pilot)
        assert rows(app) == [
            ("1", "✓ up to date", "prepare", ""),
            ("2", "✓ up to date", "train", "◀── prepare"),
            ("3", "● stale", "evaluate", "◀── train"),
        ]
        assert summary(app) == "3 stages in 3 layers · 1 stale"
        detail = lambda: str(screen.query_one("#pipeline-detail", Static).render())  # noqa: E731
        assert "prepare" in detail() and "python3 src/prep.py" in detail() and "feeds train" in detail()
        await pilot.press("down", "down")
        await pilot.pause()
        assert screen.selected_stage() == "evaluate"
        assert "param evaluate.k modified" in detail() and "wc -c model.txt > metrics.txt" in detail()
        await pilot.press("2")  # already open: not stacked twice
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(project["root"], scenario)


def test_pipeline_reloads_on_r_and_when_a_run_is_recorded(project, tmp_path):
    root = copy_project(project["root"], tmp_path / "p")

    async def scenario(app, pilot):
        screen = await open_pipeline(app, pilot)
        assert statuses(app) == {"prepare": "up to date", "train": "up to date", "evaluate": "stale"}
        await pilot.press("down")  # on train: the cursor stays on it across reloads
        # a file the pipeline reads changed: the screen sees it (a stat every 50 ms) and reads again
        loads = screen.loads
        set_param(root, "train", "lr", 0.5)
        await until(pilot, lambda: screen.loads > loads, "the file watch re-read the statuses")
        await pilot.pause()
        assert statuses(app) == {"prepare": "up to date", "train": "stale", "evaluate": "stale"}

        loads = screen.loads
        await pilot.press("r")
        await until(pilot, lambda: screen.loads > loads, "r reloaded")
        await pilot.pause()
        assert statuses(app) == {"prepare": "up to date", "train": "stale", "evaluate": "stale"}
        assert summary(app) == "3 stages in 3 layers · 2 stale"
        assert screen.selected_stage() == "train"

        # a run written by another process: the screen notices the store changed and re-reads
        result = await asyncio.to_thread(run_opsctl, "run", "--executor", "local", cwd=root)
        assert result.returncode == 0, result.stderr
        await until(pilot, lambda: statuses(app) == dict.fromkeys(STAGES, "up to date"), "the poll reloaded")
        assert summary(app) == "3 stages in 3 layers · all up to date"
        assert not [n.message for n in app._notifications if n.severity == "error"]

    drive(root, scenario, refresh_interval=0.1)


def test_pipeline_detail_says_which_worker_a_stage_last_ran_on(project, tmp_path):
    """A newer run executed train on a remote worker and restored prepare from the cache:
    train's panel names the worker; prepare, last executed on this host, names none."""
    root = copy_project(project["root"], tmp_path / "p")
    worker = "tcp://10.0.0.7:39001"
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        started = time.time()
        store.record_run(
            RunRecord(
                NewRun("d15c00000001", started=started, executor="dask"),
                "succeeded",
                started + 2,
                [
                    StageRecord("prepare", "cached", started=started),
                    StageRecord("train", "ran", started=started + 1, worker=worker, attempts=2),
                ],
            )
        )

    async def scenario(app, pilot):
        screen = await open_pipeline(app, pilot)
        detail = lambda: str(screen.query_one("#pipeline-detail", Static).render())  # noqa: E731
        assert screen.selected_stage() == "prepare" and "last ran on" not in detail()
        await pilot.press("down")
        await pilot.pause()
        assert screen.selected_stage() == "train"
        assert f"last ran on {worker}" in detail()

    drive(root, scenario)


def test_pipeline_without_stages_says_how_to_add_them(tmp_path):
    root = git_dvc_project(tmp_path / "empty")
    git_commit(root, "init")

    async def scenario(app, pilot):
        screen = await open_pipeline(app, pilot)
        assert not screen.query_one("#pipeline-body").display
        empty = screen.query_one("#pipeline-empty", Static)
        assert empty.display and "add stages to dvc.yaml" in str(empty.render())

    drive(root, scenario)


class HeldPipelineReads(Dashboard):
    """The real services, except that once ``hold`` is set a full read of the pipeline (DVC's)
    waits until the test lets it go: what the screen shows meanwhile is the file watch's."""

    def __init__(self, project) -> None:
        super().__init__(project)
        self.hold = False
        self.release = threading.Event()

    def pipeline(self):
        if self.hold:
            self.release.wait(timeout=60)
        return super().pipeline()


def test_pipeline_shows_a_changed_dep_stale_before_dvc_confirms_it(project, tmp_path):
    root = copy_project(project["root"], tmp_path / "p")
    services = HeldPipelineReads(open_project(root))

    async def scenario(app, pilot):
        screen = await open_pipeline(app, pilot)
        # The first read was kept for the fast path once its files are old enough to trust.
        await until(pilot, lambda: services.pipeline_changes() == ((), None) and not screen._loading, "a kept read")
        loads = screen.loads
        services.hold = True
        assert statuses(app) == {"prepare": "up to date", "train": "up to date", "evaluate": "stale"}
        with open(root / "src" / "prep.py", "a") as f:
            f.write("# a change\n")
        await until(pilot, lambda: statuses(app)["prepare"] == "stale", "the changed dep shown stale")
        assert statuses(app) == {"prepare": "stale", "train": "stale", "evaluate": "stale"}
        assert "checking with DVC" in summary(app)
        detail = str(screen.query_one("#pipeline-detail", Static).render())
        assert "dep src/prep.py changed (checking with DVC…)" in detail
        assert screen.loads == loads  # DVC's read is still held
        services.release.set()
        await until(pilot, lambda: screen.loads > loads, "DVC's read landed")
        await pilot.pause()
        assert statuses(app) == {"prepare": "stale", "train": "stale", "evaluate": "stale"}
        assert "checking" not in summary(app)
        detail = str(screen.query_one("#pipeline-detail", Static).render())
        assert "dep src/prep.py modified" in detail and "checking" not in detail

    try:
        drive(root, scenario, services=services)
    finally:
        services.release.set()
