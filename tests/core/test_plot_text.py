"""core.plot_text: how a plot's datapoints become terminal text (plots made by hand, in
the shape DVC's converter gives: each row tagged with its rev, file and field)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import pytest

from opsctl.core import plot_text


@dataclass
class FakePlot:
    """What plot_text reads of an adapters.dvc_plots.Plot."""

    props: dict
    datapoints: list[dict] = field(default_factory=list)
    id: str = "plot"
    kind: str = "vega"

    @property
    def template(self) -> str:
        return self.props.get("template", "linear")


def rows(rev: str, values: list[tuple], x: str = "x", y: str = "y", filename: str = "f.json", fieldname: str = "y"):
    return [{x: a, y: b, "rev": rev, "filename": filename, "field": fieldname} for a, b in values]


# --- thinning ---------------------------------------------------------------------------------


def _buckets(xs: list[float], columns: int) -> list[int]:
    lo, hi = min(xs), max(xs)
    return [min(columns - 1, int((x - lo) / ((hi - lo) or 1.0) * columns)) for x in xs]


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled"])
def test_thin_keeps_each_columns_extremes_and_at_most_four_points(shuffled):
    rng = random.Random(16)
    xs = [i / 7 for i in range(20_000)]
    ys = [rng.gauss(0, 1) + (i % 97) / 10 for i in range(20_000)]
    if shuffled:
        pairs = list(zip(xs, ys))
        rng.shuffle(pairs)
        xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    columns = 60
    kept_x, kept_y = plot_text.thin(xs, ys, columns)
    assert len(kept_x) <= 4 * columns
    assert kept_x == sorted(kept_x)  # drawn left to right
    assert set(zip(kept_x, kept_y)) <= set(zip(xs, ys))  # real points, not averages
    every: dict[int, list[float]] = {}
    for bucket, y in zip(_buckets(xs, columns), ys):
        every.setdefault(bucket, []).append(y)
    kept: dict[int, list[float]] = {}
    for x, y in zip(kept_x, kept_y):
        (bucket,) = _buckets([min(xs), x, max(xs)], columns)[1:2]
        kept.setdefault(bucket, []).append(y)
    assert set(kept) == set(every)  # no column left empty
    for bucket, values in every.items():
        assert len(kept[bucket]) <= 4
        assert min(values) in kept[bucket] and max(values) in kept[bucket]


def test_thin_leaves_a_short_series_alone():
    xs, ys = [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]
    assert plot_text.thin(xs, ys, 80) == (xs, ys)


def test_thin_with_a_single_x_keeps_the_extremes():
    xs, ys = [1.0] * 1000, [float(i % 13) for i in range(1000)]
    kept_x, kept_y = plot_text.thin(xs, ys, 10)
    assert len(kept_x) <= 4 and min(kept_y) == 0.0 and max(kept_y) == 12.0


# --- series and their labels ------------------------------------------------------------------


def test_one_revision_is_labelled_by_the_revision():
    plot = FakePlot({"x": "x", "y": "y"}, rows("workspace", [(0, 1), (1, 2)]))
    assert [s.label for s in plot_text.series_of(plot)] == ["workspace"]


def test_two_revisions_are_labelled_each_by_its_revision():
    plot = FakePlot({"x": "x", "y": "y"}, rows("workspace", [(0, 1), (1, 2)]) + rows("a1b2c3d4e5f6", [(0, 3)]))
    series = plot_text.series_of(plot)
    assert [s.label for s in series] == ["workspace", "a1b2c3d4e5f6"]
    assert [s.ys for s in series] == [[1.0, 2.0], [3.0]]


def test_two_fields_are_labelled_by_field():
    points = rows("workspace", [(0, 1)], fieldname="loss") + rows("workspace", [(0, 2)], fieldname="acc")
    plot = FakePlot({"x": "x", "y": "y"}, points)
    assert [s.label for s in plot_text.series_of(plot)] == ["loss", "acc"]
    points += rows("v1", [(0, 3)], fieldname="loss")
    assert [s.label for s in plot_text.series_of(FakePlot({"x": "x", "y": "y"}, points))] == [
        "workspace: loss",
        "workspace: acc",
        "v1: loss",
    ]


def test_labels_are_in_the_legend():
    points = rows("workspace", [(i, i * i) for i in range(10)]) + rows("v1", [(i, i) for i in range(10)])
    text = plot_text.draw(FakePlot({"x": "x", "y": "y", "title": "Curves"}, points), 60, 16, color=False)
    assert "Curves" in text.splitlines()[0]
    assert re.search(r"workspace", text) and re.search(r"\bv1\b", text)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "\x1b[" not in text
    assert "\x1b[" in plot_text.draw(FakePlot({"x": "x", "y": "y"}, points), 60, 16, color=True)


def test_values_that_are_not_numbers_are_left_out():
    plot = FakePlot({"x": "x", "y": "y"}, rows("workspace", [(0, "1.5"), (1, "n/a"), (2, None), (3, float("nan"))]))
    ((xs, ys),) = [(s.xs, s.ys) for s in plot_text.series_of(plot)]
    assert (xs, ys) == ([0], [1.5])


# --- confusion matrices -----------------------------------------------------------------------

PAIRS = [(0, 0)] * 6 + [(0, 1)] * 2 + [(1, 0)] * 3 + [(1, 1)] * 9


def confusion(pairs, rev="workspace"):
    return [{"actual": a, "predicted": p, "rev": rev, "filename": "c.json", "field": "actual"} for a, p in pairs]


def _cells(text: str) -> list[list[str]]:
    """Each matrix row's cells (the row's label left out), matrices side by side read across."""
    return [
        [cell.strip() for cell in line.split("│")[2:-1] if cell.strip()]
        for line in text.splitlines()
        if re.match(r"│\s+\d+ │", line)
    ]


def test_confusion_counts_per_revision():
    plot = FakePlot({"template": "confusion", "x": "predicted", "y": "actual"}, confusion(PAIRS))
    assert plot_text.confusion_counts(plot) == {
        "workspace": {("0", "0"): 6, ("0", "1"): 2, ("1", "0"): 3, ("1", "1"): 9}
    }
    text = plot_text.draw(plot, 80, color=False)
    assert "actual \\ predicted" in text
    assert _cells(text) == [["6", "2"], ["3", "9"]]


def test_confusion_normalized_shows_each_rows_fractions():
    plot = FakePlot({"template": "confusion_normalized", "x": "predicted", "y": "actual"}, confusion(PAIRS))
    text = plot_text.draw(plot, 80, color=False)
    assert _cells(text) == [["0.75", "0.25"], ["0.25", "0.75"]]


def test_confusion_of_two_revisions_side_by_side_with_a_missing_cell_as_zero():
    points = confusion(PAIRS, "workspace") + confusion([(0, 0), (1, 1), (1, 1)], "v1")
    plot = FakePlot({"template": "confusion", "x": "predicted", "y": "actual", "title": "CM"}, points)
    text = plot_text.draw(plot, 100, color=False)
    lines = text.splitlines()
    assert lines[0] == "CM"
    assert re.match(r"workspace\s+v1$", lines[1])  # each matrix headed by its revision, side by side
    # workspace: 6 2 / 3 9; v1: 1 0 / 0 2 (its (0, 1) and (1, 0) never occur: 0).
    matrices = [re.findall(r"│\s+\d+ │\s+(\d+) │\s+(\d+) │", line) for line in lines]
    assert [m for m in matrices if m] == [[("6", "2"), ("1", "0")], [("3", "9"), ("0", "2")]]


def test_confusion_cells_shaded_by_their_share():
    plot = FakePlot({"template": "confusion", "x": "predicted", "y": "actual"}, confusion(PAIRS))
    text = plot_text.draw(plot, 80, color=True)
    r, g, b = plot_text.PALETTE[0]
    assert f"48;2;{r};{g};{b}m" in text  # the largest count: the full colour, white ink
    assert "48;2;255;255;255m" not in text  # no count of 0 here: nothing blank


# --- bars -------------------------------------------------------------------------------------

BARS = [("alpha", 3.0), ("beta", 7.0), ("gamma", 1.5), ("delta", 5.0)]


def bars(template: str) -> FakePlot:
    points = [{"value": v, "name": n, "rev": "workspace", "filename": "b.json", "field": "name"} for n, v in BARS]
    return FakePlot({"template": template, "x": "value", "y": "name"}, points)


def _bar_order(text: str) -> list[str]:
    return [line.split("│")[0].strip() for line in text.splitlines() if "│" in line]


def test_bars_keep_the_files_order():
    text = plot_text.draw(bars("bar_horizontal"), 60, color=False)
    assert _bar_order(text) == ["alpha", "beta", "gamma", "delta"]


def test_sorted_bars_largest_first():
    text = plot_text.draw(bars("bar_horizontal_sorted"), 60, color=False)
    assert _bar_order(text) == ["beta", "delta", "alpha", "gamma"]
    lengths = {line.split("│")[0].strip(): line.count("█") for line in text.splitlines() if "│" in line}
    assert lengths["beta"] > lengths["delta"] > lengths["alpha"] > lengths["gamma"] > 0
    assert all(len(line) <= 60 for line in text.splitlines())


# --- categorical x ----------------------------------------------------------------------------


def test_categorical_x_is_drawn_with_its_labels():
    days = ["mon", "tue", "wed", "thu", "fri"]
    plot = FakePlot(
        {"x": "day", "y": "y", "title": "Week"}, rows("workspace", list(zip(days, [3, 1, 4, 1, 5])), x="day")
    )
    text = plot_text.draw(plot, 80, 14, color=False)
    axis = text.splitlines()[-2]  # the tick labels under the frame
    assert [label for label in days if label in axis] == days
    assert axis.index("mon") < axis.index("tue") < axis.index("fri")


def test_infinite_values_are_left_out_not_a_crash():
    """A diverged loss logs `inf` (JSON's Infinity, a CSV's "inf"): DVC reads it as a float;
    the terminal draws the finite points."""
    values = [(0, 1.0), (1, float("inf")), (2, "-inf"), (3, "nan"), ("inf", 4.0), (5, 2.0)]
    plot = FakePlot({"x": "x", "y": "y", "title": "Diverged"}, rows("workspace", values))
    ((xs, ys),) = [(s.xs, s.ys) for s in plot_text.series_of(plot)]
    assert (xs, ys) == ([0, 5], [1.0, 2.0])
    assert "Diverged" in plot_text.draw(plot, 60, 12, color=False)
    points = [{"value": v, "name": n, "rev": "workspace"} for n, v in [("a", 2.0), ("b", float("inf")), ("c", 1.0)]]
    text = plot_text.draw(FakePlot({"template": "bar_horizontal", "x": "value", "y": "name"}, points), 60, color=False)
    assert _bar_order(text) == ["a", "c"]


@pytest.mark.parametrize("template", ["confusion", "confusion_normalized"])
def test_a_ten_class_confusion_matrix_fits_80_columns(template):
    """MNIST's or CIFAR-10's matrix: cells tighten and the corner label is cut before a
    line would wrap in the terminal (a wrapped table can't be read)."""
    rng = random.Random(10)
    pairs = [(a, a if rng.random() < 0.7 else rng.randrange(10)) for a in range(10) for _ in range(100)]
    plot = FakePlot({"template": template, "x": "predicted", "y": "actual"}, confusion(pairs))
    text = plot_text.draw(plot, 80, color=True)
    assert max(plot_text._visible(line) for line in text.splitlines()) <= 80
    plain = plot_text.draw(plot, 80, color=False)
    cells = _cells(plain)
    assert len(cells) == 10 and all(len(row) == 10 for row in cells)
    counts = plot_text.confusion_counts(plot)["workspace"]
    if template == "confusion":
        assert cells[3] == [str(counts.get(("3", str(p)), 0)) for p in range(10)]
    else:
        total = sum(counts.get(("3", str(p)), 0) for p in range(10))
        assert cells[3] == [f"{counts.get(('3', str(p)), 0) / total:.2f}" for p in range(10)]
    assert re.search(r"\d │$", plain.splitlines()[5])  # numbers right-aligned against the rule
    narrow = plot_text.draw(plot, 40, color=False).splitlines()
    assert narrow[1] == "actual \\ predicted"  # the corner has no room: its label said above the table


def test_a_small_matrix_keeps_its_full_corner_label():
    plot = FakePlot({"template": "confusion", "x": "predicted", "y": "actual"}, confusion(PAIRS))
    assert "│ actual \\ predicted │" in plot_text.draw(plot, 80, color=False)
