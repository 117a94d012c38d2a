"""`opsctl report` on a real Git + DVC project whose two commits change a param, a dataset and
a metric: the Markdown holds exactly those changes with the right deltas (parsed from its
tables), the JSON validates against opsctl/assets/report.schema.json, and every --fail-on form
passes and fails on the right side of its threshold."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import git_dvc_project, opsctl_inprocess, run
from tests.forge_server import GITHUB_TOKEN, FakeForge

SCHEMA = Path(__file__).resolve().parents[2] / "opsctl" / "assets" / "report.schema.json"

TRAIN = """\
import csv, json, yaml
threshold = yaml.safe_load(open("params.yaml"))["train"]["threshold"]
xs = [int(r["x"]) for r in csv.DictReader(open("data/raw.csv"))]
hits = sum(x >= threshold * 100 for x in xs)
open("model.txt", "w").write(f"threshold={threshold}\\n")
json.dump({"accuracy": hits / len(xs), "rows": len(xs)}, open("metrics.json", "w"))
"""

DVC_YAML = {
    "stages": {
        "train": {
            "cmd": "python3 train.py",
            "deps": ["train.py", "data/raw.csv"],
            "params": ["train.threshold"],
            "outs": ["model.txt"],
            "metrics": [{"metrics.json": {"cache": False}}],
        }
    }
}

OPSCTL_YAML = {
    "project": "rep",
    "executor": "local",
    "checks": {"data/raw.csv": {"rows": {"min": 10}, "columns": {"x": {"type": "int", "min": 0}}}},
}


@pytest.fixture(autouse=True)
def _outside_ci(monkeypatch):
    """The suite may itself run in a CI job: its variables must not reach these reports."""
    import os

    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")) or name in ("GITLAB_CI", "GITLAB_TOKEN", "CI"):
            monkeypatch.delenv(name)


def _write_data(root: Path, count: int, start: int = 0) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "raw.csv").write_text("x\n" + "".join(f"{i}\n" for i in range(start, start + count)))


def _commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", message], cwd=root)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Tagged ``base``: threshold 0.5 on 100 rows (accuracy 0.5). Then HEAD: threshold 0.3 and
    20 more rows (accuracy 90/120 = 0.75), run and committed; the workspace is clean."""
    root = git_dvc_project(tmp_path_factory.mktemp("report") / "proj")
    (root / "train.py").write_text(TRAIN)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / "opsctl.yaml").write_text(yaml.safe_dump(OPSCTL_YAML, sort_keys=False))
    (root / "params.yaml").write_text("train:\n  threshold: 0.5\n  seed: 1\n")
    (root / ".gitignore").write_text("/.opsctl\n")
    _write_data(root, 100)
    opsctl_inprocess("data", "add", "data/raw.csv", cwd=root, check=True)
    opsctl_inprocess("run", cwd=root, check=True)
    _commit(root, "base")
    run(["git", "tag", "base"], cwd=root)
    (root / "params.yaml").write_text("train:\n  threshold: 0.3\n  seed: 1\n")
    _write_data(root, 120)
    opsctl_inprocess("data", "add", "data/raw.csv", cwd=root, check=True)
    opsctl_inprocess("run", cwd=root, check=True)
    _commit(root, "lower the threshold, more data")
    return root


def _copy(project: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(project, dest, symlinks=True)
    return dest


def _report(root: Path, *args: str, env: dict | None = None):
    return opsctl_inprocess("report", *args, cwd=root, env=env)


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Each section's first table, as rows of {column: cell}, by the section's heading's words
    ("Params", "Metrics", "Data", "Data checks", "Gates")."""
    found: dict[str, list[dict[str, str]]] = {}
    section = None
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("### "):
            heading = line[4:]
            words = re.match(r"[A-Za-z ]*", heading)
            section = "Gates" if "gates" in heading else (words.group().strip() if words else heading)
        elif line.startswith("|") and section and section not in found and i + 1 < len(lines):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, [c.strip() for c in lines[i].strip("|").split("|")], strict=True)))
                i += 1
            found[section] = rows
            continue
        i += 1
    return found


def number(cell: str) -> float:
    return float(re.sub(r"[^0-9eE+.\-]", "", cell.replace("−", "-")))


def test_markdown_holds_exactly_the_changes_with_their_deltas(project):
    result = _report(project, "--base", "base")
    assert result.returncode == 0, result.stderr
    md = result.stdout
    assert md.startswith("## opsctl report: workspace vs base")
    found = tables(md)

    assert found["Params"] == [{"Param": "train.threshold", "base": "0.5", "workspace": "0.3"}]

    metrics = {row["Metric"]: row for row in found["Metrics"]}
    assert set(metrics) == {"accuracy", "rows"}
    assert number(metrics["accuracy"]["base"]) == 0.5 and number(metrics["accuracy"]["workspace"]) == 0.75
    assert number(metrics["accuracy"]["Δ"]) == pytest.approx(0.25) and metrics["accuracy"]["Δ"].startswith("▲")
    assert number(metrics["accuracy"]["Δ%"]) == pytest.approx(50.0)
    assert number(metrics["rows"]["Δ"]) == 20 and number(metrics["rows"]["Δ%"]) == pytest.approx(20.0)

    data = {row["Path"].strip("`"): row for row in found["Data"]}
    assert set(data) == {"data/raw.csv", "model.txt"}
    assert data["data/raw.csv"]["Change"] == "modified"
    old_md5 = yaml.safe_load(run(["git", "show", "base:data/raw.csv.dvc"], cwd=project).stdout)["outs"][0]["md5"]
    new_md5 = yaml.safe_load((project / "data/raw.csv.dvc").read_text())["outs"][0]["md5"]
    assert old_md5[:8] in data["data/raw.csv"]["base"] and new_md5[:8] in data["data/raw.csv"]["workspace"]

    # The head's data passed its checks when the run's gate checked it: found by the data's hash.
    assert [row["Dataset"] for row in found["Data checks"]] == ["`data/raw.csv`"]
    assert "passed" in found["Data checks"][0]["Result"]
    # The run recorded for HEAD, and the trend of the gated/moved metrics over both runs.
    assert re.search(r"Run `[0-9a-f]{12}` succeeded", md)
    assert "```mermaid\nxychart-beta" in md and 'title "accuracy"' in md
    assert "line [0.5, 0.75]" in md


def test_json_validates_and_matches_dvc(project):
    result = _report(project, "--base", "base", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert data["passed"] is True and data["gates"] == []
    assert data["head"]["label"] == "workspace" and not data["head"]["dirty"]
    assert data["base"]["commit"] == run(["git", "rev-parse", "base"], cwd=project).stdout.strip()

    dvc_params = json.loads(run(["dvc", "params", "diff", "base", "--json"], cwd=project).stdout)
    assert {(p["file"], p["key"]): (p["old"], p["new"]) for p in data["params"]} == {
        (f, k): (v["old"], v["new"]) for f, keys in dvc_params.items() for k, v in keys.items()
    }
    dvc_metrics = json.loads(run(["dvc", "metrics", "diff", "base", "--json"], cwd=project).stdout)
    for f, keys in dvc_metrics.items():
        for k, v in keys.items():
            row = next(m for m in data["metrics"] if m["file"] == f and m["key"] == k)
            assert row["delta"] == pytest.approx(v["diff"]) and row["old"] == v["old"] and row["new"] == v["new"]
    changed = {d["path"]: d for d in data["data"]}
    assert changed["data/raw.csv"]["old_size"] == len("x\n") + sum(len(f"{i}\n") for i in range(100))
    assert data["pipeline"]["run"]["stages"][0]["outcome"] == "ran"


def test_head_rev_and_default_base(project):
    """--head REV reports on a commit; without --base on main (no merge base apart from HEAD)
    the base is HEAD~1 (= the tag)."""
    by_rev = json.loads(_report(project, "--head", "HEAD", "--base", "base", "--format", "json").stdout)
    assert by_rev["head"]["label"] == "HEAD" and by_rev["params"][0]["new"] == 0.3
    default = json.loads(_report(project, "--format", "json").stdout)
    assert default["base"]["commit"] == run(["git", "rev-parse", "base"], cwd=project).stdout.strip()


GATES = [  # (gate, fails): each form just either side of its threshold (accuracy 0.5 -> 0.75, rows 100 -> 120)
    ("metrics.accuracy<0.76", True),
    ("metrics.accuracy<0.74", False),
    ("metrics.accuracy>=0.75", True),
    ("metrics.accuracy>0.75", False),
    ("metrics.accuracy.delta>0.24", True),
    ("metrics.accuracy.delta>0.26", False),
    ("metrics.accuracy.delta_pct>=50", True),
    ("metrics.accuracy.delta_pct>50.1", False),
    ("metrics.rows.delta<21", True),
    ("metrics.rows.delta<19", False),
    ("checks", False),
    ("drift", False),
]


def test_each_gate_form_on_both_sides_of_its_threshold(project, tmp_path):
    """All the gates in one report (each judged on its own), then the passing ones alone: exit 0."""
    out = tmp_path / "report.md"
    args = [arg for gate, _ in GATES for arg in ("--fail-on", gate)]
    result = _report(project, "--base", "base", *args, "--format", "json")
    assert result.returncode == 6
    judged = json.loads(result.stdout)["gates"]
    assert [(g["gate"], g["failed"]) for g in judged] == GATES
    failing = [gate for gate, fails in GATES if fails]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {len(failing)} of {len(GATES)} gates failed: ")
    assert all(gate in errors[0] for gate in failing)

    passing = [arg for gate, fails in GATES if not fails for arg in ("--fail-on", gate)]
    result = _report(project, "--base", "base", *passing, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[4] == "### ✅ All gates passed"
    one = _report(project, "--base", "base", "--fail-on", failing[0], "-o", str(out))
    assert one.returncode == 6 and out.read_text().splitlines()[4] == "### ❌ 1 of 1 gates failed"


def test_failed_checks_and_drift_fail_their_gates(project, tmp_path):
    root = _copy(project, tmp_path)
    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    config["checks"]["data/raw.csv"]["rows"]["min"] = 1000
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    assert opsctl_inprocess("data", "validate", cwd=root).returncode == 6
    # A reference far from the data: every compared column drifts.
    (root / "ref.csv").write_text("x\n" + "".join(f"{i}\n" for i in range(5000, 5200)))
    assert opsctl_inprocess("monitor", "drift", "data/raw.csv", "--reference", "ref.csv", cwd=root).returncode == 6

    result = _report(root, "--base", "base", "--fail-on", "checks", "--fail-on", "drift", "--format", "json")
    assert result.returncode == 6
    data = json.loads(result.stdout)
    assert [g["failed"] for g in data["gates"]] == [True, True]
    assert data["checks"][0]["path"] == "data/raw.csv" and not data["checks"][0]["passed"]
    assert data["drift"][0]["drift"] and data["drift"][0]["drifted_columns"] == ["x"]
    md = _report(root, "--base", "base", "--fail-on", "checks").stdout
    assert "### Data checks: ❌ 1 of 1 datasets failed" in md and "### Drift: ❌ 1 dataset drifted" in md


def test_html_is_self_contained(project, tmp_path):
    out = tmp_path / "r.html"
    assert _report(project, "--base", "base", "--format", "html", "-o", str(out)).returncode == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http://" not in page.split("<svg", 1)[0]
    assert "<svg" in page and "train.threshold" in page  # the trend chart, inline


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--base", "nope"], 2, "--base nope: no such Git revision"),
        (["--head", "nope"], 2, "--head nope: no such Git revision"),
        (["--base", "--help-me"], 2, "no such Git revision"),
        (["--fail-on", "accuracy<1"], 2, "not a gate"),
        (["--fail-on", "metrics.acc<1"], 2, "no metric named 'acc'"),
        (["--format", "pdf"], 2, "--format pdf"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(project, args, code, words):
    result = _report(project, *args)
    assert result.returncode == code
    assert words in result.stderr
    assert result.stderr.splitlines()[0].startswith("error:")


def test_outside_a_project_is_exit_3(tmp_path):
    result = _report(tmp_path)
    assert result.returncode == 3


def test_step_summary_is_appended(project, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    result = _report(project, "--base", "base", "-o", str(tmp_path / "r.md"), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## opsctl report: workspace vs base" in text


def test_comment_is_created_once_then_updated(project, tmp_path):
    with FakeForge() as forge:
        env = forge.github_env(tmp_path, number=7)
        first = _report(project, "--base", "base", "--comment", "-o", str(tmp_path / "1.md"), env=env)
        assert first.returncode == 0, first.stderr
        assert "report comment created on pull request #7" in first.stdout + first.stderr
        second = _report(project, "--base", "base", "--comment", "--fail-on", "metrics.accuracy<0.8", env=env)
        assert second.returncode == 6  # the gate's verdict, after the comment was updated

        calls = [(c.method, c.route) for c in forge.calls]
        thread = "/repos/octo/pipe/issues/7/comments"
        [created] = forge.threads[("octo/pipe", 7)]
        assert calls == [
            ("GET", thread),
            ("POST", thread),
            ("GET", thread),
            ("PATCH", f"/repos/octo/pipe/issues/comments/{created['id']}"),
        ]
        assert all(c.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}" for c in forge.calls)
        [body] = forge.bodies("octo/pipe", 7)
        assert body.startswith("<!-- opsctl-report -->\n## opsctl report: workspace vs base")
        assert "### ❌ 1 of 1 gates failed" in body  # the updated report, not the first
        assert GITHUB_TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr
        # The job summary got both reports (no token needed for it).
        assert Path(env["GITHUB_STEP_SUMMARY"]).read_text().count("## opsctl report:") == 2


def test_comment_outside_a_pull_request_is_a_warning(project, tmp_path):
    with FakeForge() as forge:
        env = forge.github_env(tmp_path, number=None, event="push")
        result = _report(project, "--base", "base", "--comment", "-o", str(tmp_path / "r.md"), env=env)
        assert result.returncode == 0
        assert "--comment: not a pull request (GITHUB_EVENT_NAME=push); nothing posted" in result.stderr
        assert forge.calls == []


def test_changed_plots_as_mermaid_and_images_beside_the_report(tmp_path):
    """Line plots whose data changed are Mermaid charts with both sides' lines (the base's
    first); the others are SVGs in REPORT-plots/, linked from the report. Unchanged plots are
    left out; the HTML has every changed plot inline."""
    from tests.plots_project import make_plots_project

    root = make_plots_project(tmp_path / "plots")
    out = tmp_path / "out" / "review.md"
    out.parent.mkdir()
    result = _report(root, "--base", "v1", "-o", str(out))
    assert result.returncode == 0, result.stderr
    md = out.read_text()
    assert "### Plots (" in md
    train = md.split("**Train loss**", 1)[1].split("**", 1)[0]
    assert train.count("    line [") == 2 and "| 1 | v1 |" in train and "| 2 | workspace |" in train
    # The loss is halved in the workspace: the second line's first value is half the first's.
    first, second = re.findall(r"line \[([^,\]]+)", train)
    assert float(second) == pytest.approx(float(first) / 2)
    svg = out.parent / "review-plots" / "confusion.svg"
    assert "![confusion](review-plots/confusion.svg)" in md and svg.read_text().startswith("<svg")

    data = json.loads(_report(root, "--base", "v1", "--format", "json").stdout)
    changed = {p["id"] for p in data["plots"]}
    assert "confusion" in changed and "plots/train.json" in changed and "bar_horizontal" in changed
    assert "simple" not in changed  # its column (acc) is the same on both sides
    assert all(p["revs"] == ["v1", "workspace"] for p in data["plots"])
    page = tmp_path / "r.html"
    assert _report(root, "--base", "v1", "--format", "html", "-o", str(page)).returncode == 0
    assert page.read_text().count("<svg") >= len(changed)


def test_output_into_a_directory_is_refused(project, tmp_path):
    result = _report(project, "-o", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_in_a_pull_request_the_base_is_its_base_commit(project, tmp_path):
    base = run(["git", "rev-parse", "base"], cwd=project).stdout.strip()
    with FakeForge() as forge:
        env = forge.github_env(tmp_path, base_sha=base)
        data = json.loads(_report(project, "--format", "json", env=env).stdout)
        assert data["base"]["commit"] == base and data["params"][0]["key"] == "train.threshold"
        missing = _report(project, env=forge.github_env(tmp_path, base_sha="f" * 40))
        assert missing.returncode == 2
        assert "the pull request's base ffffffffffff is not in this clone" in missing.stderr
        assert "fetch-depth: 0" in missing.stderr


def test_on_a_terminal_the_markdown_is_drawn_without_mermaid_or_details(project):
    import os

    import pexpect

    from tests.conftest import BIN

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_"))}
    child = pexpect.spawn(
        str(BIN / "python"),
        ["-m", "opsctl", "report", "--base", "base"],
        cwd=str(project),
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
        encoding="utf-8",
        timeout=120,
        dimensions=(60, 120),
    )
    child.expect(pexpect.EOF)
    child.close()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert child.exitstatus == 0, shown
    assert "train.threshold" in shown and "Trend over the last 2 runs" in shown
    assert "xychart" not in shown and "<details>" not in shown and "##" not in shown  # drawn, not raw


def test_registry_events_since_the_base(project, tmp_path):
    root = _copy(project, tmp_path)
    opsctl_inprocess("model", "register", "thresh", "model.txt", cwd=root, check=True)
    opsctl_inprocess("model", "promote", "thresh", "0.0.1", "--to", "prod", cwd=root, check=True)
    data = json.loads(_report(root, "--base", "base", "--format", "json", "--no-plots").stdout)
    assert [(e["event"], e["name"], e["version"]) for e in data["registry"]] == [
        ("registration", "thresh", "v0.0.1"),
        ("promotion", "thresh", "v0.0.1"),
    ]
    md = _report(root, "--base", "base", "--no-plots").stdout
    rows = tables(md)["Model registry"]
    assert [(r["Event"], r["Model"]) for r in rows] == [("registration", "thresh"), ("promotion", "thresh")]
    assert rows[1]["What"] == "prod: — → v0.0.1"
