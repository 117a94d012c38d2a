"""Run a dataset's declared checks on its data, in chunks, with pandera.

The heavy half of data quality (docs/architecture.md, *Data checks*); it imports pandas,
pyarrow and pandera, so only the validate path imports it. How a dataset is checked:

- The data is read in chunks of about :data:`CHUNK_BYTES` of input (pandas for CSV and JSON
  lines, pyarrow for parquet), so memory stays flat however big the file is. A directory
  is its files of the dataset's format, in path order, read as one table.
- Only an empty field is a null: pandas' default also reads ``NA``, ``null`` and ``None`` as
  missing, which would make Namibia's country code a null. A blank CSV line is a row of
  nulls (not skipped), so row N stays line N + 1.
- Each declared column is first brought to its type here (``int``, ``float``, ``bool``,
  ``datetime``, ``str``): a value that is not of the type is a ``type`` failure and then a
  null for the value checks, so one bad value never hides the others' range failures
  (pandera's own coercion gives up on the whole column).
- The value checks (``nullable``, ``min``, ``max``, ``in``, ``regex``) are a pandera schema
  validated lazily per chunk; its failure cases give the counts and the examples.
- ``unique`` spans chunks: each row's key columns, in one dtype whatever each chunk read
  them as, are hashed (64-bit, pandas' own row hash) and looked up in sorted runs of every
  earlier chunk's hashes, 8 bytes per row. A key with an empty part is skipped, as in SQL.
  Two different keys sharing a hash (odds ~n²/2⁶⁵, about 3·10⁻⁸ for a million rows) would
  be reported as a duplicate.
- Input is bounded: a line longer than :data:`MAX_LINE_BYTES` is refused before it is
  buffered (a hostile file without newlines cannot exhaust memory).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from opsctl.core.checks import (
    IN,
    MAX,
    MAX_EXAMPLES,
    MIN,
    NULLABLE,
    PRESENT,
    REGEX,
    ROWS,
    STRICT,
    TYPE,
    UNIQUE,
    DatasetChecks,
    Example,
    Failure,
)
from opsctl.errors import DataParseError

if TYPE_CHECKING:
    import pandas as pd

_MAX_RUN = 1 << 20  # hashes in one sorted run of a unique check (8 MiB)
CHUNK_BYTES = 32 << 20  # input bytes per chunk: a few times that in memory once parsed
MAX_LINE_BYTES = 64 << 20  # one CSV or JSON line; past it the file is refused as unreadable
_BLOCK = 1 << 20
_EXTENSIONS = {"csv": (".csv", ".tsv"), "parquet": (".parquet", ".pq"), "jsonl": (".jsonl", ".ndjson", ".json")}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class Chunk(NamedTuple):
    frame: pd.DataFrame
    first_row: int  # 1-based data row of the frame's first row within its file
    file: str | None  # the file within a directory dataset (relative to the project); None for a file dataset


class _Tally:
    """Failure counts and the first few examples of each (check, column), over all chunks."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str | None], int] = {}
        self.examples: dict[tuple[str, str | None], list[Example]] = {}
        self.details: dict[tuple[str, str | None], str] = {}
        self.failing_rows = 0  # distinct rows failing a row-level check
        self.keep_rows = 0  # how many of them to remember with their checks (quarantine)
        self.row_checks: dict[tuple[str | None, int], list[str]] = {}  # (file, row) -> the checks it failed
        self._marks: list[tuple[Any, str]] = []  # this chunk's failing positions, per check

    def mark(self, positions: Any, label: str) -> None:
        """Rows of the current chunk (0-based positions) that failed the row-level check ``label``."""
        self._marks.append((positions, label))

    def end_chunk(self, chunk: Chunk) -> None:
        import numpy as np

        if not self._marks:
            return
        failing = np.unique(np.concatenate([np.asarray(p, dtype=np.int64) for p, _label in self._marks]))
        self.failing_rows += len(failing)
        room = self.keep_rows - len(self.row_checks)
        if room > 0:
            kept = set(failing[:room].tolist())
            for positions, label in self._marks:
                for position in np.asarray(positions).tolist():
                    if position in kept:
                        self.row_checks.setdefault((chunk.file, chunk.first_row + position), []).append(label)
        self._marks = []

    def add(
        self, check: str, column: str | None, count: int, examples: list[Example] | None = None, detail: str = ""
    ) -> None:
        examples = examples or []
        key = (check, column)
        self.counts[key] = self.counts.get(key, 0) + count
        kept = self.examples.setdefault(key, [])
        kept.extend(examples[: MAX_EXAMPLES - len(kept)])
        if detail:
            self.details[key] = detail

    def failures(self, order: list[tuple[str, str | None]]) -> list[Failure]:
        rank = {key: i for i, key in enumerate(order)}
        # strict's failures are per column, declared once for the table: they rank where it does
        keys = sorted(self.counts, key=lambda k: rank.get(k, rank.get((k[0], None), len(rank))))
        # A unique set is a table-level check: its columns are in the detail, not in ``column``.
        return [
            Failure(
                check,
                None if check == UNIQUE else column,
                self.counts[(check, column)],
                tuple(self.examples.get((check, column), ())),
                self.details.get((check, column), ""),
            )
            for check, column in keys
            if self.counts[(check, column)]
        ]


def run_checks(root: Path, checks: DatasetChecks, *, on_progress: Progress | None = None) -> tuple[int, list[Failure]]:
    """Check the dataset ``checks.path`` (relative to ROOT): its row count and its failures,
    table-level checks first. Raises DataParseError (exit 1) for data that can't be read."""
    result = check_rows(root, checks, on_progress=on_progress)
    return result.rows, result.failures


class RowsChecked(NamedTuple):
    rows: int
    failures: list[Failure]
    failing_rows: int  # distinct rows that failed a row-level check
    row_checks: dict[tuple[str | None, int], list[str]]  # the first ``keep_rows`` of them: (file, row) -> checks
    md5: str | None = None  # a file dataset's md5 (DVC's hash of it)


def check_rows(
    root: Path, checks: DatasetChecks, *, keep_rows: int = 0, on_progress: Progress | None = None
) -> RowsChecked:
    """:func:`run_checks`, also counting the distinct failing rows and remembering the first
    ``keep_rows`` of them with the checks each failed (what a quarantine moves)."""
    import threading

    tally = _Tally()
    tally.keep_rows = keep_rows
    # pandera takes ~0.5 s to import beyond pandas, and is first needed once a chunk is typed:
    # imported in a thread, it overlaps the reading of the first chunk (which lets go of the GIL).
    schema_ready: list[_Schema | None] = []

    def build() -> None:
        try:
            schema_ready.append(_schema(checks))
        except BaseException:  # noqa: BLE001 — built again below, where the error is raised to the caller
            pass

    def schema_of() -> _Schema | None:
        building.join()
        return schema_ready[0] if schema_ready else _schema(checks)  # the thread failed: raise it here

    # DVC's hash of a file is the md5 of its bytes: computed here, on the core the reading
    # leaves free, it spares importing DVC (core/validation.py). A directory's is DVC's tree hash.
    target = root / checks.path
    md5: list[str] = []
    hashing = threading.Thread(target=lambda: md5.append(file_md5(target)), name="opsctl-md5")
    building = threading.Thread(target=build, name="opsctl-schema")
    building.start()
    if target.is_file():
        hashing.start()
    try:
        found = _check_rows(root, checks, keep_rows, on_progress, tally, schema_of)
    finally:
        building.join()  # a read that failed early must not leave an import running into shutdown
        if hashing.ident is not None:
            hashing.join()
    return found._replace(md5=md5[0] if md5 else None)


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes: DVC's hash of it (``hash: md5``)."""
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _check_rows(
    root: Path,
    checks: DatasetChecks,
    keep_rows: int,
    on_progress: Progress | None,
    tally: _Tally,
    schema_of: Callable[[], _Schema | None],
) -> RowsChecked:
    schema: _Schema | None = None
    schema_known = False
    seen_keys: dict[tuple[str, ...], list[Any]] = {cols: [] for cols in checks.unique}
    rows = 0
    read_any = False
    for chunk in iter_chunks(root, checks.path, checks.format, on_progress=on_progress):
        frame = chunk.frame
        if chunk.first_row == 1:  # each file of a directory has its own columns
            _check_columns(checks, [str(c) for c in frame.columns], tally)
            read_any = True
        frame, untyped = _typed(checks, frame, chunk, tally)
        if not schema_known:
            schema, schema_known = schema_of(), True
        if schema is not None and len(frame):
            _validate(schema, checks, frame, chunk, untyped, tally)
        for cols, earlier in seen_keys.items():
            _check_unique(checks, cols, frame, chunk, earlier, tally)
        tally.end_chunk(chunk)
        rows += len(frame)
    if not read_any:  # not one chunk: an empty file has no columns
        _check_columns(checks, [], tally)
    if checks.rows_min is not None and rows < checks.rows_min:
        tally.add(ROWS, None, 1, detail=f"{rows:,} rows, expected at least {checks.rows_min:,}")
    if checks.rows_max is not None and rows > checks.rows_max:
        tally.add(ROWS, None, 1, detail=f"{rows:,} rows, expected at most {checks.rows_max:,}")
    return RowsChecked(rows, tally.failures(checks.names()), tally.failing_rows, tally.row_checks)


# ---- reading --------------------------------------------------------------------------------


def dataset_files(root: Path, path: str, fmt: str) -> list[Path]:
    """The files a dataset is made of: the file itself, or a directory's files of the format
    (hidden ones skipped), in path order. DataParseError when a directory holds none."""
    target = root / path
    if not target.is_dir():
        return [target]
    files = sorted(
        p
        for p in target.rglob("*")
        if p.is_file()
        and p.suffix.lower() in _EXTENSIONS[fmt]
        and not any(part.startswith(".") for part in p.relative_to(target).parts)
    )
    if not files:
        raise DataParseError(
            f"{path}: is a directory with no {fmt} files ({', '.join(_EXTENSIONS[fmt])}) to read as a table"
        )
    return files


def iter_chunks(
    root: Path,
    path: str,
    fmt: str,
    *,
    on_progress: Progress | None = None,
    text: bool = False,
) -> Iterator[Chunk]:
    """The dataset's rows in chunks (see the module's docstring). Raises DataParseError.
    ``text`` (CSV only): every value as the file writes it."""
    files = dataset_files(root, path, fmt)
    total = sum(f.stat().st_size for f in files)
    done = 0
    for file in files:
        rel = os.path.relpath(file, root) if len(files) > 1 or file != root / path else None
        shown = rel or path
        size = file.stat().st_size
        chunks = _csv_chunks(file, shown, text=text) if fmt == "csv" else _READERS[fmt](file, shown)
        for frame, first_row, position in _read_ahead(chunks):
            if on_progress is not None:
                on_progress(done + position, total)
            yield Chunk(frame, first_row, rel)
        done += size
    if on_progress is not None:
        on_progress(total, total)


_END = object()


class _Raised(NamedTuple):
    error: BaseException


def _read_ahead(chunks: Iterator[Any]) -> Iterator[Any]:
    """``chunks``, parsed one ahead in a thread while the caller checks the last one: pandas'
    tokenizer, pyarrow and hashlib let go of the GIL, so on two cores reading and checking
    overlap. At most two chunks wait in memory; the reader's errors are raised here; a caller
    that stops early (an error, Ctrl-C) stops the reader after the chunk it is parsing."""
    import queue
    import threading

    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in chunks:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 — handed to the caller, raised there
            put(_Raised(exc))
        finally:
            chunks.close()  # type: ignore[attr-defined]  # a generator: its file is closed here

    reader = threading.Thread(target=read, name="opsctl-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join()


class _BoundedReader(io.RawIOBase):
    """A binary file that refuses a line longer than MAX_LINE_BYTES as it is read, and says
    how far it got (for progress)."""

    def __init__(self, path: Path, shown: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 — closed by close()
        self._shown = shown
        self._line = 0  # bytes since the last newline
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._file.readinto(buffer)
        if n:
            data = bytes(memoryview(buffer)[:n])
            first = data.find(b"\n")
            if first < 0:
                self._line += n
            else:
                longest = self._line + first
                if n > MAX_LINE_BYTES:  # whole lines inside this block (only when the bound is below a block)
                    longest = max(longest, max(len(line) for line in data[first + 1 :].split(b"\n")))
                self._line = longest if longest > MAX_LINE_BYTES else n - data.rfind(b"\n") - 1
            if self._line > MAX_LINE_BYTES:
                raise DataParseError(
                    f"{self._shown}: a line longer than {_size(MAX_LINE_BYTES)} before byte {self.position + n:,}: "
                    "not a table opsctl reads"
                )
            self.position += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _rows_per_chunk(path: Path) -> int:
    """About CHUNK_BYTES of input per chunk, from the length of the first lines."""
    with open(path, "rb") as f:
        sample = f.read(1 << 16)
    lines = max(sample.count(b"\n"), 1)
    return max(1000, CHUNK_BYTES * lines // max(len(sample), 1))


def _csv_chunks(path: Path, shown: str, *, text: bool = False) -> Iterator[tuple[pd.DataFrame, int, int]]:
    """``text``: every value as the file writes it (a string, empty ones too), for rewriting
    the file row for row (core/quarantine.py); the rows are the same either way."""
    import pandas as pd

    values: dict[str, Any] = (
        {"dtype": str, "na_filter": False} if text else {"keep_default_na": False, "na_values": [""]}
    )

    raw = _BoundedReader(path, shown)
    stream = io.BufferedReader(raw, buffer_size=_BLOCK)
    first_row = 1
    try:
        if path.stat().st_size == 0:
            return
        reader = pd.read_csv(
            stream,
            chunksize=_rows_per_chunk(path),
            **values,
            skip_blank_lines=False,  # a blank line is a row of empty values: row N stays line N + 1
            sep=_separator(path),
            low_memory=False,
        )
        with reader:
            for frame in reader:
                yield frame, first_row, raw.position
                first_row += len(frame)
    except pd.errors.EmptyDataError:
        return
    except UnicodeDecodeError:
        raise DataParseError(_utf8_error(path, shown)) from None
    except pd.errors.ParserError as exc:
        raise DataParseError(_csv_error(path, shown, exc)) from None
    finally:
        stream.close()


def _csv_error(path: Path, shown: str, exc: Exception) -> str:
    """pandas says 'Expected 9 fields in line 5, saw 10': name the line and the column where the extra field starts."""
    import re

    text = str(exc).replace("Error tokenizing data. C error: ", "").strip()
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if not match:
        return f"{shown}: not readable as CSV: {text}"
    expected, line = int(match.group(1)), int(match.group(2))
    column = 1
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for number, content in enumerate(f, 1):
            if number == line:
                column = _field_start(content, expected, _separator(path)) + 1
                break
    return f"{shown}:{line}:{column}: expected {expected} fields, found {match.group(3)} (a stray comma or quote?)"


def _separator(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _field_start(line: str, index: int, sep: str) -> int:
    """The character offset where field number ``index`` (0-based) of a CSV line starts."""
    quoted, field = False, 0
    for offset, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            field += 1
            if field == index:
                return offset + 1
    return len(line)


def _utf8_error(path: Path, shown: str) -> str:
    """The line and column of the first byte that is not UTF-8 (read again, only on failure)."""
    line, column, offset, carry = 1, 1, 0, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(_BLOCK)
            data = carry + block
            if not data:
                break
            try:
                text, carry, bad = data.decode("utf-8"), b"", None
            except UnicodeDecodeError as exc:
                text = data[: exc.start].decode("utf-8")
                carry = data[exc.start :]
                if block and exc.reason == "unexpected end of data":  # a character cut by the block's end
                    bad = None
                else:
                    bad = exc.start
            newlines = text.count("\n")
            line, column = (line + newlines, len(text) - text.rfind("\n")) if newlines else (line, column + len(text))
            if bad is not None:
                return (
                    f"{shown}:{line}:{column}: byte 0x{data[bad]:02x} at offset {offset + bad:,} is not UTF-8 "
                    "(re-save the file as UTF-8)"
                )
            offset += len(data) - len(carry)
            if not block:
                break
    return f"{shown}: not UTF-8 text"


def _parquet_chunks(path: Path, shown: str) -> Iterator[tuple[pd.DataFrame, int, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataParseError(f"{shown}: not a readable parquet file ({_one_line(exc)})") from None
    with file:
        meta = file.metadata
        width = max(meta.num_columns, 1)
        batch = max(1000, min(1_000_000, CHUNK_BYTES // (16 * width)))
        first_row, size = 1, path.stat().st_size
        try:
            for record_batch in file.iter_batches(batch_size=batch):
                frame = record_batch.to_pandas()
                done = int(size * min(1.0, (first_row - 1 + len(frame)) / max(meta.num_rows, 1)))
                yield frame, first_row, done
                first_row += len(frame)
        except (pa.ArrowException, OSError) as exc:
            raise DataParseError(f"{shown}: not a readable parquet file ({_one_line(exc)})") from None
        if meta.num_rows == 0 and first_row == 1:
            yield file.schema_arrow.empty_table().to_pandas(), 1, size


def _jsonl_chunks(path: Path, shown: str) -> Iterator[tuple[pd.DataFrame, int, int]]:
    import pandas as pd

    raw = _BoundedReader(path, shown)
    stream = io.TextIOWrapper(io.BufferedReader(raw, buffer_size=_BLOCK), encoding="utf-8")
    first_row = 1
    try:
        if path.stat().st_size == 0:
            return
        with pd.read_json(stream, lines=True, chunksize=_rows_per_chunk(path), dtype=False) as reader:
            for frame in reader:
                yield frame, first_row, raw.position
                first_row += len(frame)
    except UnicodeDecodeError:
        raise DataParseError(_utf8_error(path, shown)) from None
    except (ValueError, TypeError) as exc:  # TypeError: a line that is an array, not an object
        raise DataParseError(_jsonl_error(path, shown, exc)) from None
    finally:
        stream.close()


def _jsonl_error(path: Path, shown: str, exc: Exception) -> str:
    """pandas names no line for bad JSON: find the first line json can't read (only on failure)."""
    import json

    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return f"{shown}:{number}:{err.colno}: not JSON ({err.msg})"
            if not isinstance(value, dict):
                return f"{shown}:{number}:1: expected a JSON object per line, found {type(value).__name__}"
    return f"{shown}: not readable as JSON lines ({_one_line(exc)})"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


_READERS = {"parquet": _parquet_chunks, "jsonl": _jsonl_chunks}


# ---- checking -------------------------------------------------------------------------------


def _check_columns(checks: DatasetChecks, present: list[str], tally: _Tally) -> None:
    found = set(present)
    for col in checks.columns:
        if col.name not in found:
            tally.add(PRESENT, col.name, 1, detail=f"column {col.name} is missing")
    if checks.strict:
        declared = {c.name for c in checks.columns}
        for name in present:
            if name not in declared:
                tally.add(STRICT, str(name), 1, detail=f"column {name} is not declared (strict: true)")


def _examples(values: Any, rows: Any, chunk: Chunk) -> list[Example]:
    """Examples from aligned sequences of values and 0-based positions within the chunk."""
    return [
        Example(chunk.first_row + int(row), _plain(value), chunk.file)
        for value, row in zip(list(values)[:MAX_EXAMPLES], list(rows)[:MAX_EXAMPLES])
    ]


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (numpy scalars, timestamps, NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _typed(
    checks: DatasetChecks, frame: pd.DataFrame, chunk: Chunk, tally: _Tally
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each declared column in its type; values that aren't become nulls, counted as ``type``
    failures. Also returns, per column, the mask of those values (they are not nulls too)."""
    import numpy as np

    frame = frame.reset_index(drop=True)
    untyped: dict[str, Any] = {}
    typed_frame = frame.copy(deep=False)
    for col in checks.columns:
        if col.type is None or col.name not in frame.columns:
            continue
        series = frame[col.name]
        typed, bad = _coerce(series, col.type, col.date_format, csv=checks.format == "csv")
        if bad is not None:
            count = int(bad.sum())
            if count:
                rows = np.flatnonzero(bad.to_numpy())
                examples = _examples(series.iloc[rows[:MAX_EXAMPLES]], rows, chunk)
                tally.add(TYPE, col.name, count, examples, detail=f"values that are not {col.type}")
                tally.mark(rows, f"{TYPE}({col.name})")
                untyped[col.name] = bad.to_numpy()
        typed_frame[col.name] = typed
    return typed_frame, untyped


def _coerce(series: pd.Series, kind: str, date_format: str | None, *, csv: bool) -> tuple[pd.Series, Any]:
    """(the series in type ``kind`` with nulls where a value isn't of it, a boolean mask of those values or None)."""
    import pandas as pd
    from pandas.api import types

    present = series.notna()
    if kind == "str":
        if types.is_string_dtype(series.dtype) and not types.is_object_dtype(series.dtype):
            return series, None
        if csv:  # in a CSV every value is text: 42 in a str column is the text "42"
            return series.astype("string").where(present), None
        is_text = series.map(lambda v: isinstance(v, str), na_action="ignore").fillna(True).astype(bool)
        bad = present & ~is_text
        return series.where(~bad).astype("string"), bad
    if kind in ("int", "float"):
        if types.is_bool_dtype(series.dtype):
            return series.astype("float64").where(pd.Series(False, index=series.index)), present
        numbers = series if types.is_numeric_dtype(series.dtype) else pd.to_numeric(series, errors="coerce")
        bad = present & numbers.isna()
        if kind == "int" and types.is_float_dtype(numbers.dtype):
            fractional = numbers.notna() & (numbers % 1 != 0)
            bad = bad | fractional
            numbers = numbers.where(~fractional)
        return numbers, bad if bool(bad.any()) else None
    if kind == "bool":
        if types.is_bool_dtype(series.dtype):
            return series, None
        text = series.astype("string").str.strip().str.lower()
        mapped = text.map(lambda v: True if v in _TRUE else False if v in _FALSE else None, na_action="ignore")
        bad = present & mapped.isna()
        return mapped.astype("boolean"), bad if bool(bad.any()) else None
    # datetime
    if types.is_datetime64_any_dtype(series.dtype):
        return series, None
    if date_format is None and (fast := _iso_dates(series)) is not None:
        return fast, None
    text = series.astype("string")
    parsed = pd.to_datetime(text, errors="coerce", format=date_format or "ISO8601")
    bad = present & parsed.isna()
    return parsed, bad if bool(bad.any()) else None


def _bound(value: Any, kind: str | None) -> Any:
    """A min or max as the typed column compares it: a datetime column's bound is an ISO date."""
    if kind == "datetime":
        import pandas as pd

        return pd.Timestamp(value)
    return value


def _iso_dates(series: pd.Series) -> pd.Series | None:
    """A text column of plain ISO 8601 dates and times (2024-01-31, 2024-01-31T10:00:00) read by
    pyarrow's cast, several times faster than pandas. It reads a strict subset of what pandas'
    ISO8601 parser reads, to the same values, and refuses the whole column otherwise (a bad
    value, an offset, 2024-1-5): None then, and pandas reads it, its verdicts unchanged."""
    import pandas as pd
    import pyarrow as pa
    from pandas.api import types

    if not types.is_string_dtype(series.dtype) or types.is_object_dtype(series.dtype):
        return None
    try:
        parsed = pa.array(series).cast(pa.timestamp("us"))
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=series.index, name=series.name)


class _Schema(NamedTuple):
    pandera: Any  # a pandera DataFrameSchema
    names: dict[str, list[str]]  # column -> the check name of each of its pandera checks, by check_number


def _schema(checks: DatasetChecks) -> _Schema | None:
    """The value checks as a pandera schema (None when there are none)."""
    import pandera.pandas as pa

    columns, names = {}, {}
    for col in checks.columns:
        declared: list[tuple[str, Any]] = []
        if col.min is not None:
            declared.append((MIN, pa.Check.ge(_bound(col.min, col.type))))
        if col.max is not None:
            declared.append((MAX, pa.Check.le(_bound(col.max, col.type))))
        if col.allowed is not None:
            allowed = [str(v) for v in col.allowed] if col.type in (None, "str") else list(col.allowed)
            declared.append((IN, pa.Check.isin(allowed)))
        if col.regex is not None:
            declared.append((REGEX, pa.Check.str_contains(col.regex)))
        columns[col.name] = pa.Column(None, [c for _n, c in declared], nullable=col.nullable, required=False)
        names[col.name] = [n for n, _c in declared]
    if not columns:
        return None
    return _Schema(pa.DataFrameSchema(columns, strict=False), names)


def _validate(
    schema: _Schema, checks: DatasetChecks, frame: pd.DataFrame, chunk: Chunk, untyped: dict[str, Any], tally: _Tally
) -> None:
    """The pandera checks of one chunk. Examples show a number as a number, other values as the
    file holds them (``chunk.frame``)."""
    import pandera.errors as pe

    # An untyped column in a CSV: `in:` and `regex:` compare text, as the file holds it.
    for col in checks.columns:
        if col.type is None and col.name in frame.columns and (col.allowed is not None or col.regex is not None):
            frame[col.name] = frame[col.name].astype("string").where(frame[col.name].notna())
    try:
        schema.pandera.validate(frame, lazy=True)
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
        cases["number"] = cases["check_number"].fillna(-1).astype(int)
        for (column, check, number), group in cases.groupby(["column", "check", "number"], sort=False):
            declared = schema.names.get(str(column), [])
            if check == "not_nullable":
                name = NULLABLE
            elif 0 <= number < len(declared):
                name = declared[number]
            else:
                raise  # a failure this engine did not declare: a bug, not a verdict
            rows = group["index"].dropna().astype(int).to_numpy()
            if name == NULLABLE and str(column) in untyped:  # a value of the wrong type is not also a null
                rows = rows[~untyped[str(column)][rows]]
            if not len(rows):
                continue
            kind = getattr(checks.column(str(column)), "type", None)
            if name == NULLABLE:
                values: Any = [None] * len(rows)
            elif kind in ("int", "float"):  # the number, whether its chunk read the column as numbers or as text
                values = [int(v) if kind == "int" else v for v in frame[column].iloc[rows[:MAX_EXAMPLES]]]
            else:  # as the file holds it (a date as written, not as parsed)
                values = chunk.frame[column].iloc[rows[:MAX_EXAMPLES]]
            tally.add(name, str(column), int(len(rows)), _examples(values, rows, chunk))
            tally.mark(rows, f"{name}({column})")


def _check_unique(
    checks: DatasetChecks, cols: tuple[str, ...], frame: pd.DataFrame, chunk: Chunk, earlier: list[Any], tally: _Tally
) -> None:
    """Rows whose key repeats one of an earlier row, in this chunk or any before. ``earlier``
    holds sorted runs of the hashes seen so far, merged so that there are only log2(chunks)
    of them to search (a 10 GB file is not 300 searches per chunk)."""
    import numpy as np
    import pandas as pd

    if any(c not in frame.columns for c in cols) or not len(frame):
        return  # a missing column is reported by `present`
    keys = pd.DataFrame({c: _key_values(frame[c], checks.column(c)) for c in cols})
    # A key with an empty part is no key (as in SQL): `nullable` reports it, and a value of
    # the wrong type, a null by now, is not also a duplicate of every other one.
    complete = np.flatnonzero(keys.notna().all(axis=1).to_numpy())
    hashes = pd.util.hash_pandas_object(keys.iloc[complete], index=False).to_numpy()
    dup = np.array(pd.Series(hashes).duplicated().to_numpy(), copy=True)  # repeats within the chunk
    ordered = np.sort(hashes)  # searched in order, the earlier sorted runs are walked in memory order
    for previous in earlier:
        pos = np.searchsorted(previous, ordered)
        pos[pos == len(previous)] = 0
        seen = ordered[previous[pos] == ordered]
        if len(seen):
            dup |= np.isin(hashes, seen)
    count = int(dup.sum())
    label = ",".join(cols)
    if count:
        tally.mark(complete[np.flatnonzero(dup)], f"{UNIQUE}({label})")
        rows = complete[np.flatnonzero(dup)[:MAX_EXAMPLES]]
        original = chunk.frame.reset_index(drop=True)
        # as in the other checks' examples: a number as a number, anything else as the file holds it
        shown = {
            c: keys[c] if getattr(checks.column(c), "type", None) in ("int", "float") else original[c] for c in cols
        }
        values = [
            _plain(shown[cols[0]].iloc[r]) if len(cols) == 1 else ", ".join(str(_plain(shown[c].iloc[r])) for c in cols)
            for r in rows
        ]
        tally.add(UNIQUE, label, count, _examples(values, rows, chunk), detail=f"rows repeating an earlier ({label})")
    earlier.append(ordered)
    # Merging costs a copy of both runs: past MAX_RUN hashes a run is kept as it is, so memory
    # grows by the 8 bytes a row the hashes take, not by the merges' copies.
    while (
        len(earlier) > 1
        and len(earlier[-2]) <= 2 * len(earlier[-1])
        and len(earlier[-2]) + len(earlier[-1]) <= _MAX_RUN
    ):
        last = earlier.pop()
        earlier[-1] = np.sort(np.concatenate([earlier[-1], last]))


def _key_values(series: pd.Series, col: Any) -> pd.Series:
    """A key column in one dtype whatever its chunk held: pandas reads the same column as
    int64 in one chunk and float64 (an empty value) or text (a bad value) in the next, and
    those hash differently. Typed columns are already coerced: ints become Int64, so 7 and
    7.0 are one key and ids past 2**53 stay exact; an untyped column is compared as text."""
    from pandas.api import types

    kind = col.type if col is not None else None
    if kind == "float":
        return series.astype("Float64")
    if kind == "datetime":  # one unit in every chunk (pandas picks it from the text's precision)
        return series.dt.as_unit("us") if types.is_datetime64_any_dtype(series.dtype) else series
    if kind == "bool":
        return series
    numeric = types.is_numeric_dtype(series.dtype) and not types.is_bool_dtype(series.dtype)
    if not numeric:  # an untyped column of text (a typed int column is always numeric by now)
        return series.astype("string")
    if types.is_integer_dtype(series.dtype) or kind == "int" or bool((series.dropna() % 1 == 0).all()):
        with contextlib.suppress(TypeError, ValueError, OverflowError):  # past int64: kept as floats
            series = series.astype("Int64")  # 7.0 (an int column that held an empty value) is 7
    return series if kind == "int" else series.astype("string")
