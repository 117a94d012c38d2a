"""The data: every dataset with checks in opsctl.yaml, whether it is in the workspace, and
its last verdict (from `opsctl data validate` or a gate of `opsctl run`); below, the
selected dataset's failing checks with the rows and values that failed them.

Read in a thread worker (the run store and opsctl.yaml); the screen reads again when the
run store changes (a cheap stat, polled), so a validation elsewhere shows up here.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from opsctl.core.formatting import VERDICT_STYLES, example_text, failure_label, verdict_text, when
from opsctl.tui.screens.base import StoreWatchingScreen
from opsctl.tui.widgets.keybar import KeyBar

EMPTY = (
    "No data checks yet.\n\n"
    "Declare them per dataset under `checks:` in opsctl.yaml (types, ranges, allowed values, unique keys),\n"
    "or let `opsctl data profile PATH --write` write a first set from the data itself.\n"
    "`opsctl data validate` then checks the data, and `opsctl run` checks it as the pipeline goes."
)
NEVER = "– not validated"


class DatasetsLoaded(Message):
    def __init__(self, datasets: list, marker: tuple, generation: int) -> None:
        super().__init__()
        self.datasets = datasets  # core/check_records.py DatasetState
        self.marker = marker  # the store as it was just before it was read
        self.generation = generation


class DatasetsFailed(Message):
    def __init__(self, error: BaseException, generation: int) -> None:
        super().__init__()
        self.error = error
        self.generation = generation


def verdict_cell(state) -> Text:
    if state.last is None:
        return Text(NEVER, style="dim")
    return Text(verdict_text(state.last.passed, state.last.failed_checks), style=VERDICT_STYLES[state.last.passed])


def summary(datasets: list) -> str:
    configured = [d for d in datasets if d.configured]
    failed = sum(1 for d in configured if d.last is not None and not d.last.passed)
    never = sum(1 for d in configured if d.last is None)
    missing = sum(1 for d in configured if not d.exists)
    parts = [f"{len(configured)} dataset{'s' if len(configured) != 1 else ''} with checks"]
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{never} not validated"] if never else []
    parts += [f"{missing} not in the workspace"] if missing else []
    if len(parts) == 1 and configured:
        parts.append("all passed")
    old = len(datasets) - len(configured)
    parts += [f"{old} with verdicts but no checks now"] if old else []
    return " · ".join(parts)


def detail_text(state) -> Text:
    """The selected dataset: its last verdict and where it came from, then each failing
    check with its sample rows."""
    text = Text.assemble((state.path, "bold"), "  ", verdict_cell(state))
    if not state.configured:
        text.append("\nno checks in opsctl.yaml now: these are past verdicts", style="yellow")
    if not state.exists:
        text.append("\nnot in the workspace (`dvc pull` or `dvc checkout` brings it back)", style="yellow")
    last = state.last
    if last is None:
        text.append(f"\n\nnever validated: `opsctl data validate {state.path}`", style="dim")
        return text
    by = f"run {last.run_id[:8]}" if last.run_id else "opsctl data validate"
    gate = f" (gate {last.stage})" if last.stage else ""
    text.append(f"\nvalidated {when(last.at)} by {by}{gate}", style="dim")
    text.append(
        f"\n{last.rows:,} rows · {last.checks} checks · data md5 {(last.hash or '?')[:12]} · "
        f"{state.verdicts} verdict{'s' if state.verdicts != 1 else ''} recorded",
        style="dim",
    )
    if last.cached:
        text.append("\nthe same data passed the same checks before: not read again", style="dim")
    if state.checks_changed:
        text.append(
            f"\nthe checks changed since: `opsctl data validate {state.path}` gives a fresh verdict", style="yellow"
        )
    for failure in last.failures:
        text.append("\n\n")
        text.append(failure_label(failure), style=f"bold {VERDICT_STYLES[False]}")
        for example in failure.get("examples") or []:
            text.append(f"\n    {example_text(example)}")
    return text


class DataScreen(StoreWatchingScreen):
    HELP = (
        "The datasets with checks in opsctl.yaml: whether each is in the workspace and its last verdict "
        "(from `opsctl data validate` or a gate of `opsctl run`); below, the selected dataset's failing "
        "checks with sample rows. It re-reads itself when verdicts are recorded."
    )
    CSS_PATH = "data.tcss"
    AUTO_FOCUS = "#datasets"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.datasets: list | None = None
        self.loads = 0  # how many times the datasets were read and shown
        self._generation = 0  # of the newest load asked for; older answers are dropped

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield DataTable(id="datasets", cursor_type="row")
        with VerticalScroll(id="data-detail"):
            yield Static(id="data-failures")
        yield Static(EMPTY, id="data-empty", classes="empty")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "data"
        table = self.query_one("#datasets", DataTable)
        for label, key in (
            ("verdict", "verdict"),
            ("dataset", "path"),
            ("in workspace", "exists"),
            ("validated", "at"),
            ("rows", "rows"),
            ("failing checks", "failing"),
            ("data md5", "hash"),
            ("verdicts", "count"),
        ):
            table.add_column(label, key=key)
        self.query_one("#summary", Static).update("Reading the datasets…")
        self.load(quiet=False)
        self.watch_store()

    # -- loading -----------------------------------------------------------------------
    def load(self, *, quiet: bool) -> None:
        self._generation += 1
        if not quiet or self.datasets is None:
            self.query_one("#datasets", DataTable).loading = True
        self._load(self._generation)

    @work(thread=True, exclusive=True, group="data")
    def _load(self, generation: int) -> None:
        try:
            marker = self.services.store_marker()
            datasets = self.services.datasets()
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays usable
            self.post_message(DatasetsFailed(exc, generation))
            return
        self.post_message(DatasetsLoaded(datasets, marker, generation))

    def store_changed(self) -> None:
        self.load(quiet=True)

    def on_datasets_failed(self, message: DatasetsFailed) -> None:
        if message.generation != self._generation:
            return
        self.query_one("#datasets", DataTable).loading = False
        self.show_error(message.error)
        if self.datasets is None:
            self.query_one("#summary", Static).update("Could not read the datasets: r tries again.")

    def on_datasets_loaded(self, message: DatasetsLoaded) -> None:
        if message.generation != self._generation:
            return
        self._marker = message.marker
        self.datasets = message.datasets
        self.loads += 1
        self.query_one("#datasets", DataTable).loading = False
        self._render_datasets(message.datasets)

    # -- rendering ---------------------------------------------------------------------
    def _render_datasets(self, datasets: list) -> None:
        table = self.query_one("#datasets", DataTable)
        empty = not datasets
        table.display = not empty
        self.query_one("#data-detail").display = not empty
        self.query_one("#data-empty", Static).display = empty
        self.query_one("#summary", Static).update(summary(datasets) if datasets else "no data checks")
        keep = self.selected_path()
        table.clear()
        for state in datasets:
            last = state.last
            table.add_row(
                verdict_cell(state),
                Text(state.path, style="bold" if state.configured else "dim"),
                Text("yes") if state.exists else Text("missing", style="yellow"),
                when(last.at) if last else "",
                f"{last.rows:,}" if last else "",
                Text(str(last.failed_checks), style=VERDICT_STYLES[False]) if last and last.failures else "",
                (last.hash or "")[:8] if last else "",
                str(state.verdicts) if state.verdicts else "",
                key=state.path,
            )
        paths = [d.path for d in datasets]
        if keep in paths:
            table.move_cursor(row=paths.index(keep), animate=False)
        self._show_detail(self.selected_path())

    def selected_path(self) -> str | None:
        table = self.query_one("#datasets", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        return row_key.value

    def _show_detail(self, path: str | None) -> None:
        state = next((d for d in self.datasets or [] if d.path == path), None)
        self.query_one("#data-failures", Static).update(detail_text(state) if state is not None else "")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.row_key.value if event.row_key else None)

    # -- keys --------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load(quiet=False)
