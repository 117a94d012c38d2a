"""A run's plots, drawn after the workspace has moved on: recorded by md5 when the DVC cache
holds the file, else copied into the run store up to a cap that is reported when hit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import git_dvc_project, opsctl_inprocess, run

# A stage writing a curve whose slope is the param `k`, and (when `big` is set) a large
# plot file the DVC cache won't hold (`cache: false` outputs beside a non-plot `cache:
# false` output keep the stage out of DVC's run cache).
GEN = """\
import json, sys, yaml
p = yaml.safe_load(open("params.yaml"))
k = p["k"]
json.dump([{"step": i, "loss": k * i} for i in range(5)], open("curve.json", "w"))
open("notes.txt", "w").write(str(k))
if p.get("big"):
    json.dump([{"step": i, "v": i % 7} for i in range(p["big"])], open("big.json", "w"))
"""


def _project(root: Path, *, uncached: bool = False, big: int = 0) -> Path:
    git_dvc_project(root, "plots")
    (root / "gen.py").write_text(GEN)
    (root / "params.yaml").write_text(f"k: 1\nbig: {big}\n")
    outs = "\n    outs:\n      - notes.txt:\n          cache: false" if uncached else ""
    plots = "\n      - big.json:\n          cache: false\n          x: step\n          y: v" if big else ""
    (root / "dvc.yaml").write_text(
        "stages:\n  gen:\n    cmd: python3 gen.py\n    deps: [gen.py]\n    params: [k, big]"
        f"{outs}\n    plots:\n      - curve.json:\n          cache: false\n          x: step\n          y: loss{plots}\n"
    )
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "init"], cwd=root)
    return root


def _run(root: Path, *args: str) -> dict:
    result = opsctl_inprocess("run", "--json", *args, cwd=root, check=True)
    return json.loads(result.stdout)


def _curve(shown: dict, rev: str) -> list:
    (plot,) = [p for p in shown["plots"] if p["id"] == "curve.json"]
    return plot["data"][rev]["curve.json"]


def test_a_runs_plots_are_drawn_after_the_workspace_moved_on(tmp_path):
    root = _project(tmp_path / "p")
    first = _run(root)["run_id"]
    second = _run(root, "-S", "k=3")["run_id"]
    assert json.loads((root / "curve.json").read_text())[4]["loss"] == 12  # the workspace is the second run's

    shown = json.loads(opsctl_inprocess("plots", "show", "--run", first, "--run", second, "--json", cwd=root).stdout)
    assert shown["sources"] == [first, second]
    assert [p["loss"] for p in _curve(shown, first)] == [0, 1, 2, 3, 4]
    assert [p["loss"] for p in _curve(shown, second)] == [0, 3, 6, 9, 12]
    (curve,) = [p for p in shown["plots"] if p["id"] == "curve.json"]
    assert curve["revisions"] == [first, second] and shown["errors"] == []

    text = opsctl_inprocess("plots", "show", "--run", first[:6], "--run", second, cwd=root, env={"COLUMNS": "80"})
    assert text.returncode == 0, text.stderr
    assert first in text.stdout and second in text.stdout  # the legend names both runs


def test_plot_data_is_kept_by_md5_when_the_cache_holds_it_and_its_loss_is_one_clear_line(tmp_path):
    root = _project(tmp_path / "p")
    first = _run(root)["run_id"]
    _run(root, "-S", "k=2")
    with sqlite3.connect(root / ".opsctl" / "opsctl.db") as db:
        (md5, content) = db.execute(
            "SELECT md5, content FROM run_plot_files JOIN runs USING (rid) WHERE id = ? AND path = 'curve.json'",
            (first,),
        ).fetchone()
    assert content is None  # not copied: DVC's run cache holds it
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    assert cached.is_file()

    cached.unlink()  # as `dvc gc` would
    gone = opsctl_inprocess("plots", "show", "--run", first, cwd=root)
    assert gone.returncode == 1
    assert "curve.json" in gone.stderr and "gone from the DVC cache" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_plot_files_the_cache_does_not_hold_are_copied_and_the_cap_is_reported(tmp_path):
    root = _project(tmp_path / "p", uncached=True, big=60_000)  # big.json: ~1.3 MB, over the 1 MiB cap
    report = _run(root)
    assert any("big.json" in note and "not kept with the run" in note for note in report["plots_notes"])
    first = report["run_id"]
    _run(root, "-S", "k=5")

    with sqlite3.connect(root / ".opsctl" / "opsctl.db") as db:
        rows = dict(
            db.execute(
                "SELECT path, (content IS NOT NULL) || omitted FROM run_plot_files JOIN runs USING (rid) WHERE id = ?",
                (first,),
            ).fetchall()
        )
    assert rows == {"curve.json": "10", "big.json": "01"}  # the small one copied, the big one omitted

    shown = opsctl_inprocess("plots", "show", "--run", first, "--json", cwd=root)
    data = json.loads(shown.stdout)
    assert [p["loss"] for p in _curve(data, first)] == [0, 1, 2, 3, 4]  # from the store's copy
    assert any("big.json" in e and "copy cap" in e for e in data["errors"])
    assert shown.returncode == 1 and "big.json" in shown.stderr


def test_a_run_that_recorded_no_plots_says_so(tmp_path):
    root = git_dvc_project(tmp_path / "p", "plain")
    (root / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "init"], cwd=root)
    run_id = _run(root)["run_id"]
    result = opsctl_inprocess("plots", "show", "--run", run_id, cwd=root)
    assert result.returncode == 2 and f"run {run_id} has no plots recorded" in result.stderr
    empty = opsctl_inprocess("plots", "show", cwd=root)
    assert empty.returncode == 0 and "No plots" in empty.stdout + empty.stderr


def test_plots_only_dvcs_index_resolves_are_recorded_too(tmp_path):
    """`foreach` stages and `${}` values: the run records what DVC resolves (through its index,
    while the run holds the project)."""
    root = git_dvc_project(tmp_path / "p", "foreach")
    (root / "params.yaml").write_text("k: 2\n")
    (root / "gen.py").write_text(
        "import json, sys\njson.dump([{'x': i, 'y': int(sys.argv[2]) * i} for i in range(3)], open(sys.argv[1], 'w'))\n"
    )
    (root / "dvc.yaml").write_text(
        "stages:\n  gen:\n    foreach: [a, b]\n    do:\n      cmd: python3 gen.py ${item}.json ${k}\n"
        "      params: [k]\n      plots:\n        - ${item}.json:\n            cache: false\n            x: x\n"
    )
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "init"], cwd=root)
    run_id = _run(root)["run_id"]
    (root / "a.json").unlink()
    (root / "b.json").unlink()
    shown = json.loads(opsctl_inprocess("plots", "show", "--run", run_id, "--json", cwd=root, check=True).stdout)
    assert sorted(p["id"] for p in shown["plots"]) == ["a.json", "b.json"]
    assert all(p["data"][run_id][p["id"]][2]["y"] == 4 for p in shown["plots"])
