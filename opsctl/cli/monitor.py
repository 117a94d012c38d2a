"""``opsctl monitor ...``: reference profiles, drift checks and their history."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any, Optional

import typer

from opsctl.cli.checks import byte_progress
from opsctl.cli.output import Styled, out

app = typer.Typer(
    help="Watch data drift.\n\nProfile a reference, compare current data with it (exit 6 on drift), see the history.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print as JSON.")


def _project():
    from opsctl.core.project import open_project

    return open_project()


@app.command("profile")
def profile(
    dataset: str = typer.Argument(..., metavar="DATASET", help="A file (csv, tsv, parquet, jsonl) or a directory."),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", metavar="FILE", help="Where to write it (default: monitor/NAME.profile.json)."
    ),
    as_json: bool = JSON,
) -> None:
    """Write a small reference profile (JSON) of a dataset.

    Per column: type, count, nulls; numbers' quantiles and histogram, categories' top
    values. Commit it to Git (or `opsctl data add` it) so it travels with the project;
    `opsctl model register --profile` records it with a model version.
    """
    from opsctl.core.monitoring import profile_dataset, project_path

    project = _project()
    rel = project_path(project, dataset)
    target = project_path(project, output) if output else None
    with byte_progress() as progress:
        written = profile_dataset(project, rel, target, on_progress=progress)
    if as_json:
        out.json(
            {
                "path": written.path,
                "dataset": written.dataset,
                "rows": written.rows,
                "columns": written.columns,
                "bytes": written.size,
            }
        )
        return
    out.success(
        f"profiled {written.dataset} ({written.rows:,} rows, {written.columns} columns) into {written.path} "
        f"({_size(written.size)})"
    )
    out.info(
        f"compare with it: opsctl monitor drift CURRENT --reference {written.path}; version it: git add {written.path}",
        style="dim",
    )


@app.command("drift")
def drift(
    current: str = typer.Argument(..., metavar="CURRENT", help="The current dataset."),
    reference: Optional[str] = typer.Option(
        None,
        "--reference",
        "-r",
        metavar="REF",
        help="A dataset, a profile file, or NAME@VERSION (a model's registered profile). "
        "Default: the dataset's drift: settings in opsctl.yaml.",
    ),
    columns: Optional[list[str]] = typer.Option(
        None, "--column", "-c", metavar="NAME", help="Compare only this column (repeatable; default: all in common)."
    ),
    method: Optional[str] = typer.Option(
        None, "--method", metavar="METHOD", help="auto, ks, chi2, ztest, wasserstein, jensenshannon or psi."
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", metavar="X", help="A p-value for the tests, a distance otherwise (default per method)."
    ),
    share: Optional[float] = typer.Option(
        None, "--share", metavar="S", help="The dataset drifts when this share of its columns drifts (default 0.5)."
    ),
    as_json: bool = JSON,
    markdown: bool = typer.Option(False, "--md", help="Print a Markdown report (for a CI comment)."),
    html_file: Optional[str] = typer.Option(
        None, "--html", metavar="FILE", help="Also write a self-contained HTML report with charts."
    ),
    no_record: bool = typer.Option(False, "--no-record", help="Don't record the check in the run store."),
) -> None:
    """Compare a dataset with its reference, column by column.

    Methods follow Evidently's defaults: a reference of up to 1,000 rows gets tests (KS for
    numbers, chi-squared for categories, z-test for two values; drift at p < 0.05), a larger
    one distances (normalised Wasserstein, Jensen-Shannon; drift at >= 0.1). Exit 0 without
    dataset drift, 6 with it, 2 when there is nothing to compare.
    """
    from opsctl.core.drift_settings import METHODS
    from opsctl.core.monitoring import check_drift, project_path, settings_for
    from opsctl.errors import DataCheckFailedError, UsageError

    if method is not None and method not in ("auto", *METHODS):
        raise UsageError(f"--method {method}: not a method (auto, {', '.join(METHODS)})")
    if threshold is not None and not threshold > 0:
        raise UsageError(f"--threshold {threshold}: must be above 0")
    if share is not None and not 0 < share <= 1:
        raise UsageError(f"--share {share}: must be above 0 and at most 1")
    if sum((as_json, markdown)) > 1:
        raise UsageError("--json and --md: pick one")
    project = _project()
    rel = project_path(project, current)
    ref = reference
    if ref is not None and not ("@" in ref and not os.path.exists(ref)):  # NAME@VERSION stays as it is
        ref = project_path(project, ref)
    settings = settings_for(
        project, rel, ref, columns=tuple(dict.fromkeys(columns or ())), method=method, threshold=threshold, share=share
    )
    with byte_progress() as progress:
        report, record_error = check_drift(project, settings, on_progress=progress, record=not no_record)
    if record_error:
        out.warn(record_error)
    data = report.to_json()
    if html_file:
        _write_html(html_file, data)
    if as_json:
        out.json(data)
    elif markdown:
        from opsctl.core.drift_report import markdown as render_markdown

        text = render_markdown(data)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        _show(report)
    summary = (
        f"{len(report.drifted)} of {len(report.compared)} columns drifted "
        f"({report.share:.0%}; the dataset drifts at {report.threshold_share:.0%})"
    )
    if report.drift:
        names = ", ".join(c.column for c in report.drifted[:5]) + (", …" if len(report.drifted) > 5 else "")
        raise DataCheckFailedError(f"{report.current} drifted from {report.reference}: {summary}: {names}")
    out.success(f"{report.current}: no drift from {report.reference}: {summary}")


def _write_html(given: str, data: dict) -> None:
    """The report where the user said (anywhere: it is not project data), written atomically."""
    from pathlib import Path

    from opsctl.core.drift_report import html
    from opsctl.core.files import write_atomically
    from opsctl.errors import UsageError

    path = Path(os.path.abspath(given))
    if path.is_dir():
        raise UsageError(f"--html {given}: is a directory (give a file name)")
    write_atomically(path, html(data))
    out.info(f"wrote the HTML report to {given}")


def _show(report: Any) -> None:
    from opsctl.core.drift_report import sparkline

    tty = out.is_tty(sys.stdout)
    rows = []
    ordered = sorted(report.columns, key=lambda c: (not c.compared, not c.drift))
    for c in ordered:
        verdict = "drift" if c.drift else ("—" if not c.compared else "ok")
        picture = ""
        if c.picture:
            top = max([*c.picture["reference"], *c.picture["current"]], default=0)  # one scale for both
            picture = f"{sparkline(c.picture['reference'], top)} → {sparkline(c.picture['current'], top)}"
        cells = [
            c.column,
            c.method or "",
            _number(c.statistic),
            _number(c.p_value),
            _number(c.threshold),
            Styled(verdict, "red" if c.drift else ("dim" if not c.compared else "green")) if tty else verdict,
            c.detail or picture,
        ]
        rows.append(cells)
    title = (
        f"{report.current} ({report.current_rows:,} rows) vs {report.reference} ({report.reference_rows:,} rows)"
        if tty
        else None
    )
    out.table(
        ["column", "method", "statistic", "p-value", "threshold", "verdict", "reference → current"], rows, title=title
    )


def _number(value: float | None) -> str:
    if value is None:
        return "" if not out.is_tty(sys.stdout) else "—"
    return f"{value:.4g}"


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MB"


@app.command("history")
def history(
    dataset: Optional[str] = typer.Argument(None, metavar="[DATASET]", help="One dataset (default: all)."),
    limit: int = typer.Option(50, "--limit", "-n", metavar="N", help="Show the newest N checks (0: all)."),
    as_json: bool = JSON,
) -> None:
    """The drift checks recorded in the run store, oldest first."""
    from opsctl.core.monitoring import history as drift_history
    from opsctl.core.monitoring import project_path

    project = _project()
    rel = project_path(project, dataset) if dataset else None
    records = drift_history(project, rel)
    if limit > 0:
        records = records[-limit:]
    if as_json:
        out.json(
            [
                {
                    "at": datetime.fromtimestamp(r.at).astimezone().isoformat(timespec="seconds"),
                    "dataset": r.path,
                    "hash": r.data_hash or None,
                    "reference": r.reference,
                    "reference_hash": r.reference_hash or None,
                    "drift": r.drift,
                    "share": r.share,
                    "threshold_share": r.threshold_share,
                    "rows": r.rows,
                    "run": r.run_id,
                    "stage": r.stage,
                    "columns": r.columns,
                }
                for r in records
            ]
        )
        return
    if not records:
        where = f" of {rel}" if rel else ""
        out.info(f"No drift checks{where} recorded yet: opsctl monitor drift DATASET --reference REF")
        return
    from opsctl.core.formatting import DRIFT_STYLES, drift_verdict_text

    rows = [
        (
            datetime.fromtimestamp(r.at).strftime("%Y-%m-%d %H:%M:%S"),
            r.path,
            (r.data_hash or "")[:8],
            r.reference,
            Styled(drift_verdict_text(r.drift, len(r.drifted), r.compared), DRIFT_STYLES[r.drift]),
            ", ".join(r.drifted[:4]) + (", …" if len(r.drifted) > 4 else ""),
            r.run_id[:12] if r.run_id else "",
        )
        for r in records
    ]
    out.table(["when", "dataset", "hash", "reference", "verdict", "drifted columns", "run"], rows)
