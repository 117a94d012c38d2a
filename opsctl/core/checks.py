"""Data checks: what ``checks:`` in ``opsctl.yaml`` declares, and what a validation found.

This module is the light half of data quality (docs/architecture.md, *Data checks*): the
declared checks as frozen dataclasses, their validation as part of ``opsctl.yaml``, a stable
hash of them (a verdict is reused for the same data hash and checks hash) and the shape of a
verdict. It imports neither pandas nor pandera: ``opsctl --help``, ``opsctl status`` and the
planner read it. Running the checks on data is ``core/check_engine.py``; the service that
resolves datasets, caches verdicts and records them is ``core/validation.py``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

FORMATS = ("csv", "parquet", "jsonl")
TYPES = ("int", "float", "str", "bool", "datetime")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
MAX_REGEX_CHARS = 1000  # a pattern is compiled once per validation; a huge one is a hostile config
MAX_ALLOWED_VALUES = 10_000  # `in:` lists; beyond that a lookup table belongs in the data, not the config
ENGINE_VERSION = "1"  # bump when the meaning of a check changes: cached verdicts then no longer apply

# Check names, as a failure reports them: the opsctl.yaml key that declared the check.
ROWS, UNIQUE, STRICT, PRESENT = "rows", "unique", "strict", "present"
TYPE, NULLABLE, MIN, MAX, IN, REGEX = "type", "nullable", "min", "max", "in", "regex"
READ = "read"  # the data could not be read (a run's gate reports it as a failed check)
QUARANTINE = "quarantine"  # a run could not move the failing rows to the quarantine file
TABLE_CHECKS = (ROWS, STRICT, PRESENT, READ, QUARANTINE)  # about the table, not rows: never tolerated


@dataclass(frozen=True)
class ColumnChecks:
    """The checks of one column. ``nullable`` defaults to False, as in pandera: a column
    that may hold empty values says so."""

    name: str
    type: str | None = None
    nullable: bool = False
    min: float | int | str | None = None  # a datetime column's bounds are ISO dates (text)
    max: float | int | str | None = None
    allowed: tuple[Any, ...] | None = None  # `in:` in opsctl.yaml
    regex: str | None = None
    date_format: str | None = None  # `format:` of a datetime column (strftime codes); default ISO 8601

    def names(self) -> list[str]:
        """The checks this column declares, by name (``present`` always: a declared column must exist)."""
        found = [PRESENT]
        if self.type is not None:
            found.append(TYPE)
        if not self.nullable:
            found.append(NULLABLE)
        found += [
            name
            for name, value in ((MIN, self.min), (MAX, self.max), (IN, self.allowed), (REGEX, self.regex))
            if value is not None
        ]
        return found


@dataclass(frozen=True)
class DatasetChecks:
    """The checks of one dataset: a file, or a directory whose files (of ``format``) are read as one table."""

    path: str
    format: str
    rows_min: int | None = None
    rows_max: int | None = None
    unique: tuple[tuple[str, ...], ...] = ()
    strict: bool = False
    columns: tuple[ColumnChecks, ...] = ()
    # Rows that may fail row-level checks and still pass: a count, or a share of the rows.
    max_failing_rows: int = 0
    max_failing_share: float | None = None
    quarantine: str | None = None  # in a run, rows failing row-level checks move to this CSV file

    def allowed_failing_rows(self, rows: int) -> int:
        if self.max_failing_share is not None:
            return int(self.max_failing_share * rows)
        return self.max_failing_rows

    def column(self, name: str) -> ColumnChecks | None:
        return next((c for c in self.columns if c.name == name), None)

    def names(self) -> list[tuple[str, str | None]]:
        """Every check as (check, column or None), in the order a report lists them."""
        found: list[tuple[str, str | None]] = []
        if self.rows_min is not None or self.rows_max is not None:
            found.append((ROWS, None))
        found += [(UNIQUE, ",".join(cols)) for cols in self.unique]
        if self.strict:
            found.append((STRICT, None))
        for col in self.columns:
            found += [(name, col.name) for name in col.names()]
        return found

    @property
    def digest(self) -> str:
        """A stable hash of what these checks demand (not of how the YAML spelled it): a
        verdict recorded for the same data hash and digest is still the verdict."""
        doc = asdict(self)
        doc["engine"] = ENGINE_VERSION
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def format_of(path: str) -> str | None:
    """The format a dataset path's extension names (``None`` when it names none)."""
    lower = path.lower().rstrip("/")
    return next((fmt for ext, fmt in _EXTENSIONS.items() if lower.endswith(ext)), None)


def parse_checks(v: Any, raw: Any) -> dict[str, DatasetChecks]:
    """Validate the ``checks:`` section of opsctl.yaml. ``v`` is core.config's validator, so
    a bad definition is reported as the rest of the file is: file, key path, what was expected."""
    datasets = {}
    for path, spec in v.mapping(raw, "checks").items():
        key = f"checks.{path}"
        v.relative_path(path, key, "in the project (a dataset's file or directory)")
        spec = v.mapping(spec if spec is not None else {}, key)
        v.known_keys(spec, key, {"format", "rows", "unique", "strict", "columns", "max_failing_rows", "quarantine"})
        fmt = spec.get("format", format_of(path))
        if fmt is None:
            raise v.error(f"{key}.format", "csv, parquet or jsonl (the path's extension names none)", None)
        fmt = v.choice(fmt, f"{key}.format", FORMATS)
        rows_min, rows_max = _rows(v, spec.get("rows"), f"{key}.rows")
        columns = tuple(
            _column(v, str(name), col, f"{key}.columns.{name}")
            for name, col in v.mapping(spec.get("columns", {}) or {}, f"{key}.columns").items()
        )
        unique = _unique(v, spec.get("unique", []), f"{key}.unique")
        max_rows, max_share = _tolerance(v, spec.get("max_failing_rows", 0), f"{key}.max_failing_rows")
        path = posixpath.normpath(path)  # ./data/x.csv and data/x.csv/ are data/x.csv, as a typed path is
        quarantine = spec.get("quarantine")
        if quarantine is not None:
            quarantine = v.relative_path(quarantine, f"{key}.quarantine", "in the project (a CSV file)")
            quarantine = posixpath.normpath(quarantine)
            if fmt != "csv" or format_of(quarantine) != "csv":
                raise v.error(
                    f"{key}.quarantine", "a .csv file, for a csv dataset (rows are moved as text)", quarantine
                )
            if quarantine == path:
                raise v.error(f"{key}.quarantine", "a file other than the dataset itself", quarantine)
        datasets[path] = DatasetChecks(
            path=path,
            format=fmt,
            rows_min=rows_min,
            rows_max=rows_max,
            unique=unique,
            strict=v.boolean(spec.get("strict", False), f"{key}.strict"),
            columns=columns,
            max_failing_rows=max_rows,
            max_failing_share=max_share,
            quarantine=quarantine,
        )
    return datasets


def _tolerance(v: Any, value: Any, path: str) -> tuple[int, float | None]:
    """``max_failing_rows: 25`` (rows) or ``"10%"`` (of the dataset's rows)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 <= share <= 1:
            raise v.error(path, "a number of rows or a percentage such as '10%'", value)
        return 0, share
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise v.error(path, "a number of rows or a percentage such as '10%'", value)
    return value, None


def _count(v: Any, value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise v.error(path, "a number of rows (0 or more)", value)
    return value


def _rows(v: Any, value: Any, path: str) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):  # rows: 100 means exactly 100
        exact = _count(v, value, path)
        return exact, exact
    spec = v.mapping(value, path)
    v.known_keys(spec, path, {"min", "max"})
    low, high = _count(v, spec.get("min"), f"{path}.min"), _count(v, spec.get("max"), f"{path}.max")
    if low is not None and high is not None and low > high:
        raise v.error(f"{path}.max", f"at least rows.min ({low})", high)
    return low, high


def _unique(v: Any, value: Any, path: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise v.error(path, "a list of column sets, e.g. [[customer_id], [order_id, line]]", value)
    sets = []
    for i, item in enumerate(value):
        cols = [item] if isinstance(item, str) else item  # `unique: [id]` is read as [[id]]
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c for c in cols):
            raise v.error(f"{path}[{i}]", "a list of column names", item)
        sets.append(tuple(cols))
    return tuple(sets)


def _number(v: Any, value: Any, path: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise v.error(path, "a number", value)
    return value


def _bound(v: Any, value: Any, path: str, col_type: str | None) -> Any:
    """A min or max: a number, or for a datetime column a date (YAML's 2024-01-01) or an ISO date text."""
    import datetime as dt

    if col_type != "datetime" or value is None:
        return _number(v, value, path)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise v.error(path, "a date such as 2024-01-31 (ISO 8601)", value) from None
        return value
    raise v.error(path, "a date such as 2024-01-31 (ISO 8601)", value)


def _column(v: Any, name: str, spec: Any, path: str) -> ColumnChecks:
    spec = v.mapping(spec if spec is not None else {}, path)
    v.known_keys(spec, path, {"type", "nullable", "min", "max", "in", "regex", "format"})
    col_type = v.choice(spec["type"], f"{path}.type", TYPES) if "type" in spec else None
    if ("min" in spec or "max" in spec) and col_type not in (None, "int", "float", "datetime"):
        raise v.error(f"{path}.type", "int, float or datetime (min and max compare numbers or dates)", col_type)
    low = _bound(v, spec.get("min"), f"{path}.min", col_type)
    high = _bound(v, spec.get("max"), f"{path}.max", col_type)
    if low is not None and high is not None and low > high:
        raise v.error(f"{path}.max", f"at least {path}.min ({low})", high)
    allowed = spec.get("in")
    if allowed is not None:
        if not isinstance(allowed, list) or not allowed or len(allowed) > MAX_ALLOWED_VALUES:
            raise v.error(f"{path}.in", f"a list of 1 to {MAX_ALLOWED_VALUES:,} allowed values", allowed)
        for i, item in enumerate(allowed):
            if not isinstance(item, (str, int, float, bool)):
                raise v.error(f"{path}.in[{i}]", "a string, number or boolean", item)
        allowed = tuple(allowed)
    regex = spec.get("regex")
    if regex is not None:
        regex = v.string(regex, f"{path}.regex")
        if len(regex) > MAX_REGEX_CHARS:
            raise v.error(f"{path}.regex", f"a pattern of at most {MAX_REGEX_CHARS} characters", regex)
        try:
            re.compile(regex)
        except re.error as exc:
            raise v.error(f"{path}.regex", f"a regular expression that compiles ({exc})", regex) from None
        if col_type not in (None, "str"):
            raise v.error(f"{path}.type", "str (regex matches text)", col_type)
    date_format = spec.get("format")
    if date_format is not None:
        date_format = v.string(date_format, f"{path}.format")
        if col_type != "datetime":
            raise v.error(f"{path}.type", "datetime (format: is how its dates are written)", col_type)
    return ColumnChecks(
        name=name,
        type=col_type,
        nullable=v.boolean(spec.get("nullable", False), f"{path}.nullable"),
        min=low,
        max=high,
        allowed=allowed,
        regex=regex,
        date_format=date_format,
    )


# ---- what a validation found -------------------------------------------------------------

MAX_EXAMPLES = 5  # failing values kept per check: enough to see the pattern, small enough to store


@dataclass(frozen=True)
class Example:
    row: int  # 1-based data row (a CSV's header is not a row: row 1 is line 2)
    value: Any
    file: str | None = None  # the file within a directory dataset


def failure_label(check: str, column: str | None, count: int, detail: str | None) -> str:
    """One failing check in words: ``type(tenure) 2 rows``; a table-level one (and a column
    missing or not declared) by what was found: ``rows: 3 rows, expected at least 5``."""
    if column and check not in (PRESENT, STRICT):
        return f"{check}({column}) {count} row{'s' if count != 1 else ''}"
    return f"{check}: {detail}" if detail else check


@dataclass(frozen=True)
class Failure:
    check: str  # ROWS, UNIQUE, STRICT, PRESENT, TYPE, NULLABLE, MIN, MAX, IN, REGEX
    column: str | None  # None for table-level checks (rows, strict)
    count: int  # failing rows (rows: the row count found; strict and present: 1)
    examples: tuple[Example, ...] = ()
    detail: str = ""  # for table-level checks: what was found against what was declared

    def label(self) -> str:
        return failure_label(self.check, self.column, self.count, self.detail)

    def as_json(self) -> dict:
        return {
            "check": self.check,
            "column": self.column,
            "count": self.count,
            "detail": self.detail,
            "examples": [
                {"row": e.row, "value": e.value, **({"file": e.file} if e.file else {})} for e in self.examples
            ],
        }


@dataclass
class DatasetVerdict:
    """The outcome of one dataset's checks."""

    path: str
    hash: str | None  # DVC's md5 of the data (a directory's ends in .dir); None when it could not be computed
    checks_hash: str
    rows: int
    checks: int  # how many checks ran
    failures: list[Failure] = field(default_factory=list)
    duration: float = 0.0
    cached: bool = False  # the same data and checks passed before: taken from the run store
    failing_rows: int = 0  # distinct rows failing a row-level check
    allowed_failing_rows: int = 0  # max_failing_rows, in rows
    quarantined: int = 0  # rows a run moved to the dataset's quarantine file
    quarantine: str | None = None

    @property
    def tolerated(self) -> bool:
        """Every failure is a row-level one, on no more rows than ``max_failing_rows`` allows."""
        return (
            bool(self.failures)
            and all(f.check not in TABLE_CHECKS for f in self.failures)
            and 0 < self.failing_rows <= self.allowed_failing_rows
        )

    @property
    def passed(self) -> bool:
        return not self.failures or self.tolerated

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "hash": self.hash,
            "rows": self.rows,
            "passed": self.passed,
            "checks": self.checks,
            "cached": self.cached,
            "failing_rows": self.failing_rows,
            "allowed_failing_rows": self.allowed_failing_rows,
            "quarantined": self.quarantined,
            "quarantine": self.quarantine,
            "failures": [f.as_json() for f in self.failures],
        }

    def summary(self, limit: int = 3) -> str:
        """One line for a stage's failure message: ``3 checks failed: type(tenure) 2 rows, ...``."""
        parts = [f.label() for f in self.failures[:limit]]
        more = f", +{len(self.failures) - limit} more" if len(self.failures) > limit else ""
        return f"{len(self.failures)} check{'s' if len(self.failures) != 1 else ''} failed: {', '.join(parts)}{more}"


@dataclass
class ValidationReport:
    datasets: list[DatasetVerdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.datasets)

    def as_json(self) -> dict:
        return {"passed": self.passed, "datasets": [d.as_json() for d in self.datasets]}
