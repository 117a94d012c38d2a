#!/usr/bin/env python3
"""`opsctl run --executor dask` on a local 2-worker Dask cluster against the Docker executor
(per-stage overhead) and against `dvc push` + `dvc pull` (moving data), in one run.

    .venv/bin/python bench/cluster.py [--stages 8] [--sleep 1] [-j 2] [--repeat 3] [--quick]
        [--data-dir /tmp/opsctl-bench-cluster] [--only overhead|transfer] [--repo .] [--tmp DIR]

The bench starts its own cluster on 127.0.0.1 — `dask scheduler` and two
`dask worker --nthreads 1 --no-nanny`, each with its own --local-directory (so its own
node DVC cache, `<local-directory>/opsctl/cache`), PYTHONPATH=REPO so they run the opsctl
measured, and an empty Dask config — and stops them at the end. Workers share this
machine's Docker engine (so images need no registry), but not its files: data moves
through a local-directory DVC remote (`dvc remote add -d`), as through S3 on real machines.

1. Overhead per stage. A pipeline of STAGES independent stages, stage i running
   `mkdir -p out && sleep SLEEP && echo si > out/si.txt` in opsctl-test/busybox:latest. A pristine
   project (git init + dvc init by the real CLIs, dvc.yaml, opsctl.yaml, the remote, all
   committed) is copied for every timed command, each copy with its own empty remote:
       docker:         opsctl run --executor docker -j J --force
       dask:           opsctl run --executor dask -j J --force --scheduler tcp://127.0.0.1:PORT
       dask (local):   opsctl run --executor dask -j J --force   (opsctl's own local cluster,
                       one worker per core, started and stopped inside the run: informational)
   One untimed warm-up of each (the first task on a worker imports DVC), then REPEAT
   rounds rotating which goes first; medians. With J slots the STAGES stages run in
   ceil(STAGES / J) waves. The same two commands are also timed on the first J stages only
   (`opsctl run s0 s1 ...`: one wave), so each run's fixed cost (start-up, importing Dask,
   reaching the scheduler, checking the workers' engines) cancels out:
       a wave = (T(all stages) - T(one wave)) / (waves - 1)
       overhead per stage = a wave through Dask - a wave through Docker
   is the extra wall time each stage on the critical path costs by going through Dask
   (submitting the task, the worker's node workspace and DVC repo, pushing the output to
   the remote, the coordinator fetching it back). Target <= 0.5 s. The whole-run figure,
   (T_dask - T_docker) / waves with the fixed cost in it, is printed beside it. Checks (exit 1): every
   output written, dvc.lock of each Dask run equal to the Docker run's, every stage ran,
   and the external cluster's stages ran on both workers.

2. Moving data. A DVC-tracked directory `data/` of 2,000 files of random bytes, 1 GiB in
   all (deterministic seed; made once in DATA_DIR and kept; --quick: 200 files, 100 MiB),
   and a DVC-tracked `small/` of one file. Stage `big` (`mkdir -p out && ls data | wc -l > out/big.txt`,
   dep data/) and stage `tiny` (the same on small/). Each round has new empty remotes and
   empties both workers' node caches, then times:
       opsctl big:   opsctl run --executor dask --scheduler ... --force big
                     = the coordinator's push of data/ to the remote, the worker's fetch into
                       its node cache and checkout into the node workspace, the command, the
                       push of out/big.txt, the coordinator's fetch of it, dvc.lock; plus the
                       fixed cost of a run (start-up, Dask, the container)
       opsctl tiny:  the same for `tiny`: that fixed cost, with next to no data
       dvc big:      dvc push data.dvc (from the project) + dvc pull data.dvc (in a fresh
                     `git clone` of it, empty cache, same remote)
       dvc tiny:     the same for small.dvc
   One untimed warm-up round, then REPEAT rounds alternating which tool goes first; medians.
   The data's own cost is each side's big minus its tiny:
       opsctl fetch + push = opsctl big - opsctl tiny;  dvc push + pull = dvc big - dvc tiny
   Target: opsctl fetch + push <= 1.1x dvc push + pull. The whole-run ratio
   (opsctl big / dvc big, opsctl's fixed cost included) is printed beside it. Checks (exit 1):
   out/big.txt counts every file, the clone got every file, a worker's node cache holds
   the data (it was really fetched), every opsctl run ran the stage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from _timing import (
    BIN,
    DOCKER_OPSCTL_YAML,
    GIT_ID,
    check_busybox_image,
    check_outputs,
    compare,
    fresh_copy,
    pipeline_project,
    report,
    report_limit,
    timed,
)

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
ENV = {"DVC_NO_ANALYTICS": "1", "NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost"}
OVERHEAD_TARGET = 0.5  # seconds per stage on the critical path
TRANSFER_TARGET = 1.1  # opsctl fetch + push / (dvc push + dvc pull)
START_TIMEOUT = 60.0
SEED = 14
DATA_YAML = {
    "stages": {
        "big": {"cmd": "mkdir -p out && ls data | wc -l > out/big.txt", "deps": ["data"], "outs": ["out/big.txt"]},
        "tiny": {"cmd": "mkdir -p out && ls small | wc -l > out/tiny.txt", "deps": ["small"], "outs": ["out/tiny.txt"]},
    }
}


def dvc_yaml(stages: int, sleep: float) -> str:
    """bench/parallel.py's pipeline, each command making out/ first: a node workspace holds a
    stage's deps, not the project's other directories."""
    return yaml.safe_dump(
        {
            "stages": {
                f"s{i}": {
                    "cmd": f"mkdir -p out && sleep {sleep:g} && echo s{i} > out/s{i}.txt",
                    "outs": [f"out/s{i}.txt"],
                }
                for i in range(stages)
            }
        },
        sort_keys=False,
    )


# ---- the cluster ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 10 s; always reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Cluster:
    """`dask scheduler` + `dask worker`s (one thread each, no nanny) on 127.0.0.1, each worker
    with its own --local-directory; every process started here is stopped by ``stop``."""

    tmp: Path
    env: dict[str, str]
    workers: int = 2
    port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    def worker_dir(self, i: int) -> Path:
        return self.tmp / f"worker{i}"

    def start(self) -> Cluster:
        self.port = free_port()
        env = {**os.environ, **self.env}
        self.procs.append(self._spawn("scheduler", [
            "distributed.cli.dask_scheduler", "--host", HOST, "--port", str(self.port),
            "--no-dashboard", "--dashboard-address", f"{HOST}:0"], self.tmp, env))  # fmt: skip
        for i in range(self.workers):
            directory = self.worker_dir(i)
            directory.mkdir(parents=True, exist_ok=True)
            self.procs.append(self._spawn(f"worker{i}", [
                "distributed.cli.dask_worker", self.address, "--host", HOST, "--name", f"w{i}",
                "--nthreads", "1", "--no-nanny", "--no-dashboard", "--local-directory", str(directory),
                "--death-timeout", str(int(START_TIMEOUT))], directory, env))  # fmt: skip
        from distributed import Client

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            try:
                with Client(self.address, timeout=2) as client:
                    if len(client.scheduler_info(n_workers=-1)["workers"]) == self.workers:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        logs = "".join(f"\n--- {p.name}:\n{p.read_text(errors='replace')[-1500:]}" for p in self.tmp.glob("*.log"))
        raise SystemExit(f"the Dask cluster did not start within {START_TIMEOUT:.0f} s:{logs}")

    def _spawn(self, name: str, module_args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
        with (self.tmp / f"{name}.log").open("wb") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", *module_args],
                cwd=cwd,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def addresses(self) -> set[str]:
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            return set(client.scheduler_info(n_workers=-1)["workers"])

    def node_caches(self) -> list[Path]:
        """Each worker's node DVC cache: ``<its local_directory>/opsctl/cache``, where Dask makes
        its local_directory ``--local-directory/dask-scratch-space/worker-*``."""
        return [c for i in range(self.workers) for c in self.worker_dir(i).glob("dask-scratch-space/*/opsctl/cache")]

    def stop(self) -> None:
        """Workers first (so they don't wait for a scheduler gone away), then the scheduler."""
        for proc in self.procs[1:]:
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


# ---- running and checking -------------------------------------------------------------------


def run_json(cmd: list[str], cwd: Path, env: dict) -> tuple[float, dict]:
    """Wall time and the JSON report of an `opsctl run --json`; a failure stops the bench."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(
            f"failed (exit {proc.returncode}) in {cwd}:\n  $ {' '.join(cmd)}\n{proc.stdout.rstrip()}\n"
            f"{proc.stderr.rstrip()}"
        )
    return elapsed, json.loads(proc.stdout)


def ran_everywhere(result: dict, stages: set[str], workers: set[str] | None, what: str) -> str | None:
    """Why the run's report is wrong (a stage not run; with ``workers``, one of them unused), or None."""
    ran = {s["stage"] for s in result.get("stages", []) if s.get("status") == "ran"}
    if ran != stages:
        return f"{what}: stages {sorted(stages - ran)} did not run ({result.get('stages')})"
    if workers is not None:
        used = {s.get("worker") for s in result["stages"]}
        if used != workers:
            return f"{what}: the stages ran on {sorted(map(str, used))}, not on every worker {sorted(workers)}"
    return None


def set_remote(project: Path, url: Path) -> None:
    """Point the project's remote `store` at ``url`` (an empty directory), in .dvc/config.local."""
    url.mkdir(parents=True, exist_ok=True)
    timed([str(BIN / "dvc"), "remote", "modify", "--local", "store", "url", str(url)], cwd=project, env=ENV)


def opsctl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsctl", "run", "--json", *args]


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---- 1. overhead per stage ------------------------------------------------------------------


def bench_overhead(args, work: Path, cluster: Cluster, env: dict) -> tuple[bool, bool]:
    stages = {f"s{i}" for i in range(args.stages)}
    template = pipeline_project(
        work / "template", dvc_yaml(args.stages, args.sleep), opsctl_yaml=DOCKER_OPSCTL_YAML, env=ENV
    )
    timed([str(BIN / "dvc"), "remote", "add", "-q", "-d", "store", str(work / "unused-remote")], cwd=template)
    timed(["git", "add", "-A"], cwd=template)
    timed(["git", *GIT_ID, "commit", "-qm", "remote"], cwd=template)
    common = ["-j", str(args.jobs), "--force"]
    wave = sorted(stages, key=lambda s: int(s[1:]))[: args.jobs]  # the first J stages: one wave
    dask = ["--executor", "dask", *common, "--scheduler", cluster.address]
    tools = {
        "docker": (opsctl_cmd("--executor", "docker", *common), None, stages),
        "dask": (opsctl_cmd(*dask), cluster.addresses(), stages),
        "dask (local)": (opsctl_cmd("--executor", "dask", *common), None, stages),
        "docker, 1 wave": (opsctl_cmd(*wave, "--executor", "docker", *common), None, set(wave)),
        "dask, 1 wave": (opsctl_cmd(*wave, *dask), None, set(wave)),
    }
    waves = math.ceil(args.stages / args.jobs)
    print(
        f"1. {args.stages} independent stages of `sleep {args.sleep:g}`, -j {args.jobs} "
        f"({waves} waves), in {template.parent}",
        flush=True,
    )

    times: dict[str, list[float]] = {name: [] for name in tools}
    stage_times: dict[str, list[float]] = {name: [] for name in tools}  # each stage's, as the report gives it
    problems: list[str] = []

    def one(name: str, tag: str) -> dict:
        project = fresh_copy(template, work / f"{tag}-{name.replace(' ', '_')}")
        set_remote(project, work / f"{tag}-{name.replace(' ', '_')}-remote")
        cmd, workers, expected = tools[name]
        os.sync()
        elapsed, result = run_json(cmd, project, env)
        lock = check_outputs(project, args.stages) if expected == stages else {}
        if why := ran_everywhere(result, expected, workers, name):
            problems.append(why)
        times[name].append(elapsed)
        stage_times[name].extend(float(s["duration"]) for s in result["stages"] if s.get("duration") is not None)
        shutil.rmtree(project)
        return lock

    names = list(tools)
    for name in names:  # warm-up: imports on the workers, the engine, the page cache
        one(name, "warm")
        times[name].clear()
        stage_times[name].clear()
    for i in range(args.repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        locks = {name: one(name, f"r{i}") for name in order}
        for name in ("dask", "dask (local)"):
            if locks[name] != locks["docker"]:
                problems.append(f"round {i + 1}: dvc.lock of the {name} run differs from the docker run's")
        print("  round " + f"{i + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in order), flush=True)

    docker, dask, local, docker_1, dask_1 = (median(times[n]) for n in names)
    print()
    compare(f"opsctl run --executor dask -j {args.jobs}", dask, f"--executor docker -j {args.jobs}", docker)
    compare("  ... dask, local cluster", local, f"--executor docker -j {args.jobs}", docker)
    compare(f"  ... one wave ({args.jobs} stages)", dask_1, "--executor docker, one wave", docker_1)
    # Each wave past the first costs what its stages cost; the run's fixed cost (start-up,
    # importing Dask, reaching the scheduler, checking the workers' engines) is in both runs.
    per_wave_dask = (dask - dask_1) / (waves - 1)
    per_wave_docker = (docker - docker_1) / (waves - 1)
    ok = report_limit("Dask overhead per stage", per_wave_dask - per_wave_docker, OVERHEAD_TARGET)
    print(
        f"  (a wave: dask {per_wave_dask:.3f} s, docker {per_wave_docker:.3f} s = (T(all) - T(one wave)) / "
        f"{waves - 1}; the difference is what each stage on the critical path costs through Dask)"
    )
    print(
        f"{'whole run, per wave':<28} {(dask - docker) / waves:7.3f} s   (informational: (T_dask - T_docker) / "
        f"{waves}, the run's fixed cost included: {dask_1 - docker_1 - (per_wave_dask - per_wave_docker):.2f} s)"
    )
    print(
        f"{'  ... local cluster':<28} {(local - docker) / waves:7.3f} s   (informational: includes starting "
        "and stopping the cluster in the run)"
    )
    print(
        "median time of one stage in the runs' reports (docker: the container; dask: task submitted to result "
        "back, before the coordinator fetches the output): "
        + ", ".join(f"{n} {median(stage_times[n]):.2f} s" for n in names if stage_times[n])
    )
    for why in problems:
        print(f"FAILED: {why}", file=sys.stderr)
    return ok and not problems, not problems


# ---- 2. moving data -------------------------------------------------------------------------


def dataset(data_dir: Path, files: int, total: int) -> Path:
    """``files`` files of random bytes (seeded), ``total`` bytes in all, made once and kept."""
    folder = data_dir / f"files-{files}x{total}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    print(f"  making {files} files, {total / 2**20:.0f} MiB of random bytes in {folder} (once) ...", flush=True)
    rng = random.Random(SEED)
    base, extra = divmod(total, files)
    for i in range(files):
        (folder / "data" / f"{i:05d}.bin").write_bytes(rng.randbytes(base + (1 if i < extra else 0)))
    done.write_text("")
    return folder


def files_in(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path)) if path.exists() else 0


def bench_transfer(args, work: Path, cluster: Cluster, env: dict) -> tuple[bool, bool]:
    files, total = (200, 100 << 20) if args.quick else (2000, 1 << 30)
    source = dataset(args.data_dir, files, total) / "data"
    project = work / "data-project"
    project.mkdir()
    timed(["git", "init", "-q"], cwd=project)
    timed([str(BIN / "dvc"), "init", "-q"], cwd=project, env=ENV)
    shutil.copytree(source, project / "data")
    (project / "small").mkdir()
    (project / "small" / "one.txt").write_text("one small file\n")
    (project / "out").mkdir()
    (project / "out" / ".gitkeep").write_text("")
    (project / "dvc.yaml").write_text(yaml.safe_dump(DATA_YAML, sort_keys=False))
    (project / "opsctl.yaml").write_text(DOCKER_OPSCTL_YAML)
    for ignore in (".gitignore", ".dvcignore"):
        with (project / ignore).open("a") as f:
            f.write(".opsctl/\n")
    timed([str(BIN / "dvc"), "add", "-q", "data", "small"], cwd=project, env=ENV)
    timed([str(BIN / "dvc"), "remote", "add", "-q", "-d", "store", str(work / "unused-remote")], cwd=project)
    timed(["git", "add", "-A"], cwd=project)
    timed(["git", *GIT_ID, "commit", "-qm", "bench data"], cwd=project)
    print(
        f"\n2. stage `big` on a DVC-tracked directory of {files} files, {total / 2**20:.0f} MiB "
        f"(from {source}), in {project}",
        flush=True,
    )

    workers = cluster.addresses()
    times: dict[str, list[float]] = {
        k: [] for k in ("opsctl big", "opsctl tiny", "dvc big", "dvc tiny", "push", "pull")
    }
    stage_seconds: list[float] = []
    problems: list[str] = []
    dvc = str(BIN / "dvc")

    def opsctl_side(tag: str) -> None:
        set_remote(project, work / f"{tag}-opsctl-remote")
        for cache in cluster.node_caches():  # the workers have never seen the data
            shutil.rmtree(cache, ignore_errors=True)
        for stage, expected in (("tiny", 1), ("big", files)):
            os.sync()
            cmd = opsctl_cmd("--executor", "dask", "--force", "--scheduler", cluster.address, stage)
            elapsed, result = run_json(cmd, project, env)
            times[f"opsctl {stage}"].append(elapsed)
            if why := ran_everywhere(result, {stage}, None, f"opsctl run {stage}"):
                problems.append(why)
            elif result["stages"][0].get("worker") not in workers:
                problems.append(f"opsctl run {stage}: ran on {result['stages'][0].get('worker')}, not a bench worker")
            if stage == "big":
                stage_seconds.append(float(result["stages"][0].get("duration") or 0))
            out = project / "out" / f"{stage}.txt"
            if not out.is_file() or out.read_text().strip() != str(expected):
                problems.append(
                    f"{out} should count {expected} files: {out.read_text() if out.exists() else 'missing'}"
                )
        fetched = max((files_in(cache / "files") for cache in cluster.node_caches()), default=0)
        if fetched < files:
            problems.append(f"no worker's node cache holds the {files} files (at most {fetched}): not fetched")
        shutil.rmtree(work / f"{tag}-opsctl-remote")

    def dvc_side(tag: str) -> None:
        remote = work / f"{tag}-dvc-remote"
        set_remote(project, remote)
        for target, expected, key in (("small", 1, "tiny"), ("data", files, "big")):
            clone = work / f"{tag}-clone-{target}"
            timed(["git", "clone", "-q", str(project), str(clone)])
            set_remote(clone, remote)
            os.sync()
            push = timed([dvc, "push", "-q", f"{target}.dvc"], cwd=project, env=ENV)
            os.sync()
            pull = timed([dvc, "pull", "-q", f"{target}.dvc"], cwd=clone, env=ENV)
            times[f"dvc {key}"].append(push + pull)
            if key == "big":
                times["push"].append(push)
                times["pull"].append(pull)
            if files_in(clone / target) != expected:
                problems.append(f"dvc pull into {clone} got {files_in(clone / target)} of {expected} files")
            shutil.rmtree(clone)
        shutil.rmtree(remote)

    sides = [opsctl_side, dvc_side]
    for side in sides:  # warm-up round
        side("warm")
    for values in times.values():
        values.clear()
    stage_seconds.clear()
    for i in range(args.repeat):
        for side in sides if i % 2 == 0 else sides[::-1]:
            side(f"r{i}")
        print(
            f"  round {i + 1}: opsctl big {times['opsctl big'][-1]:.2f} s, tiny {times['opsctl tiny'][-1]:.2f} s; "
            f"dvc push + pull big {times['dvc big'][-1]:.2f} s, tiny {times['dvc tiny'][-1]:.2f} s",
            flush=True,
        )

    m = {k: median(v) for k, v in times.items()}
    opsctl_data, dvc_data = m["opsctl big"] - m["opsctl tiny"], m["dvc big"] - m["dvc tiny"]
    mb = total / 1e6
    print()
    print(
        f"{'opsctl run big (dask)':<28} {m['opsctl big']:7.3f} s   of which the worker's task {median(stage_seconds):.3f} s"
    )
    print(f"{'opsctl run tiny (dask)':<28} {m['opsctl tiny']:7.3f} s   (a run's fixed cost)")
    print(f"{'dvc push + pull data':<28} {m['dvc big']:7.3f} s   (push {m['push']:.3f} s, pull {m['pull']:.3f} s)")
    print(f"{'dvc push + pull small':<28} {m['dvc tiny']:7.3f} s")
    compare("whole run: opsctl big", m["opsctl big"], "dvc push + pull", m["dvc big"])
    ok = report("opsctl fetch + push", opsctl_data, "dvc push + pull", dvc_data, TRANSFER_TARGET)
    print(f"  (each side's big minus its tiny; {mb:.0f} MB: opsctl {mb / opsctl_data:.0f} MB/s through the remote "
          f"and back, dvc {mb / dvc_data:.0f} MB/s push + pull)")  # fmt: skip
    for why in problems:
        print(f"FAILED: {why}", file=sys.stderr)
    return ok and not problems, not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=8, help="independent stages of part 1")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each stage of part 1 sleeps")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="opsctl's -j (the 2 workers' slots)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (median)")
    parser.add_argument("--quick", action="store_true", help="part 2 on 200 files, 100 MiB (not 2,000, 1 GiB)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/opsctl-bench-cluster"), help="the kept data")
    parser.add_argument("--repo", type=Path, default=REPO, help="the opsctl checkout to measure (on PYTHONPATH)")
    parser.add_argument("--only", choices=("overhead", "transfer"), help="run one part only")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the projects and the cluster")
    args = parser.parse_args()
    if args.stages < 1 or args.repeat < 1 or args.jobs < 1 or args.sleep < 0:
        parser.error("--stages, --repeat and -j must be at least 1, --sleep not negative")
    if not (args.repo / "opsctl" / "__init__.py").is_file():
        parser.error(f"--repo {args.repo} is not an opsctl checkout (no opsctl/__init__.py)")
    check_busybox_image()

    head = subprocess.run(["git", "-C", str(args.repo), "describe", "--always", "--dirty"], capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-cluster-", dir=args.tmp))
    config = work / "dask-config"  # no user Dask settings, for the cluster and opsctl's local one
    config.mkdir()
    pythonpath = os.pathsep.join(p for p in (str(args.repo.resolve()), os.environ.get("PYTHONPATH")) if p)
    env = {**ENV, "PYTHONPATH": pythonpath, "DASK_CONFIG": str(config)}
    os.environ.pop("OPSCTL_DASK_SCHEDULER", None)  # "dask (local)" must start its own cluster
    cluster = Cluster(work / "cluster", env)
    cluster.tmp.mkdir()
    try:
        cluster.start()
        print(
            f"opsctl {args.repo.resolve()} at {head.stdout.decode().strip()}; cluster {cluster.address}, 2 workers "
            f"x 1 thread; {os.cpu_count()} CPUs",
            flush=True,
        )
        ok = correct = True
        if args.only != "transfer":
            ok, correct = bench_overhead(args, work, cluster, env)
        if args.only != "overhead":
            ok2, correct2 = bench_transfer(args, work, cluster, env)
            ok, correct = ok and ok2, correct and correct2
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nload average {load}")
        if not correct:
            return 1
        return 0 if ok else 1
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
