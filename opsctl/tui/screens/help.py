"""``?``: the keys of the screen in front, as a modal over it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


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
            table = DataTable(id="help-keys", cursor_type="none", show_header=False)
            table.add_columns("key", "action")
            seen = set()
            for key, action in self.keys:
                if (key, action) not in seen:
                    seen.add((key, action))
                    table.add_row(key, action)
            yield table
            yield Static("↑ ↓ pgup pgdn home end: move · enter: open · tab: next pane\n"
                         "ctrl+p: command palette · ctrl+q: quit from anywhere · the mouse works too", id="help-footer")

    def action_close(self) -> None:
        self.dismiss(None)
