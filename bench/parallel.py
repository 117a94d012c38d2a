#!/usr/bin/env python3
"""`opsctl run -j 8` (docker executor) against `dvc repro` (host, one stage at a time) on
8 independent stages that each sleep, in identical fresh projects, in one run.

    .venv/bin/python bench/parallel.py [--stages 8] [--sleep 1] [--runs 3] [--tmp DIR]

Pipeline: STAGES stages with no dependencies between them, stage i running
`sleep SLEEP && echo si > out/si.txt` with `out/si.txt` as its only output.
A pristine project (git init + dvc init by the real CLIs, dvc.yaml and an
opsctl.yaml whose executor is docker with every stage in opsctl-test/busybox:latest,
all committed) is made once and copied for every timed command, so each run has
an empty DVC cache (no run cache) and really runs every stage; the disks are
synced before each one and the two tools alternate which goes first. Both must
leave the same outputs and the same dvc.lock. One untimed warm-up of each tool
first (imports, the engine). Median of RUNS; target: opsctl <= 0.35x dvc repro.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from _timing import (
    BIN,
    BUSYBOX_IMAGE,
    DOCKER_OPSCTL_YAML,
    check_busybox_image,
    check_outputs,
    fresh_copy,
    pipeline_project,
    report,
    timed,
)

ENV = {"DVC_NO_ANALYTICS": "1"}
TARGET = 0.35


def dvc_yaml(stages: int, sleep: float) -> str:
    return yaml.safe_dump(
        {
            "stages": {
                f"s{i}": {"cmd": f"sleep {sleep:g} && echo s{i} > out/s{i}.txt", "outs": [f"out/s{i}.txt"]}
                for i in range(stages)
            }
        },
        sort_keys=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", type=int, default=8, help="independent stages (and opsctl's -j)")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each stage sleeps")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool (median)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the projects")
    args = parser.parse_args()
    if args.stages < 1 or args.runs < 1 or args.sleep < 0:
        parser.error("--stages and --runs must be at least 1, --sleep not negative")
    check_busybox_image()

    commands = {
        "opsctl": [str(BIN / "opsctl"), "run", "-j", str(args.stages)],
        "dvc": [str(BIN / "dvc"), "repro", "-q"],
    }
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-parallel-", dir=args.tmp))
    try:
        template = pipeline_project(
            work / "template", dvc_yaml(args.stages, args.sleep), opsctl_yaml=DOCKER_OPSCTL_YAML, env=ENV
        )
        print(
            f"pipeline: {args.stages} independent stages of `sleep {args.sleep:g}`, "
            f"opsctl -j {args.stages} in {BUSYBOX_IMAGE} (in {work})",
            flush=True,
        )

        for tool, cmd in commands.items():  # warm-up: bytecode, page cache, the engine
            warm = fresh_copy(template, work / f"warm-{tool}")
            timed(cmd, cwd=warm, env=ENV)
            check_outputs(warm, args.stages)
            shutil.rmtree(warm)

        times: dict[str, list[float]] = {"opsctl": [], "dvc": []}
        for i in range(args.runs):
            order = ["opsctl", "dvc"] if i % 2 == 0 else ["dvc", "opsctl"]
            projects = {tool: fresh_copy(template, work / f"run{i}-{tool}") for tool in order}
            for tool in order:
                os.sync()
                times[tool].append(timed(commands[tool], cwd=projects[tool], env=ENV))
            locks = {tool: check_outputs(projects[tool], args.stages) for tool in order}
            if locks["opsctl"] != locks["dvc"]:  # both must have done the same work
                raise SystemExit(
                    "dvc.lock differs between opsctl and dvc:\n"
                    f"{yaml.safe_dump(locks['opsctl'])}\n{yaml.safe_dump(locks['dvc'])}"
                )
            for project in projects.values():
                shutil.rmtree(project)
            print(f"  run {i + 1}: opsctl {times['opsctl'][-1]:.3f} s, dvc {times['dvc'][-1]:.3f} s", flush=True)

        print()
        ok = report(
            f"opsctl run -j {args.stages} (docker)",
            statistics.median(times["opsctl"]),
            "dvc repro (host)",
            statistics.median(times["dvc"]),
            TARGET,
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
