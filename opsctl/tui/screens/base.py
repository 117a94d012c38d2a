"""What every dashboard screen shares: its services, a title, and errors as toasts."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.screen import Screen

if TYPE_CHECKING:
    from opsctl.core.dashboard import Dashboard
    from opsctl.tui.app import OpsctlApp


class DashboardScreen(Screen):
    """A screen of the dashboard. ``HELP`` is its one-line description on the help screen;
    its ``BINDINGS`` (with descriptions) are listed there too."""

    HELP: ClassVar[str] = ""

    @property
    def services(self) -> Dashboard:
        return self.opsctl_app.services

    @property
    def opsctl_app(self) -> OpsctlApp:
        return self.app  # type: ignore[return-value]

    def show_error(self, exc: BaseException) -> None:
        """A service failed (a worker's exception): one line, as the CLI would print it."""
        from opsctl.errors import OpsctlError

        if isinstance(exc, OpsctlError):
            message = exc.message + (f"\n{exc.hint}" if exc.hint else "")
        else:
            message = f"{type(exc).__name__}: {exc}"
        self.notify(message, severity="error", timeout=8)
