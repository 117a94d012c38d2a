"""A live progress display for long data operations, fed by DVC's progress events.

Only on a terminal: scripts and CI get the summary line alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opsctl.cli.output import out

_COUNT_UNITS = {"file", "files", "entry", "it", "obj"}


class DataProgress:
    """One bar for the current phase (files or entries) and a running byte count."""

    def __init__(self, progress) -> None:
        self._progress = progress
        self._phase = progress.add_task("starting…", total=None)
        self._bytes = progress.add_task("", total=None, visible=False)
        self._file_bytes: dict[int, tuple[float, float | None]] = {}
        self._byte_events = 0

    def __call__(self, event) -> None:
        if event.unit == "B":
            # Each file's transfer reports its own bar; sum them for the total moved.
            key = hash(event.desc)
            self._file_bytes[key] = (event.completed, event.total)
            done = sum(c for c, _ in self._file_bytes.values())
            self._progress.update(self._bytes, completed=done, visible=True, description="[dim]bytes[/]", total=None)
            return
        if event.unit in _COUNT_UNITS or event.total is not None:
            self._progress.update(
                self._phase,
                description=_short(event.desc),
                completed=event.completed,
                total=event.total,
            )


def _short(desc: str, width: int = 48) -> str:
    desc = desc.strip() or "working"
    return desc if len(desc) <= width else "…" + desc[-(width - 1) :]


@contextlib.contextmanager
def data_progress() -> Iterator[DataProgress | None]:
    if not out.interactive or out.quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    class CountOrBytes(MofNCompleteColumn):
        def render(self, task):
            if task.description == "[dim]bytes[/]":
                return DownloadColumn().render(task)
            return super().render(task) if task.total is not None else ""

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        CountOrBytes(),
        TimeElapsedColumn(),
        console=out._console(stderr=True),
        transient=True,
    )
    with progress:
        yield DataProgress(progress)
