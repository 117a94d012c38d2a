#!/usr/bin/env python3
"""`opsctl init` of ml-pipeline: wall time, against doing the same steps by hand with
the tools' own CLIs (copier copy, git init, dvc init, dvc remote add, dvc add,
git add + commit), in one run.

    .venv/bin/python bench/init.py [--runs N]

Target (issue 2): opsctl init under 3 s here; the by-hand baseline shows what
opsctl adds on top of the tools it drives.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _timing import BIN, wall

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "ml-pipeline"
ENV = {"DVC_NO_ANALYTICS": "1"}


def by_hand(dest: Path) -> float:
    started = time.perf_counter()
    wall(
        [
            str(BIN / "copier"),
            "copy",
            "--defaults",
            "--quiet",
            "--data",
            "project_name=bench",
            str(TEMPLATE),
            str(dest),
        ],
        env=ENV,
    )
    wall(["git", "init", "-q"], cwd=dest)
    wall([str(BIN / "dvc"), "init", "-q"], cwd=dest, env=ENV)
    wall([str(BIN / "dvc"), "remote", "add", "-d", "storage", ".opsctl/remote"], cwd=dest, env=ENV)
    wall([str(BIN / "dvc"), "add", "-q", "data/raw/churn.csv"], cwd=dest, env=ENV)
    wall(["git", "add", "-A"], cwd=dest)
    wall(["git", "commit", "-qm", "scaffold"], cwd=dest)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-init-"))
    try:
        opsctl_times, hand_times = [], []
        for i in range(args.runs + 1):  # the first round warms caches and is dropped
            t_opsctl = wall([str(BIN / "opsctl"), "init", str(work / f"o{i}"), "--defaults"], env=ENV)
            t_hand = by_hand(work / f"h{i}")
            if i:
                opsctl_times.append(t_opsctl)
                hand_times.append(t_hand)
        o, h = statistics.median(opsctl_times), statistics.median(hand_times)
        print(f"opsctl init ml-pipeline      {o:7.3f} s   target < 3.000 s   {'OK' if o < 3 else 'MISSED'}")
        print(f"same steps by hand (CLIs)    {h:7.3f} s   ratio opsctl/by-hand {o / h:5.2f}x")
        return 0 if o < 3 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
