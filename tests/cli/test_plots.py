"""`opsctl plots show` as a user runs it (a fresh process, no terminal, 80 columns): each of
DVC's templates drawn in the terminal (snapshots in plots_snapshots/), the --json data and
spec, SVG files with the marks their data calls for, a self-contained HTML page, and the
errors a user can meet.

Snapshots: `OPSCTL_UPDATE_SNAPSHOTS=1 pytest tests/cli/test_plots.py` rewrites them; read
the diff before committing it."""

from __future__ import annotations

import math
import os
import re
import resource
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import yaml

from opsctl.adapters import dvc_plots
from opsctl.core import plot_text
from opsctl.core import plots as core_plots
from opsctl.core.project import Project
from tests.conftest import PYTHON, git_dvc_project, run_opsctl
from tests.plots_project import BARS, FILES, PLOT_IDS, TARGETS, TEMPLATES, TITLES, file_content, make_plots_project

SNAPSHOTS = Path(__file__).parent / "plots_snapshots"
WIDTH = 80
# A terminal 80 columns wide and 24 lines high; stdout is a pipe, so no colour and no images.
TERMINAL = {"COLUMNS": str(WIDTH), "LINES": "24", "TERM": "xterm-256color"}


def plots(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run_opsctl("plots", "show", *args, cwd=cwd, env=TERMINAL, **kw)


def check_snapshot(name: str, text: str) -> None:
    """``text`` equals ``plots_snapshots/NAME.txt`` (written instead when OPSCTL_UPDATE_SNAPSHOTS=1)."""
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("OPSCTL_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no snapshot {path}: run with OPSCTL_UPDATE_SNAPSHOTS=1 and check it by eye"
    assert text == path.read_text(encoding="utf-8"), f"{name} drawn differently from {path}"


@pytest.fixture(scope="module")
def project_root(tmp_path_factory) -> Path:
    return make_plots_project(tmp_path_factory.mktemp("plots") / "p")


@pytest.fixture
def scratch(project_root, tmp_path) -> Path:
    """A copy of the project a test may change."""
    root = tmp_path / "p"
    shutil.copytree(project_root, root, symlinks=True)
    return root


# --- the terminal -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn(project_root) -> dict[str, str]:
    """`opsctl plots show`: every plot, each followed by a blank line, by its template."""
    result = plots(cwd=project_root)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout  # no colour off a terminal
    blocks = result.stdout.rstrip("\n").split("\n\n")
    by_title = {block.splitlines()[0].strip(): block + "\n" for block in blocks}
    assert len(by_title) == len(blocks) == len(TEMPLATES)
    return {template: by_title[TITLES[template]] for template in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_drawn_at_80_columns(drawn, template):
    lines = drawn[template].splitlines()
    assert len(lines) > 5 and all(len(line) <= WIDTH for line in lines)
    check_snapshot(template, drawn[template])


def test_confusion_counts_and_fractions_in_the_terminal(drawn):
    """The workspace's matrix (rows: actual 0, 1, 2; columns: predicted 0, 1, 2)."""
    rows = [line for line in drawn["confusion"].splitlines() if re.match(r"│\s+\d │", line)]
    assert [re.findall(r"\d+", row)[1:] for row in rows] == [["5", "2", "0"], ["1", "4", "0"], ["1", "0", "4"]]
    rows = [line for line in drawn["confusion_normalized"].splitlines() if re.match(r"│\s+\d │", line)]
    assert [re.findall(r"\d\.\d\d", row) for row in rows] == [
        ["0.71", "0.29", "0.00"],
        ["0.20", "0.80", "0.00"],
        ["0.20", "0.00", "0.80"],
    ]


def test_sorted_bars_largest_first(drawn):
    def order(text: str) -> list[str]:
        return [line.split("│")[0].strip() for line in text.splitlines() if "│" in line]

    names = [name for name, _ in BARS]
    assert order(drawn["bar_horizontal"]) == names
    assert order(drawn["bar_horizontal_sorted"]) == [n for n, _ in sorted(BARS, key=lambda b: -b[1])]


def test_an_overlay_names_each_revision_in_the_legend(project_root):
    result = plots(TARGETS["linear"], "--rev", "v1", "--rev", "workspace", cwd=project_root)
    assert result.returncode == 0, result.stderr
    legend = [line for line in result.stdout.splitlines() if re.search(r"(workspace|v1)\s*│?$", line)]
    assert [re.search(r"(workspace|v1)", line).group(1) for line in legend] == ["workspace", "v1"]


# --- --json -----------------------------------------------------------------------------------


def test_json_gives_each_plots_data_as_in_its_file_and_dvcs_spec(project_root):
    import json

    result = plots("--json", cwd=project_root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sources"] == ["workspace"] and report["errors"] == []
    by_id = {plot["id"]: plot for plot in report["plots"]}
    assert set(by_id) == set(PLOT_IDS.values())
    for template, plot_id in PLOT_IDS.items():
        plot = by_id[plot_id]
        assert plot["type"] == "vega" and plot["template"] == template and plot["revisions"] == ["workspace"]
        (files,) = plot["data"].values()
        assert files and all(path in FILES for path in files)
        for path, content in files.items():
            assert content == file_content(project_root, path), (plot_id, path)
        assert isinstance(plot["spec"], dict)
        assert plot["spec"]["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"


# --- --svg ------------------------------------------------------------------------------------


def marks(svg: str) -> list[tuple[str, str, int]]:
    """Vega's mark groups, ``<g class="mark-TYPE role-mark NAME">``, outside axes, legends and
    titles: (type, name, number of items drawn), in document order."""
    found = []

    def walk(element: ET.Element, inside_guide: bool) -> None:
        classes = element.get("class", "").split()
        inside_guide = inside_guide or any(c in classes for c in ("role-axis", "role-legend", "role-title"))
        if not inside_guide and "role-mark" in classes:
            kind = next(c[len("mark-") :] for c in classes if c.startswith("mark-"))
            name = next((c for c in classes if not c.startswith(("mark-", "role-"))), "")
            found.append((kind, name, len(element)))
        for child in element:
            walk(child, inside_guide)

    walk(ET.fromstring(svg), False)
    return found


@pytest.fixture(scope="module")
def svgs(project_root, tmp_path_factory) -> dict[str, str]:
    """Every plot as SVG, the tag v1 overlaid on the workspace."""
    out = tmp_path_factory.mktemp("svg") / "out"
    result = plots("--rev", "v1", "--rev", "workspace", "--svg", str(out), cwd=project_root)
    assert result.returncode == 0, result.stderr
    return {path.stem: path.read_text() for path in out.iterdir()}


def test_one_valid_svg_per_plot(svgs):
    assert set(svgs) == {core_plots.file_name(plot_id) for plot_id in PLOT_IDS.values()}
    for svg in svgs.values():
        assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"


def test_svg_marks_match_the_data(svgs):
    revisions = 2
    # scatter: one symbol per point of each revision (v1 has 12 points, the workspace 15).
    for template in ("scatter", "scatter_jitter"):
        assert [(kind, n) for kind, _, n in marks(svgs[template])] == [("symbol", 12 + 15)]
    # confusion: per revision one rect per (actual, predicted) cell — the template imputes a
    # count of 0 for the pairs that never occur, so the 3 x 3 grid is whole.
    for template in ("confusion", "confusion_normalized"):
        cells = [n for kind, name, n in marks(svgs[template]) if kind == "rect" and name == "child_layer_0_marks"]
        assert cells == [3 * 3] * revisions
        assert Counter(kind for kind, _, _ in marks(svgs[template]))["text"] == revisions
    # bars: one rect per bar and revision.
    for template in ("bar_horizontal", "bar_horizontal_sorted"):
        assert [(kind, n) for kind, _, n in marks(svgs[template])] == [("rect", len(BARS) * revisions)]
    # lines: one per revision (and per field for smooth's two), in each layer that draws lines.
    expected = {"simple": revisions, "linear": revisions, "smooth": 2 * revisions}
    for template, series in expected.items():
        layers = Counter(
            name for kind, name, n in marks(svgs[core_plots.file_name(PLOT_IDS[template])]) if kind == "line"
        )
        assert layers and set(layers.values()) == {series}, (template, layers)
        assert all(n == 1 for kind, _, n in marks(svgs[core_plots.file_name(PLOT_IDS[template])]) if kind == "line")


# --- --html -----------------------------------------------------------------------------------


def test_html_is_one_self_contained_page(project_root, tmp_path):
    page = tmp_path / "plots.html"
    result = plots("--html", str(page), cwd=project_root)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["plots.html"]
    html = page.read_text()
    assert "<script src" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    assert not re.search(r"cdn|jsdelivr|unpkg", html, flags=re.I)
    assert html.count("vegaEmbed(") == len(TEMPLATES)
    assert "window.vegaEmbed" in html  # the bundle itself is inline


# --- image plots (drawn inline only on a terminal: not here) -----------------------------------


def _png(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_an_image_plot_in_json_svg_and_html(scratch, tmp_path):
    import base64
    import json

    image = _png(4, 3)
    (scratch / "plots" / "roc.png").write_bytes(image)
    doc = yaml.safe_load((scratch / "dvc.yaml").read_text())
    doc["plots"].append("plots/roc.png")
    (scratch / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    report = json.loads(plots("plots/roc", "--json", cwd=scratch).stdout)
    assert report["plots"] == [
        {"id": "plots/roc.png", "type": "image", "revisions": ["workspace"], "files": {"workspace": ["plots/roc.png"]}}
    ]
    result = plots("plots/roc", "--svg", str(tmp_path / "svg"), cwd=scratch)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "svg").iterdir()] == ["workspace_plots_roc.png"]
    assert (tmp_path / "svg" / "workspace_plots_roc.png").read_bytes() == image  # the image as it is
    result = plots("plots/roc", "--html", str(tmp_path / "page.html"), cwd=scratch)
    assert result.returncode == 0, result.stderr
    assert f'src="data:image/png;base64,{base64.b64encode(image).decode()}"' in (tmp_path / "page.html").read_text()


# --- errors -----------------------------------------------------------------------------------


def test_a_plot_file_missing_from_the_workspace_and_the_cache(scratch):
    (scratch / "plots" / "bars.json").unlink()
    result = plots(TARGETS["bar_horizontal"], cwd=scratch)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert "plots/bars.json" in line and "not found" in line


def test_a_plot_with_an_empty_file_says_it_has_no_data(scratch):
    doc = yaml.safe_load((scratch / "dvc.yaml").read_text())
    doc["plots"].append({"empty": {"x": "x", "y": {"plots/empty.csv": "y"}}})
    (scratch / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (scratch / "plots" / "empty.csv").write_text("")
    result = plots("empty", cwd=scratch)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["warning: empty: no data to draw"]


def test_a_dvc_yaml_dvc_rejects_is_an_error_not_no_plots(scratch):
    (scratch / "dvc.yaml").write_text("plots: not-a-list\n")
    result = plots(cwd=scratch)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: workspace: './dvc.yaml' validation failed: expected a list for dictionary value @ data['plots']"
    ]


def test_an_unknown_template_is_an_error_naming_the_plot(scratch):
    doc = yaml.safe_load((scratch / "dvc.yaml").read_text())
    doc["plots"][0]["simple"]["template"] = "nosuchtemplate"
    (scratch / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = plots(cwd=scratch)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: plot simple: template 'nosuchtemplate' not found (DVC's: simple, linear, confusion,")
    assert line.endswith("or a .json file in .dvc/plots)")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["nosuchplot"], 2, "error: no plot matches nosuchplot"),
        (
            ["plots/[a"],
            2,
            "error: TARGET 'plots/[a' is not a regular expression: unterminated character set at position 6",
        ),
        (["--html", "x.html", "--svg", "d"], 2, "error: give --html FILE or --svg DIR, not both"),
        (["--rev", "nosuchrev"], 2, "error: no Git revision 'nosuchrev' in this project"),
    ],
    ids=["no-match", "bad-regex", "html-and-svg", "no-such-rev"],
)
def test_usage_errors(project_root, args, code, message):
    result = plots(*args, cwd=project_root)
    assert result.returncode == code
    assert result.stderr.splitlines()[0] == message
    assert "Traceback" not in result.stderr
    assert not (project_root / "x.html").exists() and not (project_root / "d").exists()


def test_outside_a_project(tmp_path):
    result = plots(cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith("error: not an opsctl project")


def test_a_plot_file_too_large_is_refused_without_reading_it(scratch):
    """An 8 GiB (sparse) file, with the process's memory capped at 3 GiB: refused by its size."""
    path = scratch / "plots" / "bars.json"
    with open(path, "r+b") as f:
        f.truncate(8 << 30)
    assert path.stat().st_size > dvc_plots.MAX_PLOT_FILE_BYTES

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    def show(*targets: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-m", "opsctl", "plots", "show", *targets],
            cwd=scratch,
            env={**os.environ, **TERMINAL},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            preexec_fn=cap_memory,
        )

    too_large = "plots/bars.json: 8,589,934,592 bytes, over the 64 MiB a plot file may have"
    result = show(TARGETS["bar_horizontal"])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"warning: {too_large} (in the workspace)"]
    # With another file missing too, the read is not handed to DVC (which would read it whole).
    (scratch / "plots" / "points.csv").unlink()
    result = show(TARGETS["bar_horizontal"], TARGETS["scatter"])
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "warning: plots/points.csv: not found (in the workspace)",
        f"warning: {too_large} (in the workspace)",
    ]


# --- 100,000 points ---------------------------------------------------------------------------

BIG = 100_000


@pytest.fixture(scope="module")
def big_root(tmp_path_factory) -> Path:
    root = git_dvc_project(tmp_path_factory.mktemp("big") / "p")
    rows = "".join(f"{i},{math.sin(i / 500) + (i % 7) / 10:.4f}\n" for i in range(BIG))
    (root / "big.csv").write_text("i,v\n" + rows)
    plot = {"big": {"template": "simple", "x": "i", "y": {"big.csv": "v"}, "title": "A hundred thousand"}}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"plots": [plot]}))
    return root


def test_a_hundred_thousand_points_are_thinned_for_the_terminal(big_root):
    result = plots(cwd=big_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "A hundred thousand" in lines[0] and all(len(line) <= WIDTH for line in lines)
    assert sum(ch >= "\u2801" and ch <= "\u28ff" for ch in result.stdout) > WIDTH  # a braille line was drawn
    (plot,) = core_plots.load(Project(big_root)).plots
    (series,) = plot_text.series_of(plot)
    assert len(series.xs) == BIG
    xs, ys = plot_text.thin([float(x) for x in series.xs], series.ys, WIDTH)
    assert len(xs) <= 4 * WIDTH
    assert min(ys) == min(series.ys) and max(ys) == max(series.ys)


def test_a_hundred_thousand_points_all_in_the_svg(big_root, tmp_path):
    result = plots("--svg", str(tmp_path / "svg"), cwd=big_root)
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "svg" / "big.svg").read_text()
    assert marks(svg) == [("line", "marks", 1)]
    (path,) = [
        el
        for el in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}path")
        if "line mark" in el.get("aria-roledescription", "")
    ]
    assert len(re.findall(r"[ML]", path.get("d"))) == BIG  # one vertex per point


# Runs' plots, drawn after the workspace moved on: tests/e2e/test_plots_runs.py.
