"""Two or more runs side by side: every param and metric, what changed, by how much.

The first run is the baseline: each other run's column is followed by its delta
against the first (numbers only), and a sparkline per differing metric shows how
the compared runs move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Header, Label, Sparkline, Static

from opsctl.core.formatting import delta_text, is_number, value_text
from opsctl.tui.screens.base import DashboardScreen
from opsctl.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from opsctl.core.runs import CompareRow, Comparison

CHANGED_MARK = "≠"
CHANGED_STYLE = "bold yellow"
DELTA_STYLE = "cyan"
SHORT_ID = 8
MARKER_COLUMN, KEY_COLUMN = "changed", "key"


class ComparisonLoaded(Message):
    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison


class ComparisonFailed(Message):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def short_ids(run_ids: list[str]) -> list[str]:
    """The shortest prefixes (at least ``SHORT_ID`` characters) that tell the runs apart:
    runs started from one id prefix would otherwise get identical column headers."""
    length = SHORT_ID
    longest = max((len(r) for r in run_ids), default=0)
    while length < longest and len({r[:length] for r in set(run_ids)}) < len(set(run_ids)):
        length += 1
    return [r[:length] for r in run_ids]


def chart_points(row: CompareRow) -> list[float]:
    """A metric's numbers across the runs that have one, in the runs' order: worth a
    sparkline when at least two runs have it and they differ (else an empty list)."""
    if not row.key.startswith("metrics.") or not row.changed:
        return []
    points = [float(v) for v in row.values if is_number(v)]
    return points if len(points) > 1 and len(set(points)) > 1 else []


def run_column(run_index: int) -> str:
    # Keyed by position, not id: the same run may be compared with itself.
    return f"run-{run_index}"


def delta_column(run_index: int) -> str:
    return f"delta-{run_index}"


class CompareScreen(DashboardScreen):
    HELP = (
        "Params and metrics of the chosen runs side by side: ≠ marks the keys that differ, "
        "Δ columns give each run's change against the first run, and a sparkline per "
        "differing metric shows it across the runs."
    )
    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("d", "toggle_differences", "Only differences"),
        Binding("o", "open_run", "Open this column's run"),
        Binding("g", "plots", "Plots overlaid"),
        Binding("r", "reload", "Reload"),
    ]

    only_differences: reactive[bool] = reactive(False, init=False)

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield DataTable(id="comparison", cursor_type="cell", zebra_stripes=True)
        yield Static(id="empty")
        with VerticalScroll(id="charts"):
            yield Label("Metrics across the runs, first to last", id="charts-title")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = f"compare {len(self.run_ids)} runs"
        self.query_one("#empty", Static).display = False
        self.query_one("#charts").display = False
        self.load()

    # -- loading -----------------------------------------------------------------------
    def load(self) -> None:
        self.query_one(DataTable).loading = True
        self._compare(self.run_ids)

    @work(thread=True, exclusive=True, group="compare")
    def _compare(self, run_ids: list[str]) -> None:
        try:
            comparison = self.services.compare(run_ids)
        except Exception as exc:  # noqa: BLE001 - shown as a toast; the screen stays usable
            self.post_message(ComparisonFailed(exc))
            return
        self.post_message(ComparisonLoaded(comparison))

    def on_comparison_failed(self, message: ComparisonFailed) -> None:
        self.query_one(DataTable).loading = False
        if self.comparison is None:
            self.query_one(DataTable).display = False
            self._show_empty("Could not compare these runs. Press r to try again, escape to go back.")
        self.show_error(message.error)

    def on_comparison_loaded(self, message: ComparisonLoaded) -> None:
        table = self.query_one(DataTable)
        kept = self._cursor_key(), table.cursor_column  # a reload keeps the cursor where it was
        self.comparison = message.comparison
        table.loading = False
        table.clear(columns=True)
        table.add_column("", key=MARKER_COLUMN)
        table.add_column("key", key=KEY_COLUMN)
        for index, label in enumerate(short_ids(self.comparison.run_ids)):
            table.add_column(Text(label, style="bold"), key=run_column(index))
            if index:
                table.add_column("Δ", key=delta_column(index))
        self._fill_rows(*kept)
        self._show_charts()

    # -- rendering ---------------------------------------------------------------------
    def _fill_rows(self, kept_key: str | None = None, kept_column: int | None = None) -> None:
        """The rows the toggle lets through, the cursor kept on its key if still shown."""
        comparison = self.comparison
        if comparison is None:
            return
        table = self.query_one(DataTable)
        if kept_column is None:
            kept_key, kept_column = self._cursor_key(), table.cursor_column
        table.clear()
        rows = [row for row in comparison.rows if row.changed or not self.only_differences]
        for row in rows:
            table.add_row(*self._cells(row), key=row.key)
        table.display = bool(rows)
        if not comparison.rows:
            self._show_empty("These runs recorded no params or metrics to compare.")
        elif not rows:
            self._show_empty(
                f"No differences: all {len(comparison.rows)} params and metrics are the same "
                "in these runs. Press d to show them."
            )
        else:
            self.query_one("#empty", Static).display = False
        if rows:
            row_index = table.get_row_index(kept_key) if kept_key in {r.key for r in rows} else 0
            # The first run's values, so `o` has a run to open straight away.
            column_index = kept_column if kept_key is not None else 2
            table.move_cursor(row=row_index, column=column_index, animate=False)
        self._show_summary(len(rows))

    def _cells(self, row: CompareRow) -> list:
        section, _, name = row.key.partition(".")
        key = Text.assemble((f"{section}.", "dim"), (name, "bold" if row.changed else ""))
        cells: list = [Text(CHANGED_MARK if row.changed else "", style=CHANGED_STYLE), key]
        baseline = repr(row.values[0])
        for index, (value, delta) in enumerate(zip(row.values, row.deltas)):
            if value is None:
                style = "dim"
            elif index and repr(value) != baseline:
                style = CHANGED_STYLE
            else:
                style = ""
            cells.append(Text(value_text(value), style=style, justify="right" if is_number(value) else "left"))
            if index:
                cells.append(Text(delta_text(delta), style=DELTA_STYLE if delta else "dim", justify="right"))
        return cells

    def _show_empty(self, text: str) -> None:
        empty = self.query_one("#empty", Static)
        empty.update(text)
        empty.display = True

    def _show_summary(self, shown: int) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        labels = short_ids(comparison.run_ids)
        differing = sum(row.changed for row in comparison.rows)
        parts = [f"{len(labels)} runs, Δ against {labels[0]} (the first)" if labels else "no runs"]
        if comparison.rows:
            parts.append(f"{len(comparison.rows)} keys, {differing} differ")
        if self.only_differences:
            parts.append(f"showing the {shown} that differ (d shows all)")
        self.query_one("#summary", Static).update(" · ".join(parts))

    def _show_charts(self) -> None:
        charts = self.query_one("#charts", VerticalScroll)
        charts.query(".chart").remove()
        charted = [(row, chart_points(row)) for row in self.comparison.rows] if self.comparison else []
        charted = [(row, points) for row, points in charted if points]
        charts.display = bool(charted)
        charts.mount_all(
            Horizontal(
                Label(row.key.removeprefix("metrics."), classes="chart-label"),
                Sparkline(points, classes="chart-line"),
                Label(
                    f"min {value_text(min(points))} · max {value_text(max(points))}"
                    + ("" if len(points) == len(row.values) else f" · {len(points)} of {len(row.values)} runs"),
                    classes="chart-range",
                ),
                classes="chart",
            )
            for row, points in charted
        )

    def watch_only_differences(self) -> None:
        self._fill_rows()

    def _cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        return row_key.value

    def _run_of_column(self, column_key: str | None) -> str | None:
        """The run a value or delta column belongs to; None for the key and marker columns."""
        if self.comparison is None or not column_key:
            return None
        kind, _, index = column_key.partition("-")
        if kind not in ("run", "delta") or not index.isdigit():
            return None
        return self.comparison.run_ids[int(index)]

    # -- actions -----------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_differences(self) -> None:
        self.only_differences = not self.only_differences

    def action_reload(self) -> None:
        self.load()

    def action_plots(self) -> None:
        self.opsctl_app.open_plots(self.comparison.run_ids if self.comparison is not None else self.run_ids)

    def action_open_run(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count or not table.display:
            return
        _, column_key = table.coordinate_to_cell_key(table.cursor_coordinate)
        self._open(column_key.value)

    @on(DataTable.CellSelected, "#comparison")
    def _cell_selected(self, event: DataTable.CellSelected) -> None:
        self._open(event.cell_key.column_key.value)

    @on(DataTable.HeaderSelected, "#comparison")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        self._open(event.column_key.value)

    def _open(self, column_key: str | None) -> None:
        run_id = self._run_of_column(column_key)
        if run_id is None:
            self.notify("Move to a run's column to open that run.", severity="warning")
            return
        self.opsctl_app.open_run(run_id)
