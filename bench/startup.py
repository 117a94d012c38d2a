#!/usr/bin/env python3
"""Start-up time: `opsctl --help` and `opsctl --version` against `dvc --help`, in one run.

    .venv/bin/python bench/startup.py [--runs N]

Median wall time of N runs each after a warm-up; target: opsctl <= 1.0x dvc --help.
"""

from __future__ import annotations

import argparse
import sys

from _timing import BIN, median_wall, report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {"DVC_NO_ANALYTICS": "1"}
    dvc = median_wall([str(BIN / "dvc"), "--help"], args.runs, env=env)
    ok = True
    for argv in (["--help"], ["--version"]):
        t = median_wall([str(BIN / "opsctl"), *argv], args.runs, env=env)
        ok &= report(f"opsctl {' '.join(argv)}", t, "dvc --help", dvc, 1.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
