"""One run: its stages, params and metrics, and the log of the selected stage, which
follows the stage while it is still running."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Header, Log, Static

from opsctl.core.dashboard import LogChunk, RunView
from opsctl.core.formatting import (
    OUTCOME_STYLES,
    STATUS_STYLES,
    VERDICT_STYLES,
    commit_label,
    duration_text,
    failure_label,
    image_label,
    shows_workers,
    value_text,
    verdict_text,
    when,
    worker_label,
)
from opsctl.tui.screens.base import DashboardScreen
from opsctl.tui.widgets.keybar import KeyBar


def values_text(detail, checks=()) -> Text:
    """The run's data checks first, when its gates gave any (a failed one is why a run
    failed); then params, then metrics: a bold heading with the count, then one aligned
    ``key  value`` line each."""
    sections = [(name, sorted(getattr(detail, name).items())) for name in ("params", "metrics")]
    width = max((len(key) for _name, items in sections for key, _value in items), default=0)
    text = checks_text(checks) if checks else Text(no_wrap=True, overflow="ellipsis")
    for name, items in sections:
        if text:
            text.append("\n")
        text.append(name, style="bold")
        text.append(f"  {len(items) if items else 'none'}", style="dim")
        for key, value in items:
            text.append(f"\n  {key:<{width}}  {value_text(value)}")
    return text


def checks_text(checks) -> Text:
    """A run's data checks (core/check_records.py RecordedVerdict): per dataset its verdict
    and the gate (stage) that ran it, then each failing check with its count."""
    failed = sum(not v.passed for v in checks)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("checks", style="bold")
    text.append(f"  {len(checks)}" + (f", {failed} failed" if failed else ""), style="dim")
    for v in checks:
        text.append("\n  ")
        text.append(verdict_text(v.passed, v.failed_checks, cached=v.cached), style=VERDICT_STYLES[v.passed])
        text.append(f"  {v.path}")
        if v.stage:
            text.append(f"  ({v.stage})", style="dim")
        for failure in v.failures:
            text.append(f"\n      {failure_label(failure)}", style=VERDICT_STYLES[False])
    return text


WORKER_COLUMN = "worker"  # the stages table's column for a remote executor's workers


class RunLoaded(Message):
    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view


class LogRead(Message):
    def __init__(self, stage: str, start: int, chunk: LogChunk, fresh: bool) -> None:
        super().__init__()
        self.stage = stage
        self.start = start  # the offset asked for; the chunk ends at chunk.offset
        self.chunk = chunk
        self.fresh = fresh  # a new stage's log (clear first), not more of the one shown


class RunScreen(DashboardScreen):
    """The app keeps one of these and refills it for each run it opens (``show``):
    building a screen's widgets and styles costs more than a key press may take."""

    HELP = (
        "One run: what each stage did, in which image, with which params, and the data checks "
        "its gates ran; the log of the stage under the cursor, followed while the run is still going."
    )
    CSS_PATH = "run.tcss"
    AUTO_FOCUS = "#stages"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("l", "lineage", "Lineage of the stage's output"),
        Binding("g", "plots", "Plots"),
        Binding("p", "pipeline", "Pipeline"),
        Binding("f", "toggle_follow", "Follow log"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, run_id: str | None = None, *, stage: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.initial_stage = stage
        self._prefetched: RunView | None = None
        self.view: RunView | None = None
        self.logs: dict[str, Path | None] = {}
        self.stage: str | None = None  # whose log is shown
        self.log_offset = 0
        self.follow = True

    @property
    def detail(self):
        return self.view.detail if self.view is not None else None

    def show(self, run_id: str, *, stage: str | None = None, prefetched: RunView | None = None) -> None:
        """Show another run: at once when the runs screen read it ahead, and read again
        in the background (a running run changes)."""
        self.run_id, self.initial_stage, self._prefetched = run_id, stage, prefetched
        self.view, self.logs, self.stage, self.log_offset = None, {}, None, 0
        if self.is_mounted:
            self._start()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-info")
        with Horizontal(id="run-top"):
            yield DataTable(id="stages", cursor_type="row")
            # Plain text, not a table: nothing to select there, and a table's cells
            # cost several times as much to draw when the screen opens.
            with VerticalScroll(id="run-values"):
                yield Static(id="values")
        yield Static(id="log-title", classes="title")
        yield Log(id="log", highlight=False, auto_scroll=True)
        yield KeyBar()

    def on_mount(self) -> None:
        # Columns once: a refill then changes only rows, which re-measures less.
        self.query_one("#stages", DataTable).add_columns("stage", "outcome", "duration", "exit", "image")
        self._start()
        self.set_interval(self.opsctl_app.refresh_interval, self._tick)

    def _start(self) -> None:
        self.query_one(Log).clear()
        if self._prefetched is not None and self._prefetched.detail.id.startswith(self.run_id or "\0"):
            self._show_view(self._prefetched)
        else:
            self.query_one("#stages", DataTable).clear()
            self.query_one("#run-info", Static).update("")
            self.query_one("#values", Static).update("")
            self.query_one("#stages", DataTable).loading = True
        self._prefetched = None
        self._load()

    # -- loading -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="run")
    def _load(self) -> None:
        if self.run_id is None:  # not shown yet (the app calls show() before pushing it)
            return
        try:
            view = self.services.run_view(self.run_id)
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays
            self.app.call_from_thread(self._failed, exc)
            return
        self.post_message(RunLoaded(view))

    def _failed(self, exc: BaseException) -> None:
        self.query_one("#stages", DataTable).loading = False
        self.show_error(exc)

    def on_run_loaded(self, message: RunLoaded) -> None:
        if message.view.detail.id.startswith(self.run_id or "\0") and message.view != self.view:
            self._show_view(message.view)

    def _show_view(self, view: RunView) -> None:
        first_load = self.view is None
        self.view = view
        detail = view.detail
        self.logs = dict(view.logs)
        self.sub_title = f"run {detail.id}"
        code = f"{commit_label(detail.git_commit, detail.dirty)} on {detail.branch or '(detached)'}"
        info = Text()
        info.append(f"run {detail.id}  ", style="bold")
        info.append(detail.status, style=STATUS_STYLES.get(detail.status, ""))
        info.append(f"   started {when(detail.started)}   duration {duration_text(detail.duration) or '…'}\n")
        info.append(f"code {code}" + (f"   uncommitted diff {detail.diff_hash[:12]}" if detail.diff_hash else ""))
        info.append(f"   by {detail.user}@{detail.host}   executor {detail.executor}, -j {detail.jobs}")
        self.query_one("#run-info", Static).update(info)

        stages = self.query_one("#stages", DataTable)
        stages.loading = False
        keep = self.stage or self.initial_stage
        stages.clear()
        # A worker column only while a run with remote stages is shown: other runs look as they always did.
        workers = shows_workers(detail.stages)
        if workers != (WORKER_COLUMN in stages.columns):
            if workers:
                stages.add_column("worker", key=WORKER_COLUMN)
            else:
                stages.remove_column(WORKER_COLUMN)
        recorded = {s.name: s for s in detail.stages}
        for name in self._stage_order(detail):
            s = recorded.get(name)
            if s is None:  # running: a log file, no record yet
                running = Text("running", style=STATUS_STYLES["running"])
                stages.add_row(name, running, "", "", "", *([""] if workers else []), key=name)
                continue
            stages.add_row(
                name,
                Text(s.outcome, style=OUTCOME_STYLES.get(s.outcome, "")),
                duration_text(s.duration),
                "" if s.exit_code is None else str(s.exit_code),
                image_label(s.image_ref, s.image_id),
                *([worker_label(s.worker, s.attempts)] if workers else []),
                key=name,
            )
        if keep in self.logs:
            stages.move_cursor(row=stages.get_row_index(keep), animate=False)

        self.query_one("#values", Static).update(values_text(detail, view.checks))
        if first_load:
            stages.focus()
        if self.stage is None and stages.row_count:
            self._show_stage(keep if keep in self.logs else self._stage_order(detail)[0])

    def _stage_order(self, detail) -> list[str]:
        """Recorded stages in the order they started, then those still running."""
        started = sorted(detail.stages, key=lambda s: (s.started or 0, s.name))
        names = [s.name for s in started]
        return names + [n for n in self.logs if n not in names]

    @on(DataTable.RowHighlighted, "#stages")
    def _stage_highlighted(self, event: DataTable.RowHighlighted) -> None:
        stage = event.row_key.value if event.row_key is not None else None
        if stage is not None and stage != self.stage:
            self._show_stage(stage)

    def _show_stage(self, stage: str) -> None:
        self.stage = stage
        self.log_offset = 0
        self.query_one(Log).clear()
        self._update_log_title()
        self._read_whole_log(stage, self.logs.get(stage))

    # The whole log and the follow-ups are separate groups, so a follow-up never
    # cancels the first read; on_log_read drops a chunk that does not continue the log.
    @work(thread=True, exclusive=True, group="log")
    def _read_whole_log(self, stage: str, path: Path | None) -> None:
        self._read_log(stage, path, 0, fresh=True)

    @work(thread=True, exclusive=True, group="log-follow")
    def _read_more_log(self, stage: str, path: Path | None, offset: int) -> None:
        self._read_log(stage, path, offset, fresh=False)

    def _read_log(self, stage: str, path: Path | None, offset: int, *, fresh: bool) -> None:
        self.post_message(LogRead(stage, offset, self.services.read_log(path, offset), fresh))

    def on_log_read(self, message: LogRead) -> None:
        if message.stage != self.stage:
            return
        if not message.fresh and message.start != self.log_offset:
            return  # read before another chunk landed: its text is already shown
        log = self.query_one(Log)
        if message.fresh:
            log.clear()
            if not message.chunk.exists:
                log.write_line("(no log saved for this stage)")
        if message.chunk.text:
            log.write(message.chunk.text)
        self.log_offset = message.chunk.offset

    def _update_log_title(self) -> None:
        live = self.detail is not None and self.detail.status == "running"
        following = " · following" if live and self.follow else ""
        self.query_one("#log-title", Static).update(f"log: {self.stage}{following}")

    def _tick(self) -> None:
        """While the run is going: more of the shown log, and the run itself (stages finish)."""
        if not self.is_current or self.detail is None or self.detail.status != "running":
            return
        if self.follow and self.stage is not None:
            self._read_more_log(self.stage, self.logs.get(self.stage), self.log_offset)
        self._load()  # also before its first stage has started: that stage appears

    # -- actions -----------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self._load()
        if self.stage is not None:
            self._show_stage(self.stage)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.query_one(Log).auto_scroll = self.follow
        self._update_log_title()

    def action_pipeline(self) -> None:
        self.opsctl_app.action_pipeline()

    def action_plots(self) -> None:
        if self.run_id is not None:
            self.opsctl_app.open_plots([self.detail.id if self.detail is not None else self.run_id])

    def action_lineage(self) -> None:
        if self.detail is None or self.stage is None:
            return
        stage = next((s for s in self.detail.stages if s.name == self.stage), None)
        outs = [a.path for a in stage.artifacts if a.kind == "out"] if stage else []
        if not outs:
            self.notify(f"{self.stage} recorded no outputs to trace.", severity="warning")
            return
        self.opsctl_app.open_lineage(outs[0])
