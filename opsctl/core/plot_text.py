"""Plots drawn as terminal text: what `opsctl plots show` prints and the dashboard's Plots view shows.

Each of DVC's templates has a terminal form (docs/architecture.md, *Plots*):

- ``linear``, ``simple``, ``smooth``: braille line charts (plotext), one series per revision
  and field, with axes, the plot's title and labels, and a legend;
- ``scatter``, ``scatter_jitter``: braille points;
- ``confusion``, ``confusion_normalized``: a table of counts (or row fractions) per revision,
  cells shaded by their share of the largest, as DVC's heat map is;
- ``bar_horizontal``, ``bar_horizontal_sorted``: one bar per category, per revision.

A template of the project's own (``.dvc/plots``) is drawn as a line chart when its x and y
are numbers. Series are thinned to what the terminal can show (min and max per character
column), so 100,000 points draw as fast as 300; the SVG and HTML keep every point.

The result is a string with ANSI colours (none when ``color`` is false), built without
rich or textual so both front ends print the same thing. plotext draws through one global
figure: drawing is serialised by a lock (it takes milliseconds), which lets the dashboard
draw from a worker thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

# DVC's palette (dvc_render's VegaRenderer colours revisions in this order), so a run keeps
# its colour between the terminal and the HTML.
PALETTE = ((148, 93, 214), (19, 173, 199), (244, 104, 55), (72, 187, 120), (66, 153, 225), (237, 137, 54))
# Without colour, series are told apart by their marker.
PLAIN_MARKERS = ("braille", "•", "x", "+", "o", "*")
LINE_TEMPLATES = {"linear", "simple", "smooth"}
SCATTER_TEMPLATES = {"scatter", "scatter_jitter"}
CONFUSION_TEMPLATES = {"confusion", "confusion_normalized"}
BAR_TEMPLATES = {"bar_horizontal", "bar_horizontal_sorted"}
MIN_WIDTH, MIN_HEIGHT = 30, 8

_plotext_lock = threading.Lock()


class Series:
    """One line or set of points: a revision's field from one file."""

    def __init__(self, label: str, xs: list, ys: list[float]) -> None:
        self.label, self.xs, self.ys = label, xs, ys


def draw(plot: Any, width: int = 80, height: int = 20, *, color: bool = True) -> str:
    """``plot`` (an adapters.dvc_plots.Plot with kind "vega") as text ``width`` columns wide."""
    width, height = max(width, MIN_WIDTH), max(height, MIN_HEIGHT)
    template = plot.template
    if template in CONFUSION_TEMPLATES:
        return confusion_text(plot, width, color=color, normalized=template == "confusion_normalized")
    if template in BAR_TEMPLATES:
        return bars_text(plot, width, color=color, sort=template == "bar_horizontal_sorted")
    return chart_text(plot, width, height, color=color, points=template in SCATTER_TEMPLATES)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _finite(value: Any) -> bool:
    """A value that can be placed: not missing, and not an infinite or NaN number (a diverged
    loss logs ``inf``; plotext can't scale an axis to it)."""
    number = _number(value)
    return value is not None and (number is None or math.isfinite(number))


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def series_of(plot: Any) -> list[Series]:
    """The plot's datapoints grouped into series, labelled by what tells them apart:
    the revision (run or Git revision) when there are several, and the field or file when
    one revision has several."""
    x, y = plot.props.get("x"), plot.props.get("y")
    groups: dict[tuple, list[dict]] = {}
    for point in plot.datapoints:
        groups.setdefault((point.get("rev"), point.get("filename"), point.get("field")), []).append(point)
    revs = {key[0] for key in groups}
    files = {key[1] for key in groups}
    fields = {key[2] for key in groups}
    result = []
    for (rev, filename, fieldname), points in groups.items():
        parts = []
        if len(revs) > 1 or (len(files) == 1 and len(fields) == 1):
            parts.append(str(rev))
        if len(files) > 1:
            parts.append(str(filename))
        if len(fields) > 1:
            parts.append(str(fieldname))
        xs = [p.get(x) for p in points]
        ys = [_number(p.get(y)) for p in points]
        kept = [(a, b) for a, b in zip(xs, ys) if b is not None and math.isfinite(b) and _finite(a)]
        result.append(Series(": ".join(parts), [a for a, _ in kept], [b for _, b in kept]))
    return result


def thin(xs: list[float], ys: list[float], columns: int) -> tuple[list[float], list[float]]:
    """At most ``4 * columns`` points that draw the same line: points sorted by x, then per
    column the first, lowest, highest and last kept in x order (min/max decimation)."""
    if len(xs) <= 4 * columns:
        return xs, ys
    order = sorted(range(len(xs)), key=xs.__getitem__)
    lo, hi = xs[order[0]], xs[order[-1]]
    span = (hi - lo) or 1.0
    buckets: dict[int, list[int]] = {}
    for i in order:
        buckets.setdefault(min(columns - 1, int((xs[i] - lo) / span * columns)), []).append(i)
    keep: list[int] = []
    for members in buckets.values():
        low = min(members, key=ys.__getitem__)
        high = max(members, key=ys.__getitem__)
        keep.extend(sorted({members[0], low, high, members[-1]}, key=lambda i: (xs[i], i)))
    return [xs[i] for i in keep], [ys[i] for i in keep]


def chart_text(plot: Any, width: int, height: int, *, color: bool, points: bool = False) -> str:
    """A braille line chart (or scatter) of the plot's series, with axes, title, labels and legend."""
    import plotext as plt

    series = [s for s in series_of(plot) if s.ys]
    if not series:
        return _titled(plot, "no data points to draw")
    numeric = all(_number(x) is not None for s in series for x in s.xs)
    categories: list[str] = []
    if not numeric:  # dates, names: evenly spaced, in first-seen order, labelled
        for s in series:
            for x in s.xs:
                if _label(x) not in categories:
                    categories.append(_label(x))
    with _plotext_lock:
        plt.clear_figure()
        plt.limit_size(False, False)  # the size asked, not the terminal's (the dashboard's view; a pipe: 80x24)
        plt.plotsize(width, height)
        plt.theme("clear")
        plt.title(str(plot.props.get("title") or plot.id))
        plt.xlabel(str(plot.props.get("x_label") or plot.props.get("x") or ""))
        plt.ylabel(str(plot.props.get("y_label") or plot.props.get("y") or ""))
        for i, s in enumerate(series):
            xs = (
                [float(_number(x) or 0.0) for x in s.xs]
                if numeric
                else [float(categories.index(_label(x))) for x in s.xs]
            )
            xs, ys = thin(xs, s.ys, width) if not points else _distinct_cells(xs, s.ys, width, height)
            marker = "braille" if color else PLAIN_MARKERS[i % len(PLAIN_MARKERS)]
            kwargs: dict = {"marker": marker, "label": s.label or None}
            if color:
                kwargs["color"] = PALETTE[i % len(PALETTE)]
            (plt.scatter if points else plt.plot)(xs, ys, **kwargs)
        if categories:
            step = max(1, math.ceil(len(categories) / max(1, width // 12)))
            ticks = list(range(0, len(categories), step))
            plt.xticks(ticks, [categories[t][:10] for t in ticks])
        text = plt.build()
    return _finish(text, color)


def _distinct_cells(xs: list[float], ys: list[float], width: int, height: int) -> tuple[list[float], list[float]]:
    """Points that fall in the same braille dot draw once: keep one per dot (a scatter of
    100,000 points has at most width*2 x height*4 distinct dots)."""
    if len(xs) <= 4 * width:
        return xs, ys
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx, sy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    seen: dict[tuple[int, int], int] = {}
    for i, (a, b) in enumerate(zip(xs, ys)):
        seen.setdefault((int((a - x0) / sx * width * 2), int((b - y0) / sy * height * 4)), i)
    keep = sorted(seen.values())
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _finish(text: str, color: bool) -> str:
    import plotext as plt

    if not color:
        text = plt.uncolorize(text)
    return "\n".join(line.rstrip() for line in text.replace("\x1b[0m\n", "\n").splitlines()).rstrip("\n")


def _titled(plot: Any, body: str) -> str:
    return f"{plot.props.get('title') or plot.id}\n  {body}"


# --- confusion matrix -------------------------------------------------------------------------


def confusion_counts(plot: Any) -> dict[str, dict[tuple[str, str], int]]:
    """Per revision, how many rows have each (actual, predicted) pair (DVC's template counts
    rows by its y and x fields: y is the actual class, x the predicted one)."""
    x, y = plot.props.get("x"), plot.props.get("y")
    counts: dict[str, dict[tuple[str, str], int]] = {}
    for point in plot.datapoints:
        cell = (_label(point.get(y)), _label(point.get(x)))
        by_rev = counts.setdefault(str(point.get("rev")), {})
        by_rev[cell] = by_rev.get(cell, 0) + 1
    return counts


def _sorted_classes(values: Iterable[str]) -> list[str]:
    values = set(values)
    if all(_number(v) is not None for v in values):
        return sorted(values, key=lambda v: float(v))
    return sorted(values)


def confusion_text(plot: Any, width: int, *, color: bool, normalized: bool = False) -> str:
    """One matrix per revision, rows the actual class and columns the predicted one; with
    ``normalized``, each row's fractions (``confusion_normalized``)."""
    counts = confusion_counts(plot)
    if not counts:
        return _titled(plot, "no data points to draw")
    x_label = str(plot.props.get("x_label") or plot.props.get("x"))
    y_label = str(plot.props.get("y_label") or plot.props.get("y"))
    actual = _sorted_classes(a for cells in counts.values() for a, _ in cells)
    predicted = _sorted_classes(p for cells in counts.values() for _, p in cells)
    blocks = []
    for i, (rev, cells) in enumerate(counts.items()):
        rows: list[list[tuple[str, float]]] = []
        for a in actual:
            total = sum(cells.get((a, p), 0) for p in predicted)
            row = []
            for p in predicted:
                n = cells.get((a, p), 0)
                share = n / total if total else 0.0
                row.append((f"{share:.2f}" if normalized else str(n), share if normalized else float(n)))
            rows.append(row)
        peak = max((v for row in rows for _, v in row), default=0.0) or 1.0
        header = f"{rev}" if len(counts) > 1 else ""
        corner = f"{y_label} \\ {x_label}"
        blocks.append(_matrix(header, corner, actual, predicted, rows, peak, color, i, width))
    title = str(plot.props.get("title") or plot.id)
    return "\n".join([title, *_side_by_side(blocks, width)])


def _matrix(
    header: str,
    corner: str,
    actual: list[str],
    predicted: list[str],
    rows: list[list[tuple[str, float]]],
    peak: float,
    color: bool,
    series: int,
    width: int,
) -> list[str]:
    content = max([len(p) for p in predicted] + [len(t) for row in rows for t, _ in row] + [3])
    label = max(len(a) for a in actual)
    cell = content + 2
    first = max(len(corner), label) + 2
    # A line wider than the terminal wraps and the table can't be read (ten classes at 80
    # columns): tighter cells first, then the corner label cut short.
    if first + len(predicted) * (cell + 1) + 2 > width:
        cell = content + 1
        room = width - len(predicted) * (cell + 1) - 2
        if first > room:
            first = max(label + 2, room)
            if len(corner) > first - 2:  # said in full above the table instead
                header = f"{header}  {corner}" if header else corner
                corner = corner[: max(0, first - 3)] + "…"
    bar = lambda left, mid, right, fill="─": (  # noqa: E731 — a table rule, drawn three times
        left + fill * first + "".join(mid + fill * cell for _ in predicted) + right
    )
    lines = [header] if header else []
    lines.append(bar("┌", "┬", "┐"))
    lines.append("│" + corner.center(first) + "".join("│" + p.center(cell) for p in predicted) + "│")
    lines.append(bar("├", "┼", "┤"))
    base = PALETTE[series % len(PALETTE)]
    for a, row in zip(actual, rows):
        cells = []
        for text, value in row:
            body = text.rjust(cell - 1) + " "
            if color:
                share = value / peak
                shade = tuple(round(255 + (c - 255) * share) for c in base)
                ink = "255;255;255" if share > 0.5 else "0;0;0"
                body = f"\x1b[1;38;2;{ink}m\x1b[48;2;{shade[0]};{shade[1]};{shade[2]}m{body}\x1b[0m"
            cells.append("│" + body)
        lines.append("│" + a.rjust(first - 1) + " " + "".join(cells) + "│")
    lines.append(bar("└", "┴", "┘"))
    return lines


def _visible(text: str) -> int:
    import re

    return len(re.sub(r"\x1b\[[0-9;]*m", "", text))


def _side_by_side(blocks: list[list[str]], width: int) -> list[str]:
    """Blocks of lines next to each other while they fit in ``width``, else below."""
    out: list[str] = []
    row: list[list[str]] = []
    used = 0
    for block in blocks:
        wide = max(_visible(line) for line in block)
        if row and used + 2 + wide > width:
            out.extend(_join(row))
            row, used = [], 0
        row.append(block)
        used += wide + (2 if used else 0)
    if row:
        out.extend(_join(row))
    return out


def _join(blocks: list[list[str]]) -> list[str]:
    height = max(len(b) for b in blocks)
    widths = [max(_visible(line) for line in b) for b in blocks]
    lines = []
    for i in range(height):
        parts = []
        for block, wide in zip(blocks, widths):
            line = block[i] if i < len(block) else ""
            parts.append(line + " " * (wide - _visible(line)))
        lines.append("  ".join(parts).rstrip())
    return lines


# --- horizontal bars --------------------------------------------------------------------------


def bars_text(plot: Any, width: int, *, color: bool, sort: bool = False) -> str:
    """One bar per category (DVC's bar templates: x is the value, y the category), one per
    revision in each category; ``sort``: largest first (``bar_horizontal_sorted``)."""
    x, y = plot.props.get("x"), plot.props.get("y")
    values: dict[str, dict[str, float]] = {}
    revs: list[str] = []
    for point in plot.datapoints:
        value = _number(point.get(x))
        if value is None or not math.isfinite(value):
            continue
        rev = str(point.get("rev"))
        if rev not in revs:
            revs.append(rev)
        values.setdefault(_label(point.get(y)), {})[rev] = value
    if not values:
        return _titled(plot, "no data points to draw")
    categories = list(values)
    if sort:
        categories.sort(key=lambda c: -max(values[c].values()))
    several = len(revs) > 1
    label_width = min(30, max(len(c) for c in categories) + (max(len(r) for r in revs) + 1 if several else 0))
    numbers = {c: {r: f"{v:g}" for r, v in values[c].items()} for c in categories}
    number_width = max(len(t) for row in numbers.values() for t in row.values())
    room = max(4, width - label_width - number_width - 3)
    peak = max(abs(v) for row in values.values() for v in row.values()) or 1.0
    lines = [str(plot.props.get("title") or plot.id)]
    for c in categories:
        for i, rev in enumerate(revs):
            if rev not in values[c]:
                continue
            label = (f"{c} {rev}" if several else c)[:label_width].rjust(label_width)
            eighths = round(abs(values[c][rev]) / peak * room * 8)
            bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
            if color:
                r, g, b = PALETTE[i % len(PALETTE)]
                bar = f"\x1b[38;2;{r};{g};{b}m{bar}\x1b[0m"
            elif several:
                bar = bar.replace("█", "█▓▒░#="[i % 6])
            lines.append(f"{label} │{bar} {numbers[c][rev]}".rstrip())
    lines.append(" " * label_width + " └" + "─" * room)
    lines.append(" " * (label_width + 2) + str(plot.props.get("x_label") or x))
    return "\n".join(lines)
