"""``?``: the keys of the screen in front, as a modal over it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close help")]

    def __init__(self, screen_name: str, description: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.screen_name = screen_name
        self.description = description
        self.keys = keys  # (key as shown, what it does), the screen's and the app's

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(self.screen_name.removesuffix("Screen"), classes="title")
            if self.description:
                yield Static(self.description, id="help-description")
            yield Static(
                "↑ ↓ pgup pgdn home end: move · enter: open · tab: next pane\n"
                "ctrl+p: command palette · ctrl+c or ctrl+q: quit from anywhere · the mouse works too",
                id="help-hints",
            )
            # Plain text, not a DataTable: a table's height settles only after it has
            # measured its rows, which left this box cut short under load. It scrolls
            # when the terminal is short; the hints above stay in view.
            rows: list[tuple[str, str]] = []
            for key, action in self.keys:
                if (key, action) not in rows:
                    rows.append((key, action))
            width = max((len(k) for k, _ in rows), default=0)
            listing = Text()
            for key, action in rows:
                listing.append(key.ljust(width + 2), style="bold #ffa62b")
                listing.append(action + "\n")
            listing.rstrip()
            with VerticalScroll(id="help-scroll"):
                yield Static(listing, id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
