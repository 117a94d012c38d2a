#!/usr/bin/env python3
"""`opsctl monitor drift` against the raw reference and against the reference's profile, a
straightforward per-column scipy loop and Evidently's DataDriftPreset, on the same generated
pair of CSVs, in one run; and the profile's size.

    .venv/bin/python bench/drift.py [--rows 1000000] [--quick] [--repeat 3] [--no-evidently]
        [--data-dir /tmp/opsctl-bench-drift] [--repo DIR] [--ev-venv /tmp/ev-venv] [--tmp DIR]

Data: a deterministic reference.csv and current.csv of ROWS rows x 20 columns each (~115 MB
apiece for 1,000,000 rows), made once with numpy and polars and kept in DATA-DIR; --quick:
100,000 rows. 12 numeric columns (floats, ints, two ints with 3 and 5 distinct values, which
count as categories; one float with 5% nulls) and 8 categorical ones (strings with 3 to 50
categories, one binary). The current file is drawn from the same distributions except in
SHIFTED: 3 numeric columns moved by 0.5 of their standard deviation and 2 categorical columns
with a changed mix. So the known answer is: exactly those 5 columns drift (normalised
Wasserstein 0.5 and Jensen-Shannon 0.25 / 0.27 against thresholds of 0.1; every other column
stays below 0.02), a share of 0.25, and no dataset drift at the default share of 0.5.

Project: git init + dvc init by the real CLIs, both files `dvc add`-ed, committed; the profile
`opsctl monitor profile data/reference.csv -o monitor/reference.json` made once, untimed.

Timed, each command in a fresh process (import costs count) whose peak RSS is read with
wait4: one untimed warm-up of each, then REPEAT rounds rotating which goes first; the
figures are medians.
- opsctl (raw): `python -m opsctl monitor drift data/current.csv --reference data/reference.csv
  --json` with REPO (default: this checkout) on PYTHONPATH, so a baseline worktree can be
  measured too;
- opsctl (profile): the same with `--reference monitor/reference.json`;
- scipy loop: `pd.read_csv` of both files, then per column Evidently's choice (reference of
  more than 1,000 rows: `wasserstein_distance` / the reference's std for numbers,
  `jensenshannon` of the category shares for categories; else `ks_2samp` and
  `chi2_contingency`), a numeric column of at most 5 distinct values counted as categories;
- Evidently: `pd.read_csv` of both + `Report([DataDriftPreset()]).run(...)` + reading its result
  dict, in its own venv (EV-VENV, made with pip on first use; 0.4.x-0.6.x and 0.7+ APIs). If it
  does not install, the bench says why and skips it only.
Every tool must name exactly the SHIFTED columns; opsctl must also give no dataset drift with
exit 0 (6 would mean dataset drift). A wrong opsctl verdict fails the bench (exit 1).
The baselines print their own import / read / compare split.

Targets: opsctl (raw) <= 0.2x Evidently (<= 1.0x the scipy loop when Evidently is missing;
both are printed when both ran); opsctl (profile) <= 0.5x opsctl (raw); the profile of the
20 columns <= 100 KB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _timing as timing
from _timing import Sample, data_project, last_line, measured, mib, rounds, tool_venv, verdict

ENV = {"DVC_NO_ANALYTICS": "1"}
REPO = Path(__file__).resolve().parent.parent
EVIDENTLY_TARGET = 0.2  # opsctl (raw) / Evidently
SCIPY_TARGET = 1.0  # opsctl (raw) / the scipy loop, the target when Evidently is missing
PROFILE_TARGET = 0.5  # opsctl (profile) / opsctl (raw)
PROFILE_KB_TARGET = 100  # KB, for the 20 columns
SEED = 20261130
BLOCK = 250_000  # rows generated per block: block b of a side depends on (SEED, side, b) only
GENERATOR = "1"  # bump when the generated data changes: the cached files are then made again
MIN_ROWS = 10_000  # below this, sampling noise (50 categories) can cross the 0.1 thresholds
SIDES = ("reference", "current")

# The evidently requirement: 0.7.x imports pandas internals that pandas 3 removed.
EVIDENTLY_REQUIREMENTS = ["evidently", "pandas<3"]

PLANS = ["basic", "plus", "pro", "enterprise"]
CHANNELS = ["web", "store", "phone", "partner", "referral"]
COUNTRIES = ["DE", "FR", "ES", "IT", "NL", "PL", "SE", "US", "CA", "BR", "JP", "IN"]
DEVICES = ["desktop", "mobile", "tablet"]
SEGMENTS = ["consumer", "student", "small-business", "mid-market", "enterprise", "public", "nonprofit", "partner"]
PRODUCTS = [f"product-{i:02d}" for i in range(1, 21)]
REGIONS = [f"region-{i:02d}" for i in range(50)]
# (reference mix, current mix) of the two shifted categorical columns
PLAN_MIX = ([0.4, 0.3, 0.2, 0.1], [0.15, 0.25, 0.3, 0.3])
CHANNEL_MIX = ([0.35, 0.25, 0.2, 0.1, 0.1], [0.1, 0.2, 0.2, 0.25, 0.25])
# (mean, standard deviation) of the three shifted numeric columns: current = reference + 0.5 sd
SHIFT_SD = 0.5
TEMPERATURE = (20.0, 5.0)  # normal
PRICE = (2.0, 50.0)  # gamma (shape, scale): sd = sqrt(shape) * scale
LATENCY = (3.0, 40.0)  # gamma (shape, scale)

NUMERIC = [
    "age", "tenure", "children", "rating", "visits", "income",
    "balance", "score", "discount", "temperature", "price", "latency_ms",
]  # fmt: skip
CATEGORICAL = ["plan", "channel", "country", "device", "segment", "product", "region", "member"]
COLUMNS = NUMERIC + CATEGORICAL
SHIFTED = ["temperature", "price", "latency_ms", "plan", "channel"]


# ---- the data ---------------------------------------------------------------------------


def generate_block(side: str, block: int, rows: int):
    """``rows`` rows of one side as a polars DataFrame; the same (side, block, rows) gives the same rows."""
    import numpy as np
    import polars as pl

    current = side == "current"
    rng = np.random.default_rng([SEED, SIDES.index(side), block])
    n = rows

    def pick(values: list[str], shares: list[float] | None = None) -> pl.Series:
        weights = None if shares is None else np.asarray(shares) / np.sum(shares)
        return pl.Series(values).gather(rng.choice(len(values), n, p=weights))

    def gamma(shape: float, scale: float) -> np.ndarray:
        shift = SHIFT_SD * np.sqrt(shape) * scale if current else 0.0
        return np.round(rng.gamma(shape, scale, n) + shift, 2)

    temperature_mean, temperature_sd = TEMPERATURE
    balance = pl.Series(np.round(rng.normal(500, 300, n), 2)).set(pl.Series(rng.random(n) < 0.05), None)
    return pl.DataFrame(
        {
            "age": rng.integers(18, 96, n),
            "tenure": rng.integers(0, 121, n),
            "children": rng.integers(0, 5, n),  # 5 distinct values: compared as categories
            "rating": rng.integers(1, 4, n),  # 3 distinct values
            "visits": rng.poisson(3, n),
            "income": np.round(rng.lognormal(10, 0.5, n), 2),
            "balance": balance,
            "score": np.round(rng.random(n), 4),
            "discount": np.round(rng.uniform(0, 0.5, n), 3),
            "temperature": np.round(
                rng.normal(temperature_mean + (SHIFT_SD * temperature_sd if current else 0.0), temperature_sd, n), 2
            ),
            "price": gamma(*PRICE),
            "latency_ms": gamma(*LATENCY),
            "plan": pick(PLANS, PLAN_MIX[current]),
            "channel": pick(CHANNELS, CHANNEL_MIX[current]),
            "country": pick(COUNTRIES),
            "device": pick(DEVICES, [0.5, 0.4, 0.1]),
            "segment": pick(SEGMENTS),
            "product": pick(PRODUCTS, [1 / np.sqrt(i + 1) for i in range(len(PRODUCTS))]),
            "region": pick(REGIONS, [1 / (i + 1) for i in range(len(REGIONS))]),  # Zipf: rare regions too
            "member": pick(["yes", "no"], [0.3, 0.7]),
        }
    )


def make_csv(path: Path, side: str, rows: int, block_rows: int) -> None:
    """Write one side's ``rows`` rows to ``path`` (atomically: an interrupted run leaves no file)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as f:
        for block, start in enumerate(range(0, rows, block_rows)):
            generate_block(side, block, min(block_rows, rows - start)).write_csv(f, include_header=block == 0)
    partial.rename(path)


def dataset(data_dir: Path, side: str, rows: int, block_rows: int) -> Path:
    path = data_dir / f"{side}-{rows}rows-block{block_rows}-v{GENERATOR}.csv"
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        # In a child process: a forked child's peak RSS (wait4) counts its parent's pages, so
        # this process must stay small for the measurements that follow.
        me = [sys.executable, str(Path(__file__).resolve()), "child", "generate", str(path), side, str(rows)]
        subprocess.run([*me, str(block_rows)], check=True)
        print(f"  generated {path} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


# ---- the baselines, each run in a fresh process: `drift.py child TOOL REFERENCE CURRENT` ----


def child_scipy(reference: str, current: str) -> dict:
    """The straightforward per-column loop: Evidently's choice of method, scipy's statistics."""
    started = time.perf_counter()
    import numpy as np
    import pandas as pd
    import scipy
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

    imported = time.perf_counter()
    ref_df, cur_df = pd.read_csv(reference), pd.read_csv(current)
    read = time.perf_counter()
    columns = []
    for name in ref_df.columns.intersection(cur_df.columns):
        ref, cur = ref_df[name].dropna(), cur_df[name].dropna()
        numeric = pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur)
        large = len(ref) > 1000
        if numeric and pd.concat([ref, cur]).nunique() > 5:
            if large:
                method, p_value, threshold = "wasserstein", None, 0.1
                statistic = wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
            else:
                method, threshold = "ks", 0.05
                statistic, p_value = ks_2samp(ref, cur)
        else:
            counts = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0).to_numpy().T
            if large:
                method, p_value, threshold = "jensenshannon", None, 0.1
                shares = counts / counts.sum(axis=1, keepdims=True)
                shares[shares == 0] = 0.0001  # as Evidently: an empty category keeps the log finite
                statistic = jensenshannon(shares[0], shares[1])
            else:
                method, threshold = "chi2", 0.05
                statistic, p_value = chi2_contingency(counts)[:2]
        drift = statistic >= threshold if p_value is None else p_value < threshold
        columns.append(
            {
                "column": name,
                "method": method,
                "statistic": float(statistic),
                "p_value": None if p_value is None else float(p_value),
                "drift": bool(drift),
            }
        )
    share = sum(c["drift"] for c in columns) / len(columns)
    done = time.perf_counter()
    return {
        "drift": share >= 0.5,
        "share": share,
        "columns": columns,
        "import": imported - started,
        "read": read - imported,
        "compare": done - read,
        "version": f"pandas {pd.__version__}, scipy {scipy.__version__}",
    }


def child_evidently(reference: str, current: str) -> dict:
    """Evidently's DataDriftPreset on the two files, its result read back as a dict."""
    started = time.perf_counter()
    import evidently
    import pandas as pd

    try:  # 0.7+
        from evidently import Report
        from evidently.presets import DataDriftPreset

        legacy = False
    except ImportError:  # 0.4.x - 0.6.x
        from evidently.metric_preset import DataDriftPreset
        from evidently.report import Report

        legacy = True
    imported = time.perf_counter()
    ref_df, cur_df = pd.read_csv(reference), pd.read_csv(current)
    read = time.perf_counter()
    if legacy:
        report = Report(metrics=[DataDriftPreset()])
        report.run(reference_data=ref_df, current_data=cur_df)
        result = evidently_legacy_result(report.as_dict())
    else:
        snapshot = Report([DataDriftPreset()]).run(current_data=cur_df, reference_data=ref_df)
        result = evidently_result(snapshot.dict())
    done = time.perf_counter()
    return {
        **result,
        "import": imported - started,
        "read": read - imported,
        "compare": done - read,
        "version": f"evidently {evidently.__version__}, pandas {pd.__version__}",
    }


def evidently_legacy_result(report: dict) -> dict:
    """0.4.x-0.6.x: DatasetDriftMetric's verdict and DataDriftTable's columns."""
    dataset, columns = None, []
    for metric in report["metrics"]:
        result = metric["result"]
        if metric["metric"] == "DatasetDriftMetric":
            dataset = result
        elif metric["metric"] == "DataDriftTable":
            for name, col in result["drift_by_columns"].items():
                columns.append(
                    {
                        "column": name,
                        "method": col["stattest_name"],
                        "statistic": col["drift_score"],
                        "drift": bool(col["drift_detected"]),
                    }
                )
    if dataset is None:
        raise SystemExit("Evidently's report has no DatasetDriftMetric")
    return {"drift": bool(dataset["dataset_drift"]), "share": dataset["share_of_drifted_columns"], "columns": columns}


def evidently_result(snapshot: dict) -> dict:
    """0.7+: DriftedColumnsCount's share and one ValueDrift per column (its config names the
    column, method and threshold; its value is the statistic)."""
    share, count, drift_share, columns = None, None, 0.5, []
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            share, count = metric["value"]["share"], metric["value"]["count"]
            drift_share = config.get("drift_share", drift_share)
        elif kind.endswith("ValueDrift"):
            method, threshold, value = config.get("method"), config.get("threshold"), float(metric["value"])
            # Evidently's tests (p-values) drift below the threshold, its distances at or above it.
            is_test = method is not None and ("p_value" in method or method.endswith("test"))
            columns.append(
                {
                    "column": config["column"],
                    "method": method,
                    "statistic": value,
                    "drift": value < threshold if is_test else value >= threshold,
                }
            )
    if share is None:
        raise SystemExit("Evidently's snapshot has no DriftedColumnsCount")
    if round(count) != sum(c["drift"] for c in columns):  # the per-column reading above must match Evidently's
        raise SystemExit(f"Evidently counts {count} drifted columns, its ValueDrift metrics {columns}")
    return {"drift": share >= drift_share, "share": share, "columns": columns}


CHILDREN = {"scipy": child_scipy, "evidently": child_evidently}


def child_main(argv: list[str]) -> int:
    if argv[0] == "generate":
        make_csv(Path(argv[1]), argv[2], int(argv[3]), int(argv[4]))
        return 0
    tool, reference, current = argv
    print(json.dumps(CHILDREN[tool](reference, current), default=str))
    return 0


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class Tool(timing.Tool):
    split_keys: tuple[str, ...] = ("import", "read", "compare")  # the baselines report them
    opsctl: bool = False  # exit 6 means dataset drift
    drifted: list[str] | None = None  # the last run's drifted columns
    wrong: str | None = None  # how a run's answer differed from the known one (the first such run)

    def check(self, sample: Sample) -> str | None:
        """Why this run does not count (it failed, or its output is not a drift verdict), or None;
        a wrong verdict still counts but is kept in ``wrong``."""
        if sample.code not in ((0, 6) if self.opsctl else (0,)):
            return f"exit {sample.code}: {last_line(sample.stderr)}"
        if why := self.parse(sample):
            return why
        assert self.info is not None
        try:
            columns = {c["column"]: bool(c["drift"]) for c in self.info["columns"]}
            dataset_drift = bool(self.info["drift"])
        except (KeyError, TypeError) as exc:
            return f"the output is not a drift verdict ({exc!r}): {sample.stdout[:300]}"
        self.drifted = sorted(name for name, drift in columns.items() if drift)
        problems = []
        if sorted(columns) != sorted(COLUMNS):
            problems.append(f"compared {len(columns)} columns, not the {len(COLUMNS)}: {sorted(columns)}")
        if self.drifted != sorted(SHIFTED):
            missed, extra = sorted(set(SHIFTED) - set(self.drifted)), sorted(set(self.drifted) - set(SHIFTED))
            problems.append(f"drifted columns wrong (missed {missed or 'none'}, false alarms {extra or 'none'})")
        expected = len(SHIFTED) / len(COLUMNS) >= self.info.get("threshold_share", 0.5)
        if dataset_drift != expected:
            problems.append(f"dataset drift {dataset_drift}, expected {expected}")
        if self.opsctl and sample.code != (6 if dataset_drift else 0):
            problems.append(f"exit {sample.code} with dataset drift {dataset_drift}")
        self.wrong = self.wrong or "; ".join(problems) or None  # the first wrong answer stays
        return None


def opsctl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsctl", "monitor", *args]


def statistics_gap(opsctl: Tool, loop: Tool) -> str:
    """How far opsctl's per-column statistics are from the scipy loop's where both used the same method."""
    if not opsctl.info or not loop.info:
        return "not compared"
    theirs = {c["column"]: c for c in loop.info["columns"]}
    gaps = [
        abs(float(c["statistic"]) - theirs[c["column"]]["statistic"])
        for c in opsctl.info["columns"]
        if c["column"] in theirs and c.get("method") == theirs[c["column"]]["method"]
    ]
    if not gaps:
        return "no column compared with the same method"
    return f"max |difference| {max(gaps):.2g} over {len(gaps)} of {len(COLUMNS)} columns with the same method"


# ---- the report ---------------------------------------------------------------------------


def ratio_line(name: str, tool: Tool, baseline: Tool, target: float, note: str = "") -> bool:
    """``tool``'s median time over ``baseline``'s against ``target``; False when either was not measured."""
    missing = [t for t in (tool, baseline) if t.broken or not t.samples]
    if missing:
        print(f"{name:<40} not measured ({', '.join(t.name for t in missing)} failed)")
        return False
    ratio = tool.seconds / baseline.seconds
    ok = ratio <= target
    print(f"{name:<40} {ratio:6.2f}x   target <= {target:.2f}x   {verdict(ok):<6}   {note}".rstrip())
    return ok


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child_main(sys.argv[2:])
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the reference and of the current file")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100,000 rows")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (median)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/opsctl-bench-drift"), help="the cached CSVs")
    parser.add_argument("--repo", type=Path, default=REPO, help="the opsctl checkout to measure (on PYTHONPATH)")
    parser.add_argument("--ev-venv", type=Path, default=Path("/tmp/ev-venv"), help="Evidently's own venv")
    parser.add_argument("--no-evidently", action="store_true", help="leave Evidently out (no install)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the project")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    if rows < MIN_ROWS:
        parser.error(f"--rows must be at least {MIN_ROWS:,} (the known answer needs it)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not (args.repo / "opsctl" / "__init__.py").is_file():
        parser.error(f"--repo {args.repo} is not an opsctl checkout (no opsctl/__init__.py)")

    # The checkout measured, as it is when the bench starts (it may be edited meanwhile).
    head = subprocess.run(["git", "-C", str(args.repo), "describe", "--always", "--dirty"], capture_output=True)
    opsctl_version = f"opsctl {args.repo.resolve()} at {head.stdout.decode().strip() or '(not a Git checkout)'}"

    ev_python, ev_note = None, "skipped (--no-evidently)"
    if not args.no_evidently:
        probe = "import evidently; print(evidently.__version__)"
        ev_python, ev_note = tool_venv(args.ev_venv, EVIDENTLY_REQUIREMENTS, probe)
        print(f"Evidently: {ev_note if ev_python else 'not measured: ' + ev_note}", flush=True)

    block_rows = min(BLOCK, rows)
    print(f"data: reference and current, {rows:,} rows x {len(COLUMNS)} columns each (in {args.data_dir})", flush=True)
    reference = dataset(args.data_dir, "reference", rows, block_rows)
    current = dataset(args.data_dir, "current", rows, block_rows)

    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-drift-", dir=args.tmp))
    try:
        project = data_project(
            work / "project", {"data/reference.csv": reference, "data/current.csv": current}, env=ENV
        )
        print(
            f"  files {reference.stat().st_size / 1e6:.0f} + {current.stat().st_size / 1e6:.0f} MB; "
            f"shifted: {', '.join(SHIFTED)}; project in {project}",
            flush=True,
        )
        pythonpath = os.pathsep.join(p for p in (str(args.repo.resolve()), os.environ.get("PYTHONPATH")) if p)
        opsctl_env = {**ENV, "PYTHONPATH": pythonpath}

        profile = project / "monitor" / "reference.json"
        profile.parent.mkdir()
        made = measured(opsctl_cmd("profile", "data/reference.csv", "-o", str(profile)), cwd=project, env=opsctl_env)
        if made.code or not profile.is_file():
            profile_broken = f"`opsctl monitor profile` exit {made.code}: {last_line(made.stderr or made.stdout)}"
            print(f"  profile: {profile_broken}", flush=True)
        else:
            profile_broken = None
            print(
                f"  profile: {profile.stat().st_size / 1000:.1f} KB, made in {made.seconds:.2f} s (untimed below)",
                flush=True,
            )

        drift = ["drift", "data/current.csv", "--json", "--reference"]
        raw = Tool(
            "opsctl drift (raw reference)",
            opsctl_cmd(*drift, "data/reference.csv"),
            cwd=project,
            env=opsctl_env,
            opsctl=True,
        )
        from_profile = Tool(
            "opsctl drift (profile)",
            opsctl_cmd(*drift, str(profile.relative_to(project))),
            cwd=project,
            env=opsctl_env,
            opsctl=True,
            broken=profile_broken,
        )
        me = [str(Path(__file__).resolve()), "child"]
        loop = Tool("scipy loop (pandas + scipy)", [sys.executable, *me, "scipy", str(reference), str(current)])
        tools = [raw, from_profile, loop]
        evidently = None
        if ev_python is not None:
            evidently = Tool(
                f"Evidently DataDriftPreset ({ev_note})",
                [str(ev_python), *me, "evidently", str(reference), str(current)],
            )
            tools.append(evidently)
        rounds(tools, args.repeat)

        print()
        print(f"{'tool':<44} {'time':>9}   {'CPU':>9}   {'peak RSS':>10}   import / read / compare")
        for tool in tools:
            if tool.broken or not tool.samples:
                print(f"{tool.name:<44} not measured: {tool.broken}")
                continue
            print(
                f"{tool.name:<44} {tool.seconds:7.2f} s   {tool.cpu:7.2f} s   {mib(tool.rss)}   {tool.split()}".rstrip()
            )
        if evidently is None:
            print(f"{'Evidently DataDriftPreset':<44} not measured: {ev_note}")

        print()
        ok = True
        if evidently is not None:
            ok &= ratio_line("opsctl (raw) / Evidently", raw, evidently, EVIDENTLY_TARGET)
        # The scipy loop's target is the when Evidently is missing; else it is shown beside it.
        if evidently is not None and evidently.samples and not evidently.broken:
            ratio_line("opsctl (raw) / scipy loop", raw, loop, SCIPY_TARGET, "(informational: Evidently was measured)")
        else:
            ok &= ratio_line("opsctl (raw) / scipy loop", raw, loop, SCIPY_TARGET)
        ok &= ratio_line("opsctl (profile) / opsctl (raw)", from_profile, raw, PROFILE_TARGET)
        name = f"profile size ({len(COLUMNS)} columns)"
        if profile.is_file():
            size_ok = profile.stat().st_size / 1000 <= PROFILE_KB_TARGET
            print(
                f"{name:<40} {profile.stat().st_size / 1000:6.1f} KB  "
                f"target <= {PROFILE_KB_TARGET} KB   {verdict(size_ok)}"
            )
            ok &= size_ok
        else:
            print(f"{name:<40} not measured: {profile_broken}")
            ok = False

        print()
        print(
            f"drifted columns (known answer: {', '.join(SHIFTED)}; share {len(SHIFTED) / len(COLUMNS):.2f}; "
            "no dataset drift, exit 0)"
        )
        for tool in tools:
            if tool.drifted is None:
                continue
            share = tool.info.get("share") if tool.info else None
            answer = f"WRONG: {tool.wrong}" if tool.wrong else "as expected"
            print(
                f"  {tool.name:<42} {len(tool.drifted)}/{len(COLUMNS)}  share {share:.2f}  {answer}"
                + ("" if tool.wrong else f"  ({', '.join(tool.drifted)})")
            )
        if raw.drifted is not None and loop.drifted is not None:
            agree = raw.drifted == loop.drifted
            print(f"opsctl and the scipy loop agree on the drifted columns: {'yes' if agree else 'NO'}")
            print(f"opsctl's statistics vs the scipy loop's: {statistics_gap(raw, loop)}")
        versions = [opsctl_version, *(t.info["version"] for t in tools if t.info and "version" in t.info)]
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nversions: {'; '.join(dict.fromkeys(versions))}; {os.cpu_count()} CPUs, load average {load}")

        failed = [t for t in (raw, from_profile) if t.wrong or t.broken]
        for tool in failed:
            why = f"gave a wrong answer: {tool.wrong}" if tool.wrong else f"failed: {tool.broken}"
            print(f"\nFAILED: {tool.name} {why}", file=sys.stderr)
        if failed:
            return 1
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
