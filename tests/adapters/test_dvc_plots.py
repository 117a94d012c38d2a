"""opsctl reads plots as DVC does: the fast read of dvc.yaml, the parser, the sources a plot
reads and the filled Vega-Lite specs equal what DVC's own code gives on a real Git + DVC
project, and a dvc.yaml the fast read can't resolve goes through DVC's index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from opsctl.adapters import dvc_compat, dvc_plots
from opsctl.core import plots as core_plots
from opsctl.core.project import Project
from tests.conftest import BIN, git_dvc_project, run
from tests.plots_project import DVC_YAML, PLOT_IDS, TEMPLATES, make_plots_project


@pytest.fixture(scope="module")
def project_root(tmp_path_factory) -> Path:
    return make_plots_project(tmp_path_factory.mktemp("plots") / "p")


@pytest.fixture(scope="module")
def dvc_shown(project_root):
    """DVC's own answer for the workspace: ``Repo.plots.show()`` and its renderers."""
    from dvc.render.match import match_defs_renderers
    from dvc.repo import Repo

    with Repo(str(project_root)) as repo:
        shown = repo.plots.show()
        renderers = match_defs_renderers(shown, templates_dir=repo.plots.templates_dir)
    return shown, {r.renderer.name: r for r in renderers}


def _spec(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


def _comparable(value):
    """``Repo.plots.show()``'s shape with each exception as its type and message (exceptions
    don't compare equal)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, Exception):
        return ("error", type(value).__name__)
    return value


def _dvc_show(root: Path, targets=None, revs=None) -> dict:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.plots.show(targets=targets, revs=revs)


# --- definitions ------------------------------------------------------------------------------


def test_fast_definitions_equal_dvcs(project_root, dvc_shown):
    shown, _ = dvc_shown
    doc = yaml.safe_load((project_root / "dvc.yaml").read_text())
    fast = dvc_plots.fast_definitions(doc, [])
    assert fast is not None
    assert fast == shown["workspace"]["definitions"]["data"]
    assert list(fast) == ["dvc.yaml", ""]  # top-level plots first, then stages' outputs, as DVC
    assert set(fast["dvc.yaml"]["data"]) == set(TEMPLATES) - {"linear"}
    declared = dict(DVC_YAML["stages"]["train"]["plots"][0]["plots/train.json"])
    assert declared.pop("cache") is False
    assert fast[""]["data"] == {"plots/train.json": declared}  # only plot properties, as DVC


@pytest.mark.parametrize(
    "targets",
    [["confusion"], ["plots/train.json"], ["dvc.yaml::simple"], ["scatter$", "bar"], ["plots/bars.json"]],
    ids=["prefix", "output", "full-id", "two", "a-data-file"],
)
def test_fast_definitions_match_targets_as_dvc(project_root, targets):
    """A target is a regular expression at the start of a plot id (or FILE::ID); a data file
    that no definition names is plotted as it is."""
    fast = core_plots.fast_definitions(Project(project_root), targets)
    assert fast is not None
    dvc = _dvc_show(project_root, targets)["workspace"]["definitions"]["data"]
    # DVC keeps a config file none of whose plots matched as an empty entry: no plots either way.
    assert fast == {config: content for config, content in dvc.items() if content}


def test_workspace_fast_read_equals_dvcs_show(project_root, dvc_shown):
    shown, _ = dvc_shown
    assert _comparable(core_plots.workspace(Project(project_root), [])) == _comparable(shown)


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_templates_spec_equals_dvcs(project_root, dvc_shown, template):
    """`Plot.vega_lite()` is what `dvc plots show --json` prints as the plot's content."""
    from dvc.render.convert import to_json

    _, renderers = dvc_shown
    plots = {plot.id: plot for plot in core_plots.load(Project(project_root)).plots}
    plot = plots[PLOT_IDS[template]]
    dvc = renderers[PLOT_IDS[template]]
    assert plot.template == template
    assert dvc.renderer.properties.get("template", "linear") == template
    assert not plot.errors and not dvc.source_errors and not dvc.definition_errors
    assert plot.datapoints and plot.revs == ["workspace"]
    assert _spec(plot.vega_lite()) == _spec(to_json(dvc.renderer)[0]["content"])


def test_a_projects_own_template_in_dvc_plots_gives_dvcs_spec(project_root, tmp_path):
    """A template file in .dvc/plots (as `dvc plots templates NAME` prints one) is used as DVC uses it."""
    from dvc.render.convert import to_json
    from dvc.render.match import match_defs_renderers
    from dvc.repo import Repo

    root = tmp_path / "p"
    shutil.copytree(project_root, root, symlinks=True)
    template = run([BIN / "dvc", "plots", "templates", "simple"], cwd=root).stdout
    (root / ".dvc" / "plots").mkdir()
    (root / ".dvc" / "plots" / "mine.json").write_text(template.replace('"anchor": "middle"', '"anchor": "start"'))
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    doc["plots"].append({"mine": {"template": "mine", "x": "step", "y": {"plots/train.json": "acc"}}})
    (root / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (plot,) = core_plots.load(Project(root), ["mine"]).plots
    with Repo(str(root)) as repo:
        (dvc,) = match_defs_renderers(repo.plots.show(targets=["mine"]), templates_dir=repo.plots.templates_dir)
    spec = plot.vega_lite()
    assert spec["title"]["anchor"] == "start"
    assert _spec(spec) == _spec(to_json(dvc.renderer)[0]["content"])


def test_plots_come_in_dvcs_order(project_root, dvc_shown):
    _, renderers = dvc_shown
    assert [p.id for p in core_plots.load(Project(project_root)).plots] == list(renderers)


# --- parsing ----------------------------------------------------------------------------------

PARSE_CASES = {
    "json": ("p.json", b'[{"x": 1, "y": 2.5}, {"x": 2, "y": 3}]', {}),
    "json-object": ("p.json", b'{"train": [{"x": 1}]}', {}),
    "yaml": ("p.yaml", b"- x: 1\n  y: two\n- x: 2\n  y: 3\n", {}),
    "yml": ("p.yml", b"x: [1, 2]\n", {}),
    "csv": ("p.csv", b"x,y\n1,2\n3,4\n", {}),
    "tsv": ("p.tsv", b"x\ty\n1\t2\n", {}),
    "csv-no-header": ("p.csv", b"1,2\n3,4\n", {"header": False}),
    "csv-crlf": ("p.csv", b'x,y\r\n1,"a\r\nb"\r\n', {}),
    "image": ("p.png", b"\x89PNG\r\n\x1a\n\x00\x00binary", {}),
    "svg-image": ("p.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", {}),
    "unknown-extension": ("p.txt", b"x,y\n1,2\n", {}),
    "upper-case-extension": ("p.JSON", b"[]", {}),
    "invalid-json": ("p.json", b'[{"x": 1,', {}),
    "invalid-yaml": ("p.yaml", b"x: [1, 2\n", {}),
    "empty-json": ("p.json", b"", {}),
    "json-null": ("p.json", b"null", {}),
    "empty-csv": ("p.csv", b"", {}),
    "not-utf8": ("p.csv", b"x,y\n\xff,1\n", {}),
}


@pytest.mark.parametrize("name", PARSE_CASES)
def test_plot_parse_equals_dvcs_parse(tmp_path, monkeypatch, name):
    from dvc.fs import LocalFileSystem
    from dvc.repo.plots import onerror_collect, parse

    path, data, props = PARSE_CASES[name]
    monkeypatch.chdir(tmp_path)
    Path(path).write_bytes(data)
    dvc = parse(LocalFileSystem(), path, props=props, onerror=onerror_collect)
    ours = dvc_compat.plot_parse(path, data, props)
    assert set(ours) == set(dvc)  # "data", "error", or neither (a file with nothing in it)
    assert ours.get("data") == dvc.get("data")
    if "error" in dvc and name in ("unknown-extension", "invalid-json", "invalid-yaml"):
        assert str(ours["error"]) == str(dvc["error"])


def test_plot_props_are_dvcs():
    from dvc.schema import PLOT_PROPS

    assert set(dvc_compat.PLOT_PROPS) == set(PLOT_PROPS)


@pytest.mark.parametrize(
    "plot_id, props",
    [
        ("plots/a.json", None),
        ("plots/a.json", {}),
        ("plots/a.json", {"x": "step", "y": "loss"}),
        ("acc", {"y": {"plots/a.json": "acc"}}),
        ("acc", {"y": {"plots/a.json": ["acc", "loss"], "plots/b.json": "acc"}}),
        ("acc", {"x": {"plots/c.json": "step"}, "y": {"plots/a.json": "acc"}}),
        ("acc", {"x": {"plots/a.json": "step"}, "y": {"plots/a.json": "acc", "plots/b.json": "acc"}}),
        ("acc", {"x": "step", "y": {"plots/b.json": "acc", "plots/a.json": "acc"}}),
    ],
)
def test_plot_data_sources_equal_dvcs(plot_id, props):
    from dvc.repo.plots import infer_data_sources

    assert dvc_compat.plot_data_sources(plot_id, props) == infer_data_sources(plot_id, props)


@pytest.mark.parametrize("targets", [[], ["conf"], ["confusion$"], ["dvc.yaml::"], ["plots/.*json"], ["x", "acc"]])
@pytest.mark.parametrize(
    "config_file, plot_id", [("dvc.yaml", "confusion"), ("", "plots/train.json"), ("dvc.yaml", "acc")]
)
def test_plot_matches_equal_dvcs(targets, config_file, plot_id):
    from dvc.repo.plots import _matches

    assert dvc_compat.plot_matches(targets, config_file, plot_id) == bool(_matches(targets, config_file, plot_id))


# --- what the fast read leaves to DVC ---------------------------------------------------------

FALLBACKS = {
    "foreach": {
        "stages": {
            "train": {
                "foreach": ["train"],
                "do": {"cmd": "true", "plots": [{"plots/${item}.json": {"cache": False, "x": "step", "y": "loss"}}]},
            }
        }
    },
    "interpolation": {
        "vars": [{"curve": "train"}],
        "stages": {"train": {"cmd": "true", "plots": [{"plots/${curve}.json": {"cache": False, "x": "step"}}]}},
    },
    "wdir": {
        "stages": {"train": {"cmd": "true", "wdir": "plots", "plots": [{"train.json": {"cache": False, "y": "acc"}}]}}
    },
}


@pytest.mark.parametrize("shape", FALLBACKS)
def test_what_only_dvcs_index_resolves_goes_through_dvc(project_root, tmp_path, shape):
    root = tmp_path / "p"
    shutil.copytree(project_root, root, symlinks=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump(FALLBACKS[shape], sort_keys=False))
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    assert dvc_plots.fast_definitions(doc, []) is None
    project = Project(root)
    assert core_plots.fast_definitions(project, []) is None
    ours = core_plots.workspace(project, [])
    dvc = _dvc_show(root)
    assert _comparable(ours) == _comparable(dvc)
    assert list(ours["workspace"]["definitions"]["data"][""]["data"]) == ["plots/train.json"]
    (plot,) = core_plots.load(project).plots
    assert plot.id == "plots/train.json" and plot.datapoints and not plot.errors


def test_a_nested_dvc_yaml_goes_through_dvc(project_root, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(project_root, root, symlinks=True)
    (root / "sub").mkdir()
    (root / "sub" / "curve.json").write_text(json.dumps([{"step": 0, "acc": 0.5}, {"step": 1, "acc": 0.75}]))
    (root / "sub" / "dvc.yaml").write_text(yaml.safe_dump({"plots": [{"curve.json": {"x": "step", "y": "acc"}}]}))
    project = Project(root)
    assert core_plots.fast_definitions(project, []) is None
    ours = core_plots.workspace(project, [])
    assert _comparable(ours) == _comparable(_dvc_show(root))
    assert "sub/dvc.yaml" in ours["workspace"]["definitions"]["data"]
    plots = {plot.id: plot for plot in core_plots.load(project).plots}
    assert [p["acc"] for p in plots["sub/curve.json"].datapoints] == [0.5, 0.75]


# --- overlays ---------------------------------------------------------------------------------


def test_overlay_of_a_tag_and_the_workspace_equals_dvc_plots_diff(project_root):
    plot_set = core_plots.load(Project(project_root), revs=["v1", "workspace"])
    assert plot_set.sources == ["workspace", "v1"]
    assert not plot_set.errors
    diff = json.loads(run([BIN / "dvc", "plots", "diff", "v1", "--json"], cwd=project_root).stdout)
    assert [p.id for p in plot_set.plots] == list(diff["data"])
    for plot in plot_set.plots:
        (dvc,) = diff["data"][plot.id]
        assert {p["rev"] for p in plot.datapoints} == {"v1", "workspace"}, plot.id
        assert plot.revs == dvc["revisions"] == ["workspace", "v1"]
        assert _spec(plot.vega_lite()) == _spec(dvc["content"]), plot.id
    # The data really differs between the two: the overlay is not one series twice.
    (train,) = [p for p in plot_set.plots if p.id == "plots/train.json"]
    first = {p["rev"]: p["loss"] for p in train.datapoints if p["step"] == 0}
    assert first == {"workspace": 1.0, "v1": 2.0}


def test_a_cached_plot_missing_from_the_workspace_is_read_from_the_cache(tmp_path):
    """As `dvc plots show`: a stage's plot output tracked by dvc.lock and gone from the
    workspace is read from the DVC cache, not reported missing."""
    root = git_dvc_project(tmp_path / "cached")
    (root / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "gen": {
                        "cmd": "python -c \"import json; json.dump([{'x': i, 'y': i * i} for i in range(5)],"
                        " open('sq.json', 'w'))\"",
                        "plots": [{"sq.json": {"x": "x", "y": "y"}}],
                    }
                }
            }
        )
    )
    run([BIN / "dvc", "repro", "-q"], cwd=root)
    (root / "sq.json").unlink()
    (plot,) = core_plots.load(Project(root)).plots
    assert not plot.errors
    assert [p["y"] for p in plot.datapoints] == [0, 1, 4, 9, 16]
    # Gone from the cache too: one error naming the file.
    shutil.rmtree(root / ".dvc" / "cache")
    (plot,) = core_plots.load(Project(root)).plots
    assert plot.errors == [("workspace", "sq.json", "not found")] and not plot.datapoints


def test_an_empty_plot_file_is_there_with_no_data():
    """An empty file is neither missing nor an error (DVC: no data, no error)."""
    definitions = {"": {"data": {"plots/empty.csv": {}}}}
    (plot,) = dvc_plots.match(dvc_plots.revision("workspace", definitions, {"plots/empty.csv": b""}), None)
    assert not plot.errors and not plot.datapoints and not plot.sources
    (plot,) = dvc_plots.match(dvc_plots.revision("workspace", definitions, {}), None)
    assert plot.errors == [("workspace", "plots/empty.csv", "not recorded")]
