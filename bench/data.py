#!/usr/bin/env python3
"""`opsctl data add` and `opsctl data status` against `dvc add` and `dvc data status`,
on identical data in identical projects, in one run.

    .venv/bin/python bench/data.py [--size-mib 1024] [--files 2000] [--runs 3] [--status-runs 5] [--tmp /tmp]

Data: a directory of FILES random files totalling SIZE, and one file of SIZE,
generated once and copied into fresh projects (git init + dvc init, by the real
CLIs) for every timed command, with the disks synced before each one. The two
tools alternate which goes first. Add:
median of RUNS; status with nothing changed: median of STATUS-RUNS after a warm-up.
Target: opsctl <= 1.10x DVC for each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import BIN, report, wall

ENV = {"DVC_NO_ANALYTICS": "1"}
TARGET = 1.10
CHUNK = 1 << 20
OPSCTL = str(BIN / "opsctl")
DVC = str(BIN / "dvc")
GIT_ID = ["-c", "user.name=opsctl bench", "-c", "user.email=bench@opsctl.invalid"]


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n


def make_source(src: Path, size: int, nfiles: int) -> None:
    """``src/dataset/`` (nfiles files, ``size`` bytes in all, in subdirectories of 100) and ``src/single.bin``."""
    per_file, extra = divmod(size, nfiles)
    for i in range(nfiles):
        sub = src / "dataset" / f"part{i // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        write_random(sub / f"f{i:05d}.bin", per_file + (extra if i == nfiles - 1 else 0))
    write_random(src / "single.bin", size)


def new_project(path: Path) -> Path:
    path.mkdir(parents=True)
    wall(["git", "init", "-q"], cwd=path)
    wall([DVC, "init", "-q"], cwd=path, env=ENV)
    (path / "data").mkdir()
    return path


def put(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copyfile(src, dest)


def time_add(work: Path, src: Path, kind: str, runs: int) -> tuple[float, float, Path]:
    """Median wall time of ``opsctl data add`` and ``dvc add`` of ``src`` in fresh projects.
    Returns the last DVC project, kept for the status benchmark."""
    rel = f"data/{src.name}"
    commands = {
        "opsctl": [OPSCTL, "data", "add", rel],
        "dvc": [DVC, "add", "-q", rel],
    }
    times: dict[str, list[float]] = {"opsctl": [], "dvc": []}
    keep = None
    for i in range(runs):
        order = ["opsctl", "dvc"] if i % 2 == 0 else ["dvc", "opsctl"]
        projects = {}
        for tool in order:
            project = new_project(work / f"{kind}-{i}-{tool}")
            put(src, project / rel)
            projects[tool] = project
        for tool in order:
            # Flush the copies (and the previous add's cache writes) first, so that
            # neither tool pays for the other's pending writeback.
            os.sync()
            times[tool].append(wall(commands[tool], cwd=projects[tool], env=ENV))
        dvcfiles = {tool: (projects[tool] / f"{rel}.dvc").read_text() for tool in order}
        if dvcfiles["opsctl"] != dvcfiles["dvc"]:  # both must have done the same work
            raise SystemExit(f"{rel}.dvc differs between opsctl and dvc:\n{dvcfiles['opsctl']}\n{dvcfiles['dvc']}")
        shutil.rmtree(projects["opsctl"])
        if keep is not None:
            shutil.rmtree(keep)
        keep = projects["dvc"]
        print(f"  {kind} run {i + 1}: opsctl {times['opsctl'][-1]:.3f} s, dvc {times['dvc'][-1]:.3f} s", flush=True)
    return statistics.median(times["opsctl"]), statistics.median(times["dvc"]), keep


def time_status(project: Path, runs: int) -> tuple[float, float]:
    commands = {
        "opsctl": [OPSCTL, "data", "status", "--no-remote"],
        "dvc": [DVC, "data", "status"],
    }
    for cmd in commands.values():  # warm-up: page cache, DVC's hash cache, bytecode
        wall(cmd, cwd=project, env=ENV)
    times: dict[str, list[float]] = {"opsctl": [], "dvc": []}
    for i in range(runs):
        for tool in ["opsctl", "dvc"] if i % 2 == 0 else ["dvc", "opsctl"]:
            times[tool].append(wall(commands[tool], cwd=project, env=ENV))
    return statistics.median(times["opsctl"]), statistics.median(times["dvc"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the directory, and of the single file")
    parser.add_argument("--files", type=int, default=2000, help="files in the directory")
    parser.add_argument("--runs", type=int, default=3, help="timed adds per tool and kind (median)")
    parser.add_argument("--status-runs", type=int, default=5, help="timed status runs per tool (median)")
    parser.add_argument("--tmp", default="/tmp", help="where to make the projects (one filesystem)")
    args = parser.parse_args()
    if args.files < 1 or args.size_mib < 1 or args.runs < 1 or args.status_runs < 1:
        parser.error("--size-mib, --files, --runs and --status-runs must be at least 1")

    size = args.size_mib * CHUNK
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-data-", dir=args.tmp))
    try:
        src = work / "src"
        src.mkdir()
        print(
            f"data: {args.files} files / {args.size_mib} MiB in a directory, and one {args.size_mib} MiB file "
            f"(in {work})",
            flush=True,
        )
        make_source(src, size, args.files)

        # Warm-up: import both tools once (bytecode, page cache of the venv).
        warm = new_project(work / "warm")
        (warm / "data" / "w.txt").write_text("warm\n")
        wall([DVC, "add", "-q", "data/w.txt"], cwd=warm, env=ENV)
        (warm / "data" / "w2.txt").write_text("warm\n")
        wall([OPSCTL, "data", "add", "data/w2.txt"], cwd=warm, env=ENV)
        shutil.rmtree(warm)

        dir_o, dir_d, dir_project = time_add(work, src / "dataset", "dir", args.runs)
        file_o, file_d, file_project = time_add(work, src / "single.bin", "file", args.runs)

        # Status with nothing changed: the directory and the file tracked and committed.
        shutil.move(str(file_project / "data" / "single.bin"), dir_project / "data" / "single.bin")
        shutil.rmtree(file_project)
        wall([DVC, "add", "-q", "data/single.bin"], cwd=dir_project, env=ENV)
        wall(["git", "add", "-A"], cwd=dir_project)
        wall(["git", *GIT_ID, "commit", "-qm", "data"], cwd=dir_project)
        check = subprocess.run(
            [OPSCTL, "data", "status", "--no-remote", "--json"],
            cwd=dir_project,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            check=True,
        )
        if not json.loads(check.stdout)["up_to_date"]:
            raise SystemExit(f"the status project is not up to date:\n{check.stdout}")
        st_o, st_d = time_status(dir_project, args.status_runs)

        print()
        ok = report(f"data add DIR ({args.files} files)", dir_o, "dvc add DIR", dir_d, TARGET)
        ok &= report(f"data add FILE ({args.size_mib} MiB)", file_o, "dvc add FILE", file_d, TARGET)
        ok &= report("data status --no-remote", st_o, "dvc data status", st_d, TARGET)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
