"""Small timing helpers shared by the bench scripts: wall time of whole commands."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_wall(cmd: list[str], runs: int, *, warmup: int = 2, **kw) -> float:
    for _ in range(warmup):
        wall(cmd, **kw)
    return statistics.median(wall(cmd, **kw) for _ in range(runs))


def report(name: str, value: float, baseline_name: str, baseline: float, target: float) -> bool:
    ratio = value / baseline
    ok = ratio <= target
    print(f"{name:<28} {value:7.3f} s   {baseline_name:<24} {baseline:7.3f} s   ratio {ratio:5.2f}x   "
          f"target <= {target:.2f}x   {'OK' if ok else 'MISSED'}")
    return ok
