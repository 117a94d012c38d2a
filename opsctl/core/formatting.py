"""How run records read as text: times, durations, commits, images, values, deltas and
the colour of a run status, stage outcome or pipeline stage state. Shared by the CLI (cli/runs_view.py) and the
dashboard (tui/), so both show a run the same way. Plain functions on plain values:
no typer, rich or textual here (colours are style names either front end maps)."""

from __future__ import annotations

import time

STATUS_STYLES = {"succeeded": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
OUTCOME_STYLES = {"ran": "green", "cached": "cyan", "failed": "red", "skipped": "yellow", "interrupted": "yellow"}
# A pipeline stage's state (`opsctl status`, the pipeline screen); running/failed come from the runs.
STAGE_STATE_STYLES = {
    "up to date": "green",
    "stale": "yellow",
    "running": STATUS_STYLES["running"],
    "failed": STATUS_STYLES["failed"],
}


def is_number(value) -> bool:
    """A number to compute with or right-align (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def commit_label(commit: str | None, dirty: bool) -> str:
    return (commit[:8] if commit else "(none)") + ("*" if dirty else "")


def image_label(ref: str | None, image_id: str | None) -> str:
    if not ref:
        return "(host)"
    return ref + (f" ({image_id.removeprefix('sha256:')[:12]})" if image_id else "")


def worker_label(worker: str | None, attempts: int = 1) -> str:
    """Where a stage ran: a remote executor's worker address, with the attempts when its
    worker died and it was run again; "" for a stage run on this host."""
    again = f"({attempts} attempts)" if attempts > 1 else ""
    return f"{worker} {again}".strip() if worker else again


def shows_workers(stages) -> bool:
    """Whether a run's stages need a worker column: only runs with a remote stage get one."""
    return any(getattr(s, "worker", None) for s in stages)


def outcome_style(outcome: str) -> str:
    return OUTCOME_STYLES.get(outcome, "")


def value_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def delta_text(delta) -> str:
    if delta is None:
        return ""
    if delta == 0:
        return "0"
    return f"{delta:+.4g}"


# -- data-check verdicts (runs show, lineage, the dashboard's run and Data screens) ----------

VERDICT_STYLES = {True: "green", False: "red"}


def verdict_text(passed: bool, failed: int, *, cached: bool = False) -> str:
    """``✓ checks passed`` / ``✗ 2 checks failed``: a glyph as well as words, for no colour."""
    if passed:
        return "✓ checks passed" + (" (cached)" if cached else "")
    return f"✗ {failed} check{'s' if failed != 1 else ''} failed"


def failure_label(failure: dict) -> str:
    """One failing check (``Failure.as_json()``): ``type(tenure) 2 rows``, ``rows: 3 < min 100``."""
    from opsctl.core.checks import failure_label as label

    return label(
        str(failure.get("check", "?")), failure.get("column"), failure.get("count") or 0, failure.get("detail")
    )


def example_text(example: dict) -> str:
    """A failing value and where: ``row 12: 'abc'`` (``file.csv row 3: …`` in a directory)."""
    where = f"{example['file']} row {example.get('row')}" if example.get("file") else f"row {example.get('row')}"
    return f"{where}: {example.get('value')!r}"


def ago(ts: float | None, now: float | None = None) -> str:
    """How long ago, in its largest unit: ``just now``, ``42s ago``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if not ts:
        return ""
    seconds = max(0, int((time.time() if now is None else now) - ts))
    if seconds < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


# -- drift verdicts (the dashboard's Data and Models screens) --------------------------------

DRIFT_STYLES = {True: "red", False: "green"}


def drift_verdict_text(drift: bool, drifted: int, compared: int) -> str:
    """``✗ drift 2/5`` / ``✓ no drift`` (``✓ no drift 1/5`` when some columns drifted, fewer
    than the dataset's share): a glyph as well as words, for no colour."""
    if drift:
        return f"✗ drift {drifted}/{compared}"
    return "✓ no drift" + (f" {drifted}/{compared}" if drifted else "")
