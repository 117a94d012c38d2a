"""The data: every dataset with checks in opsctl.yaml, whether it is in the workspace, and
its last verdict (from `opsctl data validate` or a gate of `opsctl run`); below, the
selected dataset's failing checks with the rows and values that failed them.

``d`` turns it into the drift view: every dataset with drift checks (`opsctl monitor
drift`, a drift gate of `opsctl run`) with its last verdict; below, the selected dataset's
share of drifted columns over its recent checks as a bar chart, and per column its
statistic over the same checks as a sparkline with the last value and verdict. Unicode
blocks in a Static: a chart library would add a dependency for a few bars.

Read in a thread worker (the run store and opsctl.yaml); the screen reads again when the
run store changes (a cheap stat, polled), so a validation or drift check elsewhere shows
up here.
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

from opsctl.core.formatting import (
    DRIFT_STYLES,
    VERDICT_STYLES,
    ago,
    drift_verdict_text,
    example_text,
    failure_label,
    value_text,
    verdict_text,
    when,
)
from opsctl.tui.screens.base import StoreWatchingScreen
from opsctl.tui.widgets.keybar import KeyBar

EMPTY = (
    "No data checks yet.\n\n"
    "Declare them per dataset under `checks:` in opsctl.yaml (types, ranges, allowed values, unique keys),\n"
    "or let `opsctl data profile PATH --write` write a first set from the data itself.\n"
    "`opsctl data validate` then checks the data, and `opsctl run` checks it as the pipeline goes."
)
NEVER = "– not validated"
DRIFT_EMPTY = (
    "No drift checks yet: `opsctl monitor drift DATASET --reference DATASET|PROFILE|NAME@VERSION`.\n\n"
    "Each check is recorded in the run store; the datasets checked show here with their share of drifted\n"
    "columns over time. Put a dataset's reference under `drift:` in opsctl.yaml to leave out --reference,\n"
    "and `opsctl monitor profile DATASET` keeps a small profile of the reference instead of the data."
)
VIEWS = ("checks", "drift")
BLOCKS = " ▁▂▃▄▅▆▇█"  # eighths of a cell
CHART_HEIGHT = 6  # rows of the share chart
SPARK_POINTS = 60  # checks in a column's sparkline: the newest


class DatasetsLoaded(Message):
    def __init__(self, datasets: list, drift: list | None, marker: tuple, generation: int, drift_error=None) -> None:
        super().__init__()
        self.datasets = datasets  # core/check_records.py DatasetState
        self.drift = drift  # core/monitoring.py DatasetDrift; None when it could not be read
        self.marker = marker  # the store as it was just before it was read
        self.generation = generation
        self.drift_error = drift_error


class DatasetsFailed(Message):
    def __init__(self, error: BaseException, marker: tuple, generation: int) -> None:
        super().__init__()
        self.error = error
        self.marker = marker
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


# -- the drift view ------------------------------------------------------------------------


def compared_columns(record) -> list[dict]:
    return [c for c in record.columns if c.get("compared", True)]


def drift_cell(record) -> Text:
    """A check's verdict: ``✗ drift 2/5`` in red, ``✓ no drift`` in green."""
    compared = compared_columns(record)
    drifted = sum(1 for c in compared if c.get("drift"))
    return Text(drift_verdict_text(record.drift, drifted, len(compared)), style=DRIFT_STYLES[record.drift])


def sparkline(
    values: list[float | None], flags: list[bool] | None = None, *, low: float | None = None, high: float | None = None
) -> Text:
    """One character per value, from ``low`` (default 0, or the lowest when below 0) to ``high``
    (default the highest); a gap where a value is missing; red where ``flags`` says the check
    drifted, green where it did not."""
    known = [v for v in values if v is not None]
    low = min([0.0, *known]) if low is None else low
    high = max(known, default=0.0) if high is None else high
    text = Text()
    for n, value in enumerate(values):
        if value is None:
            text.append(" ")
            continue
        level = 1 + round((min(max(value, low), high) - low) / (high - low) * 7) if high > low else 1
        style = DRIFT_STYLES[bool(flags[n])] if flags is not None else ""
        text.append(BLOCKS[level], style=style)
    return text


def number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else value_text(value)


def share_chart(checks: list, height: int = CHART_HEIGHT) -> Text:
    """The share of drifted columns of each check (oldest first), a bar per check on a 0-100%
    axis, red where the dataset drifted; the newest check's threshold share as a dotted line."""
    threshold = checks[-1].threshold_share if checks else 0.5
    threshold_row = height - 1 - min(height - 1, int(threshold * height))
    labels = {0: "100%", height - 1: "  0%", threshold_row: f"{threshold:>4.0%}"}
    text = Text()
    for row in range(height):
        text.append(labels.get(row, "    ") + (" ┤" if row in labels else " │"), style="dim")
        base = (height - 1 - row) * 8
        for record in checks:
            eighths = round(max(0.0, min(1.0, record.share)) * height * 8)
            level = max(0, min(8, eighths - base))
            if level:
                text.append(BLOCKS[level], style=DRIFT_STYLES[record.drift])
            elif row == height - 1 and not eighths:
                text.append("·", style=DRIFT_STYLES[False])  # a check with no drifted column
            elif row == threshold_row:
                text.append("┈", style="dim")
            else:
                text.append(" ")
        if row == threshold_row:
            text.append("  threshold", style="dim")
        text.append("\n")
    if checks:
        first, last = checks[0], checks[-1]
        span = when(first.at) if len(checks) == 1 else f"{when(first.at)} → {when(last.at)}"
        text.append(f"       {span}  ({len(checks)} check{'s' if len(checks) != 1 else ''})", style="dim")
    return text


def column_series(checks: list) -> list[tuple[str, list[float | None], list[bool], dict]]:
    """Per column (in the newest check's order, then columns only older checks had): its
    statistic in each check (None where it was not compared), whether it drifted, and its
    newest result."""
    order: dict[str, dict] = {}
    for record in reversed(checks):
        for column in record.columns:
            order.setdefault(str(column.get("column")), column)
    series = []
    for name, newest in order.items():
        values: list[float | None] = []
        flags: list[bool] = []
        for record in checks:
            found = next((c for c in record.columns if str(c.get("column")) == name), None)
            compared = found is not None and found.get("compared", True)
            statistic = found.get("statistic") if compared and found is not None else None
            values.append(float(statistic) if isinstance(statistic, (int, float)) else None)
            flags.append(bool(compared and found is not None and found.get("drift")))
        series.append((name, values, flags, newest))
    return series


def drift_detail(state) -> Text:
    """The selected dataset's drift: its last check, the share chart, then per column its
    statistic over the checks."""
    last = state.last
    text = Text.assemble((state.path, "bold"), "  ", drift_cell(last))
    by = f"run {last.run_id[:8]}" if last.run_id else "opsctl monitor drift"
    gate = f" (gate {last.stage})" if last.stage else ""
    text.append(f"\nchecked {when(last.at)} ({ago(last.at)}) by {by}{gate}", style="dim")
    reference = f" (md5 {last.reference_hash[:12]})" if last.reference_hash else ""
    data = f" · data md5 {last.data_hash[:12]}" if last.data_hash else ""
    text.append(
        f"\nagainst {last.reference}{reference} · {last.rows:,} rows{data} · "
        f"drifts at {last.threshold_share:.0%} of the columns",
        style="dim",
    )
    text.append("\n\nshare of drifted columns per check, oldest → newest\n", style="bold")
    text.append_text(share_chart(state.checks))
    series = column_series(state.checks[-SPARK_POINTS:])
    last_few = f" (the last {SPARK_POINTS})" if len(state.checks) > SPARK_POINTS else ""
    text.append(
        f"\n\nper column: its statistic per check{last_few}, oldest → newest, then the newest check's\n",
        style="bold",
    )
    width = max([len("column"), *(len(name) for name, *_ in series)])
    spark = max([len("statistic"), *(len(values) for _, values, _, _ in series)])
    text.append(f"\n  {'column':<{width}}  {'statistic':<{spark}}  {'method':<13}{'newest':>10}", style="dim")
    for name, values, flags, newest in series:
        text.append(f"\n  {name:<{width}}  ")
        if not newest.get("compared", True):
            text.append(" " * spark + "  not compared: " + str(newest.get("detail") or ""), style="dim")
            continue
        text.append_text(sparkline(values, flags))
        text.append(" " * (spark - len(values)))
        text.append(f"  {str(newest.get('method') or ''):<13}")
        text.append(f"{number(newest.get('statistic')):>10}")
        if newest.get("p_value") is not None:
            text.append(f"  p {number(newest.get('p_value'))}", style="dim")
        if newest.get("threshold") is not None:
            text.append(f"  threshold {number(newest.get('threshold'))}", style="dim")
        drifted = bool(newest.get("drift"))
        text.append("  drifted" if drifted else "  no drift", style=DRIFT_STYLES[drifted])
        if newest.get("detail"):
            text.append(f"  {newest['detail']}", style="dim")
    return text


def drift_summary(drift: list) -> str:
    drifting = sum(1 for d in drift if d.last is not None and d.last.drift)
    parts = [f"{len(drift)} dataset{'s' if len(drift) != 1 else ''} with drift checks"]
    parts.append(f"{drifting} drifting at the last check" if drifting else "none drifting at the last check")
    return " · ".join(parts)


class DataScreen(StoreWatchingScreen):
    HELP = (
        "The datasets with checks in opsctl.yaml: whether each is in the workspace and its last verdict "
        "(from `opsctl data validate` or a gate of `opsctl run`); below, the selected dataset's failing "
        "checks with sample rows. d switches to the drift view: each dataset with drift checks "
        "(`opsctl monitor drift`) and its last verdict; below, its share of drifted columns over time "
        "(red: the dataset drifted) and per column its statistic over time. "
        "It re-reads itself when verdicts or drift checks are recorded."
    )
    CSS_PATH = "data.tcss"
    AUTO_FOCUS = "#datasets"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("d", "toggle_view", "Checks | drift"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = "checks"  # or "drift"
        self.datasets: list | None = None
        self.drift: list | None = None  # core/monitoring.py DatasetDrift
        self.loads = 0  # how many times the datasets were read and shown
        self._generation = 0  # of the newest load asked for; older answers are dropped

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield DataTable(id="datasets", cursor_type="row")
        with VerticalScroll(id="data-detail"):
            yield Static(id="data-failures")
        yield Static(EMPTY, id="data-empty", classes="empty")
        yield DataTable(id="drift-table", cursor_type="row")
        with VerticalScroll(id="drift-detail"):
            yield Static(id="drift-chart")
        yield Static(DRIFT_EMPTY, id="drift-empty", classes="empty")
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
        drift = self.query_one("#drift-table", DataTable)
        for label, key in (
            ("verdict", "verdict"),
            ("dataset", "path"),
            ("reference", "reference"),
            ("checked", "at"),
            ("", "ago"),
            ("rows", "rows"),
            ("share", "share"),
            ("recent checks", "history"),
        ):
            drift.add_column(label, key=key)
        for selector in ("#drift-table", "#drift-detail", "#drift-empty"):
            self.query_one(selector).display = False
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
        marker: tuple = ()
        try:
            marker = self.services.store_marker()
            datasets = self.services.datasets()
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays usable
            self.post_message(DatasetsFailed(exc, marker, generation))
            return
        drift, drift_error = None, None
        try:
            drift = self.services.drift()
        except Exception as exc:  # noqa: BLE001 - the checks view stands without it
            drift_error = exc
        self.post_message(DatasetsLoaded(datasets, drift, marker, generation, drift_error))

    def store_changed(self) -> None:
        self.load(quiet=True)

    def on_datasets_failed(self, message: DatasetsFailed) -> None:
        if message.generation != self._generation:
            return
        self._marker = message.marker  # keep watching: the next store change reads again
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
        if message.drift_error is not None and self.view == "drift":
            self.show_error(message.drift_error)
        if message.drift is not None or self.drift is None:
            self.drift = message.drift
            self._render_drift(message.drift or [])
        self._show_view()

    # -- rendering ---------------------------------------------------------------------
    def _show_view(self) -> None:
        """Show the widgets of the view in front (and its empty state when it has nothing)."""
        checks, drift = self.view == "checks", self.view == "drift"
        has_checks = bool(self.datasets) if self.datasets is not None else True
        has_drift = bool(self.drift)
        self.query_one("#datasets").display = checks and has_checks
        self.query_one("#data-detail").display = checks and has_checks
        self.query_one("#data-empty").display = checks and not has_checks
        self.query_one("#drift-table").display = drift and has_drift
        self.query_one("#drift-detail").display = drift and has_drift
        self.query_one("#drift-empty").display = drift and self.drift is not None and not self.drift
        self.sub_title = "data" if checks else "data · drift"
        summary_line = self.query_one("#summary", Static)
        if self.datasets is None:
            return  # "Reading the datasets…" stays
        if checks:
            summary_line.update(summary(self.datasets) if self.datasets else "no data checks")
        elif self.drift is None:
            summary_line.update("Could not read the drift checks: r tries again.")
        else:
            summary_line.update(drift_summary(self.drift) if self.drift else "no drift checks")

    def _render_datasets(self, datasets: list) -> None:
        table = self.query_one("#datasets", DataTable)
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

    def _render_drift(self, drift: list) -> None:
        table = self.query_one("#drift-table", DataTable)
        keep = self.selected_drift_path()
        table.clear()
        for state in drift:
            last = state.last
            if last is None:
                continue
            table.add_row(
                drift_cell(last),
                Text(state.path, style="bold"),
                Text(last.reference),  # a plain string would be read as markup
                when(last.at),
                ago(last.at),
                f"{last.rows:,}",
                Text(f"{last.share:.0%}", style=DRIFT_STYLES[last.drift]),
                sparkline([c.share for c in state.checks[-30:]], [c.drift for c in state.checks[-30:]], high=1.0),
                key=state.path,
            )
        paths = [d.path for d in drift if d.last is not None]
        if keep in paths:
            table.move_cursor(row=paths.index(keep), animate=False)
        self._show_drift_detail(self.selected_drift_path())

    @staticmethod
    def _cursor_key(table: DataTable) -> str | None:
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        return row_key.value

    def selected_path(self) -> str | None:
        return self._cursor_key(self.query_one("#datasets", DataTable))

    def selected_drift_path(self) -> str | None:
        return self._cursor_key(self.query_one("#drift-table", DataTable))

    def _show_detail(self, path: str | None) -> None:
        state = next((d for d in self.datasets or [] if d.path == path), None)
        self.query_one("#data-failures", Static).update(detail_text(state) if state is not None else "")

    def _show_drift_detail(self, path: str | None) -> None:
        state = next((d for d in self.drift or [] if d.path == path and d.last is not None), None)
        self.query_one("#drift-chart", Static).update(drift_detail(state) if state is not None else "")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        path = event.row_key.value if event.row_key else None
        if event.data_table.id == "drift-table":
            self._show_drift_detail(path)
        else:
            self._show_detail(path)

    # -- keys --------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load(quiet=False)

    def action_toggle_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self._show_view()
        self.query_one("#datasets" if self.view == "checks" else "#drift-table", DataTable).focus()
