"""A review report as GitHub/GitLab-flavoured Markdown (short enough for a pull-request comment:
long parts fold into ``<details>``) and as one self-contained HTML page.

Charts: Markdown has Mermaid ``xychart-beta`` blocks, which GitHub and GitLab draw natively
(they have no legend, so each chart is one metric or one plot's series are named in a table
under it); HTML has SVG rendered by the same embedded Vega as ``opsctl plots`` (core/plots.py).
"""

from __future__ import annotations

import html as _html
import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from opsctl.core.drift_report import md_text
from opsctl.core.report import Report

COLLAPSE_AFTER = 10  # rows a table shows before it folds into <details>
MAX_ROWS = 200  # rows of one table at most: the rest is counted (see --json)
MERMAID_POINTS = 24  # a line plot is resampled to this many x positions (Mermaid spaces them evenly)
LINE_TEMPLATES = ("linear", "simple", "smooth")


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def md_code(text: object) -> str:
    """Text as a Markdown code span that is safe in a table cell (code spans show entities
    literally, so nothing is HTML-escaped; a pipe would still end the cell)."""
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def fmt(value: Any) -> str:
    """A value as a reviewer reads it: numbers to 6 significant digits, None as a dash."""
    if value is None:
        return "—"
    if _num(value) and isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def fmt_delta(delta: float | None, pct: float | None) -> tuple[str, str]:
    if delta is None:
        return "", ""
    if delta == 0:
        return "0", "0%"
    arrow = "▲" if delta > 0 else "▼"
    return f"{arrow} {delta:+.4g}", f"{pct:+.2f}%" if pct is not None else ""


def size(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def when(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def title(report: Report) -> str:
    return f"opsctl report: {report.head.label} vs {report.base.label}"


# --- Markdown -----------------------------------------------------------------------------------


def markdown(report: Report, *, images: dict[str, str] | None = None, terminal: bool = False) -> str:
    """The report as Markdown. ``images``: plot id -> a path (relative to the report) of an
    image written beside it, for the plots Mermaid can't draw. ``terminal``: for drawing in a
    terminal, which renders neither Mermaid nor ``<details>``: the trend as its table, plots as
    the command that draws them."""
    out: list[str] = [f"## {md_text(title(report))}", ""]
    out += [_md_headline(report), ""]
    for section in (_md_gates, _md_metrics, _md_params, _md_data, _md_checks, _md_drift, _md_pipeline):
        out += section(report)
    out += _md_plots(report, {} if terminal else images or {}, charts=not terminal)
    out += _md_registry(report)
    if report.notes:
        out += ["### Notes", "", *[f"- {md_text(n)}" for n in report.notes], ""]
    if terminal:
        out = [line for line in _without_charts(out) if not line.startswith(("<details>", "</details>"))]
    return "\n".join(out).rstrip() + "\n"


def _without_charts(lines: list[str]) -> list[str]:
    kept, inside = [], False
    for line in lines:
        if line == "```mermaid":
            inside = True
        elif inside and line == "```":
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def _md_headline(report: Report) -> str:
    base = f"`{report.base.commit[:7]}`" if report.base.commit else ""
    head = f"`{report.head.commit[:7]}`" if report.head.commit else ""
    dirty = " with uncommitted changes" if report.head.dirty else ""
    facts = [f"{len(report.params)} params changed", f"{sum(m.changed for m in report.metrics)} metrics moved"]
    facts.append(f"{len(report.data)} data changes")
    if report.stale:
        facts.append(f"{len(report.stale)} stages stale")
    return (
        f"Head **{md_text(report.head.label)}** {head}{dirty} against base **{md_text(report.base.label)}** {base}: "
        + ", ".join(facts)
        + "."
    )


def _table(header: list[str], rows: list[list[str]], summary: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines += ["", f"… and {len(rows) - MAX_ROWS} more (see `opsctl report --format json`)."]
    if len(rows) > COLLAPSE_AFTER:
        return [f"<details><summary>{summary}</summary>", "", *lines, "", "</details>", ""]
    return [*lines, ""]


def _md_gates(report: Report) -> list[str]:
    if not report.gates:
        return []
    failed = report.failed_gates
    head = f"### ❌ {len(failed)} of {len(report.gates)} gates failed" if failed else "### ✅ All gates passed"
    ordered = sorted(report.gates, key=lambda g: not g.failed)
    rows = [[md_code(g.gate), "❌ failed" if g.failed else "✅ passed", md_text(g.detail)] for g in ordered]
    return [head, "", *_table(["Gate", "Result", "Detail"], rows, f"{len(rows)} gates")]


def _md_metrics(report: Report) -> list[str]:
    if not report.metrics:
        return []
    rows = []
    for m in sorted(report.metrics, key=lambda m: not m.changed):
        delta, pct = fmt_delta(m.delta, m.delta_pct)
        rows.append([md_text(m.name), md_text(fmt(m.old)), md_text(fmt(m.new)), delta, pct])
    moved = sum(m.changed for m in report.metrics)
    lines = [f"### Metrics ({moved} of {len(report.metrics)} moved)", ""]
    lines += _table(["Metric", md_text(report.base.label), md_text(report.head.label), "Δ", "Δ%"], rows, "metrics")
    return lines + _md_trend(report)


def _md_trend(report: Report) -> list[str]:
    trend = report.trend
    if trend is None:
        return []
    labels = [p.run[:7] for p in trend.points]
    where = f" on `{md_text(trend.branch)}`" if trend.branch else ""
    lines = [f"**Trend** over the last {len(trend.points)} runs{where}:", ""]
    charts = []
    for key in trend.keys:
        values = [p.metrics.get(key) for p in trend.points]
        if sum(_num(v) for v in values) >= 2:
            charts.append(
                mermaid_chart(
                    key, labels, {key: [float(v) if isinstance(v, (int, float)) and _num(v) else None for v in values]}
                )
            )
    if charts:  # the first key (a gated or moved metric) open; the others folded: a comment stays short
        lines += charts[0]
    if len(charts) > 1:
        lines += ["<details><summary>More trends</summary>", ""]
        lines += [line for chart in charts[1:] for line in chart]
        lines += ["</details>", ""]
    table = [
        [f"`{p.run[:7]}`", when(p.started), *[md_text(fmt(p.metrics.get(k))) for k in trend.keys]] for p in trend.points
    ]
    header = ["Run", "Started", *[md_text(k) for k in trend.keys]]
    lines += [
        "<details><summary>The same as a table</summary>",
        "",
        *_table(header, table, "runs")[:-1],
        "",
        "</details>",
        "",
    ]
    return lines


def mermaid_chart(name: str, labels: list[str], series: dict[str, list[float | None]]) -> list[str]:
    """A Mermaid ``xychart-beta`` block: one ``line`` per series over the labels (a gap —
    Mermaid has none — repeats the previous value), y from the data's range with a margin."""
    values = [v for ys in series.values() for v in ys if v is not None]
    low, high = min(values), max(values)
    margin = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    lines = ["```mermaid", "xychart-beta", f'    title "{_quoted(name)}"']
    lines.append("    x-axis [" + ", ".join(f'"{_quoted(label)}"' for label in labels) + "]")
    lines.append(
        f'    y-axis "{_quoted(name if len(series) == 1 else "value")}" {low - margin:.6g} --> {high + margin:.6g}'
    )
    for ys in series.values():
        filled, last = [], next((v for v in ys if v is not None), low)
        for v in ys:
            last = v if v is not None else last
            filled.append(f"{last:.6g}")
        lines.append("    line [" + ", ".join(filled) + "]")
    return [*lines, "```", ""]


def _quoted(text: str) -> str:
    return str(text).replace('"', "'").replace("\n", " ")


def _md_params(report: Report) -> list[str]:
    if not report.params:
        return []
    several = len({p.file for p in report.params}) > 1
    rows = [
        [md_text(f"{p.file}:{p.key}" if several else p.key), md_text(fmt(p.old)), md_text(fmt(p.new))]
        for p in report.params
    ]
    header = ["Param", md_text(report.base.label), md_text(report.head.label)]
    return [f"### Params ({len(rows)} changed)", "", *_table(header, rows, f"{len(rows)} params")]


def _md_data(report: Report) -> list[str]:
    if not report.data:
        return []
    rows = [
        [
            md_code(d.path),
            d.change,
            f"{size(d.old_size)} `{(d.old_hash or '—')[:8]}`",
            f"{size(d.new_size)} `{(d.new_hash or '—')[:8]}`",
        ]
        for d in report.data
    ]
    header = ["Path", "Change", md_text(report.base.label), md_text(report.head.label)]
    return [f"### Data ({len(rows)} changed)", "", *_table(header, rows, f"{len(rows)} files")]


def _md_checks(report: Report) -> list[str]:
    if not report.checks and not report.unchecked:
        return []
    failed = [v for v in report.checks if not v.passed]
    head = f"### Data checks: ❌ {len(failed)} of {len(report.checks)} datasets failed" if failed else "### Data checks"
    rows = []
    for v in report.checks:
        if v.passed:
            detail = f"{v.checks} checks on {v.rows:,} rows"
        else:
            worst = [f"{f.get('check')}({f.get('column') or ''}): {f.get('count')}" for f in v.failures[:5]]
            detail = f"{v.failed_checks} of {v.checks} checks failed: " + "; ".join(worst)
        rows.append([md_code(v.path), "✅ passed" if v.passed else "❌ failed", md_text(detail), when(v.at)])
    lines = [head, ""]
    if rows:
        lines += _table(["Dataset", "Result", "Detail", "Checked"], rows, f"{len(rows)} datasets")
    if report.unchecked:
        names = ", ".join(md_code(p) for p in report.unchecked)
        lines += [f"Not checked in this version: {names} (run `opsctl data validate`).", ""]
    return lines


def _md_drift(report: Report) -> list[str]:
    if not report.drift:
        return []
    drifted = [r for r in report.drift if r.drift]
    noun = "dataset" if len(drifted) == 1 else "datasets"
    head = f"### Drift: ❌ {len(drifted)} {noun} drifted" if drifted else "### Drift: none"
    rows = []
    for r in report.drift:
        columns = ", ".join(r.drifted[:8]) + (f" and {len(r.drifted) - 8} more" if len(r.drifted) > 8 else "")
        sign = "≥" if r.drift else "<"
        detail = f"{len(r.drifted)} of {r.compared} columns drifted ({r.share:.0%} {sign} {r.threshold_share:.0%})"
        if columns:
            detail += f": {columns}"
        rows.append(
            [
                md_code(r.path),
                "❌ drift" if r.drift else "✅ no drift",
                md_text(r.reference),
                md_text(detail),
                when(r.at),
            ]
        )
    return [head, "", *_table(["Dataset", "Result", "Reference", "Columns", "Checked"], rows, f"{len(rows)} datasets")]


def _md_pipeline(report: Report) -> list[str]:
    lines: list[str] = []
    if report.stale:
        lines += [f"### Pipeline: {len(report.stale)} stages stale", ""]
        rows = [[md_code(s.name), md_text("; ".join(s.reasons) or "stale")] for s in report.stale]
        lines += _table(["Stage", "Why"], rows, f"{len(rows)} stages")
    run = report.run
    if run is not None:
        ran = sum(s.outcome == "ran" for s in run.stages)
        cached = sum(s.outcome == "cached" for s in run.stages)
        if not lines:
            lines += ["### Pipeline", ""]
        lines += [
            f"Run `{run.id}` {run.status} in {seconds(run.duration)} ({when(run.started)}): {ran} ran, {cached} cached.",
            "",
        ]
        rows = [[md_code(s.name), s.outcome, seconds(s.duration)] for s in run.stages]
        lines += ["<details><summary>Stages</summary>", "", *_table(["Stage", "Outcome", "Time"], rows, "stages")[:-1]]
        lines += ["", "</details>", ""]
    return lines


def _md_plots(report: Report, images: dict[str, str], *, charts: bool = True) -> list[str]:
    if not report.plots:
        return []
    from opsctl.core.plot_text import series_of

    lines = [f"### Plots ({len(report.plots)} changed)", ""]
    for change in report.plots:
        plot = change.plot
        lines += [f"**{md_text(plot.props.get('title') or change.id)}**", ""]
        if charts and plot.kind == "vega" and change.template in LINE_TEMPLATES:
            order = {rev: i for i, rev in enumerate(change.revs)}  # the base's lines first
            series = sorted(
                (s for s in series_of(plot) if s.ys), key=lambda s: order.get(s.label.split(": ")[0], len(order))
            )
            grid, resampled = _resampled(series)
            if grid:
                labels = [f"{x:.3g}" for x in grid]
                lines += mermaid_chart(str(plot.props.get("y") or change.id), labels, resampled)
                lines += ["| Line | Series |", "|---|---|"]
                lines += [f"| {i + 1} | {md_text(name)} |" for i, name in enumerate(resampled)]
                lines += [""]
                continue
        if change.id in images:
            lines += [f"![{md_text(change.id)}]({images[change.id]})", ""]
        else:
            revs = " ".join(f"--rev {r}" for r in change.revs)
            lines += [f"Draw it with `opsctl plots show {md_text(change.id)} {revs}`.", ""]
    return lines


def _resampled(series: list) -> tuple[list[float], dict[str, list[float | None]]]:
    """Series with numeric x on one grid of :data:`MERMAID_POINTS` x values (linear
    interpolation; outside a series' own x range it has no value)."""
    numeric = [s for s in series if all(_num(x) for x in s.xs) and len(s.xs) >= 2]
    if not numeric:
        return [], {}
    low = min(min(s.xs) for s in numeric)
    high = max(max(s.xs) for s in numeric)
    if high <= low:
        return [], {}
    grid = [low + (high - low) * i / (MERMAID_POINTS - 1) for i in range(MERMAID_POINTS)]
    result: dict[str, list[float | None]] = {}
    for s in numeric:
        points = sorted(zip(s.xs, s.ys, strict=False))
        result[s.label or "value"] = [_interpolate(points, x) for x in grid]
    return grid, result


def _interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    if x < points[0][0] or x > points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _md_registry(report: Report) -> list[str]:
    if not report.registry:
        return []
    rows = [
        [e.at.strftime("%Y-%m-%d %H:%M"), e.event, md_text(e.name), md_text(_event_what(e)), md_text(e.author)]
        for e in report.registry
    ]
    return [
        f"### Model registry ({len(rows)} events)",
        "",
        *_table(["When", "Event", "Model", "What", "By"], rows, "events"),
    ]


def _event_what(event: Any) -> str:
    if event.event in ("promotion", "rollback", "unassignment"):
        moved = f"{event.from_version or '—'} → {event.to_version or '—'}"
        return f"{event.stage}: {moved}"
    return str(event.version or "")


# --- HTML ---------------------------------------------------------------------------------------


def html(report: Report) -> str:
    """One self-contained page (no script, no link): the Markdown's sections as HTML tables,
    the trend and the changed plots as inline SVG rendered by core/plots.py's embedded Vega."""
    from opsctl.core.plots import vega_lite_svg as svg_of

    e = _html.escape
    parts = [f"<h1>{e(title(report))}</h1>", f"<p>{e(_plain(_md_headline(report)))}</p>"]
    if report.gates:
        parts.append(
            _html_table(
                "Gates",
                ["Gate", "Result", "Detail"],
                [
                    [g.gate, "failed" if g.failed else "passed", g.detail]
                    for g in sorted(report.gates, key=lambda g: not g.failed)
                ],
                bad=lambda r: r[1] == "failed",
            )
        )
    if report.metrics:
        rows = []
        for m in report.metrics:
            delta, pct = fmt_delta(m.delta, m.delta_pct)
            rows.append([m.name, fmt(m.old), fmt(m.new), delta, pct])
        parts.append(_html_table("Metrics", ["Metric", report.base.label, report.head.label, "Δ", "Δ%"], rows))
    if report.trend is not None:
        parts.append(f"<h2>Trend</h2><div class='chart'>{_trend_svg(report, svg_of)}</div>")
    if report.params:
        parts.append(
            _html_table(
                "Params",
                ["File", "Param", report.base.label, report.head.label],
                [[p.file, p.key, fmt(p.old), fmt(p.new)] for p in report.params],
            )
        )
    if report.data:
        rows = [
            [
                d.path,
                d.change,
                f"{size(d.old_size)} {(d.old_hash or '')[:8]}",
                f"{size(d.new_size)} {(d.new_hash or '')[:8]}",
            ]
            for d in report.data
        ]
        parts.append(_html_table("Data", ["Path", "Change", report.base.label, report.head.label], rows))
    if report.checks:
        rows = [
            [
                v.path,
                "passed" if v.passed else "failed",
                f"{v.failed_checks} of {v.checks} checks failed"
                if not v.passed
                else f"{v.checks} checks on {v.rows:,} rows",
                when(v.at),
            ]
            for v in report.checks
        ]
        parts.append(
            _html_table("Data checks", ["Dataset", "Result", "Detail", "Checked"], rows, bad=lambda r: r[1] == "failed")
        )
    if report.drift:
        rows = [
            [r.path, "drift" if r.drift else "no drift", r.reference, ", ".join(r.drifted), when(r.at)]
            for r in report.drift
        ]
        parts.append(
            _html_table(
                "Drift",
                ["Dataset", "Result", "Reference", "Drifted columns", "Checked"],
                rows,
                bad=lambda r: r[1] == "drift",
            )
        )
    if report.stale:
        parts.append(
            _html_table("Stale stages", ["Stage", "Why"], [[s.name, "; ".join(s.reasons)] for s in report.stale])
        )
    if report.run is not None:
        run = report.run
        parts.append(
            _html_table(
                f"Run {run.id} ({run.status}, {seconds(run.duration)})",
                ["Stage", "Outcome", "Time"],
                [[s.name, s.outcome, seconds(s.duration)] for s in run.stages],
            )
        )
    if report.plots:
        parts.append("<h2>Plots</h2>")
        for change in report.plots:
            heading = e(str(change.plot.props.get("title") or change.id))
            parts.append(f"<h3>{heading}</h3><div class='chart'>{_plot_svg(change.plot, svg_of)}</div>")
    if report.registry:
        rows = [
            [ev.at.strftime("%Y-%m-%d %H:%M"), ev.event, ev.name, _event_what(ev), ev.author] for ev in report.registry
        ]
        parts.append(_html_table("Model registry", ["When", "Event", "Model", "What", "By"], rows))
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report.notes) + "</ul>")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}tr.bad td{background:#fde7e7}.chart svg{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{e(title(report))}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def _plain(markdown_text: str) -> str:
    return markdown_text.replace("**", "").replace("`", "")


def _html_table(
    heading: str, header: list[str], rows: list[list[str]], *, bad: Callable[[list[str]], bool] | None = None
) -> str:
    e = _html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        ("<tr class='bad'>" if bad and bad(row) else "<tr>") + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
        for row in rows[:MAX_ROWS]
    )
    more = f"<p>… and {len(rows) - MAX_ROWS} more (see --format json).</p>" if len(rows) > MAX_ROWS else ""
    return f"<h2>{e(heading)}</h2><table><tr>{head}</tr>{body}</table>{more}"


def _trend_svg(report: Report, svg_of: Callable[[Any], str]) -> str:
    """The trend as a Vega-Lite line chart (one colour per metric, with a legend)."""
    assert report.trend is not None
    rows = [
        {"run": p.run[:7], "order": i, "metric": key, "value": p.metrics[key]}
        for i, p in enumerate(report.trend.points)
        for key in report.trend.keys
        if _num(p.metrics.get(key))
    ]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": rows},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "run", "type": "ordinal", "sort": {"field": "order"}, "title": "run"},
            "y": {"field": "value", "type": "quantitative", "scale": {"zero": False}},
            "color": {"field": "metric", "type": "nominal"},
        },
        "width": 480,
        "height": 200,
    }
    return _strip_xml_header(svg_of(spec))


def _plot_svg(plot: Any, svg_of: Callable[[Any], str]) -> str:
    if plot.kind == "vega":
        return _strip_xml_header(svg_of(plot.vega_lite()))
    import base64

    from opsctl.core.plots import image_mime

    figures = []
    for rev, files in plot.sources.items():
        for file, data in files.items():
            src = f"data:{image_mime(file)};base64,{base64.b64encode(data).decode()}"
            figures.append(
                f"<figure><img src='{src}' alt='{_html.escape(file)}'><figcaption>{_html.escape(rev)}</figcaption></figure>"
            )
    return "".join(figures)


def _strip_xml_header(svg: str) -> str:
    return svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg


def json_text(data: dict) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"
