#!/usr/bin/env python3
"""`opsctl report` against what a reviewer runs for the same answers, `dvc metrics diff base`
+ `dvc params diff base` + `dvc data status`, on a 50-stage project with 10,000 recorded runs,
in one run.

    .venv/bin/python bench/report.py [--stages 50] [--runs 7] [--count 10000] [--batch 5000] [--fresh]
                                     [--rebuild] [--tmp DIR]

Project: bench/noop.py's chain of STAGES stages, extended: stage sNN takes params sNN.k and
sNN.lr from params.yaml and appends k to its output; every 5th stage also writes a metric file
metrics/sNN.json (`cache: false`: its output's lines, bytes and a checksum score); a dataset,
data/labels.csv (1,000 rows, `dvc add`ed), is a second input of the stage four fifths down the
chain. Reproduced with `dvc repro` on the host, committed on branch main (the store's runs'
branch) and tagged `base`; then the param k of the stage three fifths down changed, 50 rows
appended to the dataset (`dvc add` again) and `dvc repro` run again, left uncommitted (the
workspace is the head): one param changed, the metrics of the stages from there on, and the
dataset and those stages' outputs. Built once and kept under .bench/report/, keyed by a digest
of the code that builds it and DVC's version (--rebuild builds it again); each run works on a
copy (its index refreshed, as bench/noop.py's copies).

Store: bench/runs.py's generated store (COUNT runs, cached under .bench/runs/; --fresh makes it
again), copied into the project's .opsctl/opsctl.db and fsynced.

Checked first (a fast wrong answer is no result): the JSON report's params are
`dvc params diff base --json`'s (the same keys and values), its metrics `dvc metrics diff base
--json`'s (the same keys changed; old, new and delta within 1e-6, relative), its data lists the dataset as
modified with the hashes and sizes of its .dvc file at base and in the workspace, and the
Markdown names the changed param and the dataset.

Timed, each command a fresh process, in rounds rotating which goes first (a busy moment then hits
them all alike), one warm-up round then the median of RUNS:
- A: `dvc metrics diff base`, `dvc params diff base`, `dvc data status`, one after the other,
  summed per round: the baseline;
- `opsctl report --base base --format md -o FILE` and `--format json -o FILE`: target <= 1.0x A;
- informational, the floor: `git show base:params.yaml` + `git show base:dvc.lock`, summed (what
  any answer must at least read).
All with bytecode, written by the warm-up into a cache of the run's own (PYTHONPYCACHEPREFIX),
as bench/runs.py. Until this checkout has `opsctl report`, only A and the floor are timed (exit 1).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import yaml
from _timing import BIN, GIT_ID, cached_build, compare, fresh_copy, json_of, pipeline_project, report, timed
from noop import dvc_yaml
from runs import ENV, REPO, add_store_arguments, generated_store, install_store

TARGET = 1.0
DATASET = "data/labels.csv"
ROWS, ADDED_ROWS = 1000, 50
TOLERANCE = 1e-6  # relative (and absolute, 1e-9): the report may round what DVC prints unrounded
METRIC_CODE = (
    "import json; t = open('{out}', 'rb').read(); "
    "json.dump({{'lines': t.count(10), 'bytes': len(t), 'score': sum(t) % 1000 / 1000}}, open('{metric}', 'w'))"
)


def changed_stage(stages: int) -> int:
    """The stage whose param k the change sets (three fifths down the chain)."""
    return stages * 3 // 5


def dataset_stage(stages: int) -> int:
    """The stage that reads the dataset too (four fifths down the chain)."""
    return stages * 4 // 5


def pipeline(stages: int) -> tuple[dict, dict]:
    """The chain's dvc.yaml and params.yaml (as data): noop.py's, with params, metrics and the dataset."""
    spec = yaml.safe_load(dvc_yaml(stages))["stages"]
    params = {}
    for i, (name, stage) in enumerate(spec.items()):
        out = stage["outs"][0]
        params[name] = {"k": i, "lr": 0.1}
        stage["cmd"] += f" && echo k=${{{name}.k}} >> {out}"
        stage["params"] = [f"{name}.k", f"{name}.lr"]
        if i == dataset_stage(stages):
            stage["cmd"] += f" && wc -l < {DATASET} >> {out}"
            stage["deps"].append(DATASET)
        if i % 5 == 4:
            metric = f"metrics/{name}.json"
            stage["cmd"] += ' && python3 -c "' + METRIC_CODE.format(out=out, metric=metric) + '"'
            stage["metrics"] = [{metric: {"cache": False}}]
    return {"stages": spec}, params


def dataset_rows(start: int, stop: int) -> str:
    return "".join(f"{i},{'abc'[i * 7 % 3]},{i * 37 % 101 / 100}\n" for i in range(start, stop))


def build(path: Path, stages: int, env: dict) -> dict:
    """The project at ``path`` (which must not exist): base committed and tagged, the change reproduced
    and left uncommitted. Returns how long its parts took."""
    spec, params = pipeline(stages)
    dvc = str(BIN / "dvc")
    started = time.perf_counter()
    pipeline_project(path, yaml.safe_dump(spec, sort_keys=False), env=env)
    timed(["git", "branch", "-M", "main"], cwd=path)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (path / "in.txt").write_text("input\n")
    (path / "metrics").mkdir()
    (path / "metrics" / ".gitkeep").write_text("")
    (path / "data").mkdir()
    (path / DATASET).write_text("id,label,weight\n" + dataset_rows(0, ROWS))
    timed([dvc, "add", "-q", DATASET], cwd=path, env=env)
    timed(["git", "add", "-A"], cwd=path)
    timed(["git", *GIT_ID, "commit", "-qm", "inputs"], cwd=path)
    repro_base = timed([dvc, "repro", "-q"], cwd=path, env=env)
    timed(["git", "add", "-A"], cwd=path)
    timed(["git", *GIT_ID, "commit", "-qm", "reproduced"], cwd=path)
    timed(["git", "tag", "base"], cwd=path)

    name = list(spec["stages"])[changed_stage(stages)]
    params[name]["k"] += 100
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with (path / DATASET).open("a") as f:
        f.write(dataset_rows(ROWS, ROWS + ADDED_ROWS))
    timed([dvc, "add", "-q", DATASET], cwd=path, env=env)
    repro_change = timed([dvc, "repro", "-q"], cwd=path, env=env)
    return {"seconds": time.perf_counter() - started, "repro_base": repro_base, "repro_change": repro_change}


def build_digest(stages: int) -> str:
    """What builds the project: a cached project made by other code or another DVC is made again."""
    digest = hashlib.sha256(f"{stages} dvc {version('dvc')}".encode())
    for fn in (dvc_yaml, pipeline_project, pipeline, dataset_rows, build, changed_stage, dataset_stage):
        digest.update(inspect.getsource(fn).encode())
    digest.update(METRIC_CODE.encode())
    return digest.hexdigest()[:10]


def built_project(stages: int, rebuild: bool, env: dict) -> tuple[Path, dict]:
    """The pristine project (cached under .bench/report/) and what its build measured."""
    project = REPO / ".bench" / "report" / f"project-s{stages}-{build_digest(stages)}"

    def make(partial: Path) -> dict:
        print(f"building the {stages}-stage project into {partial} (dvc repro, twice) ...", flush=True)
        info = build(partial, stages, env)
        check_project(partial, stages, env)
        return info

    return cached_build(project, rebuild, make, stale_glob=f"project-s{stages}-*")


def check_project(project: Path, stages: int, env: dict) -> None:
    """DVC sees what the build meant: one param changed, some metrics, the dataset; the workspace is the head."""
    dvc = str(BIN / "dvc")
    name = f"{dvc_yaml_names(stages)[changed_stage(stages)]}.k"
    params = json_of([dvc, "params", "diff", "base", "--json"], cwd=project, env=env)
    if list(params.get("params.yaml", {})) != [name] or len(params) != 1:
        raise SystemExit(f"dvc params diff base: expected only params.yaml {name} changed, got {params}")
    metrics = json_of([dvc, "metrics", "diff", "base", "--json"], cwd=project, env=env)
    if not metrics:
        raise SystemExit("dvc metrics diff base: no metric changed")
    status = json_of([dvc, "data", "status", "--json"], cwd=project, env=env)
    if DATASET not in status.get("committed", {}).get("modified", []):
        raise SystemExit(f"dvc data status: {DATASET} is not listed as modified: {status}")
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
    if "params.yaml" not in dirty or "dvc.lock" not in dirty:
        raise SystemExit(f"the change is not left uncommitted:\n{dirty}")


def dvc_yaml_names(stages: int) -> list[str]:
    return list(yaml.safe_load(dvc_yaml(stages))["stages"])


def close(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-9)
    return a == b


def check_report(project: Path, report_json: dict, report_md: str, stages: int, env: dict) -> str:
    """The report answers what DVC answers (else the bench stops); a summary of what it found."""
    dvc = str(BIN / "dvc")
    problems = []

    theirs = json_of([dvc, "params", "diff", "base", "--json"], cwd=project, env=env)
    want = {(f, k): (v.get("old"), v.get("new")) for f, keys in theirs.items() for k, v in keys.items()}
    got = {(p["file"], p["key"]): (p["old"], p["new"]) for p in report_json.get("params", [])}
    if set(got) != set(want):
        problems.append(f"params: the report lists {sorted(got)}, dvc params diff {sorted(want)}")
    problems += [
        f"params: {f} {k}: the report says {got[f, k]}, dvc {want[f, k]}"
        for f, k in set(got) & set(want)
        if not all(map(close, got[f, k], want[f, k]))
    ]

    theirs = json_of([dvc, "metrics", "diff", "base", "--json"], cwd=project, env=env)
    want = {(f, k): v for f, keys in theirs.items() for k, v in keys.items()}
    rows = report_json.get("metrics", [])  # unchanged ones too, when marked "changed": false
    got = {(m["file"], m["key"]): m for m in rows if m.get("changed", True)}
    problems += [
        f"metrics: {m['file']} {m['key']} is marked unchanged, but went {m.get('old')} -> {m.get('new')}"
        for m in rows
        if not m.get("changed", True) and not close(m.get("old"), m.get("new"))
    ]
    if set(got) != set(want):
        problems.append(
            f"metrics: the report lists {len(got)} ({sorted(set(got) - set(want))[:5]} not in DVC's), "
            f"dvc metrics diff {len(want)} ({sorted(set(want) - set(got))[:5]} not in the report's)"
        )
    for f, k in sorted(set(got) & set(want)):
        ours, dvcs = got[f, k], want[f, k]
        pairs = [("old", "old"), ("new", "new")] + ([("delta", "diff")] if "diff" in dvcs else [])
        problems += [
            f"metrics: {f} {k} {a}: the report says {ours.get(a)}, dvc {dvcs.get(b)}"
            for a, b in pairs
            if not close(ours.get(a), dvcs.get(b))
        ]

    def dvc_file(text: str) -> dict:
        return yaml.safe_load(text)["outs"][0]

    old = dvc_file(subprocess.run(["git", "show", f"base:{DATASET}.dvc"], cwd=project, capture_output=True).stdout)
    new = dvc_file((project / f"{DATASET}.dvc").read_text())
    listed = [d for d in report_json.get("data", []) if d.get("path") == DATASET]
    expected = {
        "change": "modified",
        "old_hash": old["md5"],
        "new_hash": new["md5"],
        "old_size": old["size"],
        "new_size": new["size"],
    }
    if not listed:
        problems.append(f"data: the changed dataset {DATASET} is not listed")
    elif {k: listed[0].get(k) for k in expected} != expected:
        problems.append(f"data: {DATASET} is listed as {listed[0]}, expected {expected}")

    param = f"{dvc_yaml_names(stages)[changed_stage(stages)]}.k"
    problems += [f"--format md does not mention {word}" for word in (param, DATASET) if word not in report_md]
    if problems:
        raise SystemExit("opsctl report disagrees with DVC:\n  " + "\n  ".join(problems))
    return (
        f"params {len(report_json['params'])} changed ({param}), metrics {len(got)} changed of {len(rows)} "
        f"listed, data {len(report_json['data'])} listed ({DATASET} among them)"
    )


def has_report(env: dict, cwd: Path) -> bool:
    """This checkout's opsctl has `opsctl report` (before it does, the bench times the baseline only)."""
    proc = subprocess.run(
        [str(BIN / "opsctl"), "report", "--help"], cwd=cwd, env={**os.environ, **env}, capture_output=True
    )
    return proc.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser, count=10_000)  # bench/runs.py's store
    parser.add_argument("--stages", type=int, default=50, help="stages in the chain (at least 10)")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (median)")
    parser.add_argument("--rebuild", action="store_true", help="build the project again, even if cached")
    args = parser.parse_args()
    if args.stages < 10 or args.runs < 1 or args.count < 1 or args.batch < 1:
        parser.error("--stages must be at least 10; --runs, --count and --batch at least 1")

    # dvc and the stages' python3 from this venv; the opsctl measured is this checkout's
    env = {**ENV, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    template, built = built_project(args.stages, args.rebuild, env)
    cached_db, stored = generated_store(args.count, args.batch, args.fresh)

    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-report-", dir=args.tmp))
    try:
        started = time.perf_counter()
        project = fresh_copy(template, work / "project")
        install_store(project, cached_db)
        copied = time.perf_counter() - started
        how = (
            f"cached, built {built['made']} in {built['seconds']:.1f} s; --rebuild builds it again"
            if built["cached"]
            else f"built now in {built['seconds']:.1f} s"
        )
        print(
            f"project: a chain of {args.stages} stages, {len(list(project.glob('metrics/*.json')))} metric files, "
            f"{2 * args.stages} params; base tagged; {dvc_yaml_names(args.stages)[changed_stage(args.stages)]}.k "
            f"and {DATASET} changed and reproduced, uncommitted; {how} "
            f"(dvc repro {built['repro_base']:.1f} s, after the change {built['repro_change']:.1f} s)"
        )
        generated = f"cached, generated {stored['made']}" if stored["cached"] else "generated now"
        print(
            f"store: {args.count:,} runs, {stored['bytes'] / 2**20:.1f} MiB ({generated} in "
            f"{stored['seconds']:.1f} s); project and store copied in {copied:.1f} s (in {project})",
            flush=True,
        )

        # Bytecode as an installed opsctl (and dvc) has it, for every tool alike: see bench/runs.py.
        cli_env = {**env, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        dvc, opsctl, out = str(BIN / "dvc"), str(BIN / "opsctl"), work / "out"
        out.mkdir()
        groups = {
            "A": [[dvc, "metrics", "diff", "base"], [dvc, "params", "diff", "base"], [dvc, "data", "status"]],
            "floor": [["git", "show", "base:params.yaml"], ["git", "show", "base:dvc.lock"]],
        }
        report_cmd = [opsctl, "report", "--base", "base"]
        if has_report(cli_env, project):
            groups["md"] = [[*report_cmd, "--format", "md", "-o", str(out / "report.md")]]
            groups["json"] = [[*report_cmd, "--format", "json", "-o", str(out / "report.json")]]
            for cmd in groups["md"] + groups["json"]:
                timed(cmd, cwd=project, env=cli_env)
            found = check_report(
                project,
                json.loads((out / "report.json").read_text()),
                (out / "report.md").read_text(),
                args.stages,
                cli_env,
            )
            print(f"answers: the report agrees with DVC: {found}", flush=True)
        else:
            print("opsctl report: not in this checkout (`opsctl report --help` fails): timing the baseline only")

        parts: dict[str, list[list[float]]] = {name: [] for name in groups}
        names = list(groups)
        for i in range(args.runs + 1):  # round 0: the warm-up (bytecode, page cache, DVC's state of the copy)
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                parts[name].append([timed(cmd, cwd=project, env=cli_env) for cmd in groups[name]])
            print(
                f"  {'warm-up' if i == 0 else f'round {i}'}: "
                + ", ".join(f"{name} {sum(parts[name][-1]):.2f} s" for name in order),
                flush=True,
            )
        timed_rounds = {name: rounds[1:] for name, rounds in parts.items()}
        median = {name: statistics.median(sum(r) for r in rounds) for name, rounds in timed_rounds.items()}

        print()
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end of the timings")
        print(f"median of {args.runs} rounds (1 warm-up), interleaved:")
        for j, cmd in enumerate(groups["A"]):
            seconds = statistics.median(r[j] for r in timed_rounds["A"])
            print(f"  {' '.join(cmd[1:]):<26} {seconds:7.3f} s")
        baseline = median["A"]
        print(f"{'A: the three dvc commands':<28} {baseline:7.3f} s   (summed per round)")
        floor = median["floor"]
        print(f"{'floor: git show x2':<28} {floor:7.3f} s   (base:params.yaml + base:dvc.lock)")
        if "md" not in median:
            return 1
        ok = report("opsctl report --format md", median["md"], "A: the dvc commands", baseline, TARGET)
        ok &= report("opsctl report --format json", median["json"], "A: the dvc commands", baseline, TARGET)
        compare("  --format md vs the floor", median["md"], "floor: git show x2", floor)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
