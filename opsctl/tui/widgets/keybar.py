"""The key bar at the foot of every screen: its main keys, then the app's; while a
text box has the focus, that box's keys instead (``show_keys``).

Textual's Footer rebuilds its widgets whenever focus or bindings change, which on
this 2-core machine cost ~100 ms of every screen switch (bench/ui.py): more than a
key press may take. So this is one line of text, made when the screen is mounted
and swapped only when a screen asks. A click on a key runs it, as Footer's do.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.dom import DOMNode
from textual.widgets import Static

# (key shown, what it does, the action a click runs, the node it runs on); no action: not clickable
Key = tuple[str, str, str | None, DOMNode | None]


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
        self._keys: list[Key] = []  # the screen's: dropped first when narrow
        self._always: list[Key] = []  # the app's (quit, help): always shown
        self._spans: list[tuple[int, int, str, DOMNode | None]] = []  # start, end, action, where it runs

    def on_mount(self) -> None:
        self.show_screen_keys()

    def on_resize(self) -> None:
        self._draw()

    def show_screen_keys(self) -> None:
        """The screen's shown bindings, then the app's."""
        keys: dict[DOMNode, list[Key]] = {self.screen: [], self.app: []}
        seen: set[str] = set()
        for owner in (self.screen, self.app):
            for binding in (b if isinstance(b, Binding) else Binding(*b) for b in type(owner).BINDINGS):
                if not binding.show or not binding.description or binding.action in seen:
                    continue
                seen.add(binding.action)
                keys[owner].append(
                    (
                        binding.key_display or self.app.get_key_display(binding),
                        binding.description,
                        binding.action,
                        owner,
                    )
                )
        self.show_keys(keys[self.screen], always=keys[self.app])

    def show_keys(self, keys: Sequence[Key], always: Sequence[Key] = ()) -> None:
        """(key shown, what it does, the action a click runs, where it runs) for each key.
        In a narrow terminal the last of KEYS give way ("…", and ? lists them all); the
        ALWAYS keys stay."""
        self._keys, self._always = list(keys), list(always)
        self._draw()

    def _draw(self) -> None:
        width = self.content_size.width or self.app.size.width
        palette: list[Key] = [("^p", "palette", "command_palette", self.app)]
        room = width - sum(_width(entry) for entry in [*self._always, *palette])
        shown: list[Key] = []
        for entry in self._keys:
            room -= _width(entry)
            if room < 2:  # leave room for the "…"
                shown.append(("…", "", None, None))
                break
            shown.append(entry)
        text = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        for key, description, action, owner in [*shown, *self._always, *palette]:
            start = len(text)
            text.append(key, style="bold #ffa62b")
            if description:
                text.append(f" {description}")
            if action is not None:
                self._spans.append((start, len(text), action, owner))
            text.append("  ")
        text.rstrip()
        self.update(text)

    async def on_click(self, event: events.Click) -> None:
        column = event.x - 1  # the bar's left padding
        for start, end, action, owner in self._spans:
            if start <= column < end:
                await self.app.run_action(action, owner)
                return


def _width(entry: Key) -> int:
    key, description, _action, _owner = entry
    return len(key) + (len(description) + 1 if description else 0) + 2
