"""core/drift_report.py: the Markdown and HTML renderings of a drift report (the verdict,
drifted columns first, escaping of what comes from the data, the collapsible long table, one
SVG chart per column with bars as tall as the shares, nothing fetched) and its sparklines."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsctl.core import drift, drift_data
from opsctl.core.drift_report import MAX_MD_ROWS, PLOT_HEIGHT, html, markdown, sparkline

HOSTILE = "<script>alert(1)</script>"


def column(name, *, drift=False, method="ks", statistic=0.2, p_value=0.01, threshold=0.05, **extra):
    row = {
        "column": name,
        "kind": "numeric",
        "method": method,
        "statistic": statistic,
        "p_value": p_value,
        "threshold": threshold,
        "drift": drift,
        "compared": True,
        "detail": None,
        "histogram": {
            "bins": ["0", "1", "2", "3"],
            "edges": [0.0, 1.0, 2.0, 3.0, 4.0],
            "reference": [0.1, 0.4, 0.4, 0.1],
            "current": [0.0, 0.2, 0.5, 0.3],
        },
    }
    row.update(extra)
    return row


def report(columns, *, threshold_share=0.5, **extra):
    compared = [c for c in columns if c["compared"]]
    share = sum(c["drift"] for c in compared) / len(compared) if compared else 0.0
    data = {
        "drift": bool(compared) and share >= threshold_share,
        "share": share,
        "threshold_share": threshold_share,
        "reference": "data/ref.csv",
        "current": "data/cur.csv",
        "reference_rows": 1200,
        "current_rows": 800,
        "reference_hash": "0123456789abcdef0123456789abcdef",
        "current_hash": "fedcba9876543210fedcba9876543210",
        "columns": columns,
    }
    data.update(extra)
    return data


def not_compared(name, detail="no values on either side (all null)"):
    return {
        "column": name,
        "kind": "categorical",
        "method": None,
        "statistic": None,
        "p_value": None,
        "threshold": None,
        "drift": False,
        "compared": False,
        "detail": detail,
        "histogram": None,
    }


def type_mismatch(name):
    return column(
        name,
        drift=True,
        kind="mixed",
        method="type",
        statistic=None,
        p_value=None,
        threshold=None,
        detail="numbers in the reference, text in the current data",
        histogram=None,
    )


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Column")]


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, split as GFM does: on pipes not escaped with a backslash."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


class Tags(HTMLParser):
    """Every start tag (name, attributes) and the text inside each <title>."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.titles: list[str] = []
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"
        if self._in_title:
            self.titles.append("")

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.titles[-1] += data

    def named(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


# -- the verdict ------------------------------------------------------------------------------


def test_headline_says_drift_detected_with_counts_and_share():
    columns = [column("a", drift=True), column("b", drift=True), column("c", drift=True), column("d"), column("e")]
    md, page = markdown(report(columns)), html(report(columns))
    assert md.splitlines()[0] == "**Drift detected**: 3 of 5 columns drifted (60% ≥ 50%)"
    assert "<strong>Drift detected</strong>: 3 of 5 columns drifted (60% ≥ 50%)" in page
    assert 'class="verdict drift"' in page


def test_headline_says_no_drift_below_the_share():
    columns = [column("a", drift=True), column("b"), column("c"), column("d"), column("e")]
    md, page = markdown(report(columns)), html(report(columns))
    assert md.splitlines()[0] == "**No drift**: 1 of 5 columns drifted (20% < 50%)"
    assert "<strong>No drift</strong>: 1 of 5 columns drifted (20% &lt; 50%)" in page
    assert 'class="verdict ok"' in page


def test_headline_does_not_round_a_share_onto_the_threshold():
    columns = [column("a", drift=True), column("b"), column("c")]
    assert "(33.3% < 40%)" in markdown(report(columns, threshold_share=0.4)).splitlines()[0]


def test_headline_when_no_column_was_compared():
    md = markdown(report([not_compared("empty")]))
    assert md.splitlines()[0] == "**No drift**: no column could be compared"
    assert "| Column |" not in md  # no empty table


def test_both_datasets_with_row_counts_and_short_hashes():
    md = markdown(report([column("a")]))
    assert "- Reference: data/ref.csv (1,200 rows, md5 01234567)" in md
    assert "- Current: data/cur.csv (800 rows, md5 fedcba98)" in md
    assert "0123456789abcdef0123" not in md
    page = html(report([column("a")], current_hash=""))
    assert "<strong>data/ref.csv</strong> (1,200 rows, md5 01234567)" in page
    assert "<strong>data/cur.csv</strong> (800 rows)" in page


# -- the table --------------------------------------------------------------------------------


def test_drifted_columns_come_first_in_both_formats():
    columns = [column("calm1"), column("moved1", drift=True), column("calm2"), column("moved2", drift=True)]
    rows = table_rows(markdown(report(columns)))
    assert [cells(r)[0] for r in rows] == ["moved1", "moved2", "calm1", "calm2"]
    assert [cells(r)[5] for r in rows] == ["✗ yes", "✗ yes", "✓ no", "✓ no"]
    page = html(report(columns))
    table = page.split("<tbody>")[1].split("</tbody>")[0]
    assert re.findall(r'<a href="#column-\d">(\w+)</a>', table) == ["moved1", "moved2", "calm1", "calm2"]
    assert table.count('<tr class="drift">') == 2
    sections = re.findall(r'<section id="column-\d" class="column (\w+)">\n<h2>(\w+)', page)
    assert sections == [("drift", "moved1"), ("drift", "moved2"), ("ok", "calm1"), ("ok", "calm2")]


def test_a_distance_has_no_p_value_and_its_threshold_reads_as_a_minimum():
    distance = column("far", drift=True, method="wasserstein", statistic=0.31, p_value=None, threshold=0.1)
    test = column("near", method="ks", statistic=0.04, p_value=0.5, threshold=0.05)
    rows = table_rows(markdown(report([distance, test])))
    assert cells(rows[0])[:6] == ["far", "wasserstein", "0.31", "—", "≥ 0.1", "✗ yes"]
    assert cells(rows[1])[:6] == ["near", "ks", "0.04", "0.5", "p < 0.05", "✓ no"]
    page = html(report([distance, test]))
    assert '<td>wasserstein</td><td class="num">0.31</td><td class="num">—</td><td>≥ 0.1</td>' in page
    assert '<td class="num">0.5</td><td>p &lt; 0.05</td>' in page


def test_the_markdown_row_draws_both_distributions_on_one_scale():
    row = table_rows(markdown(report([column("a")])))[0]
    # reference 0.1 0.4 0.4 0.1 and current 0 0.2 0.5 0.3, both scaled to 0.5
    assert cells(row)[6] == "`ref ▂▇▇▂ / cur ▁▄█▅`"


def test_not_compared_and_type_mismatch_columns_render():
    columns = [column("a"), type_mismatch("mixed_up"), not_compared("nothing"), not_compared("ids", "over 10,000")]
    md = markdown(report(columns))
    rows = table_rows(md)
    assert cells(rows[0]) == [
        "mixed\\_up",
        "type",
        "—",
        "—",
        "—",
        "✗ yes",
        "numbers in the reference, text in the current data",
    ]
    assert "Not compared:\n- nothing: no values on either side (all null)\n- ids: over 10,000\n" in md
    assert "nothing" not in "".join(rows)
    page = html(report(columns))
    assert "<li><strong>nothing</strong>: no values on either side (all null)</li>" in page
    assert "<h2>mixed_up — drifted</h2>" in page
    assert "<p>numbers in the reference, text in the current data</p>" in page
    assert len(Tags(page).named("svg")) == 1  # only "a" has distributions to draw


def test_a_long_markdown_table_is_collapsed_but_names_what_drifted():
    columns = [column(f"c{i}", drift=i < 3) for i in range(21)]
    md = markdown(report(columns))
    assert "<details><summary>21 columns compared</summary>" in md
    assert md.index("<details>") < md.index("| Column |") < md.index("</details>")
    assert "Drifted: c0, c1, c2" in md
    assert len(table_rows(md)) == 21
    short = markdown(report(columns[:20]))
    assert "<details>" not in short and "Drifted:" not in short and len(table_rows(short)) == 20


def test_a_very_long_markdown_table_is_cut_and_says_how_much():
    columns = [column(f"c{i}") for i in range(MAX_MD_ROWS + 7)]
    md = markdown(report(columns))
    assert len(table_rows(md)) == MAX_MD_ROWS
    assert "… and 7 more columns (see `--json` or `--html`)." in md


# -- escaping ---------------------------------------------------------------------------------


def test_markdown_escapes_a_hostile_column_name():
    nasty = f"a|b\n| x | y |\r{HOSTILE} **bold** [link](javascript:x)"
    columns = [column(nasty, drift=True), not_compared(f"gone|{HOSTILE}", detail=f"why\n|{HOSTILE}")]
    md = markdown(report(columns, reference=f"ref|{HOSTILE}.csv", current_hash="<b>|\n"))
    assert "<script" not in md
    assert "&lt;script&gt;" in md
    rows = table_rows(md)
    assert len(rows) == 1  # the newlines did not start rows of their own
    assert len(cells(rows[0])) == 7  # the pipes did not add cells
    name = cells(rows[0])[0]
    assert "\\*\\*bold\\*\\*" in name and "\\[link\\]" in name
    assert "\n" not in name
    assert "- Reference: ref\\|&lt;script&gt;" in md
    assert "- Current: data/cur.csv (800 rows, md5 &lt;b&gt;\\|)" in md
    assert "- gone\\|&lt;script&gt;alert(1)&lt;/script&gt;: why \\|&lt;script&gt;" in md


def test_html_escapes_everything_from_the_data():
    hostile = column(
        HOSTILE,
        drift=True,
        histogram={"bins": [HOSTILE, '"><img src=x onerror=alert(2)>'], "reference": [0.5, 0.5], "current": [1, 0]},
    )
    columns = [hostile, type_mismatch(HOSTILE), not_compared(HOSTILE, detail=HOSTILE)]
    page = html(report(columns, reference=HOSTILE, current=HOSTILE))
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"{HOSTILE}: reference and current share of rows over 2 categories" in Tags(page).titles
    scripts = [name for name, _attrs in Tags(page).tags if name in ("script", "img", "iframe", "object")]
    assert scripts == []


# -- HTML charts ------------------------------------------------------------------------------


def test_one_chart_per_compared_column_with_an_accessible_title():
    columns = [column("a", drift=True), column("b"), type_mismatch("c"), not_compared("d")]
    page = html(report(columns))
    tags = Tags(page)
    charts = tags.named("svg")
    assert len(charts) == 2
    assert all(svg["role"] == "img" for svg in charts)
    titles = {t["id"] for t in tags.named("title") if "id" in t}
    assert {svg["aria-labelledby"] for svg in charts} == titles
    assert "a: reference and current share of rows over 4 bins" in tags.titles
    assert "1 to 2: reference 40.0%, current 20.0%" in tags.titles  # a bar's tooltip: its bin and both shares
    assert len(tags.named("rect")) == 2 * 2 * 4  # two charts, two bars for each of 4 bins


def test_bar_heights_follow_the_shares_on_one_scale():
    shares_ref, shares_cur = [0.1, 0.4, 0.3, 0.2], [0.05, 0.15, 0.2, 0.6]
    picture = {"bins": ["x", "y", "z", "w"], "reference": shares_ref, "current": shares_cur}
    rects = Tags(html(report([column("a", histogram=picture)]))).named("rect")
    heights = {cls: [float(r["height"]) for r in rects if r["class"] == cls] for cls in ("ref", "cur")}
    tallest = max(heights["ref"] + heights["cur"])
    assert heights["cur"][3] == tallest == PLOT_HEIGHT  # the largest share of either side fills the plot
    for cls, shares in (("ref", shares_ref), ("cur", shares_cur)):
        assert [h / tallest for h in heights[cls]] == pytest.approx([s / 0.6 for s in shares], abs=1e-3)
    # bars stand on one baseline
    assert len({float(r["y"]) + float(r["height"]) for r in rects}) == 1
    texts = re.findall(r'text-anchor="middle">([^<]*)</text>', html(report([column("a", histogram=picture)])))
    assert texts == ["x", "y", "z", "w"]


def test_the_html_is_one_self_contained_file():
    page = html(report([column("a", drift=True), type_mismatch("b"), not_compared("c")]))
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    tags = Tags(page)
    assert [name for name, _a in tags.tags if name in ("script", "link", "img", "iframe")] == []
    assert not any("src" in attrs for _name, attrs in tags.tags)
    assert len(tags.named("style")) == 1
    csp = [m for m in tags.named("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


# -- sparklines -------------------------------------------------------------------------------


def test_sparkline_scales_to_the_largest_share():
    assert sparkline([0.0, 0.25, 0.5, 1.0]) == "▁▃▅█"
    assert sparkline([0.1, 0.2]) == "▅█"
    assert sparkline([]) == ""
    assert sparkline([0.0, 0.0]) == "▁▁"


def test_sparkline_shows_a_small_share_apart_from_an_empty_bin():
    assert sparkline([0.0, 0.001, 1.0]) == "▁▂█"


def test_sparkline_pair_on_a_common_scale():
    assert sparkline([0.1, 0.2], top=0.4) == "▃▅"
    assert sparkline([0.4, 0.2], top=0.4) == "█▅"


# -- a real report ----------------------------------------------------------------------------


def test_a_real_comparison_renders_in_both_formats(tmp_path: Path):
    rng = np.random.default_rng(13)
    n = 400
    pd.DataFrame({"age": rng.normal(40, 10, n), "city": rng.choice(["a", "b", "c"], n), "gone": [None] * n}).to_csv(
        tmp_path / "ref.csv", index=False
    )
    pd.DataFrame({"age": rng.normal(48, 10, n), "city": rng.choice(["a", "b", "d"], n), "gone": [None] * n}).to_csv(
        tmp_path / "cur.csv", index=False
    )
    result = drift.compare_datasets(
        drift_data.read_dataset(tmp_path, "ref.csv"), drift_data.read_dataset(tmp_path, "cur.csv")
    ).to_json()
    md = markdown(result)
    assert md.startswith("**Drift detected**: 2 of 2 columns drifted (100% ≥ 50%)")
    assert [cells(r)[:2] for r in table_rows(md)] == [["age", "ks"], ["city", "chi2"]]
    assert "- gone: no values on either side (all null)" in md
    page = html(result)
    assert len(Tags(page).named("svg")) == 2
    assert len(Tags(page).named("rect")) == 2 * len(result["columns"][0]["histogram"]["bins"]) + 2 * 4
