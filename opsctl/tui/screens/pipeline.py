"""The pipeline: every stage of dvc.yaml in layers, as `opsctl dag` prints it, each with
its status (up to date / stale from DVC, running / failed from the newest run).

Reading the statuses asks the no-op fast path first (a few milliseconds when nothing changed)
and DVC otherwise (a second or two), so it happens in a thread worker; the screen re-reads
when the run store changes (a cheap stat, polled). Between reads it also polls, every 50 ms,
whether any file the last read depended on changed (core/pipeline.py, PlanWatcher): a stage
whose dep or out changed shows as stale at once ("checking with DVC…"), and a full read
confirms it.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from opsctl.core.dashboard import PipelineStageView
from opsctl.core.formatting import STAGE_STATE_STYLES
from opsctl.errors import ProjectBusyError
from opsctl.tui.screens.base import StoreWatchingScreen
from opsctl.tui.widgets.keybar import KeyBar

# A glyph as well as a colour, so the status reads without colour too.
STATUS_MARKS = {"up to date": "✓", "stale": "●", "running": "▶", "failed": "✗"}
# The order counts are listed in the summary: what needs attention first.
SUMMARY_ORDER = ("failed", "running", "stale")

# The panel's "why" when DVC gave no change reasons.
NO_REASON = {
    "up to date": "nothing changed since it ran",
    "running": "running in the newest run",
    "failed": "failed in the newest run",
}

EMPTY = "No pipeline stages yet: add stages to dvc.yaml (or `dvc stage add`)."

FILES_POLL = 0.05  # seconds between looks at the pipeline's files (a stat of each)
RECHECK_AFTER = 0.5  # a read not kept for the fast path: read again this much later


class PipelineLoaded(Message):
    def __init__(self, stages: list[PipelineStageView], marker: tuple, generation: int, read_again: bool) -> None:
        super().__init__()
        self.stages = stages
        self.marker = marker  # the store as it was just before the statuses were read
        self.generation = generation
        self.read_again = read_again  # a file changed while DVC read: read once more, a moment later


class PipelineFilesChanged(Message):
    def __init__(self, changes: tuple[str, ...], stages: list[PipelineStageView] | None) -> None:
        super().__init__()
        self.changes = changes  # the files the last read depended on that changed since
        self.stages = stages  # the stages as those changes make them look, or None (no stage's file)


class PipelineFailed(Message):
    def __init__(self, error: BaseException, marker: tuple, generation: int) -> None:
        super().__init__()
        self.error = error
        self.marker = marker
        self.generation = generation


def summary(stages: list[PipelineStageView]) -> str:
    layers = max((s.layer for s in stages), default=0)
    counts = Counter(s.status for s in stages)
    parts = [
        f"{len(stages)} {'stage' if len(stages) == 1 else 'stages'} in {layers} {'layer' if layers == 1 else 'layers'}"
    ]
    parts += [f"{counts[status]} {status}" for status in SUMMARY_ORDER if counts[status]]
    if len(parts) == 1:
        parts.append("all up to date")
    return " · ".join(parts)


def status_text(status: str) -> Text:
    return Text(f"{STATUS_MARKS.get(status, '?')} {status}", style=STAGE_STATE_STYLES.get(status, ""))


class PipelineScreen(StoreWatchingScreen):
    HELP = (
        "The stage graph of dvc.yaml in layers (a stage waits for the ones after ◀──), "
        "each up to date, stale, running or failed; it re-reads itself when runs are recorded. "
        "The panel shows why the selected stage is stale and its command."
    )
    CSS_PATH = "pipeline.tcss"
    AUTO_FOCUS = "#pipeline-stages"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[PipelineStageView] | None = None
        self.loads = 0  # how many times the statuses were read and shown
        self._generation = 0  # of the newest load asked for; older answers are dropped
        self._loading = False
        self._again = False  # asked to reload while a load ran: one more when it ends
        self._files_seen: tuple[str, ...] | None = ()  # the changes last acted on
        self._files_checking = False
        self._files_quiet_until = 0.0  # a slow look (a huge pipeline) spaces the next ones out

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        with Horizontal(id="pipeline-body"):
            yield DataTable(id="pipeline-stages", cursor_type="row")
            yield Static(id="pipeline-detail")
        yield Static(EMPTY, id="pipeline-empty", classes="empty")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "pipeline"
        table = self.query_one("#pipeline-stages", DataTable)
        for label, key in (("layer", "layer"), ("status", "status"), ("stage", "stage"), ("waits for", "upstream")):
            table.add_column(label, key=key)
        self.query_one("#summary", Static).update("Reading the pipeline…")
        self.load(quiet=False)
        self.watch_store()
        self._files_poll = self.set_interval(FILES_POLL, self._tick_files)

    def on_screen_suspend(self) -> None:
        super().on_screen_suspend()
        self._files_poll.pause()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._files_poll.resume()

    # -- watching the pipeline's files ---------------------------------------------------
    def _tick_files(self) -> None:
        if self.stages is not None and not self._files_checking and time.monotonic() >= self._files_quiet_until:
            self._files_checking = True
            self._watch_files()

    @work(thread=True, exclusive=True, group="pipeline-files")
    def _watch_files(self) -> None:
        started = time.monotonic()
        try:
            found = self.services.pipeline_changes()
        except Exception:  # noqa: BLE001 - a passing stat failure: the next tick looks again
            found = None
        took = time.monotonic() - started
        changes, stages = found if found is not None else ((), None)
        self.post_message(PipelineFilesChanged(changes, stages))
        self._files_quiet_until = time.monotonic() + 10 * took  # at most a tenth of a core

    def on_pipeline_files_changed(self, message: PipelineFilesChanged) -> None:
        self._files_checking = False
        if message.changes == self._files_seen:
            return
        self._files_seen = message.changes
        if not message.changes:
            return
        if message.stages is not None and not self._loading:
            self.stages = message.stages
            self._render_stages(message.stages)
            self.query_one("#summary", Static).update(f"{summary(message.stages)} · checking with DVC…")
        self.load(quiet=True)

    # -- loading -----------------------------------------------------------------------
    def load(self, *, quiet: bool) -> None:
        """Read the statuses again; ``quiet``: no loading indicator (a live refresh)."""
        if self._loading:
            # DVC in two threads at once fights over its lock: read again once this one ends.
            self._again = True
            return
        self._loading = True
        self._generation += 1
        if not quiet or self.stages is None:
            self.query_one("#pipeline-stages", DataTable).loading = True
        self._load(self._generation)

    @work(thread=True, exclusive=True, group="pipeline")
    def _load(self, generation: int) -> None:
        marker: tuple = ()
        try:
            marker = self.services.store_marker()
            stages = self.services.pipeline()
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays usable
            self.post_message(PipelineFailed(exc, marker, generation))
            return
        read_again = getattr(self.services, "pipeline_kept", None) is False
        self.post_message(PipelineLoaded(stages, marker, generation, read_again))

    def can_watch(self) -> bool:
        return not self._loading

    def store_changed(self) -> None:
        self.load(quiet=True)

    def _finished(self) -> None:
        self._loading = False
        self.query_one("#pipeline-stages", DataTable).loading = False
        if self._again:
            self._again = False
            self.load(quiet=True)

    def on_pipeline_failed(self, message: PipelineFailed) -> None:
        if message.generation != self._generation:
            return
        # Keep watching: a read that failed mid-run (a file being replaced) is read again
        # when the store next changes, e.g. when that run is recorded as finished.
        self._marker = message.marker
        self._finished()
        if isinstance(message.error, ProjectBusyError) and self.stages is not None:
            # A run is writing a stage's outputs this instant: the statuses shown stay, and
            # the run's next record in the store (the stage done) brings a read that works.
            return
        self.show_error(message.error)
        if self.stages is None:
            self.query_one("#summary", Static).update("Could not read the pipeline: r tries again.")

    def on_pipeline_loaded(self, message: PipelineLoaded) -> None:
        if message.generation != self._generation:
            return
        self._marker = message.marker
        self.stages = message.stages
        self.loads += 1
        self._render_stages(message.stages)
        self._finished()
        if message.read_again:
            # Not kept for the fast path (a file changed while DVC read it), so the file watch
            # has nothing to compare with: a read a moment later is kept.
            self.set_timer(RECHECK_AFTER, lambda: self.load(quiet=True))

    # -- rendering ---------------------------------------------------------------------
    def _render_stages(self, stages: list[PipelineStageView]) -> None:
        table = self.query_one("#pipeline-stages", DataTable)
        body = self.query_one("#pipeline-body")
        empty = self.query_one("#pipeline-empty", Static)
        body.display = bool(stages)
        empty.display = not stages
        self.query_one("#summary", Static).update(summary(stages) if stages else "0 stages")
        keep = self.selected_stage()
        table.clear()
        layer_shown = None
        # Topological order already; stable-sorting by layer groups it as `opsctl dag` does.
        for stage in sorted(stages, key=lambda s: s.layer):
            layer = "" if stage.layer == layer_shown else Text(str(stage.layer), style="dim")
            layer_shown = stage.layer
            waits = Text(f"◀── {', '.join(stage.upstream)}", style="dim") if stage.upstream else Text("")
            table.add_row(layer, status_text(stage.status), Text(stage.name, style="bold"), waits, key=stage.name)
        names = [s.name for s in sorted(stages, key=lambda s: s.layer)]
        if keep in names:
            table.move_cursor(row=names.index(keep), animate=False)
        self._show_detail(self.selected_stage())

    def selected_stage(self) -> str | None:
        table = self.query_one("#pipeline-stages", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        return row_key.value

    def _show_detail(self, name: str | None) -> None:
        panel = self.query_one("#pipeline-detail", Static)
        stage = next((s for s in self.stages or [] if s.name == name), None)
        if stage is None:
            panel.update("")
            return
        downstream = [s.name for s in self.stages or [] if stage.name in s.upstream]
        text = Text.assemble((stage.name, "bold"), "  ", status_text(stage.status), "\n\n")
        text.append("layer ", style="dim")
        text.append(f"{stage.layer}\n")
        text.append("waits for ", style="dim")
        text.append(", ".join(stage.upstream) or "-")
        text.append("\nfeeds ", style="dim")
        text.append(", ".join(downstream) or "-")
        if stage.last_worker:  # a remote executor's worker (runs on this host say nothing)
            text.append("\nlast ran on ", style="dim")
            text.append(stage.last_worker)
        text.append("\n\nwhy\n", style="bold")
        if stage.reasons:
            for reason in stage.reasons:
                text.append(f"  {reason}\n")
        else:
            text.append(f"  {NO_REASON.get(stage.status, NO_REASON['up to date'])}\n", style="dim")
        text.append("\ncmd\n", style="bold")
        text.append(f"  {stage.cmd}")
        panel.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.row_key.value if event.row_key else None)

    # -- keys --------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load(quiet=False)
