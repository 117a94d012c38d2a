"""The dashboard app: global keys and navigation between screens, nothing else.

Built with its services (a :class:`opsctl.core.dashboard.Dashboard`, or any object
with the same methods) so tests can hand it a prepared project.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.binding import Binding

if TYPE_CHECKING:
    from textual.screen import Screen

    from opsctl.core.dashboard import Dashboard, RunView
    from opsctl.tui.screens.base import Navigation
    from opsctl.tui.screens.run import RunScreen


class OpsctlApp(App):
    """k9s-style: a home screen of runs; keys open a run, a comparison, lineage, the
    pipeline, the models, the data; escape goes back; ? lists the keys of the screen in front."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses elsewhere (tests) find it too
    TITLE = "opsctl"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        # Terminal users quit with Ctrl-C (Textual's default only says "press ctrl+q"); it
        # stops nothing half-done: the dashboard writes only through confirmed actions.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("1", "home", "Runs", show=False),
        Binding("2", "pipeline", "Pipeline", show=False),
        Binding("3", "models", "Models", show=False),
        Binding("4", "data", "Data", show=False),
    ]

    def __init__(self, services: Dashboard, *, refresh_interval: float = 1.0) -> None:
        super().__init__()
        self.services = services
        self.refresh_interval = refresh_interval  # seconds between looks at the store for new runs
        # Runs read ahead by the runs screen (the one under the cursor): enter shows them at once.
        self.run_views: dict[str, RunView] = {}
        self._run_screen: RunScreen | None = None

    def on_mount(self) -> None:
        from opsctl.tui.screens.runs import RunsScreen

        self.sub_title = self.services.name
        self.push_screen(RunsScreen())

    # -- navigation ------------------------------------------------------------------
    def open_run(self, run_id: str, stage: str | None = None) -> None:
        from opsctl.tui.screens.run import RunScreen

        prefetched = self.run_views.get(run_id)
        if self._run_screen is None:
            # One run screen, kept (installed) and refilled: building its widgets and
            # styles again on every enter would cost more than the key may take.
            self._run_screen = RunScreen()
            self.install_screen(self._run_screen, "run")
        if self._run_screen in self.screen_stack:  # a run opened from a run's lineage
            self.push_screen(RunScreen(run_id, stage=stage))
            return
        self._run_screen.show(run_id, stage=stage, prefetched=prefetched)
        self.push_screen("run")

    def remember_run_view(self, view: RunView) -> None:
        """What the runs screen read ahead; only a few are kept."""
        self.run_views[view.detail.id] = view
        while len(self.run_views) > 32:
            self.run_views.pop(next(iter(self.run_views)))

    def open_compare(self, run_ids: list[str]) -> None:
        from opsctl.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(run_ids))

    def open_plots(self, run_ids: list[str]) -> None:
        """The plots of one run, or of several overlaid (one series per run)."""
        from opsctl.tui.screens.plots import PlotsScreen

        self.push_screen(PlotsScreen(run_ids))

    def open_lineage(self, target: str) -> None:
        from opsctl.tui.screens.lineage import LineageScreen

        self.push_screen(LineageScreen(target))

    def action_home(self) -> None:
        """Back to the runs table, whatever is open."""
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_pipeline(self) -> None:
        from opsctl.tui.screens.pipeline import PipelineScreen

        self._open_once(PipelineScreen)

    def action_models(self) -> None:
        from opsctl.tui.screens.models import ModelsScreen

        self._open_once(ModelsScreen)

    def action_data(self) -> None:
        from opsctl.tui.screens.data import DataScreen

        self._open_once(DataScreen)

    def _open_once(self, screen_type: type) -> None:
        if isinstance(self.screen, screen_type):
            return
        self.push_screen(screen_type())

    def action_help(self) -> None:
        from opsctl.tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        # The keys the screen declares, then the app's. Widgets' own keys (the table's
        # cursor keys) and Textual's defaults are summed up in one line by the help screen.
        declared = [*type(self.screen).BINDINGS, *OpsctlApp.BINDINGS]
        bindings = [b if isinstance(b, Binding) else Binding(*b) for b in declared]
        keys = [(b.key_display or self.get_key_display(b), b.description) for b in bindings if b.description]
        self.push_screen(HelpScreen(type(self.screen).__name__, getattr(self.screen, "HELP", ""), keys))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Runs", "The runs table (1)", self.action_home)
        yield SystemCommand("Pipeline", "The stage graph with each stage's status (2)", self.action_pipeline)
        yield SystemCommand("Models", "Registered models, versions and stages (3)", self.action_models)
        yield SystemCommand("Data", "Datasets with checks and their last verdicts (4)", self.action_data)
        yield SystemCommand("Help", "The keys of this screen (?)", self.action_help)


if TYPE_CHECKING:

    def _navigates(app: OpsctlApp) -> Navigation:
        return app  # mypy: the app is what its screens ask of it
