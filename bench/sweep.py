#!/usr/bin/env python3
"""A 12-experiment sweep of the ml-pipeline template: `opsctl exp run -j 4` (docker executor)
against `dvc exp run --queue` + `dvc queue start -j 4` (host), on identical fresh projects, in one run.

    .venv/bin/python bench/sweep.py [--runs 1] [-j 4] [--only dvc|opsctl] [--timeout 1200] [--tmp DIR]

Project: `opsctl init --template ml-pipeline --defaults` (Git + DVC, data/raw/churn.csv tracked
by DVC, everything committed), its image built FROM the local test image opsctl-test/python:3
(python3, pandas, scikit-learn; install_requirements=false, as in scripts/demo.sh). The pipeline
is prepare -> featurize -> train -> evaluate; the sweep varies only `train` params:
    -S train.n_estimators=50,100,150 -S train.max_depth=4,6,8,10      (a 3 x 4 grid: 12 experiments)
so prepare and featurize have the same inputs in every experiment. The pristine project is made
once, never run (no dvc.lock, an empty run cache), and copied for every timed sweep, so each
tool starts from the same commit with a DVC cache holding only the raw data: no run cache is
shared between the tools or between runs.

Untimed, before: opsctl builds the image in a throwaway copy (images are engine state; the
bench also runs `dvc status` there, so both tools' imports are warm), and `opsctl build --json`
in opsctl's copy must say the image is already built (a copy must not look changed). The disks
are synced before each timed sweep; with --runs > 1 the tools alternate which goes first.

  dvc:     time from the start of `dvc exp run --queue -S ... -S ...` (which must queue 12) through
           `dvc queue start -j J` until the 12 experiments are done. Stage commands run on the host
           with this venv's bin first on PATH (its python3 has pandas and scikit-learn; DVC's
           workers also find `dvc` there). Done = every queued experiment's ref (refs/exps/<base>/<name>)
           is in the repository, polled with `git for-each-ref` every 0.2 s (polling `dvc queue status`
           or `dvc exp show` would take a core of this 2-core machine, and waits for the workers' repo
           lock); then `dvc exp show --json` must say `success` for all 12. A failed experiment (DVC's
           refs/exps/celery/failed appears) or TIMEOUT stops the queue (`dvc queue stop --kill`) and the
           bench with a clear message. Executions of prepare/featurize are counted from each
           experiment's log (`Running stage 'prepare'` against `Stage 'prepare' is cached`).
  opsctl:  time of `opsctl exp run -S ... -S ... -j J --executor docker --name bench`. Then
           `opsctl exp show bench --json` must list 12 succeeded experiments covering the grid,
           and `opsctl runs show RUN --json` of each gives its stages' outcomes: prepare and
           featurize must each have outcome "ran" in exactly one of the 12 runs (exit 1 if not).

  floor:   after opsctl's sweep, the 12 experiments' train + evaluate commands alone, as bare
           `docker run`s of the same image, J experiments at a time, each in a copy of the
           workspace with its params: what running these stages in containers costs at least,
           printed beside opsctl's figure (opsctl's own cost is the difference).

Median of RUNS (each run is minutes). Target: opsctl <= 0.4x DVC's wall time, and prepare and
featurize executed exactly once by opsctl. DVC's own counts are printed beside it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _timing import BIN, check_image, fresh_copy, json_of, report, timed

PYTHON_IMAGE = "opsctl-test/python:3"
GRID = {"train.n_estimators": [50, 100, 150], "train.max_depth": [4, 6, 8, 10]}
EXPERIMENTS = len(list(itertools.product(*GRID.values())))
SWEEP = [arg for key, values in GRID.items() for arg in ("-S", f"{key}={','.join(map(str, values))}")]
SHARED = ("prepare", "featurize")  # stages whose inputs no swept param touches
GROUP = "bench"
TARGET = 0.4
POLL = 0.2  # seconds between two looks at DVC's experiment refs
# Refs of DVC's queue itself (not experiments); the second exists once an experiment has failed. Polling
# `dvc queue status` or `dvc exp show` instead would take a core and wait for the workers' repo lock.
CELERY_REFS = "refs/exps/celery/"
FAILED_REF = "refs/exps/celery/failed"
# DVC's queue workers run `dvc exp exec-run` and the stages' `python3` from PATH.
ENV = {"DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def opsctl(*args: str) -> list[str]:
    return [str(BIN / "opsctl"), *args]


def dvc(*args: str) -> list[str]:
    return [str(BIN / "dvc"), *args]


@dataclass
class Sweep:
    """One tool's timed sweep: its wall time, how often each stage executed, a line per experiment."""

    seconds: float
    executed: Counter
    notes: list[str]


def pristine_project(work: Path, name: str) -> Path:
    path = work / "pristine"
    timed(
        opsctl(
            "init",
            str(path),
            "--template",
            "ml-pipeline",
            "--defaults",
            "--name",
            name,
            "--data",
            "executor=docker",
            "--data",
            f"base_image={PYTHON_IMAGE}",
            "--data",
            "install_requirements=false",
        ),
        cwd=work,
        env=ENV,
    )
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True).stdout
    if dirty.strip() or (path / "dvc.lock").exists():
        raise SystemExit(f"the scaffolded project {path} is not a clean, never-run commit:\n{dirty}")
    return path


def grid_covered(params: list[dict], tool: str) -> None:
    """Each experiment's params (flattened to dotted keys) hit a distinct point of the grid, all of it
    (values compared as text: a tool may report 50 or "50")."""
    wanted = {tuple(map(str, point)) for point in itertools.product(*GRID.values())}
    seen = []
    for p in params:
        flat = flatten(p)
        point = []
        for key in GRID:
            found = [v for k, v in flat.items() if k == key or k.endswith("." + key) or k.endswith(":" + key)]
            point.append(str(found[0]) if found else None)
        seen.append(tuple(point))
    if sorted(seen, key=str) != sorted(wanted, key=str):
        raise SystemExit(f"{tool}'s experiments do not cover the grid {GRID} once each: {sorted(seen, key=str)}")


def flatten(value, prefix: str = "") -> dict:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict = {}
    for k, v in value.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


# ---- DVC -----------------------------------------------------------------------------------


def exp_refs(project: Path) -> set[str]:
    """The Git refs under refs/exps/: DVC's finished experiments (refs/exps/<baseline>/<name>) and its
    queue's own (refs/exps/celery/stash, and refs/exps/celery/failed once an experiment failed)."""
    return set(
        subprocess.run(
            ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], cwd=project, capture_output=True, text=True
        ).stdout.split()
    )


def dvc_experiments(project: Path) -> dict[str, dict]:
    """`dvc exp show --json`: each experiment by name, with its executor state, params and log."""
    out = {}
    for row in json_of(dvc("exp", "show", "--json"), cwd=project, env=ENV):
        for exp in row.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name")
                out[name] = {
                    "state": (exp.get("executor") or {}).get("state") or "success",
                    "log": ((exp.get("executor") or {}).get("local") or {}).get("log"),
                    "params": ((rev.get("data") or {}).get("params") or {}).get("params.yaml", {}).get("data", {}),
                }
    return out


def start_queue(project: Path, jobs: int) -> None:
    """`dvc queue start -j JOBS`. Its output goes to a file, not a pipe: the workers it leaves
    running inherit it, and a pipe would not reach its end until they all exit."""
    with tempfile.TemporaryFile("w+") as out:
        cmd = dvc("queue", "start", "-j", str(jobs))
        code = subprocess.run(cmd, cwd=project, env={**os.environ, **ENV}, stdout=out, stderr=out).returncode
        if code:
            out.seek(0)
            raise SystemExit(f"failed (exit {code}) in {project}:\n  $ {' '.join(cmd)}\n{out.read().rstrip()}")


def stop_queue(project: Path, *, kill: bool) -> None:
    cmd = dvc("queue", "stop", *(["--kill"] if kill else []))
    subprocess.run(cmd, cwd=project, env={**os.environ, **ENV}, capture_output=True)


def queue_log(project: Path, name: str, path: str | None) -> str:
    if path and Path(path).is_file():
        return Path(path).read_text(errors="replace")
    return subprocess.run(
        dvc("queue", "logs", name), cwd=project, env={**os.environ, **ENV}, capture_output=True, text=True
    ).stdout


def dvc_sweep(project: Path, jobs: int, timeout: float) -> Sweep:
    started = time.perf_counter()
    queued = subprocess.run(
        dvc("exp", "run", "--queue", *SWEEP), cwd=project, env={**os.environ, **ENV}, capture_output=True, text=True
    )
    output = queued.stdout + queued.stderr
    names = re.findall(r"Queued experiment '([^']+)'", output)
    if queued.returncode or len(names) != EXPERIMENTS:
        raise SystemExit(
            f"`dvc exp run --queue {' '.join(SWEEP)}` queued {len(names)} experiments, not {EXPERIMENTS} "
            f"(exit {queued.returncode}) in {project}:\n{output.rstrip()}"
        )
    finished: dict[str, float] = {}
    try:
        start_queue(project, jobs)
        while len(finished) < len(names):
            time.sleep(POLL)
            refs = exp_refs(project)
            now = time.perf_counter() - started
            for ref in refs:
                name = ref.rsplit("/", 1)[-1]
                if not ref.startswith(CELERY_REFS) and name in names and name not in finished:
                    finished[name] = now
            if FAILED_REF in refs:
                raise SystemExit(
                    f"an experiment of DVC's queue failed in {project} ({len(finished)} of {len(names)} done): "
                    f"stopped the queue; not done: {', '.join(n for n in names if n not in finished)} "
                    "(see `dvc queue logs NAME` there)"
                )
            if now > timeout and len(finished) < len(names):
                raise SystemExit(
                    f"DVC's queue did not finish {len(names)} experiments within {timeout:g} s "
                    f"({len(finished)} done) in {project}: stopped it (see `dvc queue status` there)"
                )
        seconds = max(finished.values())
    finally:
        # Untimed: the workers, idle now, would linger a while; if the sweep failed, timed out or was
        # interrupted, kill what still runs. No worker may outlive the bench's directory.
        stop_queue(project, kill=len(finished) < len(names))

    shown = dvc_experiments(project)
    missing = [n for n in names if shown.get(n, {}).get("state") != "success"]
    if missing:
        raise SystemExit(f"`dvc exp show --json` does not say success for {', '.join(missing)} in {project}")
    grid_covered([shown[n]["params"] for n in names], "dvc")
    executed: Counter = Counter()
    per_exp = []
    for name in sorted(names, key=finished.__getitem__):
        log = queue_log(project, name, shown[name]["log"])
        ran = re.findall(r"^Running stage '([^']+)'", log, re.MULTILINE)
        executed.update(ran)
        cached = re.findall(r"^Stage '([^']+)' is cached", log, re.MULTILINE)
        per_exp.append(
            f"{name} done at {finished[name]:5.1f} s: ran {'+'.join(ran) or '-'}"
            + (f", restored {'+'.join(cached)}" if cached else "")
        )
    return Sweep(seconds, executed, per_exp)


# ---- opsctl ----------------------------------------------------------------------------------


def check_image_built(project: Path) -> None:
    """`opsctl build --json` in the copy: every image is already in the engine (none built now)."""
    rebuilt = [i.get("name") for i in json_of(opsctl("build", "--json"), cwd=project, env=ENV) if i.get("built")]
    if rebuilt:
        raise SystemExit(
            f"opsctl built image(s) {rebuilt} again in a copy of the project ({project}): it looked changed"
        )


def opsctl_sweep(project: Path, jobs: int, timeout: float) -> Sweep:
    cmd = opsctl("exp", "run", *SWEEP, "-j", str(jobs), "--executor", "docker", "--name", GROUP)
    seconds = timed(cmd, cwd=project, env=ENV, timeout=timeout)

    shown = json_of(opsctl("exp", "show", GROUP, "--json"), cwd=project, env=ENV)
    experiments = shown.get("experiments") if isinstance(shown, dict) else None
    if not isinstance(experiments, list) or len(experiments) != EXPERIMENTS:
        raise SystemExit(
            f"`opsctl exp show {GROUP} --json` lists {len(experiments) if isinstance(experiments, list) else '?'} "
            f"experiments, not {EXPERIMENTS}, in {project}"
        )
    failed = [f"{e.get('name')} ({e.get('status')})" for e in experiments if e.get("status") != "succeeded"]
    if failed:
        raise SystemExit(f"opsctl experiments not succeeded in {project}: {', '.join(failed)}")
    grid_covered([e.get("params") or {} for e in experiments], "opsctl")
    executed: Counter = Counter()
    per_exp = []
    for exp in experiments:
        ran, others, duration = run_stages(project, exp["run"])
        executed.update(ran)
        per_exp.append(
            f"{exp.get('name') or exp['run']}: "
            + (f"{duration:5.1f} s, " if duration is not None else "")
            + f"ran {'+'.join(ran) or '-'}"
            + (f"; {', '.join(others)}" if others else "")
        )
    return Sweep(seconds, executed, per_exp)


def floor_seconds(project: Path, jobs: int) -> float:
    """The floor under opsctl's figure: the sweep's train + evaluate commands alone, as bare
    `docker run`s of the same image (network none, the user's uid, the workspace mounted),
    JOBS experiments at a time, each in a copy of the workspace with its params — what any
    tool running these stages in containers must spend. Untimed first: `exp apply` of one
    experiment brings prepare's and featurize's outputs into the workspace."""
    import concurrent.futures

    import yaml

    shown = json_of(opsctl("exp", "show", GROUP, "--json"), cwd=project, env=ENV)
    experiments = shown["experiments"]
    timed(opsctl("exp", "apply", experiments[0]["run"], "--force"), cwd=project, env=ENV)
    image = next(i["ref"] for i in json_of(opsctl("build", "--json"), cwd=project, env=ENV) if i.get("name") == "app")
    dirs = []
    for n, exp in enumerate(experiments):
        copy = project.parent / f"{project.name}-floor-{n}"
        shutil.copytree(project / "src", copy / "src")
        shutil.copytree(project / "data", copy / "data")
        params = yaml.safe_load((project / "params.yaml").read_text())
        for override in exp["overrides"]:
            key, _, value = override.partition("=")
            section, _, name = key.partition(".")
            params[section][name] = yaml.safe_load(value)
        (copy / "params.yaml").write_text(yaml.safe_dump(params))
        dirs.append(copy)

    def one(copy: Path) -> None:
        for script in ("src/train.py", "src/evaluate.py"):
            subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "-u",
                    f"{os.getuid()}:{os.getgid()}",
                    "-v",
                    f"{copy}:/workspace",
                    "-w",
                    "/workspace",
                    image,
                    "python3",
                    script,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    os.sync()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, dirs))
    seconds = time.perf_counter() - started
    for copy in dirs:
        shutil.rmtree(copy)
    return seconds


def run_stages(project: Path, run_id: str) -> tuple[list[str], list[str], float | None]:
    """`opsctl runs show RUN --json`: the stages that ran, the others with their outcome, the run's duration."""
    run = json_of(opsctl("runs", "show", run_id, "--json"), cwd=project, env=ENV)
    stages = run.get("stages") or []
    ran = [s["name"] for s in stages if s.get("outcome") == "ran"]
    others = [f"{s['name']} {s.get('outcome')}" for s in stages if s.get("outcome") != "ran"]
    duration = run.get("duration")
    return ran, others, duration if isinstance(duration, (int, float)) else None


# ---- the bench -------------------------------------------------------------------------------


def counts(sweep: Sweep) -> str:
    return " / ".join(str(sweep.executed.get(stage, 0)) for stage in SHARED)


def remove_images(project_name: str) -> None:
    ids = subprocess.run(
        ["docker", "image", "ls", "-q", "--filter", f"label=org.opsctl.project={project_name}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "image", "rm", "-f", *sorted(set(ids))], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1, help="timed sweeps per tool (median); each is minutes")
    parser.add_argument("-j", "--jobs", type=int, default=4, help="experiments at once (both tools)")
    parser.add_argument("--only", choices=["dvc", "opsctl"], help="time one tool only")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds one sweep may take")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the projects")
    args = parser.parse_args()
    if args.runs < 1 or args.jobs < 1 or args.timeout <= 0:
        parser.error("--runs and -j must be at least 1, --timeout positive")
    tools = [args.only] if args.only else ["opsctl", "dvc"]
    if "opsctl" in tools:
        check_image(PYTHON_IMAGE, "python")

    name = f"sweep-bench-{uuid.uuid4().hex[:8]}"  # the images' name: none shared with other projects
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-sweep-", dir=args.tmp))
    try:
        pristine = pristine_project(work, name)
        print(
            f"sweep: ml-pipeline, {' '.join(SWEEP)} ({EXPERIMENTS} experiments), -j {args.jobs}; "
            f"opsctl in {PYTHON_IMAGE} (in {work})",
            flush=True,
        )
        prep = fresh_copy(pristine, work / "prep")  # untimed: the image, warm imports
        if "opsctl" in tools:
            timed(opsctl("build"), cwd=prep, env=ENV)
        timed(dvc("status"), cwd=prep, env=ENV)
        shutil.rmtree(prep)

        sweeps: dict[str, list[Sweep]] = {tool: [] for tool in tools}
        floors: list[float] = []
        for i in range(args.runs):
            order = tools if i % 2 == 0 else tools[::-1]
            projects = {tool: fresh_copy(pristine, work / f"run{i}-{tool}") for tool in order}
            if "opsctl" in projects:
                check_image_built(projects["opsctl"])
            for tool in order:
                os.sync()
                sweep = (opsctl_sweep if tool == "opsctl" else dvc_sweep)(projects[tool], args.jobs, args.timeout)
                sweeps[tool].append(sweep)
                print(
                    f"  run {i + 1} {tool}: {sweep.seconds:.1f} s, {'/'.join(SHARED)} executed {counts(sweep)}",
                    flush=True,
                )
                if tool == "opsctl":
                    floors.append(floor_seconds(projects[tool], args.jobs))
                    print(f"  run {i + 1} floor (train + evaluate as bare docker runs): {floors[-1]:.1f} s", flush=True)
                for line in sweep.notes:
                    print(f"    {line}", flush=True)
            for project in projects.values():
                shutil.rmtree(project)

        print()
        once = all(s.executed.get(stage, 0) == 1 for s in sweeps.get("opsctl", []) for stage in SHARED)
        seconds = {tool: statistics.median(s.seconds for s in runs) for tool, runs in sweeps.items()}
        opsctl_name = f"opsctl exp run -j {args.jobs} (docker)"
        dvc_name = f"dvc exp queue -j {args.jobs} (host)"
        ok = True
        if len(tools) == 2:
            ok = report(opsctl_name, seconds["opsctl"], dvc_name, seconds["dvc"], TARGET)
        else:
            print(f"{opsctl_name if args.only == 'opsctl' else dvc_name:<28} {seconds[args.only]:7.3f} s")
        if floors:
            floor = statistics.median(floors)
            line = (
                f"{'floor: the stages alone':<28} {floor:7.3f} s   opsctl {seconds['opsctl'] / floor:4.2f}x the floor"
            )
            if "dvc" in seconds:
                line += f"; the floor is {floor / seconds['dvc']:4.2f}x DVC's time"
            print(line)
        for tool, runs in sweeps.items():
            shown = ", ".join(counts(s) for s in runs)
            rule = (
                f"must be {' / '.join('1' for _ in SHARED)}   {'OK' if once else 'MISSED'}" if tool == "opsctl" else ""
            )
            print(f"{'/'.join(SHARED) + ' executed, ' + tool:<28} {shown:>9}     {rule}".rstrip())
        return 0 if ok and once else 1
    finally:
        remove_images(name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
