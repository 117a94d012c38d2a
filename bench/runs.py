#!/usr/bin/env python3
"""The run store at 100,000 runs: `opsctl runs list` and `opsctl runs show` wall time,
and the cost of recording one run, in one run, with `dvc --help` as the yardstick.

    .venv/bin/python bench/runs.py [--count 100000] [--runs 15] [--writes 50] [--batch 5000] [--fresh] [--tmp DIR]

Store: COUNT runs of a five-stage pipeline (prepare, featurize, split, train,
evaluate), 20 params, 10 metrics, and per stage its deps, params and outs with
md5-like hashes (code and data versions change now and then, train's params every
run, so most objects are shared between runs as in real use; ~7% failed or
interrupted runs), written through the store's own API (`RunStore.record_runs`, BATCH
runs per transaction). Generated once, deterministically, and kept under .bench/
keyed by COUNT and the store's source; the generation time printed is the one
measured when it was made (--fresh makes it again).

Project: git init + dvc init by the real CLIs, .opsctl/ ignored, committed, with the
store copied to .opsctl/opsctl.db. Timed there, median of RUNS after a warm-up of 2:
`opsctl runs list --limit 50 --json` and `opsctl runs show PREFIX --json` (the first 8
characters of the run in the middle of the store), each target <= 0.15 s, next to
`dvc --help` (process start-up), `opsctl --version` (opsctl's own, through typer)
and `runs list` through typer (OPSCTL_NO_FAST_PATH=1: what cli/fastpath.py saves), the
five interleaved. Both outputs are checked against the store first. All five run with
bytecode, as an installed opsctl has it (written by the warm-ups into a cache of the
run's own, PYTHONPYCACHEPREFIX), even when PYTHONDONTWRITEBYTECODE is set (then
`runs list` without it is shown too). The copied store is fsynced before any timing.
Then, in this process, one run written as `opsctl run` writes it (begin_run,
record_stage x5, finish_run: one transaction each) into the store: median of
WRITES, target <= 50 ms; and the same through `RunRecorder` (the store opened, stale
runs reaped, the previous run looked up), informational: once Git's state is ready
(`opsctl run` reads it while images are checked) and from the recorder made.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from _timing import BIN, cached_build, median_call, median_wall, pipeline_project, report_limit_against, wall

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from anywhere: the opsctl being measured is this checkout's

from opsctl.store import ArtifactRecord, NewRun, RunRecord, RunStore, StageRecord  # noqa: E402
from opsctl.store.schema import LATEST_VERSION  # noqa: E402

ENV = {"DVC_NO_ANALYTICS": "1"}
CLI_TARGET = 0.15  # seconds, each of runs list / runs show
WRITE_TARGET = 0.050  # seconds for one whole run written stage by stage
LIST_LIMIT = 50
PREFIX = 8  # what `opsctl runs list` shows of an id
GENERATOR = 1  # bump when the generated runs change shape (invalidates the cache)
SEED = 5
T0 = 1_600_000_000.0  # the first run's start; one run every ~10 minutes after it

# The pipeline: per stage, its code, the upstream outs it reads, its params (how often
# they change, in runs) and its outs. 4 + 4 + 3 + 6 + 3 = 20 params.
STAGES = {
    "prepare": {
        "deps": ["data/raw.csv"],
        "every": 2000,
        "outs": ["data/prepared"],
        "params": ["prepare.seed", "prepare.split_ratio", "prepare.dedupe", "prepare.lang"],
    },
    "featurize": {
        "deps": ["data/prepared"],
        "every": 500,
        "outs": ["data/features"],
        "params": ["featurize.max_features", "featurize.ngrams", "featurize.min_df", "featurize.norm"],
    },
    "split": {
        "deps": ["data/features"],
        "every": 5000,
        "outs": ["data/train.pkl", "data/test.pkl"],
        "params": ["split.test_size", "split.stratify", "split.seed"],
    },
    "train": {
        "deps": ["data/train.pkl"],
        "every": 1,
        "outs": ["models/model.pkl"],
        "params": [
            "train.n_estimators",
            "train.max_depth",
            "train.learning_rate",
            "train.subsample",
            "train.optimizer",
            "train.early_stopping",
        ],
    },
    "evaluate": {
        "deps": ["models/model.pkl", "data/test.pkl"],
        "every": 10000,
        "outs": ["metrics.json", "eval/plots"],
        "params": ["evaluate.threshold", "evaluate.average", "evaluate.bootstrap"],
    },
}
CODE_EVERY = {"prepare": 3000, "featurize": 800, "split": 7000, "train": 40, "evaluate": 1500}
RAW_EVERY = 2500
METRICS = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "train_seconds",
    "n_train",
    "n_test",
    "best_iteration",
]
DURATION = {"prepare": (5, 30), "featurize": (10, 90), "split": (2, 10), "train": (60, 600), "evaluate": (5, 40)}


def _md5(*parts: object) -> str:
    return hashlib.md5("\0".join(map(str, parts)).encode()).hexdigest()


def _train_params(rng: random.Random) -> dict[str, object]:
    """train's params: a random search, new every run."""
    return {
        "train.n_estimators": rng.randrange(50, 1000, 10),
        "train.max_depth": rng.randint(2, 16),
        "train.learning_rate": round(rng.uniform(0.001, 0.3), 4),
        "train.subsample": round(rng.uniform(0.5, 1), 2),
        "train.optimizer": rng.choice(["adam", "sgd", "rmsprop"]),
        "train.early_stopping": rng.random() < 0.5,
    }


@functools.lru_cache(maxsize=64)
def _stage_params(stage: str, version: int) -> dict[str, object]:
    """The other stages' params (ints, floats, strings, booleans): they stay put between changes."""
    r = random.Random(f"{stage}:{version}")
    return {
        "prepare": lambda: {
            "prepare.seed": r.randint(0, 99),
            "prepare.split_ratio": round(r.uniform(0.1, 0.3), 2),
            "prepare.dedupe": r.random() < 0.5,
            "prepare.lang": r.choice(["en", "de", "fr"]),
        },
        "featurize": lambda: {
            "featurize.max_features": r.randrange(500, 20000, 500),
            "featurize.ngrams": r.randint(1, 3),
            "featurize.min_df": r.randint(1, 5),
            "featurize.norm": r.choice(["l1", "l2"]),
        },
        "split": lambda: {
            "split.test_size": round(r.uniform(0.1, 0.3), 2),
            "split.stratify": r.random() < 0.5,
            "split.seed": r.randint(0, 99),
        },
        "evaluate": lambda: {
            "evaluate.threshold": round(r.uniform(0.3, 0.7), 2),
            "evaluate.average": r.choice(["macro", "micro", "weighted"]),
            "evaluate.bootstrap": r.randint(100, 1000),
        },
    }[stage]()


def make_run(i: int, rng: random.Random, state: dict) -> RunRecord:
    """Run number ``i`` (in start order) and how it went; ``state`` carries what the
    previous runs left (per stage, the signatures it ran on: the run cache)."""
    run_id = f"{rng.getrandbits(48):012x}"
    started = T0 + i * 600 + rng.uniform(0, 300)
    roll = rng.random()
    status = "succeeded" if roll < 0.93 else "failed" if roll < 0.99 else "interrupted"
    params = {}
    for name, spec in STAGES.items():
        params.update(_train_params(rng) if name == "train" else _stage_params(name, i // spec["every"]))
    upstream = {"data/raw.csv": _md5("raw", i // RAW_EVERY)}
    stages, clock, broken = [], started + rng.uniform(1, 5), None
    for name, spec in STAGES.items():
        code = f"src/{name}.py"
        image = f"ghcr.io/acme/{'train' if name == 'train' else 'tools'}:1.{i // 5000}"
        common = dict(
            started=clock,
            cmd=f"python {code}",
            image_ref=image,
            image_id="sha256:" + hashlib.sha256(image.encode()).hexdigest(),
            log_path=f".opsctl/runs/{run_id}/{name}.log",
        )
        if broken:  # never started: no log, no hashes
            stages.append(
                StageRecord(
                    name, "skipped", detail=f"{broken} {status}", **{**common, "started": None, "log_path": None}
                )
            )
            continue
        deps = {code: _md5(code, i // CODE_EVERY[name]), **{d: upstream[d] for d in spec["deps"]}}
        values = {k: params[k] for k in spec["params"]}
        param_hash = json.dumps(values, sort_keys=True, default=str)
        signature = _md5(name, sorted(deps.items()), param_hash)
        duration = round(rng.uniform(*DURATION[name]), 3)
        if name == "train" and status != "succeeded":
            outcome = "failed" if status == "failed" else "interrupted"
            stages.append(
                StageRecord(
                    name,
                    outcome,
                    detail="exit code 1" if outcome == "failed" else "Ctrl-C",
                    duration=duration,
                    exit_code=1 if outcome == "failed" else None,
                    **common,
                    artifacts=[ArtifactRecord("dep", p, h) for p, h in deps.items()]
                    + [ArtifactRecord("param", "params.yaml", param_hash)],
                )
            )
            broken = name
            continue
        seen = state.setdefault(name, set())  # the run cache: this stage ran on exactly this before
        cached = signature in seen
        seen.add(signature)
        outs = {o: _md5(signature, o) + (".dir" if "." not in o.rsplit("/", 1)[-1] else "") for o in spec["outs"]}
        upstream.update(outs)
        stages.append(
            StageRecord(
                name,
                "cached" if cached else "ran",
                detail="restored from the run cache" if cached else "",
                duration=0.2 if cached else duration,
                exit_code=None if cached else 0,
                **common,
                artifacts=[ArtifactRecord("dep", p, h) for p, h in deps.items()]
                + [ArtifactRecord("param", "params.yaml", param_hash)]
                + [ArtifactRecord("out", p, h) for p, h in outs.items()],
            )
        )
        clock += stages[-1].duration
    metrics = {
        "accuracy": round(rng.uniform(0.7, 0.99), 5),
        "precision": round(rng.uniform(0.6, 0.99), 5),
        "recall": round(rng.uniform(0.6, 0.99), 5),
        "f1": round(rng.uniform(0.6, 0.99), 5),
        "roc_auc": round(rng.uniform(0.7, 1.0), 5),
        "log_loss": round(rng.uniform(0.05, 0.8), 5),
        "train_seconds": round(rng.uniform(60, 600), 2),
        "n_train": 80_000 + (i // RAW_EVERY) * 100,
        "n_test": 20_000 + (i // RAW_EVERY) * 25,
        "best_iteration": rng.randint(10, 1000),
    }
    dirty = rng.random() < 0.2
    run = NewRun(
        id=run_id,
        started=started,
        user=rng.choice(["ana", "ben", "chen", "dora"]),
        host="gpu-01",
        pid=rng.randint(1000, 60000),
        git_commit=_md5("commit", i // 15) + "deadbeef",
        branch="main" if rng.random() < 0.7 else f"exp/{i // 1000}",
        dirty=dirty,
        diff_hash=hashlib.sha256(run_id.encode()).hexdigest() if dirty else None,
        executor="docker",
        jobs=2,
        targets=[],
    )
    return RunRecord(run, status, finished=clock + 1, stages=stages, params=params, metrics=metrics)


def records(count: int, seed: int):
    rng, state = random.Random(seed), {}
    seen_ids = set()
    for i in range(count):
        record = make_run(i, rng, state)
        if record.run.id in seen_ids:  # 48 random bits: vanishingly rare, but ids must be unique
            record = RunRecord(
                record.run._replace(id=_md5(record.run.id, i)[:12]),
                record.status,
                record.finished,
                record.stages,
                record.params,
                record.metrics,
            )
        seen_ids.add(record.run.id)
        yield record


def store_digest() -> str:
    """The store's code: a cached store made by other code is made again."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "opsctl" / "store").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def generated_store(count: int, batch: int, fresh: bool) -> tuple[Path, dict]:
    """The generated store (cached under .bench/) and what its generation measured."""
    db = REPO / ".bench" / "runs" / f"store-n{count}-s{SEED}-g{GENERATOR}-v{LATEST_VERSION}-{store_digest()}.db"

    def make(partial: Path) -> dict:
        print(f"generating {count:,} runs into {partial} ({batch:,} per transaction) ...", flush=True)
        started = time.perf_counter()
        written = 0
        with RunStore(partial) as store:
            gen = records(count, SEED)
            while written < count:
                written += store.record_runs(islice(gen, batch))
        seconds = time.perf_counter() - started  # closed: the WAL is checkpointed into the file
        if written != count:
            raise SystemExit(f"wrote {written} runs, expected {count}")
        return {"count": count, "batch": batch, "seconds": seconds, "bytes": partial.stat().st_size}

    return cached_build(db, fresh, make, stale_glob=f"store-n{count}-*")


def capture(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed (exit {proc.returncode}) in {cwd}:\n  $ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def check_outputs(project: Path, db: Path, list_cmd: list[str], show_cmd: list[str], middle_id: str, env: dict) -> None:
    """The commands answer what the store holds (a fast wrong answer is no result)."""
    with RunStore(db) as store:
        newest = [r.id for r in store.list_runs(limit=LIST_LIMIT)]
    listed = [r["id"] for r in json.loads(capture(list_cmd, project, env))]
    if listed != newest:
        raise SystemExit(f"runs list --json gave {len(listed)} runs, not the {LIST_LIMIT} newest of the store")
    shown = json.loads(capture(show_cmd, project, env))
    got = (shown["id"], len(shown["stages"]), len(shown["params"]), len(shown["metrics"]))
    if got != (middle_id, len(STAGES), 20, len(METRICS)):
        raise SystemExit(
            f"runs show --json gave (id, stages, params, metrics) = {got}, "
            f"expected ({middle_id}, {len(STAGES)}, 20, {len(METRICS)})"
        )


def project_with_store(work: Path, cached_db: Path) -> tuple[Path, Path]:
    """A Git + DVC project under WORK with STAGES, its .opsctl/opsctl.db a copy of the
    generated store, fsynced. Returns (project, db)."""
    dvc_yaml = "stages:\n" + "".join(f"  {name}:\n    cmd: python src/{name}.py\n" for name in STAGES)
    project = pipeline_project(work / "project", dvc_yaml, env=ENV)
    return project, install_store(project, cached_db)


def install_store(project: Path, cached_db: Path) -> Path:
    """A copy of the generated store as PROJECT's .opsctl/opsctl.db, fsynced; returns its path."""
    db = project / ".opsctl" / "opsctl.db"
    db.parent.mkdir(exist_ok=True)
    shutil.copyfile(cached_db, db)
    with db.open("rb+") as f:  # on disk now: else the first WAL checkpoint pays for the copy
        os.fsync(f.fileno())
    return db


def add_store_arguments(parser: argparse.ArgumentParser, *, count: int = 100_000) -> None:
    """The generated store and where its project goes: this bench's, bench/ui.py's and bench/report.py's."""
    parser.add_argument("--count", type=int, default=count, help="runs in the generated store")
    parser.add_argument("--batch", type=int, default=5000, help="runs per record_runs transaction when generating")
    parser.add_argument("--fresh", action="store_true", help="generate the store again, even if cached")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the project")


def main() -> int:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (median)")
    parser.add_argument("--writes", type=int, default=50, help="timed single-run writes (median)")
    args = parser.parse_args()
    if args.count < LIST_LIMIT or args.runs < 1 or args.writes < 1 or args.batch < 1:
        parser.error(f"--count must be at least {LIST_LIMIT}; --runs, --writes and --batch at least 1")

    cached_db, info = generated_store(args.count, args.batch, args.fresh)
    how = (
        f"cached, generated {info['made']} in {info['seconds']:.1f} s ({info['batch']:,} per transaction); "
        f"--fresh makes it again"
        if info["cached"]
        else f"generated now in {info['seconds']:.1f} s, {info['batch']:,} per transaction"
    )
    print(
        f"store: {args.count:,} runs x (5 stages, 20 params, 10 metrics), {info['bytes'] / 2**20:.1f} MiB "
        f"({info['bytes'] / args.count / 1024:.2f} KiB/run); {how}"
    )
    print(
        f"generation: {info['seconds']:.1f} s = {info['seconds'] / args.count * 1e6:.0f} us/run "
        f"({args.count / info['seconds']:,.0f} runs/s)",
        flush=True,
    )

    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-runs-", dir=args.tmp))
    try:
        project, db = project_with_store(work, cached_db)

        with RunStore(db) as store:  # the run in the middle, by start time, and its list-style prefix
            middle_id = store.list_runs(limit=1, offset=args.count // 2)[0].id
            prefix = middle_id[:PREFIX]
            while _ambiguous(store, prefix):
                prefix = middle_id[: len(prefix) + 1]
        list_cmd = [str(BIN / "opsctl"), "runs", "list", "--limit", str(LIST_LIMIT), "--json"]
        show_cmd = [str(BIN / "opsctl"), "runs", "show", prefix, "--json"]
        # Bytecode as an installed opsctl has it (pip compiles a wheel's modules; an editable
        # install writes them on first use unless PYTHONDONTWRITEBYTECODE is set): written by
        # the warm-ups into a cache of this run's own, for both tools alike.
        cli_env = {**ENV, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        check_outputs(project, db, list_cmd, show_cmd, middle_id, cli_env)
        print(f"project: {project} (run in the middle: {middle_id}, shown by its prefix {prefix})", flush=True)

        # -- the CLI, in the project, with dvc --help as the yardstick --
        # Interleaved, rotating which goes first: a busy machine then slows all of them alike.
        # "typer": the same `runs list` through typer, as every other command goes (the fast
        # path off): what cli/fastpath.py saves.
        typer_env = {**cli_env, "OPSCTL_NO_FAST_PATH": "1"}
        commands = {
            "dvc": ([str(BIN / "dvc"), "--help"], cli_env),
            "version": ([str(BIN / "opsctl"), "--version"], cli_env),
            "list": (list_cmd, cli_env),
            "show": (show_cmd, cli_env),
            "typer": (list_cmd, typer_env),
        }
        for cmd, env in commands.values():  # warm-up: bytecode, page cache
            for _ in range(2):
                wall(cmd, cwd=project, env=env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        order = list(commands)
        for i in range(args.runs):
            for name in order[i % len(order) :] + order[: i % len(order)]:
                cmd, env = commands[name]
                times[name].append(wall(cmd, cwd=project, env=env))
        dvc, t_version, t_list, t_show, t_typer = (statistics.median(times[name]) for name in order)
        no_bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE")  # as this environment would run it
        t_list_raw = median_wall(list_cmd, args.runs, cwd=project, env=ENV) if no_bytecode else None

        # -- one run written as `opsctl run` writes it, into the same store --
        from opsctl.adapters.dvc_run import PathHash
        from opsctl.core.pipeline import Plan
        from opsctl.core.project import open_project
        from opsctl.core.run import RunReport, StageRun
        from opsctl.core.runs import RunRecorder, open_store

        rng, state = random.Random(SEED + 1), {}
        counter = iter(range(args.count, 10 * args.count + 10**6))

        def next_record() -> RunRecord:
            record = make_run(next(counter), rng, state)
            return RunRecord(
                record.run._replace(started=time.time(), pid=os.getpid()),
                record.status,
                record.finished,
                record.stages,
                record.params,
                record.metrics,
            )

        store = RunStore(db)
        samples: list[float] = []

        def write_one() -> None:
            record = next_record()  # built outside the clock: opsctl has it from the run
            started = time.perf_counter()
            store.begin_run(record.run)
            for stage in record.stages:
                store.record_stage(record.run.id, stage)
            store.finish_run(record.run.id, record.status, time.time(), record.params, record.metrics)
            samples.append(time.perf_counter() - started)

        for _ in range(3):
            write_one()
        samples.clear()
        for _ in range(args.writes):
            write_one()
        t_write = statistics.median(samples)
        store.close()

        project_obj = open_project(project)
        recorder_samples: list[tuple[float, float]] = []  # (whole, after Git's state was ready)

        def record_one() -> None:
            record = next_record()
            report = RunReport(record.run.id, Plan("docker"), "docker", 2, record.run.started)
            stages = [
                StageRun(
                    s.name,
                    s.outcome,
                    s.detail,
                    s.cmd or "",
                    duration=s.duration,
                    exit_code=s.exit_code,
                    log_path=Path(s.log_path) if s.log_path else None,
                    image_ref=s.image_ref,
                    image_id=s.image_id,
                    started=s.started,
                    hashes=tuple(PathHash(a.path, a.hash, a.kind) for a in s.artifacts),
                )
                for s in record.stages
            ]
            started = time.perf_counter()
            recorder = RunRecorder(project_obj)  # starts reading Git's state, as `opsctl run` makes it
            preparing = getattr(recorder, "_preparing", None)  # ... and lets it finish while images
            if preparing is not None:  # are checked: the run only waits for what comes after
                preparing.join()
            ready = time.perf_counter()
            recorder.begin(report, [])
            for stage in stages:
                recorder.stage(report.run_id, stage)
            report.finished = time.time()
            recorder.finish(report, record.status, record.params, record.metrics)
            recorder.close()
            ended = time.perf_counter()
            recorder_samples.append((ended - started, ended - ready))
            if recorder.error is not None:
                raise SystemExit(f"RunRecorder failed: {recorder.error!r}")

        for _ in range(3):
            record_one()
        recorder_samples.clear()
        for _ in range(args.writes):
            record_one()
        t_recorder_whole = statistics.median(whole for whole, _ in recorder_samples)
        t_recorder = statistics.median(after for _, after in recorder_samples)
        t_open = median_call(lambda: open_store(project_obj).close(), args.writes)
        with RunStore(db) as check:
            total = check.count_runs()
        expected = args.count + 2 * (args.writes + 3)
        if total != expected:
            raise SystemExit(f"the store holds {total} runs after the writes, expected {expected}")

        print()
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end of the timings")
        print(f"{'dvc --help':<40} {dvc:7.3f} s   (process start-up yardstick)")
        print(
            f"{'opsctl --version':<40} {t_version:7.3f} s   (opsctl's own start-up, informational: "
            f"{t_version / dvc:4.2f}x dvc --help)"
        )
        ok = report_limit_against(
            f"opsctl runs list --limit {LIST_LIMIT} --json", t_list, CLI_TARGET, "dvc --help", dvc, width=40
        )
        ok &= report_limit_against(f"opsctl runs show {prefix} --json", t_show, CLI_TARGET, "dvc --help", dvc, width=40)
        print(
            f"{'  runs list via typer (informational)':<40} {t_typer:7.3f} s   "
            f"(OPSCTL_NO_FAST_PATH=1: how every other command starts; the fast path saves "
            f"{(t_typer - t_list) * 1e3:.0f} ms)"
        )
        if t_list_raw is not None:
            print(
                f"{'  runs list, no bytecode (informational)':<40} {t_list_raw:7.3f} s   "
                f"(PYTHONDONTWRITEBYTECODE is set here: opsctl's modules compiled at every start)"
            )
        w_ok = t_write <= WRITE_TARGET
        print(
            f"{'record one run (begin+5 stages+finish)':<40} {t_write * 1e3:7.1f} ms  "
            f"target <= {WRITE_TARGET * 1e3:.0f} ms      {'OK' if w_ok else 'MISSED'}   "
            f"(7 transactions; slowest of {len(samples)}: {max(samples) * 1e3:.1f} ms)"
        )
        ok &= w_ok
        print(
            f"{'  via RunRecorder (informational)':<40} {t_recorder * 1e3:7.1f} ms  (store opened + reaped, "
            f"begin+5 stages+finish, previous run, closed)"
        )
        print(f"{'    of which open_store + close':<40} {t_open * 1e3:7.1f} ms")
        print(
            f"{'  RunRecorder with Git state read first':<40} {t_recorder_whole * 1e3:7.1f} ms  (from the recorder "
            f"made: its Git state, off the run's critical path, included)"
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ambiguous(store: RunStore, prefix: str) -> bool:
    from opsctl.errors import AmbiguousRunError

    try:
        store.get_run(prefix)
    except AmbiguousRunError:
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
