#!/usr/bin/env python3
"""Per-stage container overhead: `opsctl run -j 1 --executor docker` against
`opsctl run -j 1 --executor local` on a chain of trivial stages, in identical fresh
projects, in one run; `dvc repro` on the same chain as a reference.

    .venv/bin/python bench/overhead.py [--stages 8] [--runs 3] [--tmp DIR]

Pipeline: a chain of STAGES stages, stage i depending on stage i-1's output and
running `echo si > out/si.txt`. A pristine project (git init + dvc init by the
real CLIs, dvc.yaml and an opsctl.yaml with every stage in
opsctl-test/busybox:latest, all committed) is made once and copied for every
timed command, so every stage really runs (no run cache); the disks are synced
before each one and the three commands rotate which goes first. All three must
leave the same outputs and the same dvc.lock. One untimed warm-up of each first.
Overhead per stage = (median docker - median local) / STAGES; target <= 0.5 s.
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
    compare,
    fresh_copy,
    pipeline_project,
    report_limit,
    timed,
)

ENV = {"DVC_NO_ANALYTICS": "1"}
TARGET = 0.5  # seconds per stage


def dvc_yaml(stages: int) -> str:
    spec = {"s0": {"cmd": "echo s0 > out/s0.txt", "outs": ["out/s0.txt"]}}
    for i in range(1, stages):
        spec[f"s{i}"] = {"cmd": f"echo s{i} > out/s{i}.txt", "deps": [f"out/s{i - 1}.txt"], "outs": [f"out/s{i}.txt"]}
    return yaml.safe_dump({"stages": spec}, sort_keys=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", type=int, default=8, help="stages in the chain")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command (median)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the projects")
    args = parser.parse_args()
    if args.stages < 1 or args.runs < 1:
        parser.error("--stages and --runs must be at least 1")
    check_busybox_image()

    opsctl = [str(BIN / "opsctl"), "run", "-j", "1", "--executor"]
    commands = {
        "docker": [*opsctl, "docker"],
        "local": [*opsctl, "local"],
        "dvc": [str(BIN / "dvc"), "repro", "-q"],
    }
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-overhead-", dir=args.tmp))
    try:
        template = pipeline_project(work / "template", dvc_yaml(args.stages), opsctl_yaml=DOCKER_OPSCTL_YAML, env=ENV)
        print(
            f"pipeline: a chain of {args.stages} `echo` stages, one at a time, in {BUSYBOX_IMAGE} or on the host "
            f"(in {work})",
            flush=True,
        )

        for kind, cmd in commands.items():  # warm-up: bytecode, page cache, the engine
            warm = fresh_copy(template, work / f"warm-{kind}")
            timed(cmd, cwd=warm, env=ENV)
            check_outputs(warm, args.stages)
            shutil.rmtree(warm)

        kinds = list(commands)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for i in range(args.runs):
            order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]
            projects = {kind: fresh_copy(template, work / f"run{i}-{kind}") for kind in order}
            for kind in order:
                os.sync()
                times[kind].append(timed(commands[kind], cwd=projects[kind], env=ENV))
            locks = {kind: check_outputs(projects[kind], args.stages) for kind in order}
            for kind in ("docker", "local"):  # all must have done the same work
                if locks[kind] != locks["dvc"]:
                    raise SystemExit(
                        f"dvc.lock differs between opsctl ({kind}) and dvc:\n"
                        f"{yaml.safe_dump(locks[kind])}\n{yaml.safe_dump(locks['dvc'])}"
                    )
            for project in projects.values():
                shutil.rmtree(project)
            print(
                f"  run {i + 1}: docker {times['docker'][-1]:.3f} s, local {times['local'][-1]:.3f} s, "
                f"dvc {times['dvc'][-1]:.3f} s",
                flush=True,
            )

        docker, local, dvc = (statistics.median(times[kind]) for kind in kinds)
        print()
        ok = report_limit("container overhead per stage", (docker - local) / args.stages, TARGET)
        compare(f"opsctl run -j 1 docker ({args.stages})", docker, "opsctl run -j 1 local", local)
        compare(f"opsctl run -j 1 local ({args.stages})", local, "dvc repro (reference)", dvc)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
