#!/usr/bin/env python3
"""`opsctl run` and `opsctl status` against `dvc repro` when there is nothing to do: a chain
of 50 stages, all up to date, in one project, in one run.

    .venv/bin/python bench/noop.py [--stages 50] [--runs 7] [--tmp DIR]

Pipeline: stage s00 copies a committed input into out/s00.txt, and stage i
appends a line to stage i-1's output (its only dependency) into out/si.txt.
The project (git init + dvc init by the real CLIs, and an opsctl.yaml whose
executor is docker with every stage in opsctl-test/busybox:latest, so opsctl's
image checks are paid as in real use) is reproduced once with `dvc repro` and
committed with its dvc.lock. Then every command runs in it with nothing to do:
a warm-up of each (for opsctl that is also the full check its no-op fast path
keeps), and the median of RUNS, rotating which goes first. Every output and
dvc.lock must be untouched afterwards (nothing re-ran).

Targets: `opsctl run` and `opsctl status` <= 0.25x `dvc repro`. Also printed,
each from the same rounds: `dvc status`; the floor, a Python process that reads
dvc.yaml and dvc.lock with PyYAML's C loader and stats every dep and out (what
any answer needs at least); and the fall-back: `opsctl status` after dvc.yaml
was edited in a way that changes no stage (a comment), so the fast path misses
and DVC's full check runs and is kept again, against `dvc status` and against
the same full check with the fast path turned off (OPSCTL_NO_PLAN_CACHE=1:
nothing kept), whose difference is what keeping the record costs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _timing import (
    BIN,
    BUSYBOX_IMAGE,
    DOCKER_OPSCTL_YAML,
    GIT_ID,
    check_busybox_image,
    compare,
    pipeline_project,
    report,
    timed,
)

ENV = {"DVC_NO_ANALYTICS": "1"}
TARGET = 0.25

# The floor: what any answer needs at least (a process, both YAML files parsed, every path stat-ed).
FLOOR = """
import os, yaml
load = lambda p: yaml.load(open(p, encoding="utf-8").read(), Loader=yaml.CSafeLoader)
spec, lock = load("dvc.yaml"), load("dvc.lock")
paths = {p for s in spec["stages"].values() for p in s.get("deps", []) + s.get("outs", [])}
paths |= {e["path"] for s in lock["stages"].values() for e in s.get("deps", []) + s.get("outs", [])}
for p in paths:
    os.stat(p)
"""


def dvc_yaml(stages: int) -> str:
    width = len(str(stages - 1))
    name = [f"s{i:0{width}d}" for i in range(stages)]
    spec = {name[0]: {"cmd": f"cat in.txt > out/{name[0]}.txt", "deps": ["in.txt"], "outs": [f"out/{name[0]}.txt"]}}
    for i in range(1, stages):
        prev, cur = f"out/{name[i - 1]}.txt", f"out/{name[i]}.txt"
        spec[name[i]] = {"cmd": f"cat {prev} > {cur} && echo {name[i]} >> {cur}", "deps": [prev], "outs": [cur]}
    return yaml.safe_dump({"stages": spec}, sort_keys=False)


def snapshot(project: Path) -> dict[str, tuple[int, str]]:
    """mtime and content of dvc.lock and of every output: what a re-run would change."""
    files = [project / "dvc.lock", *sorted((project / "out").glob("*.txt"))]
    return {str(p.relative_to(project)): (p.stat().st_mtime_ns, p.read_text()) for p in files}


def fall_back_times(project: Path, status: list[str], runs: int) -> tuple[float, float]:
    """Median `opsctl status` right after dvc.yaml got a new comment (the fast path misses, DVC
    checks, the check is kept), and of the same full check with the fast path off."""
    dvc_yaml = project / "dvc.yaml"
    original = dvc_yaml.read_text()
    kept, not_kept = [], []
    try:
        for i in range(runs):
            dvc_yaml.write_text(original + f"# edit {i}\n")
            time.sleep(0.2)  # older than the 0.1 s a check must be for it to be kept
            kept.append(timed(status, cwd=project, env=ENV))
            not_kept.append(timed(status, cwd=project, env={**ENV, "OPSCTL_NO_PLAN_CACHE": "1"}))
    finally:
        dvc_yaml.write_text(original)
        subprocess.run(["git", "checkout", "-q", "dvc.yaml"], cwd=project, check=True)
    return statistics.median(kept), statistics.median(not_kept)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", type=int, default=50, help="stages in the chain")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tool (median)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the project")
    args = parser.parse_args()
    if args.stages < 1 or args.runs < 1:
        parser.error("--stages and --runs must be at least 1")
    check_busybox_image()

    commands = {
        "opsctl run": [str(BIN / "opsctl"), "run"],
        "opsctl status": [str(BIN / "opsctl"), "status"],
        "dvc repro": [str(BIN / "dvc"), "repro", "-q"],
        "dvc status": [str(BIN / "dvc"), "status", "-q"],
        "floor": [sys.executable, "-c", FLOOR],
    }
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-noop-", dir=args.tmp))
    try:
        project = work / "chain"
        pipeline_project(project, dvc_yaml(args.stages), opsctl_yaml=DOCKER_OPSCTL_YAML, env=ENV)
        (project / "in.txt").write_text("input\n")
        timed(["git", "add", "in.txt"], cwd=project)
        timed(["git", *GIT_ID, "commit", "-qm", "input"], cwd=project)
        timed([str(BIN / "dvc"), "repro", "-q"], cwd=project, env=ENV)
        timed(["git", "add", "-A"], cwd=project)
        timed(["git", *GIT_ID, "commit", "-qm", "reproduced"], cwd=project)
        lock = yaml.safe_load((project / "dvc.lock").read_text())
        if len(lock.get("stages", {})) != args.stages:
            raise SystemExit(f"dvc repro locked {len(lock.get('stages', {}))} of {args.stages} stages")
        before = snapshot(project)
        print(
            f"pipeline: a chain of {args.stages} stages, up to date and committed, executor docker ({BUSYBOX_IMAGE}) "
            f"(in {project})",
            flush=True,
        )

        for cmd in commands.values():  # warm-up: bytecode, page cache, DVC's state, the engine, the kept check
            timed(cmd, cwd=project, env=ENV)
        time.sleep(0.2)  # a check made within 0.1 s of the files' last change is not kept: one more
        timed(commands["opsctl status"], cwd=project, env=ENV)
        times: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for i in range(args.runs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                times[name].append(timed(commands[name], cwd=project, env=ENV))
        fallback, full = fall_back_times(project, commands["opsctl status"], args.runs)

        after = snapshot(project)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:  # a no-op must stay a no-op
            raise SystemExit(f"something re-ran: changed {', '.join(changed)}")
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
        if dirty.strip():
            raise SystemExit(f"the project is no longer clean after the runs:\n{dirty}")

        median = {name: statistics.median(values) for name, values in times.items()}
        print()
        ok = report(
            f"opsctl run (up to date, {args.stages})", median["opsctl run"], "dvc repro", median["dvc repro"], TARGET
        )
        ok &= report(
            f"opsctl status (up to date, {args.stages})",
            median["opsctl status"],
            "dvc repro",
            median["dvc repro"],
            TARGET,
        )
        compare("opsctl status", median["opsctl status"], "dvc status", median["dvc status"])
        compare("opsctl run", median["opsctl run"], "floor (read, stat)", median["floor"])
        compare("opsctl status", median["opsctl status"], "floor (read, stat)", median["floor"])
        compare("fall-back (status, kept)", fallback, "dvc status", median["dvc status"])
        compare("fall-back (status, kept)", fallback, "full check, not kept", full)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
