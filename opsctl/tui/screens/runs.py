"""The home screen: the project's runs, a page at a time from the store.

Textual's DataTable slows down badly past ~10k rows, and a store may hold 100k
runs, so the table holds one page (``PAGE_SIZE`` rows) and ``]`` / ``[`` fetch
the next or previous page from the store, sorted and filtered there.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Static

from opsctl.core.dashboard import RunQuery, RunsPage, parse_run_filter
from opsctl.core.formatting import (
    STATUS_STYLES,
    commit_label,
    duration_text,
    value_text,
    when,
)
from opsctl.tui.screens.base import DashboardScreen
from opsctl.tui.widgets.keybar import KeyBar

PAGE_SIZE = 100
MARK = "●"
BEST = 3  # runs `b` compares

# Columns before the key metrics: (label, the store's sort key for it)
FIXED_COLUMNS = [
    ("", None),
    ("run", "id"),
    ("status", "status"),
    ("started", "started"),
    ("duration", "duration"),
    ("commit", "commit"),
    ("stages", "stages"),
]


class RunsLoaded(Message):
    def __init__(self, page: RunsPage, query: RunQuery, keep_cursor: bool) -> None:
        super().__init__()
        self.page = page
        self.query = query
        # The cursor stays on the run it is on when the page arrives (not the one it
        # was on when the load began: keys may have moved it since), if still listed.
        self.keep_cursor = keep_cursor


class StoreChanged(Message):
    """The store was written since the last look (a run started, a stage finished)."""


class RunsScreen(DashboardScreen):
    HELP = (
        "Every run, newest first, paged from the store; refreshes while runs are recorded. Filter "
        "words: a status, params.KEY>VALUE, metrics.KEY<VALUE, group=NAME, or text in a run's id, "
        "commit or branch."
    )
    CSS_PATH = "runs.tcss"
    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("enter", "open", "Open run", show=False),  # the table's own enter opens it
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
        Binding("b", "compare_best", "Compare best", show=False),  # in the help (the bar keeps paging)
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort by next column"),
        Binding("o", "reverse", "Reverse order"),
        Binding("right_square_bracket", "next_page", "Next page", key_display="]"),
        Binding("left_square_bracket", "previous_page", "Previous page", key_display="["),
        Binding("escape", "clear", "Clear filter and marks", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_state = RunQuery()
        self.page_offset = 0
        self.page: RunsPage | None = None
        self.marked: list[str] = []  # in the order marked: the first is the comparison's baseline
        self._marker: tuple | None = None
        self._sort_keys: list[str | None] = []  # per column, as shown
        self._with_groups = False  # the page has experiments: a group column
        self._compare_best_pending = False  # `b` re-sorted by a metric: compare once that page is in

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="failed  params.train.lr>0.01  metrics.acc>=0.8  group=sweep-1  a1b2c3 — enter applies, escape cancels",
            id="filter",
        )
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="empty")
        yield Static(id="summary")
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()
        self.set_interval(self.opsctl_app.refresh_interval, self.watch_store)

    # -- loading -----------------------------------------------------------------------
    def load(self, keep_cursor: bool = False) -> None:
        table = self.query_one(DataTable)
        if self.page is None:
            table.loading = True
        self._load(self.query_state, self.page_offset, keep_cursor)

    @work(thread=True, exclusive=True, group="runs")
    def _load(self, query: RunQuery, offset: int, keep_cursor: bool) -> None:
        try:
            marker = self.services.store_marker()
            page = self.services.runs_page(query, offset=offset, limit=PAGE_SIZE)
        except Exception as exc:  # noqa: BLE001 - shown as a toast; the screen stays usable
            self.app.call_from_thread(self._failed, exc)
            return
        self._marker = marker
        self.post_message(RunsLoaded(page, query, keep_cursor))

    def _failed(self, exc: BaseException) -> None:
        self.query_one(DataTable).loading = False
        self.show_error(exc)

    @work(thread=True, exclusive=True, group="poll")
    def watch_store(self) -> None:
        """Live refresh: a cheap stat of the store's files; reload only when they changed."""
        try:
            marker = self.services.store_marker()
        except Exception:  # noqa: BLE001 - the next tick tries again
            return
        if self._marker is not None and marker != self._marker:
            self._marker = marker  # one reload per change, however slow that reload is
            self.post_message(StoreChanged())

    def on_store_changed(self, _message: StoreChanged) -> None:
        self.load(keep_cursor=True)

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        if message.query != self.query_state:
            return  # an answer to a query the user has since changed
        keep = self._cursor_run() if message.keep_cursor else None
        self.page = page = message.page
        table = self.query_one(DataTable)
        table.loading = False
        self._with_groups = bool(page.groups)  # experiments on the page: their sweep's group as a column
        group_column = [("group", None)] if self._with_groups else []
        columns = FIXED_COLUMNS + group_column + [(k, f"metrics.{k}") for k in page.metric_keys]
        sort = self.query_state.sort or "started"
        arrow = " ▼" if self.query_state.descending else " ▲"
        labels = [label + (arrow if key == sort else "") for label, key in columns]
        if labels == [str(c.label) for c in table.ordered_columns]:
            table.clear()  # the same columns (a next page, a refresh): only the rows change
        else:
            table.clear(columns=True)
            for (label, _key), shown in zip(columns, labels):
                # The mark column is blank until a run is marked: a width of its own.
                table.add_column(shown, key=label or "mark", width=None if label else 1)
        self._sort_keys = [key for _label, key in columns]
        for run in page.runs:
            table.add_row(*self._cells(run, page.metric_keys, page.groups), key=run.id)
        empty = self.query_one("#empty", Static)
        empty.display = not page.runs
        table.display = bool(page.runs)
        if not page.runs:
            if page.total_in_store:
                empty.update(f"No runs match “{self.query_state.describe()}”. Press escape to clear the filter.")
            else:
                empty.update(
                    "No runs yet.\n\n`opsctl run` records one each time it runs stages; they appear here as they start."
                )
        if keep and keep in {r.id for r in page.runs}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._show_summary()
        if self._compare_best_pending:
            self._compare_best_pending = False
            self._open_best()

    def _cells(self, run, metric_keys: list[str], groups: dict) -> list:
        stages = (
            f"{run.ran} ran, {run.cached} cached"
            + (f", {run.failed} failed" if run.failed else "")
            + (f", {run.skipped} skipped" if run.skipped else "")
        )
        return [
            Text(MARK if run.id in self.marked else "", style="bold magenta"),
            Text(run.id[:8], style="bold"),
            Text(run.status, style=STATUS_STYLES.get(run.status, "")),
            when(run.started),
            duration_text(run.duration),
            commit_label(run.git_commit, run.dirty),
            stages,
            *([Text(groups.get(run.id, ""), style="cyan")] if self._with_groups else []),
            *(Text(value_text(run.metrics.get(k)), justify="right") for k in metric_keys),
        ]

    def _show_summary(self) -> None:
        page = self.page
        parts = []
        if page is not None and page.total:
            last = page.offset + len(page.runs)
            parts.append(f"runs {page.offset + 1:,}–{last:,} of {page.total:,}")
            if page.total != page.total_in_store:
                parts.append(f"({page.total_in_store:,} in the store)")
        sort = self.query_state.sort or "started"
        parts.append(f"sorted by {sort} {'▼' if self.query_state.descending else '▲'}")
        if self.query_state.describe():
            parts.append(f"filter: {self.query_state.describe()}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked" + (" (c compares)" if len(self.marked) > 1 else ""))
        self.query_one("#summary", Static).update(" · ".join(parts))

    def _cursor_run(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count or not table.display:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    # -- actions -----------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value not in self.opsctl_app.run_views:
            self._read_ahead(event.row_key.value)

    @work(thread=True, exclusive=True, group="read-ahead")
    def _read_ahead(self, run_id: str) -> None:
        """The run under the cursor, read before enter is pressed (a few ms of SQLite)."""
        try:
            view = self.services.run_view(run_id)
        except Exception:  # noqa: BLE001 - enter reads it again and shows the error
            return
        self.app.call_from_thread(self.opsctl_app.remember_run_view, view)

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:  # (every row's key is its run's id)
            self.opsctl_app.open_run(event.row_key.value)

    def action_open(self) -> None:
        run_id = self._cursor_run()
        if run_id:
            self.opsctl_app.open_run(run_id)

    def action_mark(self) -> None:
        run_id = self._cursor_run()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        table = self.query_one(DataTable)
        table.update_cell(run_id, "mark", Text(MARK if run_id in self.marked else "", style="bold magenta"))
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)
        self._show_summary()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark two or more runs with space first.", severity="warning")
            return
        self.opsctl_app.open_compare(list(self.marked))

    def action_compare_best(self) -> None:
        """The best ``BEST`` runs of the listing side by side: the top rows when it is sorted by a
        metric (filter ``group=NAME`` first for one sweep), else sorted by the first metric column."""
        sort = self.query_state.sort or ""
        if not sort.startswith("metrics."):
            metrics = [k for k in self._sort_keys if k and k.startswith("metrics.")]
            if not metrics:
                self.notify("These runs have no metrics to rank them by.", severity="warning")
                return
            self._compare_best_pending = True
            self._requery(self.query_state._replace(sort=metrics[0], descending=True))
            return
        self._open_best()

    def _open_best(self) -> None:
        runs = [r.id for r in (self.page.runs if self.page is not None else []) if r.status == "succeeded"][:BEST]
        if len(runs) < 2:
            self.notify("Fewer than two finished runs to compare here.", severity="warning")
            return
        self.opsctl_app.open_compare(runs)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.query_state.describe()
        box.focus()
        self.query_one(KeyBar).show_keys([("enter", "Apply filter", "submit", box), ("esc", "Cancel", "clear", self)])

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            query = parse_run_filter(event.value, base=self.query_state)
        except Exception as exc:  # noqa: BLE001 - a malformed expression: say why, keep the box open
            self.show_error(exc)
            return
        self._close_filter()
        self._requery(query)

    def _close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = False
        self.query_one(DataTable).focus()
        self.query_one(KeyBar).show_screen_keys()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            self._close_filter()
            return
        changed = False
        if self.marked:
            self.marked.clear()
            changed = True
        if self.query_state.describe():
            self._requery(self.query_state._replace(status=None, where=(), text=None))
        elif changed:
            self.load(keep_cursor=True)

    def action_sort(self) -> None:
        """The next sortable column (started, duration, ..., each key metric), highest first."""
        keys = [k for k in self._sort_keys if k] or ["started"]
        current = self.query_state.sort or "started"
        following = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        self._requery(self.query_state._replace(sort=following, descending=True))

    @on(DataTable.HeaderSelected, "#runs")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = self._sort_keys[event.column_index] if event.column_index < len(self._sort_keys) else None
        if key is None:
            return
        descending = not self.query_state.descending if (self.query_state.sort or "started") == key else True
        self._requery(self.query_state._replace(sort=key, descending=descending))

    def action_reverse(self) -> None:
        self._requery(self.query_state._replace(descending=not self.query_state.descending))

    def action_next_page(self) -> None:
        if self.page is not None and self.page_offset + PAGE_SIZE < self.page.total:
            self.page_offset += PAGE_SIZE
            self.load()

    def action_previous_page(self) -> None:
        if self.page_offset > 0:
            self.page_offset = max(0, self.page_offset - PAGE_SIZE)
            self.load()

    def _requery(self, query: RunQuery) -> None:
        self.query_state = query
        self.page_offset = 0
        self.load()
