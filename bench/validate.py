#!/usr/bin/env python3
"""`opsctl data validate` against pandera alone (pandas, and polars) and, with --with-ge,
Great Expectations, on the same generated CSV with the same checks, in one run; and
opsctl's peak memory when the file doubles.

    .venv/bin/python bench/validate.py [--rows 1000000] [--quick] [--repeat 3] [--with-ge]
        [--data-dir /tmp/opsctl-bench-validate] [--repo DIR] [--ge-venv /tmp/ge-venv] [--tmp DIR]

Data: a deterministic CSV of ROWS rows x 20 columns (ints, floats, strings, categories,
dates and date-times, a unique id, two nullable columns; ~160 MB for 1,000,000 rows) and
the same generator run on to twice as many rows (its first ROWS rows are the first file),
made once with numpy and polars and kept in DATA-DIR. --quick: 100,000 rows.

Checks: one spec (`checks_spec`) of 20 columns, each with its type and not-null unless
declared nullable, plus 6 ranges, 4 allowed-value sets and 2 regexes, the row count, a
unique id and strict columns; written as the `checks:` of an opsctl.yaml and built from
it as the equivalent pandera (pandas and polars) schemas and GX expectation suite.
Every tool must find the data valid.

Project: git init + dvc init by the real CLIs, both files `dvc add`-ed, committed.

Timed, each command in a fresh process (import costs count) whose peak RSS is read
with wait4: one untimed warm-up of each, then REPEAT rounds rotating which goes first;
the figures are medians.
- opsctl: `python -m opsctl data validate --json --no-cache data/base.csv` with REPO
  (default: this checkout) on PYTHONPATH, so a baseline worktree can be measured too.
- pandera (pandas): `pd.read_csv` of the whole file + `schema.validate(df, lazy=True)`.
- pandera (polars): `pl.read_csv(try_parse_dates=True)` + the polars schema, lazy.
- GX: `great_expectations` 1.x in its own venv (GE-VENV, made with pip on first use),
  an ephemeral context, a pandas dataframe asset read with `pd.read_csv`.
The baselines print their own import / read / validate split. CPU (user + system) is shown
beside wall time: on a busy machine it moves less (polars' threads make it exceed wall time).

Targets: opsctl <= 1.10x pandera (pandas); opsctl's peak RSS <= 1.5 GB on the
ROWS-row file and within +-20% of it on the doubled file.
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
from _timing import Sample, data_project, last_line, mib, rounds, tool_venv, verdict

ENV = {"DVC_NO_ANALYTICS": "1"}
REPO = Path(__file__).resolve().parent.parent
TIME_TARGET = 1.10  # x pandera with pandas
RSS_TARGET = 1.5e9  # bytes, on the ROWS-row file
FLAT_TARGET = 0.20  # peak RSS on the doubled file within +-20% of the ROWS-row one
SEED = 20260412
BLOCK = 250_000  # rows generated per block: block b depends on (SEED, b) only
GENERATOR = "1"  # bump when the generated data changes: the cached files are then made again

PLANS = ["basic", "plus", "pro", "enterprise"]
COUNTRIES = ["DE", "FR", "ES", "IT", "NL", "PL", "SE", "US", "CA", "BR", "JP", "IN"]
STATUSES = ["active", "churned", "paused"]
CHANNELS = ["web", "store", "phone", "partner", "referral"]
CITIES = ["Berlin", "Paris", "Madrid", "Rome", "Amsterdam", "Warsaw", "Stockholm", "Boston", "Toronto", "Recife"]
DOMAINS = ["example.org", "mail.test", "corp.invalid"]


# ---- the data ---------------------------------------------------------------------------


def generate_block(block: int, rows: int, first_id: int):
    """``rows`` rows of the table as a polars DataFrame; the same (block, rows, first_id) gives the same rows."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng([SEED, block])
    n = rows

    def pick(values: list[str]) -> pl.Series:
        return pl.Series(values).gather(rng.integers(0, len(values), n))

    def nulls(share: float) -> pl.Series:
        return pl.Series(rng.random(n) < share)

    def fmt(template: str, *parts: pl.Series) -> pl.Series:
        return pl.select(pl.format(template, *(pl.lit(p) for p in parts))).to_series()

    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    letters = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    signup = np.datetime64("2015-01-01") + rng.integers(0, 3650, n).astype("timedelta64[D]")
    seconds = rng.integers(0, 5 * 365 * 86400, n).astype("timedelta64[s]")
    digits = pl.Series(rng.integers(0, 100_000, n)).cast(pl.String).str.zfill(5)
    last_seen = (np.datetime64("2020-01-01T00:00:00") + seconds).astype("datetime64[ms]")
    return pl.DataFrame(
        {
            "id": ids,
            "age": rng.integers(18, 96, n),
            "tenure": rng.integers(0, 121, n),
            "quantity": rng.integers(1, 1001, n),
            "price": np.round(rng.uniform(0, 10_000, n), 2),
            "discount": np.round(rng.uniform(0, 0.5, n), 3),
            "score": np.round(rng.random(n), 4),
            "latitude": np.round(rng.uniform(-90, 90, n), 4),
            "longitude": np.round(rng.uniform(-180, 180, n), 4),
            "balance": pl.Series(np.round(rng.normal(500, 300, n), 2)).set(nulls(0.05), None),
            "plan": pick(PLANS),
            "country": pick(COUNTRIES),
            "status": pick(STATUSES),
            "channel": pick(CHANNELS),
            "email": fmt("c{}@{}", pl.Series(ids), pick(DOMAINS)),
            "sku": fmt("{}{}{}-{}", pick(letters), pick(letters), pick(letters), digits),
            "city": pick(CITIES).set(nulls(0.02), None),
            "signup": signup,
            "last_seen": last_seen,
            "churned": rng.random(n) < 0.2,
        }
    )


def make_csv(path: Path, rows: int, block_rows: int) -> None:
    """Write the table's first ``rows`` rows to ``path`` (atomically: an interrupted run leaves no file)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as f:
        for block, start in enumerate(range(0, rows, block_rows)):
            frame = generate_block(block, min(block_rows, rows - start), start + 1)
            frame.write_csv(f, include_header=block == 0, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    partial.rename(path)


def dataset(data_dir: Path, rows: int, block_rows: int) -> Path:
    path = data_dir / f"table-{rows}rows-block{block_rows}-v{GENERATOR}.csv"
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        # In a child process: a forked child's peak RSS (wait4) counts its parent's pages, so
        # this process must stay small for the measurements that follow.
        me = [sys.executable, str(Path(__file__).resolve()), "child", "generate", str(path), str(rows), str(block_rows)]
        subprocess.run(me, check=True)
        print(f"  generated {path} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def checks_spec(rows: int) -> dict:
    """The checks, as opsctl.yaml's ``checks:`` declares them for one dataset; all pass on the generated data."""
    return {
        "format": "csv",
        "rows": {"min": rows, "max": rows},
        "unique": [["id"]],
        "strict": True,
        "columns": {
            "id": {"type": "int", "min": 1},
            "age": {"type": "int", "min": 18, "max": 95},
            "tenure": {"type": "int", "min": 0, "max": 120},
            "quantity": {"type": "int", "min": 1, "max": 1000},
            "price": {"type": "float", "min": 0, "max": 10_000},
            "discount": {"type": "float", "min": 0, "max": 0.5},
            "score": {"type": "float"},
            "latitude": {"type": "float"},
            "longitude": {"type": "float"},
            "balance": {"type": "float", "nullable": True},
            "plan": {"type": "str", "in": PLANS},
            "country": {"type": "str", "in": COUNTRIES},
            "status": {"type": "str", "in": STATUSES},
            "channel": {"type": "str", "in": CHANNELS},
            "email": {"type": "str", "regex": r"^[a-z0-9.]+@[a-z]+\.[a-z]+$"},
            "sku": {"type": "str", "regex": r"^[A-Z]{3}-[0-9]{5}$"},
            "city": {"type": "str", "nullable": True},
            "signup": {"type": "datetime", "format": "%Y-%m-%d"},
            "last_seen": {"type": "datetime"},
            "churned": {"type": "bool"},
        },
    }


def count_checks(spec: dict) -> int:
    """Checks as opsctl counts them (rows, unique, strict, and per column present, type, not-null, min, max,
    in, regex)."""
    per_column = sum(
        1 + ("type" in c) + (not c.get("nullable", False)) + sum(k in c for k in ("min", "max", "in", "regex"))
        for c in spec["columns"].values()
    )
    return ("rows" in spec) + len(spec.get("unique", [])) + bool(spec.get("strict")) + per_column


# ---- the baselines, each run in a fresh process: `validate.py child TOOL SPEC CSV` ----------


def child_pandera_pandas(spec: dict, csv: str) -> dict:
    started = time.perf_counter()
    import pandas as pd
    import pandera
    import pandera.pandas as pa
    from pandera.engines import pandas_engine

    imported = time.perf_counter()
    df = pd.read_csv(csv)
    read = time.perf_counter()

    def dtype(col: dict):
        kind = col.get("type")
        if kind == "datetime":
            kwargs = {"format": col["format"]} if "format" in col else {}
            return pandas_engine.DateTime(to_datetime_kwargs=kwargs)
        return {"int": "int64", "float": "float64", "str": str, "bool": bool}.get(kind)

    columns = {}
    for name, col in spec["columns"].items():
        checks = []
        if "min" in col:
            checks.append(pa.Check.ge(col["min"]))
        if "max" in col:
            checks.append(pa.Check.le(col["max"]))
        if "in" in col:
            checks.append(pa.Check.isin(col["in"]))
        if "regex" in col:
            checks.append(pa.Check.str_matches(col["regex"]))
        columns[name] = pa.Column(
            dtype(col), checks=checks, nullable=col.get("nullable", False), coerce=col.get("type") == "datetime"
        )
    low, high = spec["rows"]["min"], spec["rows"]["max"]
    schema = pa.DataFrameSchema(
        columns,
        checks=[pa.Check(lambda frame: low <= len(frame) <= high, name="rows")],
        unique=spec["unique"][0],
        strict=spec["strict"],
    )
    try:
        schema.validate(df, lazy=True)
        failures = []
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases.head(10).astype(str).to_dict("records")
    done = time.perf_counter()
    return {
        "rows": len(df),
        "failures": failures,
        "import": imported - started,
        "read": read - imported,
        "validate": done - read,
        "version": f"pandera {pandera.__version__}, pandas {pd.__version__}",
    }


def child_pandera_polars(spec: dict, csv: str) -> dict:
    started = time.perf_counter()
    import pandera
    import pandera.polars as pa
    import polars as pl

    imported = time.perf_counter()
    df = pl.read_csv(csv, try_parse_dates=True)
    read = time.perf_counter()
    types = {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "bool": pl.Boolean, "datetime": pl.Datetime}
    columns = {}
    for name, col in spec["columns"].items():
        checks = []
        if "min" in col:
            checks.append(pa.Check.ge(col["min"]))
        if "max" in col:
            checks.append(pa.Check.le(col["max"]))
        if "in" in col:
            checks.append(pa.Check.isin(col["in"]))
        if "regex" in col:
            checks.append(pa.Check.str_matches(col["regex"]))
        columns[name] = pa.Column(
            types[col["type"]],
            checks=checks,
            nullable=col.get("nullable", False),
            coerce=col["type"] == "datetime",  # a date-only column is read as pl.Date
        )
    low, high = spec["rows"]["min"], spec["rows"]["max"]
    schema = pa.DataFrameSchema(
        columns,
        checks=[pa.Check(lambda data: data.lazyframe.select(pl.len().is_between(low, high)), name="rows")],
        unique=spec["unique"][0],
        strict=spec["strict"],
    )
    try:
        schema.validate(df, lazy=True)
        failures = []
    except pandera.errors.SchemaErrors as exc:
        failures = [str(exc)[:2000]]
    done = time.perf_counter()
    return {
        "rows": df.height,
        "failures": failures,
        "import": imported - started,
        "read": read - imported,
        "validate": done - read,
        "version": f"pandera {pandera.__version__}, polars {pl.__version__}",
    }


def child_ge(spec: dict, csv: str) -> dict:
    started = time.perf_counter()
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    imported = time.perf_counter()
    df = pd.read_csv(csv)
    for name, col in spec["columns"].items():  # GX checks values, it does not parse: parse as pandera coerces
        if col.get("type") == "datetime":
            df[name] = pd.to_datetime(df[name], format=col.get("format"))
    read = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = context.suites.add(gx.ExpectationSuite(name="bench"))
    suite.add_expectation(
        gxe.ExpectTableRowCountToBeBetween(min_value=spec["rows"]["min"], max_value=spec["rows"]["max"])
    )
    for cols in spec["unique"]:
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeUnique(column=cols[0])
            if len(cols) == 1
            else gxe.ExpectCompoundColumnsToBeUnique(column_list=cols)
        )
    if spec["strict"]:
        suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=list(spec["columns"]), exact_match=True))
    for name, col in spec["columns"].items():
        # The dtype pandas gives each declared type (pandas 3 reads text as "str"; GX 1.24's
        # ExpectColumnValuesToBeInTypeList rejects that dtype, ExpectColumnValuesToBeOfType takes it).
        kind = {"int": "int64", "float": "float64", "str": "str", "bool": "bool", "datetime": "datetime64"}
        suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=name, type_=kind[col["type"]]))
        if not col.get("nullable", False):
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=name))
        if "min" in col or "max" in col:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=col.get("min"), max_value=col.get("max"))
            )
        if "in" in col:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=col["in"]))
        if "regex" in col:
            suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=col["regex"]))
    result = batch.validate(suite)
    done = time.perf_counter()
    failures = [
        {"expectation": r.expectation_config.type, "kwargs": str(r.expectation_config.kwargs)[:200]}
        for r in result.results
        if not r.success
    ]
    return {
        "rows": len(df),
        "failures": failures,
        "import": imported - started,
        "read": read - imported,
        "validate": done - read,
        "version": f"great_expectations {gx.__version__}, pandas {pd.__version__}",
        "expectations": len(result.results),
    }


CHILDREN = {"pandera-pandas": child_pandera_pandas, "pandera-polars": child_pandera_polars, "ge": child_ge}


def child_main(argv: list[str]) -> int:
    if argv[0] == "generate":
        make_csv(Path(argv[1]), int(argv[2]), int(argv[3]))
        return 0
    tool, spec_path, csv = argv
    print(json.dumps(CHILDREN[tool](json.loads(Path(spec_path).read_text()), csv), default=str))
    return 0


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class Tool(timing.Tool):
    split_keys: tuple[str, ...] = ("import", "read", "validate")  # the baselines report them

    def check(self, sample: Sample, expect_rows: int) -> str | None:
        """Why this run does not count (it failed, or it did not find the data valid), or None."""
        if sample.code not in (0, 6):
            return f"exit {sample.code}: {last_line(sample.stderr)}"
        if why := self.parse(sample):
            return why
        assert self.info is not None
        if "datasets" in self.info:  # opsctl's --json verdict
            verdicts = self.info["datasets"]
            rows = verdicts[0]["rows"] if verdicts else None
            failures = [f for d in verdicts for f in d.get("failures", [])]
            if verdicts and verdicts[0].get("cached"):
                return "the verdict came from the cache (--no-cache was not honoured)"
        else:
            rows, failures = self.info["rows"], self.info["failures"]
        if failures or sample.code:
            return f"found the valid data invalid: {json.dumps(failures)[:500]}"
        if rows != expect_rows:
            return f"read {rows} rows, not {expect_rows}"
        return None


# ---- the report ---------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child_main(sys.argv[2:])
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the measured file (doubled for memory)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100,000 rows")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (median)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/opsctl-bench-validate"), help="the cached CSVs")
    parser.add_argument("--repo", type=Path, default=REPO, help="the opsctl checkout to measure (on PYTHONPATH)")
    parser.add_argument("--with-ge", action="store_true", help="time Great Expectations too (installs it once)")
    parser.add_argument("--ge-venv", type=Path, default=Path("/tmp/ge-venv"), help="Great Expectations' own venv")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to make the project")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    if rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    if not (args.repo / "opsctl" / "__init__.py").is_file():
        parser.error(f"--repo {args.repo} is not an opsctl checkout (no opsctl/__init__.py)")

    block_rows = min(BLOCK, rows)
    print(f"data: {rows:,} and {2 * rows:,} rows x 20 columns (in {args.data_dir})", flush=True)
    base = dataset(args.data_dir, rows, block_rows)
    double = dataset(args.data_dir, 2 * rows, block_rows)
    spec = checks_spec(rows)

    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-validate-", dir=args.tmp))
    try:
        config = {
            "project": "bench-validate",
            "checks": {"data/base.csv": checks_spec(rows), "data/double.csv": checks_spec(2 * rows)},
        }
        project = data_project(work / "project", {"data/base.csv": base, "data/double.csv": double}, config, env=ENV)
        spec_path = work / "checks.json"
        spec_path.write_text(json.dumps(spec))
        print(
            f"checks: 20 columns, {count_checks(spec)} checks (present, types, not-null, 6 ranges, 4 sets, 2 regexes, "
            f"rows, unique id, strict); base file {base.stat().st_size / 1e6:.0f} MB; project in {project}",
            flush=True,
        )

        pythonpath = os.pathsep.join(p for p in (str(args.repo.resolve()), os.environ.get("PYTHONPATH")) if p)
        validate = [sys.executable, "-m", "opsctl", "data", "validate", "--json", "--no-cache"]
        opsctl_env = {**ENV, "PYTHONPATH": pythonpath}
        me = [sys.executable, str(Path(__file__).resolve()), "child"]
        opsctl = Tool("opsctl data validate", [*validate, "data/base.csv"], cwd=project, env=opsctl_env)
        tools = [
            opsctl,
            Tool("pandera (pandas)", [*me, "pandera-pandas", str(spec_path), str(base)]),
            Tool("pandera (polars)", [*me, "pandera-polars", str(spec_path), str(base)]),
        ]
        ge_note = "skipped (--with-ge to include it)"
        if args.with_ge:
            python, ge_note = tool_venv(
                args.ge_venv, ["great_expectations"], "import great_expectations as gx; print(gx.__version__)"
            )
            if python is not None:
                ge_cmd = [str(python), str(Path(__file__).resolve()), "child", "ge", str(spec_path), str(base)]
                tools.append(Tool(f"Great Expectations {ge_note}", ge_cmd))
                ge_note = ""

        rounds(tools, args.repeat, rows)  # every tool must also find the data valid
        double_tool = Tool(
            "opsctl data validate (2x rows)", [*validate, "data/double.csv"], cwd=project, env=opsctl_env
        )
        double_spec = work / "checks-2x.json"
        double_spec.write_text(json.dumps(checks_spec(2 * rows)))
        double_pandera = Tool("pandera (pandas, 2x rows)", [*me, "pandera-pandas", str(double_spec), str(double)])
        if not opsctl.broken:
            for _ in range(args.repeat):
                double_tool.run(2 * rows)
        double_pandera.run(2 * rows)

        print()
        print(
            f"{'tool':<40} {'time':>9}   {'CPU':>9}   {'peak RSS':>10}   {'vs pandera (pandas)':<19}   {'target':<22}   "
            "import / read / validate"
        )
        pandas_tool = tools[1]
        ok = True
        for tool in tools:
            if tool.broken or not tool.samples:
                print(f"{tool.name:<40} not measured: {tool.broken}")
                continue
            ratio = tool.seconds / pandas_tool.seconds if pandas_tool.samples and not pandas_tool.broken else None
            target = ""
            if tool is opsctl and ratio is not None:
                target = f"<= {TIME_TARGET:.2f}x   {verdict(ratio <= TIME_TARGET)}"
            print(
                f"{tool.name:<40} {tool.seconds:7.2f} s   {tool.cpu:7.2f} s   {mib(tool.rss)}   "
                f"{f'{ratio:5.2f}x' if ratio is not None else '-':<19}   {target:<22}   {tool.split()}".rstrip()
            )
        if ge_note:
            print(f"{'Great Expectations':<40} not measured: {ge_note}")
        if opsctl.broken or pandas_tool.broken or not opsctl.samples or not pandas_tool.samples:
            ok = False
        else:
            ok &= opsctl.seconds / pandas_tool.seconds <= TIME_TARGET

        print()
        if not opsctl.broken and opsctl.samples:
            rss_ok = opsctl.rss <= RSS_TARGET
            print(
                f"{'opsctl peak RSS, ' + f'{rows:,} rows':<40} {mib(opsctl.rss)}   "
                f"target <= {RSS_TARGET / 1e9:.1f} GB   {verdict(rss_ok)}"
            )
            ok &= rss_ok
            if double_tool.samples and not double_tool.broken:
                growth = double_tool.rss / opsctl.rss
                flat = abs(growth - 1) <= FLAT_TARGET
                print(
                    f"{'opsctl peak RSS, ' + f'{2 * rows:,} rows':<40} {mib(double_tool.rss)}   "
                    f"{growth:4.2f}x the {rows:,}-row figure   target within +-{FLAT_TARGET:.0%}   {verdict(flat)}   "
                    f"(time {double_tool.seconds:.2f} s)"
                )
                ok &= flat
            else:
                print(f"{'opsctl on ' + f'{2 * rows:,} rows':<40} not measured: {double_tool.broken}")
                ok = False
        else:
            print(f"opsctl peak RSS: not measured ({opsctl.broken})")
        if double_pandera.samples and not double_pandera.broken and pandas_tool.samples:
            print(
                f"{'pandera (pandas) peak RSS, ' + f'{2 * rows:,} rows':<40} {mib(double_pandera.rss)}   "
                f"{double_pandera.rss / pandas_tool.rss:4.2f}x its {rows:,}-row figure (for reference)"
            )
        versions = [t.info["version"] for t in tools if t.info and "version" in t.info]
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nversions: {'; '.join(dict.fromkeys(versions))}; {os.cpu_count()} CPUs, load average {load}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
