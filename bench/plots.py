#!/usr/bin/env python3
"""`opsctl plots show` in the terminal and `--html`, against `dvc plots show` (HTML) on the
same project, in one run.

    .venv/bin/python bench/plots.py [--runs 9] [--tmp DIR]

Project: the ml-pipeline template scaffolded by `opsctl init` and run once on the host
(`opsctl run --executor local`), so its ROC curve (plots/roc.json) and confusion matrix
(plots/confusion.json) exist; committed. Before timing, both tools must show both plots:
`opsctl plots show --json` and `dvc plots show --json` list the same two plots with the
same number of points.

Timed, each a fresh process (imports count), median of RUNS after 2 warm-ups, the commands
interleaved so a busy moment hits them all alike:
- `dvc plots show -o DIR` (DVC's HTML; its only output besides --json): the baseline;
- `opsctl plots show` (terminal text for a 100x40 terminal; stdout is not a tty, so no
  colour escapes, which cost nothing measurable);
- `opsctl plots show --html FILE` (self-contained: the Vega scripts are inside the page).
Informational: `dvc plots show --json` and `opsctl plots show --svg DIR` (Vega run in
process by vl-convert; its engine starts once per process, ~1 s).

Targets: terminal <= 0.5x DVC's HTML; --html <= 1.0x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import BIN, GIT_ID, compare, report, wall

REPO = Path(__file__).resolve().parent.parent
ENV = {"DVC_NO_ANALYTICS": "1", "COLUMNS": "100", "LINES": "40", "PYTHONPATH": str(REPO)}
OPSCTL = [str(BIN / "python"), "-m", "opsctl"]
DVC = [str(BIN / "dvc")]


def project(tmp: Path) -> Path:
    subprocess.run(
        [*OPSCTL, "init", "proj", "--template", "ml-pipeline", "--defaults", "--data", "executor=local"],
        cwd=tmp,
        check=True,
        capture_output=True,
        env=_env(),
    )
    root = tmp / "proj"
    run = subprocess.run([*OPSCTL, "run", "--executor", "local"], cwd=root, capture_output=True, text=True, env=_env())
    if run.returncode != 0:
        sys.exit(f"opsctl run failed:\n{run.stderr}")
    subprocess.run(["git", *GIT_ID, "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", *GIT_ID, "commit", "-qm", "ran"], cwd=root, check=True)
    return root


def _env() -> dict:
    """The local executor runs the template's stages with the `python` on PATH: this venv's."""
    import os

    return {**os.environ, **ENV, "PATH": f"{BIN}:{os.environ['PATH']}"}


def check(root: Path) -> None:
    """Both tools see the same two plots with the same number of points."""
    ours = json.loads(
        subprocess.run([*OPSCTL, "plots", "show", "--json"], cwd=root, capture_output=True, env=_env()).stdout
    )
    theirs = json.loads(
        subprocess.run([*DVC, "plots", "show", "--json"], cwd=root, capture_output=True, env=_env()).stdout
    )
    ours_points = {p["id"]: len(p["spec"]["data"]["values"]) for p in ours["plots"]}
    theirs_points = {pid: len(v[0]["content"]["data"]["values"]) for pid, v in theirs["data"].items()}
    if ours_points != theirs_points or len(ours_points) != 2:
        sys.exit(f"the tools disagree: opsctl {ours_points}, dvc {theirs_points}")
    print(f"plots: {ours_points}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opsctl-bench-plots-", dir=args.tmp))
    try:
        started = time.perf_counter()
        root = project(tmp)
        print(f"project: ml-pipeline, scaffolded and run in {time.perf_counter() - started:.1f} s")
        check(root)
        out = tmp / "out"
        out.mkdir()  # `dvc plots show -o` makes the last directory only
        commands = {
            "dvc plots show (HTML)": [*DVC, "plots", "show", "-o", str(out / "dvc")],
            "opsctl plots show": [*OPSCTL, "plots", "show"],
            "opsctl plots show --html": [*OPSCTL, "plots", "show", "--html", str(out / "opsctl.html")],
            "dvc plots show --json": [*DVC, "plots", "show", "--json"],
            "opsctl plots show --svg": [*OPSCTL, "plots", "show", "--svg", str(out / "svg")],
        }
        for _ in range(2):
            for cmd in commands.values():
                wall(cmd, cwd=root, env=ENV)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(args.runs):
            names = list(commands)
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                times[name].append(wall(commands[name], cwd=root, env=ENV))
        median = {name: statistics.median(values) for name, values in times.items()}
        html_size = (out / "opsctl.html").stat().st_size
        print(f"median of {args.runs} runs each (2 warm-ups), interleaved:")
        baseline = median["dvc plots show (HTML)"]
        ok = report("opsctl plots show", median["opsctl plots show"], "dvc plots show (HTML)", baseline, 0.5)
        ok &= report(
            "opsctl plots show --html", median["opsctl plots show --html"], "dvc plots show (HTML)", baseline, 1.0
        )
        compare("dvc plots show --json", median["dvc plots show --json"], "dvc plots show (HTML)", baseline)
        compare("opsctl plots show --svg", median["opsctl plots show --svg"], "dvc plots show (HTML)", baseline)
        print(f"opsctl's HTML page: {html_size:,} bytes, self-contained")
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
