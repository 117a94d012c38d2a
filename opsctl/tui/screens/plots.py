"""The plots runs recorded (dvc.yaml's ``plots:``), one at a time, drawn to fit the view:
curves as braille charts, confusion matrices as tables, as `opsctl plots show` draws them
(core/plot_text.py). Opened from a run (its plots) or from Compare (each plot overlaying
the compared runs, one series per run).

Reading and drawing happen in worker threads: a plot of 100,000 points takes a moment to
thin and draw, and the UI must keep answering keys meanwhile. A drawing is made for the
view's size; a resize draws again once the size has settled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Header, Static

from opsctl.tui.screens.base import DashboardScreen
from opsctl.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from textual.timer import Timer

    from opsctl.core.dashboard import PlotsView

PLACEHOLDER = "Drawing…"
RESIZE_DELAY = 0.15  # seconds a size must hold before the plot is drawn again for it
MAX_DRAWINGS_KEPT = 32  # drawings kept for cycling back (each a few KB of text)
# (plot index, width, height): what a drawing was made for
DrawingKey = tuple[int, int, int]


class PlotsLoaded(Message):
    def __init__(self, view: PlotsView) -> None:
        super().__init__()
        self.view = view


class PlotsFailed(Message):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class PlotDrawn(Message):
    def __init__(self, loaded: int, key: DrawingKey, drawing: Text) -> None:
        super().__init__()
        self.loaded = loaded  # which load of the plots it was drawn from
        self.key = key
        self.drawing = drawing


class PlotArea(VerticalScroll):
    """Where the plot is drawn; tells the screen when its size changes (a Resize event
    does not bubble). A confusion table taller than the view scrolls."""

    class Resized(Message):
        pass

    def on_resize(self, _event: events.Resize) -> None:
        self.post_message(self.Resized())


def image_line(path: str, run_ids: list[str]) -> str:
    """What the view says for an image plot, which it cannot draw: the command that shows it."""
    runs = " ".join(f"--run {run_id}" for run_id in run_ids)
    return f"{path} is an image: `opsctl plots show {runs} --html plots.html` shows it in a browser."


class PlotsScreen(DashboardScreen):
    HELP = (
        "The plots a run recorded (dvc.yaml's plots:), one at a time, drawn to fit: curves as braille "
        "charts, confusion matrices as tables. From Compare every plot overlays the runs, one series each."
    )
    CSS_PATH = "plots.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("right_square_bracket", "next_plot", "Next plot", key_display="]"),
        Binding("left_square_bracket", "previous_plot", "Previous plot", key_display="["),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.view: PlotsView | None = None
        self.index = 0  # the plot shown
        self.shown: DrawingKey | None = None  # what the drawing on screen was made for
        self._drawings: dict[DrawingKey, Text] = {}  # made while this view is loaded: cycling back is instant
        self._pending: DrawingKey | None = None  # being drawn by a worker
        self.loads = 0  # plots loaded so far: a drawing of an earlier load is dropped
        self._resize_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("plots", id="plot-title", classes="title")
        with PlotArea(id="plot-area"):
            yield Static(PLACEHOLDER, id="plot")
        yield Static(id="plot-errors")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = f"plots of run {self.run_ids[0]}" if len(self.run_ids) == 1 else "plots of the runs overlaid"
        self.query_one("#plot-errors").display = False
        self._load(self.run_ids)

    # -- loading -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="plots")
    def _load(self, run_ids: list[str]) -> None:
        try:
            view = self.services.plots(run_ids)
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays
            self.post_message(PlotsFailed(exc))
            return
        self.post_message(PlotsLoaded(view))

    def on_plots_failed(self, message: PlotsFailed) -> None:
        if self.view is None:
            why = getattr(message.error, "message", None) or str(message.error)
            self._show_text(f"Could not read the plots: {why}\nPress r to try again, escape to go back.", empty=True)
        self.show_error(message.error)

    def on_plots_loaded(self, message: PlotsLoaded) -> None:
        self.view = message.view
        self.loads += 1
        self._drawings.clear()
        self.shown = self._pending = None
        if not self.view.plots:
            self.query_one("#plot-title", Static).update("no plots")
            self._show_errors(self.view.notes)
            self._show_text(self.view.empty, empty=True)
            return
        self.index = min(self.index, len(self.view.plots) - 1)
        self._show_plot()

    # -- drawing -----------------------------------------------------------------------
    def _show_plot(self) -> None:
        """The plot at ``index``: its title and errors now, its drawing when a worker has made it."""
        view = self.view
        if view is None or not view.plots:
            return
        plot = view.plots[self.index]
        self.query_one("#plot-title", Static).update(f"plot {self.index + 1}/{len(view.plots)}: {plot.id}")
        self._show_errors(view.plot_errors[self.index] + view.notes)
        if plot.kind != "vega":
            files = [path for sources in plot.sources.values() for path in sources] or [plot.id]
            self._show_text("\n".join(image_line(path, view.run_ids) for path in dict.fromkeys(files)), empty=True)
            return
        if self.shown is None or self.shown[0] != self.index:
            self._show_text(PLACEHOLDER)  # another plot: its title over the last plot's drawing would mislead
        self.call_after_refresh(self._draw_current)  # once the errors' lines have taken their room

    def _draw_current(self) -> None:
        """Draw the plot shown for the view's size, unless it is drawn (or being drawn) already."""
        view = self.view
        if view is None or not view.plots or view.plots[self.index].kind != "vega":
            return
        # The whole area, scrollbars' room included: a drawing made to fit it needs none (one
        # measured while a bigger drawing's scrollbars show would come out short by their width).
        region = self.query_one(PlotArea).content_region
        if not region.width or not region.height:
            self.call_after_refresh(self._draw_current)  # not laid out yet
            return
        key = (self.index, region.width, region.height)
        if key in (self.shown, self._pending):
            return
        if key in self._drawings:
            self._show_drawing(key, self._drawings[key])
            return
        self._pending = key
        self._draw(view.plots[self.index], key, self.loads)

    @work(thread=True, exclusive=True, group="plot-draw")
    def _draw(self, plot, key: DrawingKey, loaded: int) -> None:
        from opsctl.core import plot_text

        _index, width, height = key
        text = plot_text.draw(plot, width, height, color=True)
        self.post_message(PlotDrawn(loaded, key, Text.from_ansi(text, no_wrap=True, overflow="crop")))

    def on_plot_drawn(self, message: PlotDrawn) -> None:
        if message.loaded != self.loads:
            return
        self._drawings[message.key] = message.drawing
        while len(self._drawings) > MAX_DRAWINGS_KEPT:
            self._drawings.pop(next(iter(self._drawings)))
        if message.key == self._pending:
            self._pending = None
        if message.key[0] == self.index:  # the plot shown still (a key may have moved on meanwhile)
            self._show_drawing(message.key, message.drawing)

    def _show_drawing(self, key: DrawingKey, drawing: Text) -> None:
        self.shown = key
        plot = self.query_one("#plot", Static)
        plot.remove_class("empty")
        plot.update(drawing)

    def _show_text(self, text: str, *, empty: bool = False) -> None:
        self.shown = None
        plot = self.query_one("#plot", Static)
        plot.set_class(empty, "empty")
        plot.update(Text(text))

    def _show_errors(self, lines: list[str]) -> None:
        errors = self.query_one("#plot-errors", Static)
        errors.update(Text("\n".join(lines)))
        errors.display = bool(lines)

    def on_plot_area_resized(self, _message: PlotArea.Resized) -> None:
        if self._resize_timer is not None:
            self._resize_timer.stop()
        self._resize_timer = self.set_timer(RESIZE_DELAY, self._draw_current)

    # -- actions -----------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_next_plot(self) -> None:
        self._step(1)

    def action_previous_plot(self) -> None:
        self._step(-1)

    def _step(self, by: int) -> None:
        if self.view is None or not self.view.plots:
            return
        self.index = (self.index + by) % len(self.view.plots)
        self._show_plot()

    def action_reload(self) -> None:
        self._load(self.run_ids)
