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
    with byte_progress() as progress:
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
    from opsctl.core.checks import TABLE_CHECKS

    if not out.is_tty(sys.stdout):
        rows = []
        for d in report.datasets:
            verdict = "passed" if d.passed else "failed"
            if not d.failures:
                rows.append((d.path, verdict, "", "", 0, ""))
            for f in d.failures:  # a pass with failures: within max_failing_rows
                rows.append((d.path, verdict, f.check, f.column or "", f.count, _examples(f, limit=None)))
        out.table(["dataset", "verdict", "check", "column", "failing", "examples"], rows)
        return
    for d in report.datasets:
        rows_text = f"{d.rows:,} rows, {d.checks} checks"
        cached = ", same data passed before" if d.cached else ""
        if not d.failures:
            out.success(f"{d.path}: passed ({rows_text}{cached})")
            continue
        if d.passed:
            title = (
                f"✓ {d.path}: passed ({rows_text}) with {d.failing_rows:,} failing rows, "
                f"within max_failing_rows ({d.allowed_failing_rows:,})"
            )
        else:
            title = f"✗ {d.path}: {len(d.failures)} of {d.checks} checks failed ({d.rows:,} rows)"
        style = "yellow" if d.passed else "red"
        out.table(
            ["check", "column", "failing rows", "examples"],
            [
                (
                    Styled(f.check, style),
                    f.column or "",
                    f.detail if f.check in TABLE_CHECKS else f"{f.count:,}",
                    _examples(f),
                )
                for f in d.failures
            ],
            title=title,
        )


def _examples(failure: Any, limit: int | None = EXAMPLES_SHOWN) -> str:
    shown = failure.examples if limit is None else failure.examples[:limit]
    text = "; ".join(
        f"{e.file + ' ' if e.file else ''}row {e.row}: {'(empty)' if e.value is None else repr(e.value)}" for e in shown
    )
    if failure.detail and (failure.check == "unique" or not text):  # rows, present, strict: what was found
        text = f"{failure.detail}: {text}" if text else failure.detail
    return text


@contextlib.contextmanager
def byte_progress() -> Iterator[Any]:
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


def profile(
    path: str = typer.Argument(..., metavar="PATH", help="The dataset: a file, or a directory read as one table."),
    write: bool = typer.Option(False, "--write", help="Add the block under checks: in opsctl.yaml (kept as it is)."),
    force: bool = typer.Option(False, "--force", help="With --write: replace the dataset's existing checks."),
    fmt: str = typer.Option(
        None, "--format", metavar="FORMAT", help="csv, parquet or jsonl (default: from the extension)."
    ),
) -> None:
    """Infer a starting checks: block for a dataset from its data.

    Prints YAML (a checks: section; paste its entry under checks: in opsctl.yaml), or with
    --write adds it there. Ranges and categories are the values seen: review them. Exit 2
    for a path not in the workspace, 1 for data that can't be read or existing checks
    without --force.
    """
    from opsctl.core.profile import profile as profile_dataset
    from opsctl.core.profile import render, write_checks
    from opsctl.core.project import open_project

    if force and not write:
        from opsctl.errors import UsageError

        raise UsageError("--force only means something with --write")
    project = open_project()
    with byte_progress() as progress:
        found = profile_dataset(
            project,
            path,
            fmt,
            on_progress=None if progress is None else lambda done, total: progress(path, done, total),
        )
    if write:
        replaced = project.has_config_file and found.path in project.config.checks
        written = write_checks(project, found, force=force)
        out.success(f"{'replaced' if replaced else 'added'} the checks of {found.path} in {written.name}")
    else:
        sys.stdout.write(render(found, project.root))
        sys.stdout.flush()
    out.info(found.summary())
