"""A yes/no question in a modal dialog, for actions that change something (a promotion,
a rollback): the screen behind it stays visible, and nothing happens until the answer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True (``y``, ``enter``, the Yes button) or False (``n``, ``escape``,
    the No button). Push it with a callback: ``push_screen(ConfirmScreen(...), on_answer)``."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > #confirm-dialog {
        width: auto;
        min-width: 44;
        max-width: 90%;
        height: auto;
        padding: 1 2;
        border: thick $warning 80%;
        background: $surface;
    }
    ConfirmScreen #confirm-question {
        width: auto;
        text-style: bold;
    }
    ConfirmScreen #confirm-detail {
        width: auto;
        margin-top: 1;
        color: $text-muted;
    }
    ConfirmScreen #confirm-buttons {
        width: 100%;
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    ConfirmScreen #confirm-buttons Button {
        margin-left: 2;
        min-width: 8;
    }
    """

    # Not priority bindings: enter on a focused button presses that button, so tabbing to
    # No and pressing enter answers no, as it reads.
    BINDINGS = [
        Binding("y", "confirm", "Yes"),
        Binding("enter", "confirm", "Yes", show=False),
        Binding("n", "cancel", "No"),
        Binding("escape", "cancel", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = "", *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self.question, id="confirm-question", markup=False)
            if self.detail:
                yield Static(self.detail, id="confirm-detail", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self._yes} (y)", id="confirm-yes", variant="warning")
                yield Button(f"{self._no} (n)", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
