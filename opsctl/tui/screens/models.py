"""The model registry: every model with its latest version and stages, the selected model's
versions (as `opsctl model show`) and its history (as `opsctl model history`).

``p`` promotes the selected version and ``b`` rolls a stage back, each after a
confirmation, through the same services as `opsctl model promote|rollback`: both write
Git tags, so they run in a thread worker and the screen re-reads the registry after.

Beside each version in a stage, the verdict of the newest drift check made against the
reference profile registered with it (by the profile's md5): the screen watches the run
store and reads those verdicts again when a check is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from opsctl.core.formatting import ago, value_text, when
from opsctl.tui.screens.base import StoreWatchingScreen
from opsctl.tui.screens.data import drift_cell
from opsctl.tui.widgets.confirm import ConfirmScreen
from opsctl.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from opsctl.core.registry import ModelDetails, ModelVersion

EMPTY = "No models registered yet: `opsctl model register NAME PATH` creates one."
MAX_METRICS = 5  # metric columns in the versions table; more would push the dates off screen
STAGE_STYLE = "green"
# As `opsctl model history` colours them.
EVENT_STYLES = {
    "registration": "cyan",
    "promotion": "green",
    "rollback": "yellow",
    "unassignment": "magenta",
    "deregistration": "red",
    "deprecation": "red",
}
# The history events that change which version a stage holds.


# -- messages ------------------------------------------------------------------------------


class DriftVerdictsLoaded(Message):
    def __init__(self, verdicts: dict | None, marker: tuple | None, error: BaseException | None = None) -> None:
        super().__init__()
        self.verdicts = verdicts  # profile md5 -> the newest drift check against it (store DriftRecord)
        self.marker = marker  # the run store as it was just before it was read
        self.error = error


class ModelsLoaded(Message):
    def __init__(
        self, models: list, allowed: list[str] | None, generation: int, drift: DriftVerdictsLoaded | None = None
    ) -> None:
        super().__init__()
        self.models = models  # ModelDetails, as services.models() returns them
        self.allowed = allowed  # the stages .gto allows; None: any name
        self.generation = generation
        self.drift = drift  # the drift verdicts of its staged versions, read with it


class ModelHistoryLoaded(Message):
    def __init__(self, name: str, events: list, generation: int) -> None:
        super().__init__()
        self.name = name
        self.events = events  # HistoryEvent, newest first
        self.generation = generation


class ModelsLoadFailed(Message):
    def __init__(self, error: BaseException, generation: int) -> None:
        super().__init__()
        self.error = error
        self.generation = generation


class StageChanged(Message):
    """A promotion or rollback was written (``change`` is the registry's StageChange)."""

    def __init__(self, change) -> None:
        super().__init__()
        self.change = change


class StageChangeFailed(Message):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


# -- what the tables say ---------------------------------------------------------------------


def stages_text(stages: dict[str, str]) -> Text:
    text = Text()
    for n, (stage, version) in enumerate(sorted(stages.items())):
        if n:
            text.append(", ")
        text.append(stage, style=STAGE_STYLE)
        text.append(f" {version}")
    return text


def staged_profiles(models: Iterable) -> list[str]:
    """The profile md5s of the versions in a stage: whose drift the screen shows."""
    return sorted({v.profile_md5 for m in models for v in m.versions if v.stages and v.profile_md5})


def staged_drift_cell(version, verdicts: dict | None) -> Text:
    """The newest drift check against a staged version's reference profile: ``✗ drift 2/5 ·
    3h ago`` in red, ``✓ no drift · 3h ago`` in green; ``—`` without a profile; nothing for a
    version in no stage."""
    if not version.stages:
        return Text("")
    if not version.profile_md5:
        return Text("—", style="dim")
    if verdicts is None:
        return Text("…", style="dim")  # still reading, or unreadable (a toast said why)
    record = verdicts.get(version.profile_md5)
    if record is None:
        return Text("not checked", style="dim")
    cell = drift_cell(record)
    cell.append(f" · {ago(record.at)}")
    return cell


def metric_keys(versions: Iterable) -> list[str]:
    keys = sorted({key for v in versions for key in (v.metrics or {})})
    return keys[:MAX_METRICS]


# -- the stage prompt ------------------------------------------------------------------------


class StagePrompt(ModalScreen[str | None]):
    """Which stage: a list to pick from (``choices``: (stage, label) pairs), or a name to
    type (completed from ``suggestions``) when any name is allowed. Dismissed with the
    stage, or None on escape."""

    CSS_PATH = "models.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        question: str,
        *,
        choices: list[tuple[str, str]] | None = None,
        suggestions: Iterable[str] = (),
        default: str | None = None,
    ) -> None:
        super().__init__()
        self.question = question
        self.choices = choices
        self.suggestions = sorted(set(suggestions))
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="stage-dialog"):
            yield Static(self.question, id="stage-question", markup=False)
            if self.choices is not None:
                yield OptionList(*(Option(label, id=stage) for stage, label in self.choices), id="stage-options")
                hint = "↑↓ and enter: choose · escape: cancel"
            else:
                suggester = SuggestFromList(self.suggestions, case_sensitive=True) if self.suggestions else None
                yield Input(placeholder="stage, e.g. staging or prod", suggester=suggester, id="stage-input")
                hint = "enter: go on · →: complete a known stage · escape: cancel"
            yield Static(hint, id="stage-hint")

    def on_mount(self) -> None:
        if self.choices is not None:
            options = self.query_one("#stage-options", OptionList)
            stages = [stage for stage, _label in self.choices]
            options.highlighted = stages.index(self.default) if self.default in stages else 0
            options.focus()
        else:
            self.query_one("#stage-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        stage = event.value.strip()
        if stage:
            self.dismiss(stage)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- the screen ------------------------------------------------------------------------------


class ModelsScreen(StoreWatchingScreen):
    HELP = (
        "Registered models with their latest version and stages; the selected model's versions "
        "(run, metrics, when and by whom) and history. Beside each version in a stage, the newest "
        "drift check against its reference profile (`opsctl model register --profile`): red when the "
        "data drifted, — when it has no profile. p promotes the selected version to a stage, "
        "b rolls a stage back, each after a confirmation, as `opsctl model promote|rollback`."
    )
    CSS_PATH = "models.tcss"
    AUTO_FOCUS = "#models-table"
    BINDINGS = [
        Binding("p", "promote", "Promote"),
        Binding("b", "rollback", "Roll back"),
        Binding("l", "lineage", "Lineage"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, ModelDetails] | None = None  # by name, in the registry's order
        self.allowed: list[str] | None = None
        self.histories: dict[str, list] = {}  # name -> HistoryEvent, newest first (this generation's)
        self.drift_verdicts: dict | None = None  # profile md5 -> newest drift check; None: not read
        self.drift_loads = 0
        self.loads = 0  # how many times the registry was read and shown
        self._generation = 0  # of the newest load; answers to older ones are dropped
        self._shown: str | None = None  # the model whose versions and history are shown
        self._changing = False  # a promotion or rollback is being written

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        # Stacked, not side by side: a version's row (run, metrics, date, author, commit)
        # needs the full width of a 120-column terminal.
        with Vertical(id="models-body"):
            yield DataTable(id="models-table", cursor_type="row")
            yield Static(id="models-detail")
            yield DataTable(id="models-versions", cursor_type="row")
            yield Static("History", classes="title")
            yield DataTable(id="models-history", cursor_type="row")
        yield Static(EMPTY, id="models-empty", classes="empty")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#models-table", DataTable)
        for label in ("name", "latest", "stages"):
            table.add_column(label, key=label)
        history = self.query_one("#models-history", DataTable)
        for label in ("when", "event", "version", "stage", "change", "by", "tag"):
            history.add_column(label, key=label)
        self.query_one("#summary", Static).update("Reading the registry…")
        self.load()
        self.watch_store()

    # -- loading -----------------------------------------------------------------------
    def load(self) -> None:
        self._generation += 1
        if self.models is None:
            self.query_one("#models-table", DataTable).loading = True
        self._load(self.services, self._generation)

    # The services object is handed in: a thread worker should not reach for self.app.
    @work(thread=True, exclusive=True, group="models")
    def _load(self, services, generation: int) -> None:
        try:
            models = services.models()
            allowed = services.allowed_stages()
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays usable
            self.post_message(ModelsLoadFailed(exc, generation))
            return
        self.post_message(ModelsLoaded(models, allowed, generation, self._drift_verdicts(services, models)))

    @work(thread=True, exclusive=True, group="models-history")
    def _load_history(self, services, name: str, generation: int) -> None:
        try:
            events = services.model_history(name)
        except Exception as exc:  # noqa: BLE001
            self.post_message(ModelsLoadFailed(exc, generation))
            return
        self.post_message(ModelHistoryLoaded(name, events, generation))

    @staticmethod
    def _drift_verdicts(services, models: Iterable) -> DriftVerdictsLoaded:
        """The newest drift check against each staged version's profile (a worker's read)."""
        marker = None
        try:
            marker = services.store_marker()
            hashes = staged_profiles(models)
            return DriftVerdictsLoaded(services.drift_verdicts(hashes) if hashes else {}, marker)
        except Exception as exc:  # noqa: BLE001 - a toast; the registry stands without it
            return DriftVerdictsLoaded(None, marker, exc)

    # A drift check was recorded: only the verdicts are read again, not the registry.
    @work(thread=True, exclusive=True, group="models-drift")
    def _read_drift(self, services, models: list) -> None:
        self.post_message(self._drift_verdicts(services, models))

    def store_changed(self) -> None:
        if self.models is not None:
            self._read_drift(self.services, list(self.models.values()))

    def _take_drift(self, message: DriftVerdictsLoaded) -> None:
        self._marker = message.marker
        if message.error is not None:
            self.show_error(message.error)
            return
        self.drift_verdicts = message.verdicts
        self.drift_loads += 1

    def on_drift_verdicts_loaded(self, message: DriftVerdictsLoaded) -> None:
        self._take_drift(message)
        if message.error is not None or self._shown is None or self.models is None:
            return
        versions = self.query_one("#models-versions", DataTable)
        for v in self.models[self._shown].versions:
            if v.stages and v.version in versions.rows:
                versions.update_cell(v.version, "drift", staged_drift_cell(v, self.drift_verdicts), update_width=True)

    def on_models_load_failed(self, message: ModelsLoadFailed) -> None:
        if message.generation != self._generation:
            return
        self.query_one("#models-table", DataTable).loading = False
        self.query_one("#models-history", DataTable).loading = False
        self.show_error(message.error)
        if self.models is None:
            self.query_one("#summary", Static).update("Could not read the registry: r tries again.")

    def on_models_loaded(self, message: ModelsLoaded) -> None:
        if message.generation != self._generation:
            return
        keep_model, keep_version = self._shown, self.selected_version()
        self.models = {m.name: m for m in message.models}
        self.allowed = message.allowed
        self.histories = {}
        self.loads += 1
        if message.drift is not None:
            self._take_drift(message.drift)
        table = self.query_one("#models-table", DataTable)
        table.loading = False
        self.query_one("#models-body").display = bool(self.models)
        self.query_one("#models-empty", Static).display = not self.models
        self._render_summary()
        table.clear()
        for model in self.models.values():
            table.add_row(Text(model.name, style="bold"), model.latest or "", stages_text(model.stages), key=model.name)
        names = list(self.models)
        if not names:
            self._shown = None
            return
        name = keep_model if keep_model in self.models else names[0]
        table.move_cursor(row=names.index(name), animate=False)
        self._show_model(name, keep_version=keep_version if name == keep_model else None)

    def on_model_history_loaded(self, message: ModelHistoryLoaded) -> None:
        if message.generation != self._generation:
            return
        self.histories[message.name] = message.events
        if message.name == self._shown:
            self._render_history(message.events)

    # -- rendering ---------------------------------------------------------------------
    def _render_summary(self) -> None:
        count = len(self.models or {})
        parts = [f"{count} {'model' if count == 1 else 'models'}"]
        if self.allowed is not None:
            parts.append(f"stages allowed by .gto: {', '.join(self.allowed) or 'none'}")
        parts.append("tags are local until `git push --tags`")
        self.query_one("#summary", Static).update(" · ".join(parts))

    def _show_model(self, name: str, *, keep_version: str | None = None) -> None:
        if self.models is None:  # (called once they are loaded)
            return
        self._shown = name
        model = self.models[name]
        detail = Text.assemble(
            (model.name, "bold"), "  ", (model.path or "", "dim"), "  latest ", model.latest or "-", "  "
        )
        detail.append_text(stages_text(model.stages) if model.stages else Text("no stages", style="dim"))
        if model.deprecated:
            detail.append("  [deprecated]", style="red")
        self.query_one("#models-detail", Static).update(detail)

        versions = self.query_one("#models-versions", DataTable)
        keys = metric_keys(model.versions)
        versions.clear(columns=True)
        for label in ("version", "stages", "drift", "run", *keys, "registered", "by", "commit"):
            versions.add_column(label, key=f"metric:{label}" if label in keys else label)
        for v in model.versions:
            metrics = v.metrics or {}
            versions.add_row(
                Text(v.version, style="bold"),
                Text(", ".join(v.stages), style=STAGE_STYLE),
                staged_drift_cell(v, self.drift_verdicts),
                (v.run or "")[:12],
                *(value_text(metrics[k]) if k in metrics else "" for k in keys),
                when(v.created_at.timestamp()) if v.created_at else "",
                v.author or "",
                v.commit[:7],
                key=v.version,
            )
        order = [v.version for v in model.versions]
        if keep_version in order:
            versions.move_cursor(row=order.index(keep_version), animate=False)

        if name in self.histories:
            self._render_history(self.histories[name])
        else:
            history = self.query_one("#models-history", DataTable)
            history.clear()
            history.loading = True
            self._load_history(self.services, name, self._generation)

    def _render_history(self, events: list) -> None:
        history = self.query_one("#models-history", DataTable)
        history.loading = False
        history.clear()
        for e in events:
            change = f"{e.from_version or '-'} → {e.to_version or '-'}" if e.stage else ""
            history.add_row(
                when(e.at.timestamp()),
                Text(e.event, style=EVENT_STYLES.get(e.event, "")),
                e.version or "",
                e.stage or "",
                change,
                e.author,
                e.tag,
            )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "models-table" or event.row_key is None:
            return
        name = event.row_key.value
        # Refilling the table highlights rows on the way to the one kept: only the row the
        # cursor is on now counts.
        if name == self._shown or name != self.selected_model() or name not in (self.models or {}):
            return
        self._show_model(name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "models-table":
            self.query_one("#models-versions", DataTable).focus()

    # -- the selection -----------------------------------------------------------------
    def selected_model(self) -> str | None:
        return self._row_key(self.query_one("#models-table", DataTable))

    def selected_version(self) -> str | None:
        if self._shown is None:
            return None
        return self._row_key(self.query_one("#models-versions", DataTable))

    @staticmethod
    def _row_key(table: DataTable) -> str | None:
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        return row_key.value

    def _selection(self) -> tuple[ModelDetails, ModelVersion | None] | None:
        """The model shown and its selected version; None (and a word said why) when there is none."""
        if self.models is None:
            self.notify("Still reading the registry…", severity="warning")
            return None
        if self._shown is None:
            self.notify("No model selected.", severity="warning")
            return None
        model = self.models[self._shown]
        wanted = self.selected_version()
        return model, next((v for v in model.versions if v.version == wanted), None)

    # -- keys --------------------------------------------------------------------------
    def action_promote(self) -> None:
        selection = self._selection()
        if selection is None:
            return
        model, version = selection
        if version is None:
            self.notify(f"{model.name} has no version to promote.", severity="warning")
            return
        known = {s for m in (self.models or {}).values() for s in m.stages} | set(self.allowed or ())
        choices = (
            [(s, f"{s}  ({model.stages[s]})" if s in model.stages else s) for s in self.allowed]
            if self.allowed is not None
            else None
        )

        def chosen(stage: str | None) -> None:
            if stage:
                self._confirm_promotion(model, version.version, stage)

        self.app.push_screen(
            StagePrompt(f"Promote {model.name} {version.version} to which stage?", choices=choices, suggestions=known),
            chosen,
        )

    def _confirm_promotion(self, model: ModelDetails, version: str, stage: str) -> None:
        holder = model.stages.get(stage)
        if holder == version:
            detail = f"{stage} holds {version} already"
        elif holder:
            detail = f"{stage} now holds {holder}"
        else:
            detail = f"nothing is in {stage} yet"

        def answered(yes: bool | None) -> None:
            if yes:
                self._start_change(model.name, version, stage)

        self.app.push_screen(ConfirmScreen(f"Promote {model.name} {version} to {stage}?", detail), answered)

    def action_rollback(self) -> None:
        selection = self._selection()
        if selection is None:
            return
        model, version = selection
        if not model.stages:
            self.notify(f"{model.name} has no version in any stage: nothing to roll back.", severity="warning")
            return
        if version is not None and len(version.stages) == 1:
            self._confirm_rollback(model, version.stages[0])
            return
        stages = sorted(version.stages if version is not None and version.stages else model.stages)
        if len(stages) == 1:
            self._confirm_rollback(model, stages[0])
            return

        def chosen(stage: str | None) -> None:
            if stage:
                self._confirm_rollback(model, stage)

        choices = [(s, f"{s}  ({self._rollback_change(model, s)})") for s in stages]
        self.app.push_screen(StagePrompt(f"Roll back {model.name} in which stage?", choices=choices), chosen)

    def _rollback_change(self, model: ModelDetails, stage: str) -> str:
        current = model.stages.get(stage)
        target = model.rollback_to.get(stage)  # the registry's own answer, as `opsctl model rollback` uses
        return f"{current} → {target}" if target else f"{current}; nothing earlier to put back"

    def _confirm_rollback(self, model: ModelDetails, stage: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._start_change(model.name, None, stage)

        self.app.push_screen(
            ConfirmScreen(f"Roll back {model.name} in {stage}?", self._rollback_change(model, stage)), answered
        )

    def _start_change(self, name: str, version: str | None, stage: str) -> None:
        """``version``: promote it; None: roll ``stage`` back."""
        if self._changing:
            self.notify("Still writing the last change…", severity="warning")
            return
        self._changing = True
        self._change(self.services, name, version, stage)

    @work(thread=True, exclusive=True, group="models-change")
    def _change(self, services, name: str, version: str | None, stage: str) -> None:
        try:
            change = services.promote(name, version, stage) if version is not None else services.rollback(name, stage)
        except Exception as exc:  # noqa: BLE001 - a toast; nothing was written
            self.post_message(StageChangeFailed(exc))
            return
        self.post_message(StageChanged(change))

    def on_stage_change_failed(self, message: StageChangeFailed) -> None:
        self._changing = False
        self.show_error(message.error)

    def on_stage_changed(self, message: StageChanged) -> None:
        self._changing = False
        change = message.change
        if change.rollback:
            said = f"Rolled back {change.name} in {change.stage}: {change.previous} → {change.version}"
        else:
            said = f"{change.name} {change.version} → {change.stage}"
        self.notify(f"{said}\ntag {change.tag}, local until `git push --tags`")
        self.load()

    def action_lineage(self) -> None:
        selection = self._selection()
        if selection is None:
            return
        model, version = selection
        if version is None or version.tag is None:
            # A stage on a bare commit (GTO's --skip-registration) names no registered version.
            self.notify("Lineage needs a registered version.", severity="warning")
            return
        self.opsctl_app.open_lineage(f"{model.name}@{version.version}")

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
