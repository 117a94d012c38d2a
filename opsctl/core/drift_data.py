"""What drift compares: a dataset's columns, read once in bounded blocks, or a profile of them.

A column is one of two kinds, decided by the type the data has:

- **numeric** (ints, floats, dates and times as seconds): its values as float64, since the
  Kolmogorov-Smirnov test and the Wasserstein distance need them all, and its value counts
  while it has at most :data:`FEW` distinct values (a 0/1 column is compared as categories), or
  :data:`WHOLE_NUMBERS` whole numbers (a profile keeps an age column's ties exactly);
- **categorical** (text, booleans): the count of each value; chi-squared, Jensen-Shannon,
  PSI and the z-test need nothing else.

Input is bounded: blocks of :data:`BLOCK_BYTES` (a longer line is refused), at most
:data:`MAX_VALUES` numeric values in all (2 GiB), and a text column with more than
:data:`MAX_CATEGORIES` distinct values (an identifier, not a distribution) stops being counted
and is not compared.

A **profile** (``opsctl monitor profile``) keeps per column what the comparison needs in a few
KB: numeric columns their count, nulls, moments, quantiles (:data:`PROBABILITIES`), a histogram and
their few values; categorical ones their :data:`TOP` most frequent values plus the count of
the rest. Compared with current data, a numeric column of a profile becomes a sample rebuilt
from its quantiles (docs/architecture.md, *Drift*).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opsctl.errors import DataParseError, OpsctlError, UsageError

PROFILE_FORMAT = 1  # the version of the profile file this opsctl writes and reads
PROFILE_KEY = "opsctl_profile"
FEW = 20  # numeric columns keep their value counts while they have at most this many values ...
WHOLE_NUMBERS = 200  # ... or this many whole numbers (ages, counts, ratings): a profile keeps their ties exactly
MAX_CATEGORIES = 100_000
MAX_VALUES = 1 << 28  # numeric values held in memory for one dataset (8 bytes each: 2 GiB)
BLOCK_BYTES = 16 << 20  # pyarrow's CSV block; a line must fit in one
WHOLE_FILE_BYTES = 256 << 20  # a CSV up to this size is read whole (in parallel); a bigger one streamed
# where a profile samples a numeric column's quantile curve: every percent, closer in the tails,
# where a long tail (incomes, latencies) would otherwise be a straight line to the maximum
PROBABILITIES = (
    [0.0, 0.0001, 0.001, 0.0025, 0.005, 0.0075]
    + [round(i / 100, 2) for i in range(1, 100)]
    + [0.9925, 0.995, 0.9975, 0.999, 0.9999, 1.0]
)
HISTOGRAM_BINS = 20
TOP = 100  # categories a profile keeps by name
MAX_PROFILE_BYTES = 8 << 20
REBUILT_ROWS = 20_000  # the size of a sample rebuilt from a profile for the distances
MAX_REBUILT_ROWS = 10_000_000  # ... and for the KS test, whose p-value needs the real count
OTHER = "(other)"  # a profile's values beyond its top ones

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass
class ColumnData:
    """One column of a dataset (or of a profile of one)."""

    name: str
    kind: str  # "numeric" | "categorical"
    dtype: str  # the type it was read as: int64, double, string, bool, timestamp[s], ...
    count: int = 0  # values that are not null
    nulls: int = 0
    values: np.ndarray | None = None  # numeric: the values, or a sample rebuilt from a profile
    counts: dict[Any, int] | None = None  # categorical, or numeric with few values: value -> count
    too_many: bool = False  # categorical with more than MAX_CATEGORIES values: not compared
    distinct: int | None = None  # categorical: how many values (a profile keeps only its top ones)
    std: float | None = None  # a profile's exact spread (its rebuilt sample's is approximate)
    quantiles: np.ndarray | None = None  # a profile's numeric column: its quantile curve ...
    probabilities: np.ndarray | None = None  # ... at these probabilities

    def numbers(self, method: str) -> np.ndarray:
        """The values to compare: the data's, or a sample rebuilt from a profile (see
        :func:`rebuilt_sample`): as many points as the data had for the KS test, whose
        p-value depends on it; REBUILT_ROWS for the distances, which don't."""
        if self.values is not None:
            return self.values
        if self.quantiles is None or self.probabilities is None:
            return np.empty(0)
        rows = self.count if method == "ks" else min(self.count, REBUILT_ROWS)
        return rebuilt_sample(self.probabilities, self.quantiles, rows, self.counts)

    @property
    def rows(self) -> int:
        return self.count + self.nulls


@dataclass
class DatasetData:
    """The columns of a dataset or profile, in the data's order."""

    label: str  # what the user named: a path, a profile file, NAME@VERSION
    rows: int
    columns: dict[str, ColumnData] = field(default_factory=dict)
    hash: str = ""  # md5 of the data (or of the profile file)
    profile: dict | None = None  # set when read from a profile


# -- reading a dataset ----------------------------------------------------------------------


def read_dataset(root: Path, path: str, *, on_progress: Progress | None = None) -> DatasetData:
    """Every column of the dataset at ``path`` (a file, or a directory read as one table)."""
    from opsctl.core.check_engine import dataset_files
    from opsctl.core.checks import format_of

    fmt = format_of(path) if not (root / path).is_dir() else _directory_format(root / path)
    if fmt is None:
        raise UsageError(f"{path}: not a dataset opsctl can read (.csv, .tsv, .parquet, .jsonl)")
    if not (root / path).exists():
        raise UsageError(f"{path}: no such file or directory")
    files = dataset_files(root, path, fmt)
    total = sum(f.stat().st_size for f in files) or 1
    forced: dict[Path, dict[str, Any]] = {}  # per CSV file: columns read as another type than guessed
    for _attempt in range(1000):
        builder = _Builder(path)
        done = 0
        try:
            for file in files:
                shown = os.path.relpath(file, root)
                for batch, position in _batches(root, file, shown, fmt, forced.setdefault(file, {})):
                    builder.add(batch, shown)
                    if on_progress is not None:
                        on_progress(done + position, total)
                done += file.stat().st_size
        except _Retype:  # its batches so far are counted: read it all again, with the new type
            continue
        if on_progress is not None:
            on_progress(total, total)
        return builder.finish()
    raise DataParseError(f"{path}: the types of its columns could not be settled")  # pragma: no cover


class _Retype(Exception):
    """A CSV column held a value its guessed type can't: the dataset is read again."""


def _directory_format(directory: Path) -> str | None:
    from opsctl.core.checks import format_of

    for file in sorted(directory.rglob("*")):
        if file.is_file() and not file.name.startswith("."):
            fmt = format_of(file.name)
            if fmt is not None:
                return fmt
    return None


def _batches(root: Path, file: Path, shown: str, fmt: str, forced: dict[str, Any]) -> Iterator[tuple[Any, int]]:
    """(pyarrow RecordBatch, bytes of the file read so far) in bounded blocks."""
    if fmt == "csv":
        yield from _csv_batches(file, shown, forced)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(file)
            size = file.stat().st_size
            groups = max(reader.num_row_groups, 1)
            for i in range(reader.num_row_groups):
                yield from ((b, size * (i + 1) // groups) for b in reader.iter_batches(row_groups=[i]))
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise DataParseError(f"{shown}: not a readable parquet file ({_first_line(exc)})") from None
    else:
        import pyarrow as pa

        from opsctl.core.check_engine import iter_chunks

        rel = os.path.relpath(file, root)
        for chunk in iter_chunks(root, rel, "jsonl"):
            yield pa.RecordBatch.from_pandas(chunk.frame, preserve_index=False), 0


def _csv_batches(file: Path, shown: str, forced: dict[str, Any]) -> Iterator[tuple[Any, int]]:
    """pyarrow's streaming CSV reader. Types come from the first block; when a later block
    has a value the type can't hold (an int column with ``1.5`` or ``n/a`` far down), the
    column is forced to float, then to text, and _Retype raised: the batches already given
    were counted with the old type, so the caller reads the dataset again."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names: list[str] = []
    types: dict[str, Any] = {}
    options = {
        "read_options": pcsv.ReadOptions(block_size=BLOCK_BYTES),
        "parse_options": pcsv.ParseOptions(delimiter="\t" if file.suffix.lower() == ".tsv" else ","),
        "convert_options": pcsv.ConvertOptions(column_types=forced, null_values=[""], strings_can_be_null=True),
    }
    size = file.stat().st_size
    with open(file, "rb") as handle:
        try:
            if size <= WHOLE_FILE_BYTES:  # read whole, its blocks parsed on every core
                table = pcsv.read_csv(str(file), **options)  # a path: pyarrow's own I/O, not Python's
                names, types = table.schema.names, {f.name: f.type for f in table.schema}
                batches = table.to_batches()
                for i, batch in enumerate(batches):
                    yield batch, size * (i + 1) // len(batches)
                return
            reader = pcsv.open_csv(handle, **options)  # streamed: memory stays flat
            names = reader.schema.names
            types = {name: reader.schema.field(name).type for name in names}
            for batch in reader:
                yield batch, handle.tell()
        except pa.ArrowInvalid as exc:
            if not names:  # read whole: which column failed is known by its number only
                with contextlib.suppress(pa.ArrowInvalid, OSError):
                    names = pcsv.open_csv(file, **options).schema.names
            column = _failed_column(str(exc), names)
            if column is None or column in forced and forced[column] == pa.string():
                raise DataParseError(f"{shown}: not a readable CSV file ({_first_line(exc)})") from None
            was = forced.get(column, types.get(column))
            guessed = was is not None and (pa.types.is_integer(was) or pa.types.is_null(was))
            forced[column] = pa.float64() if guessed else pa.string()
            raise _Retype from None


def _failed_column(message: str, names: list[str]) -> str | None:
    """The column of pyarrow's "In CSV column #3: CSV conversion error to int64: ..."."""
    import re

    match = re.search(r"In CSV column #(\d+): CSV conversion error", message)
    if not match or int(match[1]) >= len(names):
        return None
    return names[int(match[1])]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class _Builder:
    """Accumulates batches into :class:`ColumnData`, within the memory bounds."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.rows = 0
        self.columns: dict[str, ColumnData] = {}
        self.parts: dict[str, list[np.ndarray]] = {}
        self.held = 0

    def add(self, batch: Any, shown: str) -> None:
        self.rows += batch.num_rows
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            kind, dtype = _kind(array.type)
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = ColumnData(name, kind, dtype, counts={})
                column.nulls = self.rows - batch.num_rows  # a column first seen in a later file
                self.parts[name] = []
            if dtype == "null":  # no value in this batch (CSV's guess for an empty column): nulls of any type
                column.nulls += len(array)
                continue
            if column.dtype == "null":  # its first values: the column takes their type
                column.kind, column.dtype = kind, dtype
            elif column.kind != kind:  # a directory's files disagree: compare it as text
                self._as_text(column)
                kind = "categorical"
            if kind == "numeric":
                self._add_numbers(column, array, shown)
            else:
                self._add_categories(column, array)
        for name, column in self.columns.items():  # a column missing from this batch's file
            if name not in batch.schema.names:
                column.nulls += batch.num_rows

    def _add_numbers(self, column: ColumnData, array: Any, shown: str) -> None:
        values = _as_float(array)
        present = values[np.isfinite(values)]  # NaN is a null, and so is ±inf: no statistic can hold it
        column.nulls += len(array) - len(present)
        column.count += len(present)
        self.held += len(present)
        if self.held > MAX_VALUES:
            raise OpsctlError(
                f"{shown}: too large to compare whole (over {MAX_VALUES:,} numeric values)",
                hint="compare a sample of it, or profile it in parts",
            )
        self.parts[column.name].append(present)
        limit = WHOLE_NUMBERS if np.array_equal(present, np.floor(present)) else FEW
        if column.counts is not None and len(np.unique(present[:1024])) > limit:
            column.counts = None  # a continuous column: found out without counting it all
        if column.counts is not None and len(present):
            keys, counts = np.unique(present, return_counts=True)
            for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
                column.counts[key] = column.counts.get(key, 0) + count
            whole = all(float(k).is_integer() for k in column.counts)
            if len(column.counts) > (WHOLE_NUMBERS if whole else FEW):
                column.counts = None

    def _add_categories(self, column: ColumnData, array: Any) -> None:
        import pyarrow.compute as pc

        column.nulls += array.null_count
        column.count += len(array) - array.null_count
        if column.too_many or column.counts is None:
            return
        for item in pc.value_counts(array.drop_null()).to_pylist():
            value = item["values"]
            column.counts[value] = column.counts.get(value, 0) + item["counts"]
        if len(column.counts) > MAX_CATEGORIES:
            column.too_many, column.counts = True, None

    def _as_text(self, column: ColumnData) -> None:
        counts: dict[Any, int] = {}
        for part in self.parts.pop(column.name, []):
            for value in part.tolist():
                key = str(int(value)) if value.is_integer() else str(value)
                counts[key] = counts.get(key, 0) + 1
        self.parts[column.name] = []
        column.kind, column.dtype, column.counts, column.values = "categorical", "string", counts, None

    def finish(self) -> DatasetData:
        data = DatasetData(self.label, self.rows)
        for name, column in self.columns.items():
            if column.kind == "numeric":
                parts = self.parts.pop(name)
                column.values = np.concatenate(parts) if parts else np.empty(0)
            elif column.counts is not None:
                column.distinct = len(column.counts)
            data.columns[name] = column
        return data


def _kind(arrow_type: Any) -> tuple[str, str]:
    import pyarrow as pa

    numeric = (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_temporal(arrow_type)
    )
    return ("numeric" if numeric else "categorical"), str(arrow_type)


def _as_float(array: Any) -> np.ndarray:
    """A numeric arrow array's non-null values as float64; times as seconds since 1970.
    Read straight from the arrow buffer: pyarrow's ``to_numpy`` would import pandas."""
    import pyarrow as pa

    kind = array.type
    scale = 1.0
    if pa.types.is_date32(kind):
        array, scale = array.cast(pa.int32()), 86400.0
    elif pa.types.is_date64(kind):
        array, scale = array.cast(pa.int64()), 1e-3
    elif pa.types.is_temporal(kind):
        unit = getattr(kind, "unit", "s")
        array, scale = array.cast(pa.int64()), {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}.get(unit, 1.0)
    present = array.cast(pa.float64()).drop_null()
    values = np.frombuffer(present.buffers()[1], dtype=np.float64, count=len(present), offset=present.offset * 8)
    return values * scale if scale != 1.0 else values.copy()


# -- profiles -------------------------------------------------------------------------------


def build_profile(data: DatasetData, dataset: str, data_hash: str) -> dict:
    """The profile of ``data`` as a JSON-able dict (see the module's docstring)."""
    columns = {}
    for name, column in data.columns.items():
        entry: dict[str, Any] = {
            "kind": column.kind,
            "dtype": column.dtype,
            "count": column.count,
            "nulls": column.nulls,
        }
        if column.kind == "numeric" and column.values is not None and len(column.values):
            values = column.values
            edges = np.linspace(float(values.min()), float(values.max()), HISTOGRAM_BINS + 1)
            entry.update(
                mean=float(values.mean()),
                std=float(values.std()),
                quantiles=[float(q) for q in np.quantile(values, PROBABILITIES)],
                histogram={"edges": [float(e) for e in edges], "counts": np.histogram(values, edges)[0].tolist()},
            )
            if column.counts is not None:
                entry["values"] = [[k, v] for k, v in sorted(column.counts.items())]
        elif column.kind == "categorical":
            if column.too_many:
                entry["distinct"] = f"over {MAX_CATEGORIES}"
            else:
                ranked = sorted((column.counts or {}).items(), key=lambda kv: (-kv[1], str(kv[0])))
                entry["distinct"] = len(ranked)
                entry["top"] = [[_json_value(k), v] for k, v in ranked[:TOP]]
                entry["other"] = sum(v for _k, v in ranked[TOP:])
        columns[name] = entry
    return {
        PROFILE_KEY: PROFILE_FORMAT,
        "dataset": dataset,
        "hash": data_hash,
        "rows": data.rows,
        "probabilities": PROBABILITIES,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "columns": columns,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def profile_json(profile: dict) -> str:
    return json.dumps(profile, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def is_profile_file(path: Path) -> bool:
    """A .json file that starts as an opsctl profile does (a JSON-lines dataset does not)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, "rb") as handle:
        head = handle.read(256)
    return f'"{PROFILE_KEY}"'.encode() in head


def load_profile(text: bytes | str, label: str) -> DatasetData:
    """A profile file's columns, ready to compare; OpsctlError naming ``label`` when it is not
    one this opsctl can read."""
    if len(text) > MAX_PROFILE_BYTES:
        raise OpsctlError(f"{label}: not a profile (over {MAX_PROFILE_BYTES >> 20} MB)")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep for the parser
        raise OpsctlError(f"{label}: not a profile: invalid JSON ({_first_line(exc)})") from None
    if not isinstance(raw, dict) or PROFILE_KEY not in raw:
        raise OpsctlError(f"{label}: not an opsctl profile (no {PROFILE_KEY} key)")
    version = raw[PROFILE_KEY]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise OpsctlError(f"{label}: not an opsctl profile ({PROFILE_KEY} is {version!r})")
    if version > PROFILE_FORMAT:
        raise OpsctlError(
            f"{label}: a profile of format {version}, written by a newer opsctl (this one reads format "
            f"{PROFILE_FORMAT})",
            hint="upgrade opsctl, or make the profile again with this one (`opsctl monitor profile`)",
        )
    try:
        return _profile_data(raw, label)
    except (KeyError, TypeError, ValueError) as exc:
        raise OpsctlError(f"{label}: a damaged profile ({_first_line(exc)})") from None


def _profile_data(raw: dict, label: str) -> DatasetData:
    rows = _count(raw["rows"])
    data = DatasetData(label, rows, profile=raw)
    probabilities = np.asarray(raw["probabilities"], dtype=float)
    if not 2 <= len(probabilities) <= 10_001 or probabilities[0] != 0 or probabilities[-1] != 1:
        raise ValueError("probabilities must run from 0 to 1")
    if np.any(np.diff(probabilities) <= 0):
        raise ValueError("probabilities must increase")
    columns = raw["columns"]
    if not isinstance(columns, dict):
        raise TypeError("columns is not a mapping")
    for name, entry in columns.items():
        kind = entry["kind"]
        column = ColumnData(
            str(name), kind, str(entry.get("dtype", "")), _count(entry["count"]), _count(entry["nulls"])
        )
        if kind == "numeric":
            if column.count:
                quantiles = np.asarray(entry["quantiles"], dtype=float)
                if len(quantiles) != len(probabilities) or np.any(np.diff(quantiles) < 0):
                    raise ValueError(f"column {name}: one increasing quantile per probability")
                if not np.isfinite(quantiles).all():
                    raise ValueError(f"column {name}: quantiles must be finite numbers")
                column.std = float(entry["std"])
                if "values" in entry:
                    column.counts = {float(k): _count(v) for k, v in entry["values"]}
                    if len(column.counts) > WHOLE_NUMBERS or sum(column.counts.values()) != column.count:
                        raise ValueError(f"column {name}: its values do not add up to its count")
                column.quantiles, column.probabilities = quantiles, probabilities
        elif kind == "categorical":
            if isinstance(entry.get("distinct"), str):
                column.too_many = True
            else:
                top = entry["top"]
                if len(top) > 10 * TOP:
                    raise ValueError(f"column {name}: more than {10 * TOP} top values")
                column.counts = {_key(k): _count(v) for k, v in top}
                column.distinct = _count(entry["distinct"])
                other = _count(entry.get("other", 0))
                if other:
                    column.counts[OTHER] = column.counts.get(OTHER, 0) + other
        else:
            raise ValueError(f"column {name}: unknown kind {kind!r}")
        data.columns[column.name] = column
    return data


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
        raise ValueError(f"{value!r} is not a count")
    return value


def _key(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"{value!r} is not a category")


def rebuilt_sample(
    probabilities: np.ndarray, quantiles: np.ndarray, count: int, few: dict[float, int] | None = None
) -> np.ndarray:
    """``count`` points (up to MAX_REBUILT_ROWS) with the profile's distribution, evenly spaced
    in probability: on its exact values when it kept their counts (all of them when ``count``
    is their total), else on its quantile curve (piecewise linear)."""
    n = min(count, MAX_REBUILT_ROWS)
    if few:
        keys = np.array(sorted(few), dtype=float)
        counts = np.array([few[k] for k in sorted(few)], dtype=np.int64)
        total = int(counts.sum())
        if n >= total:
            return np.repeat(keys, counts)
        ranks = np.linspace(0, total - 1, max(n, 1)).round().astype(np.int64)
        return keys[np.searchsorted(np.cumsum(counts), ranks, side="right")]
    if n <= 1:
        return quantiles[:1].copy()
    return np.interp(np.linspace(0, 1, n), probabilities, quantiles)


def read_profile_file(path: Path, label: str) -> DatasetData:
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise OpsctlError(f"{label}: not a profile (over {MAX_PROFILE_BYTES >> 20} MB)")
        text = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    import hashlib

    data = load_profile(text, label)
    data.hash = hashlib.md5(text, usedforsecurity=False).hexdigest()
    return data
