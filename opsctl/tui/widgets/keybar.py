"""The key bar at the foot of every screen: its main keys, then the app's; while a
text box has the focus, that box's keys instead (``show_keys``).

Textual's Footer rebuilds its widgets whenever focus or bindings change, which on
this 2-core machine cost ~100 ms of every screen switch (bench/ui.py): more than a
key press may take. So this is one line of text, made when the screen is mounted
and swapped only when a screen asks. A click on a key runs it, as Footer's do.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import Static


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="keybar")
        self._spans: list[tuple[int, int, str, object]] = []  # start, end, action, where it runs

    def on_mount(self) -> None:
        self.show_screen_keys()

    def show_screen_keys(self) -> None:
        """The screen's shown bindings, then the app's."""
        keys = []
        owners = [(self.screen, type(self.screen).BINDINGS), (self.app, type(self.app).BINDINGS)]
        seen: set[str] = set()
        for owner, bindings in owners:
            for binding in (b if isinstance(b, Binding) else Binding(*b) for b in bindings):
                if not binding.show or not binding.description or binding.action in seen:
                    continue
                seen.add(binding.action)
                keys.append((binding.key_display or self.app.get_key_display(binding), binding.description,
                             binding.action, owner))
        self.show_keys(keys)

    def show_keys(self, keys: list[tuple[str, str, str, object]]) -> None:
        """(key shown, what it does, the action a click runs, where it runs) for each key."""
        text = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        for key, description, action, owner in keys:
            start = len(text)
            text.append(key, style="bold #ffa62b")
            text.append(f" {description}")
            self._spans.append((start, len(text), action, owner))
            text.append("  ")
        text.append("^p", style="bold #ffa62b")
        text.append(" palette")
        self.update(text)

    async def on_click(self, event: events.Click) -> None:
        column = event.x - 1  # the bar's left padding
        for start, end, action, owner in self._spans:
            if start <= column < end:
                await self.app.run_action(action, owner)
                return
