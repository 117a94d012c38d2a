#!/usr/bin/env python3
"""Start-up time: `opsctl --help` and `opsctl --version` against `dvc --help`, in one run.

    .venv/bin/python bench/startup.py [--runs N]

Median wall time of N runs of each command; target: opsctl <= 0.6x dvc --help (issue 18).

What is warm in the timed runs: the OS page cache and Python's bytecode (.pyc) of both tools (two
untimed runs of each command first), and opsctl's recorded help: `opsctl --help` keeps typer's text in
the user cache dir on its first run and prints it from there after (cli/help_cache.py), so the first of
those warm-up runs records it. The bench uses a cache dir of its own (XDG_CACHE_HOME in a temporary
directory), never the user's. Two more lines say what that cache saves, without a target: the first
`opsctl --help` (an empty cache every run: typer renders the help and it is recorded) and
`OPSCTL_NO_FAST_PATH=1 opsctl --help` (always typer, nothing recorded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import BIN, compare, median_wall, report, wall


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsctl-startup-") as tmp:
        env = {"DVC_NO_ANALYTICS": "1", "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        opsctl = str(BIN / "opsctl")
        dvc = median_wall([str(BIN / "dvc"), "--help"], args.runs, env=env)
        ok = True
        for argv in (["--help"], ["--version"]):
            t = median_wall([opsctl, *argv], args.runs, env=env)
            ok &= report(f"opsctl {' '.join(argv)}", t, "dvc --help", dvc, 0.6)
        first = statistics.median(
            wall([opsctl, "--help"], env={**env, "XDG_CACHE_HOME": str(Path(tmp) / f"empty-{n}")})
            for n in range(args.runs)
        )
        compare("  first run (empty cache)", first, "dvc --help", dvc)
        typer = median_wall([opsctl, "--help"], args.runs, env={**env, "OPSCTL_NO_FAST_PATH": "1"})
        compare("  OPSCTL_NO_FAST_PATH=1", typer, "dvc --help", dvc)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
