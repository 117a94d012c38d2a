#!/usr/bin/env python3
"""`opsctl run -j 8` (docker executor) against the floor — 8 parallel `docker run` sharing one
network namespace — and against `dvc repro` (host, one stage at a time), on 8 independent
stages that each sleep, in one run.

    .venv/bin/python bench/parallel.py [--stages 8] [--sleep 1] [--runs 3] [--tmp DIR]

Pipeline: STAGES stages with no dependencies between them, stage i running
`sleep SLEEP && echo si > out/si.txt` with `out/si.txt` as its only output.
A pristine project (git init + dvc init by the real CLIs, dvc.yaml and an
opsctl.yaml whose executor is docker with every stage in opsctl-test/busybox:latest,
all committed) is made once and copied for every timed command, so each run has
an empty DVC cache (no run cache) and really runs every stage. Both tools must
leave the same outputs and the same dvc.lock.

The floor is what the containers alone cost: STAGES concurrent `docker run --rm
--network container:SANDBOX opsctl-test/busybox:latest sleep SLEEP` processes (the
docker CLI included), wall time until all exit. SANDBOX is a container holding one
empty network namespace, started once before the timed runs and removed after — as
opsctl's docker executor shares one per run (executors/docker.py), except that opsctl
starts its own inside the time measured.

A second floor, "shaped", runs the same containers shaped as opsctl shapes a stage's
(adapters/docker.py, taken from that module so the two cannot drift apart): the project
bound at /workspace with the pipeline's own files read-only on top and .opsctl hidden
under a tmpfs, no capabilities, no-new-privileges, a pids limit, the invoking uid:gid.
It is printed beside the plain floor, without a target: what the safety rules cost the
engine, so that the rest of the gap is opsctl's own.

The disks are synced before each command and the three alternate which goes first.
One untimed warm-up of each first (imports, the engine). Median of RUNS; target:
opsctl <= 1.15x the floor (the exit status); `dvc repro` is shown alongside, with
its own target opsctl <= 0.35x, which must hold too.
"""

from __future__ import annotations

import argparse
import os
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
    check_busybox_image,
    check_outputs,
    fresh_copy,
    pipeline_project,
    report,
    timed,
)

ENV = {"DVC_NO_ANALYTICS": "1"}
TARGET = 1.15  # opsctl against the floor
DVC_TARGET = 0.35  # opsctl against dvc repro
TOOLS = ("opsctl", "floor", "shaped", "dvc")


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


def start_sandbox() -> str:
    """A container holding one empty network namespace, as executors/docker.py's sandbox."""
    proc = subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", "none", "--user", "65534:65534", "--cap-drop", "ALL",
         "--security-opt", "no-new-privileges", "--label", "org.opsctl.bench=parallel-floor",
         "--entrypoint", "/bin/sh", BUSYBOX_IMAGE, "-c", "exec sleep 2147483647"],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"could not start the floor's network sandbox: {proc.stderr.strip()}")
    return proc.stdout.strip()


def shaped_options(workspace: Path) -> tuple[str, ...]:
    """`docker run` options giving a container the shape of an opsctl stage's in ``workspace``."""
    from opsctl.adapters.docker import HIDDEN_PATHS, _workspace_binds
    from opsctl.executors.base import DEFAULT_PIDS

    binds, _absent = _workspace_binds(str(workspace))
    options = [f"--volume={source}:{bind['bind']}:{bind['mode']}" for source, bind in binds.items()]
    options += [f"--tmpfs=/workspace/{path}:ro,nosuid,nodev,noexec,size=4k" for path in HIDDEN_PATHS]
    return (
        *options,
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--pids-limit={DEFAULT_PIDS}",
        f"--user={os.getuid()}:{os.getgid()}",
        "--workdir=/workspace",
    )


def floor(sandbox: str, stages: int, sleep: float, options: tuple[str, ...] = ()) -> float:
    """``stages`` concurrent `docker run`s joining ``sandbox``'s namespace: wall time until all exit."""
    cmd = ["docker", "run", "--rm", "--network", f"container:{sandbox}", *options, BUSYBOX_IMAGE, "sleep", f"{sleep:g}"]
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(stages)]
    outputs = [proc.communicate()[0] for proc in procs]
    elapsed = time.perf_counter() - started
    for proc, output in zip(procs, outputs):
        if proc.returncode:
            raise SystemExit(f"floor: `{' '.join(cmd)}` failed (exit {proc.returncode}): {output.decode().strip()}")
    return elapsed


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
    sandbox = None
    try:
        template = pipeline_project(
            work / "template", dvc_yaml(args.stages, args.sleep), opsctl_yaml=DOCKER_OPSCTL_YAML, env=ENV
        )
        print(
            f"pipeline: {args.stages} independent stages of `sleep {args.sleep:g}`, "
            f"opsctl -j {args.stages} in {BUSYBOX_IMAGE} (in {work})",
            flush=True,
        )
        sandbox = start_sandbox()
        shaped_workspace = fresh_copy(template, work / "shaped")  # the shaped floor's containers write nothing
        shaped = shaped_options(shaped_workspace)

        floor(sandbox, args.stages, args.sleep)  # warm-up: bytecode, page cache, the engine
        floor(sandbox, args.stages, args.sleep, shaped)
        for tool, cmd in commands.items():
            warm = fresh_copy(template, work / f"warm-{tool}")
            timed(cmd, cwd=warm, env=ENV)
            check_outputs(warm, args.stages)
            shutil.rmtree(warm)

        times: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        for i in range(args.runs):
            order = TOOLS[i % len(TOOLS) :] + TOOLS[: i % len(TOOLS)]
            projects = {tool: fresh_copy(template, work / f"run{i}-{tool}") for tool in commands}
            for tool in order:
                os.sync()
                if tool == "floor":
                    times[tool].append(floor(sandbox, args.stages, args.sleep))
                elif tool == "shaped":
                    times[tool].append(floor(sandbox, args.stages, args.sleep, shaped))
                else:
                    times[tool].append(timed(commands[tool], cwd=projects[tool], env=ENV))
            locks = {tool: check_outputs(projects[tool], args.stages) for tool in commands}
            if locks["opsctl"] != locks["dvc"]:  # both must have done the same work
                raise SystemExit(
                    "dvc.lock differs between opsctl and dvc:\n"
                    f"{yaml.safe_dump(locks['opsctl'])}\n{yaml.safe_dump(locks['dvc'])}"
                )
            for project in projects.values():
                shutil.rmtree(project)
            print(f"  run {i + 1}: " + ", ".join(f"{t} {times[t][-1]:.3f} s" for t in order), flush=True)

        print()
        opsctl = statistics.median(times["opsctl"])
        ok = report(
            f"opsctl run -j {args.stages} (docker)",
            opsctl,
            f"{args.stages} x docker run (floor)",
            statistics.median(times["floor"]),
            TARGET,
        )
        shaped_floor = statistics.median(times["shaped"])
        print(
            f"{'  the floor, shaped as opsctl':<28} {shaped_floor:7.3f} s   "
            f"(+{shaped_floor - statistics.median(times['floor']):.3f} s: the safety rules' cost to the engine); "
            f"opsctl / shaped floor {opsctl / shaped_floor:.2f}x"
        )
        ok_dvc = report(
            f"opsctl run -j {args.stages} (docker)",
            opsctl,
            "dvc repro (host)",
            statistics.median(times["dvc"]),
            DVC_TARGET,
        )
        return 0 if ok and ok_dvc else 1
    finally:
        if sandbox is not None:
            subprocess.run(["docker", "rm", "-f", sandbox], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
