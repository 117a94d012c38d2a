"""``opsctl data validate`` and ``opsctl data profile``: the declared data checks, from the terminal.

Registered on the ``data`` command group by cli/data.py.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import typer

from opsctl.cli.output import Styled, out

EXAMPLES_SHOWN = 3


def validate(
    paths: list[str] = typer.Argument(
        None, metavar="[PATH]...", help="Datasets to check (default: every dataset with checks in the workspace)."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Read the data even when the same data already passed the same checks."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Run the data checks declared under checks: in opsctl.yaml.

    Exit 0 when every check passed, 6 when one failed, 2 for a path without checks or not
    in the workspace, 1 for a file that can't be read (named with its line and column).
    """
    from opsctl.core.project import open_project
    from opsctl.core.validation import validate_datasets
    from opsctl.errors import DataCheckFailedError

    project = open_project()
    with _progress() as progress:
        report, record_error = validate_datasets(project, paths or [], use_cache=not no_cache, on_progress=progress)
    if record_error:
        out.warn(f"the verdicts were not recorded in the run store: {record_error}")
    if as_json:
        out.json(report.as_json())
    else:
        _show(report)
    failed = [d for d in report.datasets if not d.passed]
    if failed:
        names = ", ".join(d.path for d in failed[:3]) + (", …" if len(failed) > 3 else "")
        raise DataCheckFailedError(
            f"{len(failed)} of {len(report.datasets)} dataset{'s' if len(report.datasets) != 1 else ''} "
            f"failed {'its' if len(failed) == 1 else 'their'} checks: {names}"
        )
    checks = sum(d.checks for d in report.datasets)
    out.success(f"{len(report.datasets)} dataset{'s' if len(report.datasets) != 1 else ''} passed {checks} checks")


def _show(report: Any) -> None:
    if not out.is_tty(sys.stdout):
        rows = []
        for d in report.datasets:
            if d.passed:
                rows.append((d.path, "passed", "", "", 0, ""))
            for f in d.failures:
                rows.append((d.path, "failed", f.check, f.column or "", f.count, _examples(f, limit=None)))
        out.table(["dataset", "verdict", "check", "column", "failing", "examples"], rows)
        return
    for d in report.datasets:
        rows_text = f"{d.rows:,} rows, "
        cached = ", same data passed before" if d.cached else ""
        if d.passed:
            out.success(f"{d.path}: passed ({rows_text}{d.checks} checks{cached})")
            continue
        out.table(
            ["check", "column", "failing rows", "examples"],
            [
                (
                    Styled(f.check, "red"),
                    f.column or "",
                    f.detail if f.check in ("rows", "present", "strict") else f"{f.count:,}",
                    _examples(f),
                )
                for f in d.failures
            ],
            title=f"✗ {d.path}: {len(d.failures)} of {d.checks} checks failed ({rows_text.rstrip(', ')})",
        )


def _examples(failure: Any, limit: int | None = EXAMPLES_SHOWN) -> str:
    shown = failure.examples if limit is None else failure.examples[:limit]
    text = "; ".join(
        f"{e.file + ' ' if e.file else ''}row {e.row}: {'(empty)' if e.value is None else repr(e.value)}" for e in shown
    )
    if failure.check == "unique" and failure.detail:
        text = f"{failure.detail}: {text}" if text else failure.detail
    return text


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """A bar per dataset on a terminal (bytes read); nothing for scripts."""
    if not out.interactive or out.quiet:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=out._console(stderr=True),
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(path: str, done: int, total: int) -> None:
            if path not in tasks:
                tasks[path] = progress.add_task(path, total=total)
            progress.update(tasks[path], completed=done, total=total)

        yield update
