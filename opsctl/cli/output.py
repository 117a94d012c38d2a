"""The one output object (after hatch's ``cli/terminal.py``).

Messages go to stderr, data to stdout. Tables, colour and spinners appear only
on a terminal and never with ``NO_COLOR``; ``--json`` output is plain JSON on
stdout and nothing else goes there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple


class Output:
    def __init__(self) -> None:
        self.quiet = False
        self._stdout_console = None
        self._stderr_console = None

    # -- capabilities ------------------------------------------------------
    @staticmethod
    def is_tty(stream) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"

    @property
    def interactive(self) -> bool:
        """Spinners and prompts only make sense when a person is watching stderr."""
        return self.is_tty(sys.stderr) and os.environ.get("TERM") != "dumb"

    def _console(self, stderr: bool):
        from rich.console import Console

        attr = "_stderr_console" if stderr else "_stdout_console"
        stream = sys.stderr if stderr else sys.stdout
        console = getattr(self, attr)
        if console is None or console.file is not stream:
            tty = self.is_tty(stream)
            console = Console(
                file=stream,
                stderr=stderr,
                no_color=not (self.color and tty),
                force_terminal=tty,
                highlight=False,
                soft_wrap=not tty,
                emoji=False,
            )
            setattr(self, attr, console)
        return console

    # -- messages (stderr) -------------------------------------------------
    # Messages are plain text, never markup (paths and DVC messages hold brackets).
    # Off a terminal they are written directly: scripts and CI never pay for rich.
    def _say(self, text: str, style: str | None = None, prefix: tuple[str, str] | None = None) -> None:
        if not self.is_tty(sys.stderr):
            sys.stderr.write((f"{prefix[0]} " if prefix else "") + text + "\n")
            sys.stderr.flush()
            return
        from rich.text import Text

        line = Text()
        if prefix:
            line.append(prefix[0], style=prefix[1])
            line.append(" ")
        line.append(text, style=style or "")
        self._console(stderr=True).print(line)

    def info(self, message: str, *, style: str | None = None) -> None:
        if not self.quiet:
            self._say(message, style)

    def success(self, message: str) -> None:
        if not self.quiet:
            self._say(message, prefix=("✓", "green"))

    def warn(self, message: str) -> None:
        self._say(message, prefix=("warning:", "yellow"))

    def error(self, message: str, hint: str | None = None) -> None:
        self._say(message, prefix=("error:", "bold red"))
        if hint:
            self._say(f"hint: {hint}", style="dim")

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Any]:
        """A spinner on a terminal; nothing otherwise (scripts and CI get the result lines)."""
        if self.quiet or not self.interactive:
            yield None
            return
        with self._console(stderr=True).status(message) as status:
            yield status

    # -- data (stdout) -----------------------------------------------------
    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")
        sys.stdout.flush()

    def markdown(self, text: str) -> None:
        """Markdown drawn for a terminal (headings, tables, code blocks)."""
        from rich.markdown import Markdown

        self._console(stderr=False).print(Markdown(text))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
        """A table on a terminal; tab-separated lines with a header when piped.

        Cells are plain values (never parsed as markup: paths and messages may hold
        brackets); wrap a cell in :class:`Styled` to colour it on a terminal.
        """
        if not self.is_tty(sys.stdout):
            sys.stdout.write("\t".join(columns) + "\n")
            for row in rows:
                sys.stdout.write("\t".join(_plain(c) for c in row) + "\n")
            return
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(c.text, style=c.style) if isinstance(c, Styled) else Text(_plain(c)) for c in row))
        self._console(stderr=False).print(table)


class Styled(NamedTuple):
    """A table cell with a rich style (e.g. "green"), used only on a terminal."""

    text: str
    style: str


def _plain(value: Any) -> str:
    if value is None:
        return ""
    return value.text if isinstance(value, Styled) else str(value)


out = Output()
