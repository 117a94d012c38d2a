"""What every dashboard screen shares: its services, a title, and errors as toasts."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from textual.screen import Screen

if TYPE_CHECKING:
    from opsctl.core.dashboard import Dashboard, RunView


class Navigation(Protocol):
    """What screens ask of the dashboard app (``opsctl.tui.app.OpsctlApp``), beyond
    Textual's own ``App``: spelled out here so that screens need not import the app,
    which imports them."""

    services: Dashboard
    refresh_interval: float
    run_views: dict[str, RunView]

    def open_run(self, run_id: str, stage: str | None = None) -> None: ...
    def open_compare(self, run_ids: list[str]) -> None: ...
    def open_lineage(self, target: str) -> None: ...
    def remember_run_view(self, view: RunView) -> None: ...
    def action_pipeline(self) -> None: ...


class DashboardScreen(Screen):
    """A screen of the dashboard. ``HELP`` is its one-line description on the help screen;
    its ``BINDINGS`` (with descriptions) are listed there too."""

    HELP: ClassVar[str] = ""

    @property
    def services(self) -> Dashboard:
        return self.opsctl_app.services

    @property
    def opsctl_app(self) -> Navigation:
        return self.app  # type: ignore[return-value]  # an OpsctlApp: Textual types it as any App

    def show_error(self, exc: BaseException) -> None:
        """A service failed (a worker's exception): one line, as the CLI would print it."""
        from opsctl.errors import OpsctlError

        if isinstance(exc, OpsctlError):
            message = exc.message + (f"\n{exc.hint}" if exc.hint else "")
        else:
            message = f"{type(exc).__name__}: {exc}"
        self.notify(message, severity="error", timeout=8)
