"""What every dashboard screen shares: its services, a title, and errors as toasts."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from textual import work
from textual.message import Message
from textual.screen import Screen

if TYPE_CHECKING:
    from textual.timer import Timer

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
    def open_plots(self, run_ids: list[str]) -> None: ...
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


class StoreChanged(Message):
    """The run store was written since the screen last read it."""


class StoreWatchingScreen(DashboardScreen):
    """A screen that reads itself again when the run store changes (a run recorded, a verdict
    written): every ``refresh_interval`` a worker compares the store's marker with the one
    of the screen's last read (``_marker``, which the screen sets when a read lands), paused
    while another screen covers it. On a change ``_marker`` is cleared (one reload per change)
    and :meth:`store_changed` is called."""

    def __init__(self) -> None:
        super().__init__()
        self._marker: tuple | None = None
        self._poll: Timer | None = None

    def watch_store(self) -> None:
        """Start polling (from ``on_mount``)."""
        self._poll = self.set_interval(self.opsctl_app.refresh_interval, self._tick)

    def store_changed(self) -> None:
        """Read the screen's data again."""

    def can_watch(self) -> bool:
        """Whether to look now (e.g. not while a read is still running)."""
        return True

    def on_screen_suspend(self) -> None:
        if self._poll is not None:
            self._poll.pause()  # covered by another screen: nobody sees it

    def on_screen_resume(self) -> None:
        if self._poll is not None:
            self._poll.resume()

    def _tick(self) -> None:
        if self._marker is not None and self.can_watch():
            self._watch_store(self._marker)

    @work(thread=True, exclusive=True, group="store-poll")
    def _watch_store(self, seen: tuple) -> None:
        try:
            marker = self.services.store_marker()
        except Exception:  # noqa: BLE001 - a passing stat failure: the next tick tries again
            return
        if marker != seen:
            self.post_message(StoreChanged())

    def on_store_changed(self, _message: StoreChanged) -> None:
        self._marker = None
        self.store_changed()
