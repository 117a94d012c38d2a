#!/usr/bin/env python3
"""`opsctl run` against `dvc repro` when there is nothing to do: a chain of 50 stages,
all up to date, in one project, in one run.

    .venv/bin/python bench/noop.py [--stages 50] [--runs 7] [--tmp DIR]

Pipeline: stage s00 copies a committed input into out/s00.txt, and stage i
appends a line to stage i-1's output (its only dependency) into out/si.txt.
The project (git init + dvc init by the real CLIs, and an opsctl.yaml whose
executor is docker with every stage in opsctl-test/busybox:latest, so opsctl's
image checks are paid as in real use) is reproduced once with `dvc repro` and
committed with its dvc.lock. Then both tools run in it with nothing to do:
a warm-up of each, and the median of RUNS, alternating which goes first.
Every output and dvc.lock must be untouched afterwards (nothing re-ran).
Target: opsctl <= 1.0x dvc repro.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _timing import (
    BIN,
    BUSYBOX_IMAGE,
    DOCKER_OPSCTL_YAML,
    GIT_ID,
    check_busybox_image,
    pipeline_project,
    report,
    timed,
)

ENV = {"DVC_NO_ANALYTICS": "1"}
TARGET = 1.0


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
        "opsctl": [str(BIN / "opsctl"), "run"],
        "dvc": [str(BIN / "dvc"), "repro", "-q"],
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

        for cmd in commands.values():  # warm-up: bytecode, page cache, DVC's state, the engine
            timed(cmd, cwd=project, env=ENV)
        times: dict[str, list[float]] = {"opsctl": [], "dvc": []}
        for i in range(args.runs):
            for tool in ["opsctl", "dvc"] if i % 2 == 0 else ["dvc", "opsctl"]:
                times[tool].append(timed(commands[tool], cwd=project, env=ENV))

        after = snapshot(project)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:  # a no-op must stay a no-op
            raise SystemExit(f"something re-ran: changed {', '.join(changed)}")
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
        if dirty.strip():
            raise SystemExit(f"the project is no longer clean after the runs:\n{dirty}")

        print()
        ok = report(
            f"opsctl run (up to date, {args.stages})",
            statistics.median(times["opsctl"]),
            "dvc repro (up to date)",
            statistics.median(times["dvc"]),
            TARGET,
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
