"""Small timing helpers shared by the bench scripts: wall time of whole commands."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def median_wall(cmd: list[str], runs: int, *, warmup: int = 2, **kw) -> float:
    for _ in range(warmup):
        wall(cmd, **kw)
    return statistics.median(wall(cmd, **kw) for _ in range(runs))


def report(name: str, value: float, baseline_name: str, baseline: float, target: float) -> bool:
    ratio = value / baseline
    ok = ratio <= target
    print(
        f"{name:<28} {value:7.3f} s   {baseline_name:<24} {baseline:7.3f} s   ratio {ratio:5.2f}x   "
        f"target <= {target:.2f}x   {'OK' if ok else 'MISSED'}"
    )
    return ok


# --- helpers for the pipeline benches (parallel.py, noop.py, overhead.py) ---

GIT_ID = ["-c", "user.name=opsctl bench", "-c", "user.email=bench@opsctl.invalid"]


def timed(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    """Like ``wall``, but a failing command stops the bench with the command, its exit
    code and its output (instead of a bare CalledProcessError)."""
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(
            f"failed (exit {proc.returncode}) in {cwd}:\n  $ {' '.join(map(str, cmd))}\n{proc.stdout.rstrip()}"
        )
    return elapsed


def pipeline_project(path: Path, dvc_yaml: str, *, opsctl_yaml: str | None = None, env: dict | None = None) -> Path:
    """A committed Git + DVC project at ``path`` (made by the real CLIs) with this
    ``dvc.yaml``, an optional ``opsctl.yaml``, an ``out/`` directory for the stages'
    outputs and ``.opsctl/`` ignored by Git and DVC."""
    path.mkdir(parents=True)
    timed(["git", "init", "-q"], cwd=path)
    timed([str(BIN / "dvc"), "init", "-q"], cwd=path, env=env)
    (path / "dvc.yaml").write_text(dvc_yaml)
    if opsctl_yaml is not None:
        (path / "opsctl.yaml").write_text(opsctl_yaml)
    (path / "out").mkdir()
    (path / "out" / ".gitkeep").write_text("")
    for ignore in (".gitignore", ".dvcignore"):
        with (path / ignore).open("a") as f:
            f.write(".opsctl/\n")
    timed(["git", "add", "-A"], cwd=path)
    timed(["git", *GIT_ID, "commit", "-qm", "bench pipeline"], cwd=path)
    return path


def fresh_copy(template: Path, dest: Path) -> Path:
    """A copy of a pristine project (its own empty DVC cache, so no run cache), with
    Git's index refreshed so that neither timed tool pays for the copy's new stat data."""
    shutil.copytree(template, dest, symlinks=True)
    subprocess.run(
        ["git", "update-index", "-q", "--refresh"], cwd=dest, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return dest


def report_limit(name: str, value: float, target: float) -> bool:
    """An absolute figure against an absolute target, in ``report``'s columns."""
    ok = value <= target
    print(f"{name:<28} {value:7.3f} s   target <= {target:.3f} s   {'OK' if ok else 'MISSED'}")
    return ok


def compare(name: str, value: float, baseline_name: str, baseline: float) -> None:
    """A figure next to a baseline, as a ratio with no target of its own."""
    print(f"{name:<28} {value:7.3f} s   {baseline_name:<24} {baseline:7.3f} s   ratio {value / baseline:5.2f}x")


# --- helpers for the in-process benches (runs.py) ---


def median_call(fn, runs: int, *, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` called in this process, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report_limit_against(
    name: str, value: float, target: float, baseline_name: str, baseline: float, *, width: int = 28
) -> bool:
    """An absolute figure against an absolute target, with its ratio to a baseline measured
    in the same run alongside (informational: the target is the absolute one)."""
    ok = value <= target
    print(
        f"{name:<{width}} {value:7.3f} s   target <= {target:.3f} s   {'OK' if ok else 'MISSED':<6}   "
        f"({value / baseline:4.2f}x {baseline_name} {baseline:.3f} s)"
    )
    return ok


# -- the Docker benches' shared project material --------------------------------------

BUSYBOX_IMAGE = "opsctl-test/busybox:latest"
DOCKER_OPSCTL_YAML = f"""\
project: bench
executor: docker
images:
  tools:
    ref: "{BUSYBOX_IMAGE}"
stages:
  default: {{image: tools}}
"""


def check_busybox_image() -> None:
    if subprocess.run(
        ["docker", "image", "inspect", BUSYBOX_IMAGE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode:
        raise SystemExit(
            f"{BUSYBOX_IMAGE} is not in the Docker engine (or no engine is reachable); "
            "build it with scripts/build-test-images.sh --only busybox"
        )


def check_outputs(project: Path, stages: int) -> dict:
    """Stage ``s<i>`` wrote ``out/s<i>.txt`` holding ``s<i>``, and dvc.lock records every stage;
    returns the lock (the benches compare opsctl's lock with dvc repro's)."""
    import yaml

    for i in range(stages):
        out = project / "out" / f"s{i}.txt"
        if not out.is_file() or out.read_text() != f"s{i}\n":
            raise SystemExit(f"{out} is missing or wrong: not every stage ran")
    lock_path = project / "dvc.lock"
    if not lock_path.is_file():
        raise SystemExit(f"{lock_path} was not written")
    lock = yaml.safe_load(lock_path.read_text())
    missing = {f"s{i}" for i in range(stages)} - set(lock.get("stages", {}))
    if missing:
        raise SystemExit(f"{lock_path} lacks stages {sorted(missing)}")
    return lock
