"""A drift report (``DriftReport.to_json()``, core/drift.py) as Markdown and as HTML.

``markdown`` is short enough for a CI comment on a pull request (GitHub/GitLab flavour): the
verdict, both datasets, and one table row per compared column, drifted first, with a
sparkline pair of its two distributions. ``html`` is ONE self-contained file (inline CSS and
SVG, nothing fetched; a Content-Security-Policy forbids scripts and remote loads) with the
same table and a bar chart per column.

Everything that comes from the data (column names, category labels, dataset labels,
details) is escaped: a hostile column name can neither break the Markdown table nor inject
HTML. Plain functions on the report's plain dict, stdlib only.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"  # a zero share is the lowest block; any non-zero share at least the second
COLLAPSE_AFTER = 20  # Markdown: a table of more rows goes in a collapsible <details> block
MAX_MD_ROWS = 200  # Markdown: rows shown at most (a CI comment has a size limit); the rest are counted
DASH = "—"

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~!#])")


# -- shared text ------------------------------------------------------------------------------


def sparkline(shares: Sequence[float], top: float | None = None) -> str:
    """One block character per share, scaled to ``top`` (default: the largest share), so a
    pair drawn with the same ``top`` compares bar for bar. Empty bins show the lowest block,
    non-empty ones at least the second, so a category that appears is visible."""
    if not shares:
        return ""
    top = max(shares) if top is None else top
    steps = len(BLOCKS) - 1
    line = []
    for share in shares:
        if share <= 0 or top <= 0:
            line.append(BLOCKS[0])
        else:
            line.append(BLOCKS[max(1, min(steps, round(share / top * steps)))])
    return "".join(line)


def headline(report: dict) -> tuple[bool, str]:
    """(drifted, ``3 of 5 columns drifted (60% ≥ 50%)``): the verdict's words, without markup."""
    columns = report.get("columns") or []
    compared = [c for c in columns if c.get("compared")]
    drifted = [c for c in compared if c.get("drift")]
    if not compared:
        return False, "no column could be compared"
    share, limit = float(report.get("share") or 0.0), float(report.get("threshold_share") or 0.0)
    sign = "≥" if report.get("drift") else "<"
    noun = "column" if len(compared) == 1 else "columns"
    return bool(report.get("drift")), (
        f"{len(drifted)} of {len(compared)} {noun} drifted ({_percent(share)} {sign} {_percent(limit)})"
    )


def _percent(value: float) -> str:
    # Whole percents unless rounding would hide a difference (49.6% is not "50% < 50%").
    whole = f"{value:.0%}"
    return whole if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value:.1%}"


def _number(value: float | None) -> str:
    return DASH if value is None else f"{value:.4g}"


def _threshold(column: dict) -> str:
    limit = column.get("threshold")
    if limit is None:
        return DASH
    # Tests drift when their p-value is below the threshold; distances when they reach it.
    return f"p < {limit:.4g}" if column.get("p_value") is not None else f"≥ {limit:.4g}"


def _ordered(columns: list[dict]) -> list[tuple[int, dict]]:
    """The compared columns with their place in the report, drifted first (each group in the
    report's order)."""
    compared = [(i, c) for i, c in enumerate(columns) if c.get("compared")]
    return [(i, c) for i, c in compared if c.get("drift")] + [(i, c) for i, c in compared if not c.get("drift")]


def _side(report: dict, which: str) -> tuple[str, str]:
    """(label, ``500 rows, md5 1a2b3c4d``) of the reference or the current data."""
    rows = report.get(f"{which}_rows")
    facts = [f"{rows:,} rows" if isinstance(rows, int) else "rows unknown"]
    if report.get(f"{which}_hash"):
        facts.append(f"md5 {str(report[f'{which}_hash'])[:8]}")
    return str(report.get(which, "")), ", ".join(facts)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- Markdown ---------------------------------------------------------------------------------


def md_text(text: object) -> str:
    """Text from the data, safe in a Markdown table cell: one line, no markup, no HTML."""
    return _html.escape(_MD_SPECIAL.sub(r"\\\1", _one_line(text)), quote=False)


def markdown(report: dict) -> str:
    drifted, words = headline(report)
    lines = [f"**{'Drift detected' if drifted else 'No drift'}**: {words}", ""]
    for title, which in (("Reference", "reference"), ("Current", "current")):
        label, facts = _side(report, which)
        lines.append(f"- {title}: {md_text(label)} ({md_text(facts)})")
    columns = report.get("columns") or []
    rows = [c for _i, c in _ordered(columns)]
    if rows:
        table = [
            "| Column | Method | Statistic | p-value | Threshold | Drift | Distributions |",
            "|---|---|---|---|---|---|---|",
        ]
        table += [_md_row(c) for c in rows[:MAX_MD_ROWS]]
        if len(rows) > MAX_MD_ROWS:
            table += ["", f"… and {len(rows) - MAX_MD_ROWS} more columns (see `--json` or `--html`)."]
        lines.append("")
        if len(rows) > COLLAPSE_AFTER:
            names = [md_text(c.get("column")) for c in rows if c.get("drift")]
            if names:
                shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
                lines += [f"Drifted: {shown}", ""]
            lines += [f"<details><summary>{len(rows)} columns compared</summary>", ""]
            lines += table + ["", "</details>"]
        else:
            lines += table
    skipped = [c for c in columns if not c.get("compared")]
    if skipped:
        lines += ["", "Not compared:"]
        lines += [f"- {md_text(c.get('column'))}: {md_text(c.get('detail') or 'not compared')}" for c in skipped]
    return "\n".join(lines) + "\n"


def _md_row(column: dict) -> str:
    picture = column.get("histogram")
    if picture:
        ref, cur = picture.get("reference") or [], picture.get("current") or []
        top = max([*ref, *cur, 0.0])
        shown = f"`ref {sparkline(ref, top)} / cur {sparkline(cur, top)}`"
    else:
        shown = md_text(column.get("detail") or "")
    cells = [
        md_text(column.get("column")),
        md_text(column.get("method") or DASH),
        _number(column.get("statistic")),
        _number(column.get("p_value")),
        _threshold(column),
        "✗ yes" if column.get("drift") else "✓ no",
        shown,
    ]
    return "| " + " | ".join(cells) + " |"


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:2rem auto;max-width:980px;
padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:0 0 .3rem}
.verdict{font-size:1.15rem;padding:.6rem .9rem;border-radius:6px;margin:.5rem 0 1rem}
.verdict.drift{background:#ffebe9;border:1px solid #cf222e}.verdict.ok{background:#dafbe1;border:1px solid #1a7f37}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid #d0d7de}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fff5f5}tr.drift td.flag{color:#cf222e;font-weight:600}td.flag{color:#1a7f37}
section.column{border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
section.column.drift{border-left:6px solid #cf222e;background:#fffafa}
.meta{color:#57606a;margin:0 0 .4rem}.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em;
vertical-align:-.05em}
.ref{fill:#8c959f;background:#8c959f}.cur{fill:#0969da;background:#0969da}
svg text{font:10px system-ui,sans-serif;fill:#57606a}svg .axis{stroke:#8c959f}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"  # no script, nothing fetched

COLOURS = {"ref": "#8c959f", "cur": "#0969da"}  # reference grey, current blue (also in _CSS's legend)
BAR = 14  # px: one bar's width (a bin is two bars and a gap)
GAP = 16
PLOT_HEIGHT = 120
LABEL_CHARS = 7  # a bin's label under its bars is cut to this (the bar's tooltip has it whole)


def _h(text: object) -> str:
    return _html.escape(str(text), quote=True)


def html(report: dict) -> str:
    drifted, words = headline(report)
    columns = report.get("columns") or []
    rows = _ordered(columns)
    ref_label, ref_facts = _side(report, "reference")
    cur_label, cur_facts = _side(report, "current")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Drift report: {_h(_one_line(cur_label))} against {_h(_one_line(ref_label))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Drift report</h1>",
        f'<p class="verdict {"drift" if drifted else "ok"}"><strong>{"Drift detected" if drifted else "No drift"}'
        f"</strong>: {_h(words)}</p>",
        f'<p class="meta">Reference: <strong>{_h(ref_label)}</strong> ({_h(ref_facts)})<br>'
        f"Current: <strong>{_h(cur_label)}</strong> ({_h(cur_facts)})</p>",
    ]
    if rows:
        out += [
            "<table><thead><tr><th>Column</th><th>Method</th><th>Statistic</th><th>p-value</th><th>Threshold</th>"
            "<th>Drift</th></tr></thead><tbody>",
            *(_html_row(c, i) for i, c in rows),
            "</tbody></table>",
            '<p class="legend">Distributions:<span class="ref"></span>reference<span class="cur"></span>current</p>',
            *(_html_section(c, i) for i, c in rows),
        ]
    skipped = [c for c in columns if not c.get("compared")]
    if skipped:
        out.append("<h2>Not compared</h2><ul>")
        out += [
            f"<li><strong>{_h(c.get('column'))}</strong>: {_h(c.get('detail') or 'not compared')}</li>" for c in skipped
        ]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_row(column: dict, i: int) -> str:
    drift = bool(column.get("drift"))
    return (
        f'<tr class="{"drift" if drift else "ok"}"><td><a href="#column-{i}">{_h(column.get("column"))}</a></td>'
        f"<td>{_h(column.get('method') or DASH)}</td><td class=\"num\">{_number(column.get('statistic'))}</td>"
        f"<td class=\"num\">{_number(column.get('p_value'))}</td><td>{_h(_threshold(column))}</td>"
        f'<td class="flag">{"✗ yes" if drift else "✓ no"}</td></tr>'
    )


def _html_section(column: dict, i: int) -> str:
    drift = bool(column.get("drift"))
    name = _h(column.get("column"))
    parts = [
        f'<section id="column-{i}" class="column {"drift" if drift else "ok"}">',
        f"<h2>{name}{' — drifted' if drift else ''}</h2>",
        f'<p class="meta">{_h(column.get("method") or DASH)}: statistic {_number(column.get("statistic"))}, '
        f"p-value {_number(column.get('p_value'))}, threshold {_h(_threshold(column))}</p>",
    ]
    if column.get("detail"):
        parts.append(f"<p>{_h(column['detail'])}</p>")
    if column.get("histogram"):
        parts.append(_chart(str(column.get("column")), column["histogram"], i))
    parts.append("</section>")
    return "\n".join(parts)


def _chart(name: str, picture: dict, i: int = 0) -> str:
    """An inline SVG of a column's two distributions: per bin a reference bar and a current
    bar, heights proportional to their shares (one scale for both), the bin's label under
    them, and a tooltip per bin."""
    bins = [str(b) for b in picture.get("bins") or []]
    ref, cur = list(picture.get("reference") or []), list(picture.get("current") or [])
    edges = picture.get("edges")
    top = max([*ref, *cur, 0.0]) or 1.0
    group = 2 * BAR + GAP
    left, base = 40, PLOT_HEIGHT + 10
    width, height = left + max(len(bins), 1) * group, base + 24
    title = f"{name}: reference and current share of rows over {len(bins)} {'bins' if edges else 'categories'}"
    out = [
        f'<svg role="img" aria-labelledby="chart-{i}-title" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<title id="chart-{i}-title">{_h(title)}</title>',
        f'<text x="{left - 4}" y="14" text-anchor="end">{_h(_percent_label(top))}</text>',
        f'<line class="axis" x1="{left}" y1="{base}" x2="{width}" y2="{base}"/>',
    ]
    for k, label in enumerate(bins):
        x = left + k * group + GAP / 2
        share_ref = ref[k] if k < len(ref) else 0.0
        share_cur = cur[k] if k < len(cur) else 0.0
        whole = _bin_label(label, edges, k)
        tip = f"{whole}: reference {_percent_label(share_ref)}, current {_percent_label(share_cur)}"
        out.append(f"<g><title>{_h(tip)}</title>")
        for cls, share, dx in (("ref", share_ref, 0), ("cur", share_cur, BAR)):
            bar = share / top * PLOT_HEIGHT
            out.append(
                f'<rect class="{cls}" fill="{COLOURS[cls]}" x="{x + dx:.2f}" y="{base - bar:.2f}" width="{BAR}" height="{bar:.2f}" '
                f'data-share="{share:g}"/>'
            )
        short = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
        out.append(f'<text x="{x + BAR:.2f}" y="{base + 14}" text-anchor="middle">{_h(_one_line(short))}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def _bin_label(label: str, edges: list | None, k: int) -> str:
    if edges and k + 1 < len(edges):
        return f"{edges[k]:.4g} to {edges[k + 1]:.4g}"
    return label


def _percent_label(share: float) -> str:
    return f"{share:.1%}"
