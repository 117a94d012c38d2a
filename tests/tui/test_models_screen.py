"""The models screen over a real registry: a Git + DVC project whose model was trained by
`opsctl run` (so versions link to a run with metrics), registered, promoted and rolled
back with the real CLI, driven through the real app; and the confirmation dialog alone."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Button, DataTable, Input, OptionList, Static

from opsctl.core import registry as reg
from opsctl.core.dashboard import Dashboard
from opsctl.core.formatting import value_text, when
from opsctl.core.project import open_project
from opsctl.core.runs import store_path
from opsctl.store import RunStore
from opsctl.tui.app import OpsctlApp
from opsctl.tui.screens.lineage import LineageScreen
from opsctl.tui.screens.models import EMPTY, ModelsScreen, StagePrompt
from opsctl.tui.screens.runs import RunsScreen
from opsctl.tui.widgets.confirm import ConfirmScreen
from tests.conftest import BIN, one_stage_run, opsctl_inprocess, run
from tests.tui.pilot import settle

SIZE = (120, 40)
MODEL = "models/churn.pkl"  # not the pipeline's output: `dvc add`ed
FIRST_RUN, SECOND_RUN = "aaaa00000001", "bbbb00000002"
RUNS = {
    FIRST_RUN: {"accuracy": 0.8125, "f1": 0.75, "roc_auc": 0.9, "rows": 400},
    SECOND_RUN: {"accuracy": 0.875, "f1": 0.8, "loss": 0.31, "precision": 0.7, "recall": 0.9, "rows": 400},
}


def git(cwd, *args) -> str:
    return run(["git", *args], cwd=cwd).stdout


def tags(cwd) -> set[str]:
    return set(git(cwd, "tag", "--list").split())


def opsctl_json(cwd, *args):
    result = opsctl_inprocess("model", *args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def registry_template(ml_project_template, tmp_path_factory) -> Path:
    """churn v0.0.1..v0.0.3 (prod: v0.0.1 then v0.0.2; staging: v0.0.1) and baseline v0.0.1,
    all of one DVC-tracked file; churn v0.0.1 and v0.0.3 link to recorded runs (with
    metrics), v0.0.2 to none. Read only."""
    root = tmp_path_factory.mktemp("models") / "ml"
    shutil.copytree(ml_project_template, root, symlinks=True)
    # `dvc add`, not the pipeline: any committed DVC-tracked file registers, in a fraction
    # of the time training takes.
    (root / MODEL).parent.mkdir(exist_ok=True)
    (root / MODEL).write_bytes(b"a trained model\n")
    run([BIN / "dvc", "add", "-q", MODEL], cwd=root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the model")
    with RunStore(store_path(open_project(root))) as store:
        for n, (run_id, metrics) in enumerate(RUNS.items()):
            store.record_run(
                one_stage_run(run_id, 1.7e9 + 60 * n, n, params={"train.n_estimators": 10 * (n + 1)}, metrics=metrics)
            )
    # GTO allows one version per commit: an empty commit each is enough for another version.
    for n, run_id in enumerate([FIRST_RUN, None, SECOND_RUN]):
        if n:
            git(root, "commit", "-q", "--allow-empty", "-m", f"release {n}")
        opsctl_inprocess(
            "model", "register", "churn", MODEL, *(["--run", run_id] if run_id else []), cwd=root, check=True
        )
    opsctl_inprocess("model", "register", "baseline", MODEL, cwd=root, check=True)
    for version, stage in (("0.0.1", "prod"), ("0.0.1", "staging"), ("0.0.2", "prod")):
        opsctl_inprocess("model", "promote", "churn", version, "--to", stage, cwd=root, check=True)
    return root


@pytest.fixture
def project(registry_template, tmp_path) -> Path:
    """A private copy to promote and roll back in (both write tags)."""
    dest = tmp_path / "ml"
    shutil.copytree(
        registry_template, dest, symlinks=True, ignore=shutil.ignore_patterns("opsctl.db-wal", "opsctl.db-shm")
    )
    return dest


class RecordingApp(OpsctlApp):
    """The real app, keeping what it was told to toast."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.toasts: list[tuple[str, str]] = []

    def notify(self, message, *, severity="information", **kw) -> None:
        self.toasts.append((str(message), severity))
        super().notify(message, severity=severity, **kw)


def drive(root: Path, scenario) -> RecordingApp:
    """Open the models screen (key 3 over the runs table) and play ``scenario(app, screen, pilot)``."""
    app = RecordingApp(Dashboard(open_project(root)), refresh_interval=3600)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("3")
            await settle(pilot)
            assert isinstance(app.screen, ModelsScreen)
            await scenario(app, app.screen, pilot)

    asyncio.run(main())
    return app


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def columns(table: DataTable) -> list[str]:
    return [str(c.label) for c in table.ordered_columns]


def stages_cell(stages: dict[str, str]) -> str:
    return ", ".join(f"{stage} {version}" for stage, version in sorted(stages.items()))


async def select_churn_version(screen: ModelsScreen, pilot, row: int) -> None:
    """churn in the models table, then the versions table focused on ``row``."""
    await pilot.press("down")  # baseline sorts first
    await settle(pilot)
    assert screen.selected_model() == "churn"
    await pilot.press("enter")  # to the versions table
    await pilot.press(*["down"] * row)
    assert screen.query_one("#models-versions", DataTable).has_focus


async def answer_stage(app, pilot, stage: str) -> None:
    assert isinstance(app.screen, StagePrompt)
    await pilot.press(*stage, "enter")


# -- reading -----------------------------------------------------------------------------------


def test_models_versions_and_history_read_as_the_cli_says(registry_template):
    root = registry_template
    listed = opsctl_json(root, "list")
    shown = opsctl_json(root, "show", "churn")
    history = opsctl_json(root, "history", "churn")

    async def scenario(app, screen, pilot):
        models = screen.query_one("#models-table", DataTable)
        assert rows(models) == [[m["name"], m["latest"], stages_cell(m["stages"])] for m in listed]
        assert [m["name"] for m in listed] == ["baseline", "churn"]
        assert "2 models" in str(screen.query_one("#summary", Static).render())

        await select_churn_version(screen, pilot, 0)
        detail = str(screen.query_one("#models-detail", Static).render())
        assert "churn" in detail and MODEL in detail and "latest v0.0.3" in detail

        versions = screen.query_one("#models-versions", DataTable)
        keys = ["accuracy", "f1", "loss", "precision", "recall"]  # the runs' first five, by name
        assert columns(versions) == ["version", "stages", "drift", "run", *keys, "registered", "by", "commit"]
        assert [v["run"] for v in shown["versions"]] == [SECOND_RUN, None, FIRST_RUN]
        assert (
            rows(versions)
            == [
                [
                    v["version"],
                    ", ".join(v["stages"]),
                    "—" if v["stages"] else "",  # no reference profile registered: no drift to show
                    (v["run"] or "")[:12],
                    *(value_text(v["metrics"][k]) if k in (v["metrics"] or {}) else "" for k in keys),
                    when(datetime.fromisoformat(v["created_at"]).timestamp()),
                    v["author"],
                    v["commit"][:7],
                ]
                for v in shown["versions"]
            ]
        )
        assert rows(versions)[2][3:9] == [FIRST_RUN, "0.8125", "0.75", "", "", ""]
        assert [r[:2] for r in rows(versions)] == [["v0.0.3", ""], ["v0.0.2", "prod"], ["v0.0.1", "staging"]]

        assert rows(screen.query_one("#models-history", DataTable)) == [
            [
                when(datetime.fromisoformat(e["at"]).timestamp()),
                e["event"],
                e["version"] or "",
                e["stage"] or "",
                f"{e['from'] or '-'} → {e['to'] or '-'}" if e["stage"] else "",
                e["author"],
                e["tag"],
            ]
            for e in history
        ]

        # r reads the registry again and keeps the selection.
        loads = screen.loads
        await pilot.press("down", "r")
        await settle(pilot)
        assert screen.loads == loads + 1
        assert (screen.selected_model(), screen.selected_version()) == ("churn", "v0.0.2")

        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, LineageScreen) and app.screen.target == "churn@v0.0.2"
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    drive(root, scenario)


def test_an_empty_registry_says_how_to_register(ml_project_template, tmp_path):
    root = tmp_path / "ml"
    shutil.copytree(ml_project_template, root, symlinks=True)

    async def scenario(app, screen, pilot):
        assert screen.query_one("#models-empty", Static).display
        assert str(screen.query_one("#models-empty", Static).render()) == EMPTY
        assert "opsctl model register NAME PATH" in EMPTY
        assert not screen.query_one("#models-body").display
        await pilot.press("p", "b", "l")
        assert app.screen is screen  # nothing to act on: no dialog
        assert app.toasts[-1] == ("No model selected.", "warning")

    drive(root, scenario)


# -- promoting ---------------------------------------------------------------------------------


def test_promote_asks_the_stage_and_writes_only_when_confirmed(project):
    before = tags(project)

    async def scenario(app, screen, pilot):
        await select_churn_version(screen, pilot, 0)  # v0.0.3, in no stage
        # Escape at the stage prompt, and no or escape at the confirmation: nothing written.
        await pilot.press("p")
        assert isinstance(app.screen, StagePrompt) and app.screen.query_one(Input).has_focus
        await pilot.press("escape")
        assert app.screen is screen
        for cancel in ("n", "escape"):
            await pilot.press("p")
            await answer_stage(app, pilot, "staging")
            assert isinstance(app.screen, ConfirmScreen)
            assert (app.screen.question, app.screen.detail) == (
                "Promote churn v0.0.3 to staging?",
                "staging now holds v0.0.1",
            )
            await pilot.press(cancel)
            await settle(pilot)
            assert app.screen is screen
        assert tags(project) == before

        await pilot.press("p")
        await answer_stage(app, pilot, "staging")
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is screen
        added = tags(project) - before
        assert len(added) == 1 and next(iter(added)).startswith("churn#staging#")
        assert opsctl_json(project, "show", "churn")["stages"] == {"prod": "v0.0.2", "staging": "v0.0.3"}
        assert any(message.startswith("churn v0.0.3 → staging") for message, _ in app.toasts)
        # The screen read the registry again, and kept the version selected.
        assert screen.selected_version() == "v0.0.3"
        assert [r[:2] for r in rows(screen.query_one("#models-versions", DataTable))] == [
            ["v0.0.3", "staging"],
            ["v0.0.2", "prod"],
            ["v0.0.1", ""],
        ]
        assert rows(screen.query_one("#models-table", DataTable))[1][2] == "prod v0.0.2, staging v0.0.3"
        newest = rows(screen.query_one("#models-history", DataTable))[0]
        assert newest[1:5] == ["promotion", "v0.0.3", "staging", "v0.0.1 → v0.0.3"]

    drive(project, scenario)


def test_promoting_into_the_stage_it_holds_is_an_error_and_writes_nothing(project):
    # .gto restricts the stages: the prompt becomes a list of them.
    (project / ".gto").write_text("stages: [staging, prod]\n")
    before = tags(project)

    async def scenario(app, screen, pilot):
        await select_churn_version(screen, pilot, 2)  # v0.0.1, in staging
        await pilot.press("p")
        assert isinstance(app.screen, StagePrompt)
        options = app.screen.query_one(OptionList)
        assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == [
            "staging  (v0.0.1)",
            "prod  (v0.0.2)",
        ]
        await pilot.press("enter")  # the first: staging
        assert isinstance(app.screen, ConfirmScreen)
        assert (app.screen.question, app.screen.detail) == (
            "Promote churn v0.0.1 to staging?",
            "staging holds v0.0.1 already",
        )
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is screen
        message, severity = app.toasts[-1]
        assert severity == "error" and "churn v0.0.1 is in stage staging already" in message
        assert tags(project) == before
        assert screen.selected_version() == "v0.0.1"

    drive(project, scenario)


# -- rolling back ------------------------------------------------------------------------------


def test_rollback_confirms_the_versions_and_writes_only_when_confirmed(project):
    from opsctl.adapters.registry import list_tags

    before = tags(project)
    # What the registry itself would restore, to check what the dialog says against.
    assert reg.build_registry(list_tags(project))["churn"].rollback_to == {"prod": "v0.0.1"}

    async def scenario(app, screen, pilot):
        await select_churn_version(screen, pilot, 1)  # v0.0.2: in prod only, so no stage to ask
        for cancel in ("n", "escape"):
            await pilot.press("b")
            assert isinstance(app.screen, ConfirmScreen)
            assert (app.screen.question, app.screen.detail) == ("Roll back churn in prod?", "v0.0.2 → v0.0.1")
            await pilot.press(cancel)
            await settle(pilot)
        assert app.screen is screen and tags(project) == before

        # v0.0.3 is in no stage: b asks which of the model's stages.
        await pilot.press("up", "b")
        assert isinstance(app.screen, StagePrompt)
        options = app.screen.query_one(OptionList)
        assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == [
            "prod  (v0.0.2 → v0.0.1)",
            "staging  (v0.0.1; nothing earlier to put back)",
        ]
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.question == "Roll back churn in prod?"
        await pilot.press("y")
        await settle(pilot)

        added = tags(project) - before
        assert len(added) == 1 and next(iter(added)).startswith("churn#prod#")
        assert opsctl_json(project, "show", "churn")["stages"] == {"prod": "v0.0.1", "staging": "v0.0.1"}
        assert opsctl_json(project, "history", "churn")[0]["event"] == "rollback"
        assert any(message.startswith("Rolled back churn in prod: v0.0.2 → v0.0.1") for message, _ in app.toasts)
        assert [r[:2] for r in rows(screen.query_one("#models-versions", DataTable))] == [
            ["v0.0.3", ""],
            ["v0.0.2", ""],
            ["v0.0.1", "prod, staging"],
        ]
        newest = rows(screen.query_one("#models-history", DataTable))[0]
        assert newest[1:5] == ["rollback", "v0.0.1", "prod", "v0.0.2 → v0.0.1"]

    drive(project, scenario)


# -- the confirmation dialog -------------------------------------------------------------------


class DialogApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[bool] = []

    def ask(self) -> None:
        self.push_screen(ConfirmScreen("Promote churn v1.2.0 to prod?", "prod now holds v1.1.0"), self.answers.append)


def test_the_confirmation_answers_from_keys_and_mouse():
    app = DialogApp()

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            for keys in (["y"], ["enter"], ["n"], ["escape"], ["tab", "enter"]):
                app.ask()
                await pilot.pause()
                dialog = app.screen
                assert isinstance(dialog, ConfirmScreen)
                assert str(dialog.query_one("#confirm-question", Static).render()) == "Promote churn v1.2.0 to prod?"
                assert str(dialog.query_one("#confirm-detail", Static).render()) == "prod now holds v1.1.0"
                await pilot.press(*keys)
                await pilot.pause()
                assert not isinstance(app.screen, ConfirmScreen)
            for button in ("#confirm-yes", "#confirm-no"):
                app.ask()
                await pilot.pause()
                assert isinstance(app.screen.query_one(button), Button)
                await pilot.click(button)
                await pilot.pause()
                assert not isinstance(app.screen, ConfirmScreen)

    asyncio.run(main())
    # tab then enter: focus left Yes for No, and enter pressed it.
    assert app.answers == [True, True, False, False, False, True, False]
