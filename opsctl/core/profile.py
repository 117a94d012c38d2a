"""``opsctl data profile``: a starting ``checks:`` block inferred from a dataset's data.

One pass over the engine's chunks (``core/check_engine.py``), so memory stays bounded however
big the data is: per column a running min and max, null and value counts, the types every
value so far can be brought to (tested with the engine's own coercion, so what is inferred is
what ``opsctl data validate`` accepts), at most :data:`CATEGORY_TRACK` distinct values, and
for key candidates the 64-bit row hashes the engine's ``unique`` check uses, dropped at the
first null or duplicate.

The block is YAML that reads back through ``parse_config`` into exactly the checks inferred
(checked before anything is printed or written): PyYAML, which reads ``opsctl.yaml``, takes
``yes`` or ``1:20`` for a boolean and a number, so such strings are quoted. ``--write`` edits
``opsctl.yaml`` with ruamel's round-trip mode (comments, key order and formatting kept) and
replaces the file atomically, only once the new text parses.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.core.checks import FORMATS, DatasetChecks, format_of
from opsctl.errors import ConfigError, DataParseError, OpsctlError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from opsctl.core.check_engine import Progress
    from opsctl.core.project import Project

CATEGORY_TRACK = 50  # distinct values kept per column; past it the column is not a category set
CATEGORY_MAX = 20  # at most this many distinct values become an `in:` list
CATEGORY_VALUE_CHARS = 100  # a longer value is free text, not a category
UNIQUE_MAX = 2  # single-column keys proposed as `unique:`
SIGNIFICANT = 3  # significant digits of a float column's min and max (rounded outwards)
SAMPLE_ROWS = 200  # a type is tried on a few values before a whole chunk
_TYPES = ("bool", "int", "float", "datetime", "str")  # the first one every value fits is the column's type
_BOOL_TEXT = {"true", "false"}
_KEY_NAMES = {"id", "key", "uuid", "guid"}
_KEY_SUFFIX = re.compile(r"[_\-\s.](?:id|key|uuid|guid)$", re.IGNORECASE)
_KEY_CAMEL = re.compile(r"[a-z0-9](?:Id|ID|Key|UUID)$")


@dataclass
class ColumnProfile:
    name: str
    type: str | None  # None: no value seen, or values of no one type
    nulls: int
    values: int  # non-null values
    min: float | int | None = None
    max: float | int | None = None
    categories: list[Any] | None = None  # the `in:` list, when the column is a small repeated set
    unique: bool = False  # proposed as a single-column key


@dataclass
class DatasetProfile:
    path: str  # project-relative, as checks: is keyed
    format: str
    format_said: bool  # the extension doesn't name the format: the block says `format:`
    rows: int
    files: int
    columns: list[ColumnProfile] = field(default_factory=list)

    def entry(self) -> dict[str, Any]:
        """The checks as plain data: what goes under ``checks.<path>`` in opsctl.yaml."""
        entry: dict[str, Any] = {}
        if self.format_said:
            entry["format"] = self.format
        if self.rows:
            entry["rows"] = {"min": 1}  # one sample's count is no bound: only "not empty"
        keys = [[c.name] for c in self.columns if c.unique]
        if keys:
            entry["unique"] = keys
        entry["strict"] = False
        columns: dict[str, Any] = {}
        for col in self.columns:
            spec: dict[str, Any] = {}
            if col.type is not None:
                spec["type"] = col.type
            if col.nulls:
                spec["nullable"] = True
            if col.min is not None:
                spec["min"] = col.min
            if col.max is not None:
                spec["max"] = col.max
            if col.categories is not None:
                spec["in"] = list(col.categories)
            columns[col.name] = spec
        entry["columns"] = columns
        return entry

    def checks(self, root: Path | None = None) -> DatasetChecks:
        """The entry as ``parse_config`` reads it (what validate will run)."""
        from opsctl.core.config import parse_config

        return parse_config({"project": "profile", "checks": {self.path: self.entry()}}, root=root).checks[self.path]

    @staticmethod
    def comment() -> str:
        # Says nothing of this sample (its row count): after `--write --force` it stays above the new entry.
        return (
            "Inferred by `opsctl data profile`: min/max and in: are the values seen in the data;\n"
            "widen them to what valid data may hold before committing."
        )

    def summary(self) -> str:
        return (
            f"profiled {self.rows:,} row{'s' if self.rows != 1 else ''}, {len(self.columns)} "
            f"column{'s' if len(self.columns) != 1 else ''}; review the ranges before committing"
        )


# ---- inferring ------------------------------------------------------------------------------


def profile(
    project: Project, given: str, fmt: str | None = None, *, on_progress: Progress | None = None
) -> DatasetProfile:
    """``opsctl data profile PATH``: the profile of the dataset at PATH (as typed). UsageError
    for a path outside the project or not in the workspace; DataParseError for data that
    can't be read."""
    from opsctl.core.validation import dataset_path

    path = dataset_path(project, given)
    if path in ("", "."):
        raise UsageError(f"{given}: is the project itself, not a dataset")
    if not (project.root / path).exists():
        raise UsageError(
            f"{path}: is not in the workspace",
            hint="`opsctl data pull` fetches tracked data; `opsctl run` produces a stage's outputs",
        )
    fmt, said = _format(project.root, path, fmt)
    return profile_dataset(project.root, path, fmt, format_said=said, on_progress=on_progress)


def _format(root: Path, path: str, given: str | None) -> tuple[str, bool]:
    """(the dataset's format, whether the block must say it: the path's extension doesn't)."""
    from_path = format_of(path)
    if given is not None:
        if given not in FORMATS:
            raise UsageError(f"--format {given}: expected one of {', '.join(FORMATS)}")
        return given, given != from_path
    if from_path is not None:
        return from_path, False
    target = root / path
    if target.is_dir():
        found = {
            f
            for p in target.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(target).parts)
            for f in [format_of(p.name)]
            if f is not None
        }
        if len(found) == 1:
            return found.pop(), True
        what = f"holds {' and '.join(sorted(found))} files" if found else "holds no csv, parquet or jsonl files"
        raise UsageError(f"{path}: the directory {what}", hint="name the format with --format csv|parquet|jsonl")
    raise UsageError(f"{path}: its extension names no format", hint="name it with --format csv|parquet|jsonl")


class _Column:
    """What one pass has learnt of a column so far."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.types = set(_TYPES)
        self.nulls = 0
        self.values = 0
        self.low: float | int | None = None
        self.high: float | int | None = None
        self.unbounded = False  # an infinite value was seen: no min/max
        self.categories: set[Any] | None = set()
        self.text_only = True  # every chunk held the column as text (an `in:` list compares text)
        self.hashes: list[Any] | None = []  # sorted hashes per chunk while the column may be a key
        self.hash_kind: str | None = None  # how the chunks hashed so far held it: "int" or "text"
        self.files = 0  # how many of the dataset's files hold the column

    def update(self, series: pd.Series, csv: bool) -> None:
        from pandas.api import types

        present = series.notna()
        count = int(present.sum())
        self.nulls += len(series) - count
        self.values += count
        if count < len(series):
            self.hashes = None
        if not count:
            return
        if types.is_numeric_dtype(series.dtype):  # numbers or booleans: their text is not known
            self.text_only = False
        values = series[present]
        for kind in [t for t in _TYPES if t in self.types]:
            if kind == "float" and "int" in self.types:
                continue  # every int is a float: tried only once int is out
            if kind == "str" and csv:
                continue  # in a CSV every value is text
            if not _fits(values, kind, csv, had_nulls=count < len(series)):
                self.types.discard(kind)
                if kind == "int" and "float" in self.types and not _fits(values, "float", csv, had_nulls=True):
                    self.types.discard("float")
        if self.types & {"int", "float"}:
            self._range(values)
        if self.categories is not None:
            self._categories(values)
        if self.hashes is not None:
            self._hash(values)

    def _range(self, values: pd.Series) -> None:
        import numpy as np
        import pandas as pd
        from pandas.api import types

        if types.is_integer_dtype(values.dtype):  # exact: past 2**53 a float would round a bound inwards
            low, high = int(values.min()), int(values.max())
        else:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(numbers).any():  # `inf` passes as a float but no range holds it
                self.unbounded = True
            numbers = numbers[np.isfinite(numbers)]
            if not len(numbers):
                return
            low, high = numbers.min().item(), numbers.max().item()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def _categories(self, values: pd.Series) -> None:
        from opsctl.core.check_engine import _plain

        try:
            distinct = values.unique()
        except TypeError:  # lists or mappings (JSON lines): not categories
            self.categories = None
            return
        if len(distinct) > CATEGORY_TRACK:
            self.categories = None
            return
        for value in distinct:
            plain = _plain(value)
            if not isinstance(plain, (str, int, float, bool)) or len(str(plain)) > CATEGORY_VALUE_CHARS:
                self.categories = None
                return
            self.categories.add(plain)  # type: ignore[union-attr]  # checked not None by the caller
        if len(self.categories) > CATEGORY_TRACK:  # type: ignore[arg-type]
            self.categories = None

    def _hash(self, values: pd.Series) -> None:
        """Keep the column as a key candidate while no value repeats (the engine's row hashes)."""
        import numpy as np
        import pandas as pd
        from pandas.api import types

        # 1 in one chunk and "1" in another hash apart but are one key to validate: a column
        # read as integers in some chunks and as anything else in others is no key.
        kind = "int" if types.is_integer_dtype(values.dtype) else "text"
        best = next((t for t in _TYPES if t in self.types), None)  # what the column is so far; a key is an int or str
        if best not in ("int", "str") or self.hash_kind not in (None, kind):
            self.hashes = None
            return
        self.hash_kind = kind
        try:
            hashes = pd.util.hash_pandas_object(values, index=False).to_numpy()
        except (TypeError, ValueError):
            self.hashes = None
            return
        if pd.Series(hashes).duplicated().any():
            self.hashes = None
            return
        for previous in self.hashes or []:
            pos = np.searchsorted(previous, hashes)
            pos[pos == len(previous)] = 0
            if (previous[pos] == hashes).any():
                self.hashes = None
                return
        self.hashes.append(np.sort(hashes))  # type: ignore[union-attr]  # checked above

    def result(self) -> ColumnProfile:
        kind = next((t for t in _TYPES if t in self.types), None) if self.values else None
        col = ColumnProfile(self.name, kind, self.nulls, self.values)
        col.unique = (
            self.hashes is not None
            and self.values >= 2
            and (kind == "str" or (kind == "int" and looks_like_key(self.name)))
        )
        if kind in ("int", "float") and self.low is not None and self.high is not None and not self.unbounded:
            if kind == "int":
                col.min, col.max = int(math.floor(self.low)), int(math.ceil(self.high))
            else:
                col.min, col.max = _round(self.low, ROUND_FLOOR), _round(self.high, ROUND_CEILING)
        distinct = self.categories
        if (
            kind == "str"
            and self.text_only
            and distinct is not None
            and 0 < len(distinct) <= CATEGORY_MAX
            and len(distinct) * 2 <= self.values
        ):
            col.categories = sorted(str(v) for v in distinct)
        return col


def looks_like_key(name: str) -> bool:
    """``id``, ``customer_id``, ``order-key``, ``userId``: a name that says the column identifies a row."""
    return name.lower() in _KEY_NAMES or bool(_KEY_SUFFIX.search(name) or _KEY_CAMEL.search(name))


def _fits(values: pd.Series, kind: str, csv: bool, *, had_nulls: bool) -> bool:
    """Whether every (non-null) value is of type ``kind`` as ``opsctl data validate`` reads it."""
    from pandas.api import types

    from opsctl.core.check_engine import _coerce

    dtype = values.dtype
    numeric = types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
    if kind == "bool":
        # 0/1 stays int: a bool is a column of true/false (as a bool dtype or as text).
        if types.is_bool_dtype(dtype):
            return True
        if numeric or types.is_datetime64_any_dtype(dtype):
            return False
        return all(
            bool(part.astype("string").str.strip().str.lower().isin(_BOOL_TEXT).all())
            for part in (values.iloc[:SAMPLE_ROWS], values)
        )
    if types.is_datetime64_any_dtype(dtype):
        return kind == "datetime"  # to_numeric would read timestamps as nanoseconds
    if kind == "int" and types.is_float_dtype(dtype) and not had_nulls:
        # Floats with no null among them: the data wrote decimals (ints read with blanks are floats too).
        return False
    if kind == "datetime" and (numeric or types.is_bool_dtype(dtype)):
        return False  # to_datetime reads numbers as epoch offsets: not a date column
    for part in (values.iloc[:SAMPLE_ROWS], values):  # a few values first: most columns fail fast
        try:
            _typed, bad = _coerce(part, kind, None, csv=csv)
        except (TypeError, ValueError, OverflowError):
            return False
        if bad is not None and bool(bad.any()):
            return False
        if len(part) == len(values):
            break
    return True


def _round(value: float, rounding: str) -> float | int:
    """``value`` to :data:`SIGNIFICANT` significant digits, rounded outwards (down for a min,
    up for a max), so the observed value stays inside."""
    if value == 0:
        return 0
    exact = Decimal(repr(value))
    step = Decimal(1).scaleb(math.floor(math.log10(abs(value))) - SIGNIFICANT + 1)
    rounded = exact.quantize(step, rounding=rounding) if step < 1 else (exact / step).quantize(1, rounding) * step
    if rounded == rounded.to_integral_value() and abs(rounded) < 10**15:
        return int(rounded)
    return float(rounded)


def profile_dataset(
    root: Path, path: str, fmt: str, *, format_said: bool = False, on_progress: Progress | None = None
) -> DatasetProfile:
    """Profile the dataset ``path`` (relative to ROOT) in one pass over its chunks."""
    from opsctl.core.check_engine import dataset_files, iter_chunks

    files = len(dataset_files(root, path, fmt))
    columns: dict[str, _Column] = {}
    file_count = 0
    rows = 0
    for chunk in iter_chunks(root, path, fmt, on_progress=on_progress):
        frame = chunk.frame.reset_index(drop=True)
        if chunk.first_row == 1:
            file_count += 1
        for name in frame.columns:
            col = columns.get(str(name))
            if col is None:
                col = columns[str(name)] = _Column(str(name))
            if chunk.first_row == 1:
                col.files += 1
            col.update(frame[name], csv=fmt == "csv")
        rows += len(frame)
    # A directory's files may differ: only a column every file has can be declared (validate
    # checks each file has its declared columns).
    kept = [c for c in columns.values() if c.files == file_count]
    if not kept:
        raise DataParseError(f"{path}: has no columns to profile (an empty file?)")
    results = [c.result() for c in kept]
    # Keys: those whose name says so first, at most UNIQUE_MAX; a key's range is no check (new rows get new ids).
    keys = sorted((c for c in results if c.unique), key=lambda c: not looks_like_key(c.name))
    for extra in keys[UNIQUE_MAX:]:
        extra.unique = False
    for key in keys[:UNIQUE_MAX]:
        key.min = key.max = None
    return DatasetProfile(path, fmt, format_said, rows, files, results)


# ---- YAML -----------------------------------------------------------------------------------


def render(profile: DatasetProfile, root: Path | None = None) -> str:
    """The profile as a ``checks:`` section of its own (a valid opsctl.yaml by itself; paste the
    entry under an existing ``checks:``), with a comment saying what to review."""
    from ruamel.yaml.comments import CommentedMap

    doc = CommentedMap()
    doc["checks"] = _section(profile)
    doc.yaml_set_start_comment(profile.comment())
    text = _dump(doc, indent=2)
    _verify(text, profile, source="the profile", root=root)
    return text


def write_checks(project: Project, profile: DatasetProfile, *, force: bool = False) -> Path:
    """Add the profile under ``checks:`` in the project's opsctl.yaml (made when missing):
    comments, key order and formatting kept; refused when the dataset has checks already
    unless ``force`` (which replaces that entry only). The file is replaced atomically and
    only once its new text parses."""
    from ruamel.yaml.comments import CommentedMap

    path = project.config_path
    existing = project.config.checks.get(profile.path) if project.has_config_file else None
    if existing is not None and not force:
        raise OpsctlError(
            f"{profile.path}: opsctl.yaml has checks for it already",
            hint=f"`opsctl data profile {profile.path} --write --force` replaces them",
        )
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    yaml, doc, indent = _load_round_trip(text, str(path))
    if doc is None:  # a new file, or one holding only comments (kept as they are)
        doc = CommentedMap()
        if not text.strip():
            doc["project"] = project.config.project
        checks = doc["checks"] = CommentedMap()
        prefix = text if not text or text.endswith("\n") else text + "\n"
    else:
        prefix = ""
        checks = doc.get("checks")
        if not isinstance(checks, CommentedMap):  # absent or empty (`checks:`): a new section at the end
            if "checks" in doc:
                del doc["checks"]
            checks = doc["checks"] = CommentedMap()
        checks.fa.set_block_style()
    entry = _entry(profile)
    old = next((k for k in checks if str(k).rstrip("/") == profile.path), None)
    if old is None:
        checks[_key(profile.path)] = entry
        checks.yaml_set_comment_before_after_key(_key(profile.path), before=profile.comment(), indent=indent)
    else:  # in its place; the comments around it (ours from a first --write too) stay where they are
        position = list(checks).index(old)
        del checks[old]
        checks.insert(position, _key(profile.path), entry)
    new_text = prefix + _dump(doc, indent=indent, yaml=yaml)
    _verify(new_text, profile, source=str(path), root=project.root)
    _replace(path, new_text)
    return path


def _load_round_trip(text: str, source: str) -> tuple[Any, Any, int]:
    """(a round-trip YAML set to the file's own indentation, the document, the mapping indent)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the file didn't fold
    if not text.strip():
        return yaml, None, 2
    try:
        doc, indent, block_seq_indent = load_yaml_guess_indent(text, yaml=yaml)
    except YAMLError as exc:  # load_config read it; a file changed since is still not ours to break
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    mapping = _mapping_indent(text)
    if block_seq_indent is None:  # no block sequence to follow (the block adds none)
        yaml.indent(mapping=mapping, sequence=mapping, offset=0)
    else:  # ruamel's guess: `indent` is where a sequence item's text starts, the dash `block_seq_indent` in
        yaml.indent(mapping=mapping, sequence=max(indent or 2, block_seq_indent + 2), offset=block_seq_indent)
    return yaml, doc, mapping


def _mapping_indent(text: str) -> int:
    """How far the file indents a nested mapping: from the first ``key:`` line followed by a
    more indented key (2 when it has none)."""
    parent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        if parent is not None and depth > parent and not stripped.startswith("- "):
            return depth - parent
        parent = depth if stripped.endswith(":") and not stripped.startswith("- ") else None
    return 2


def _section(profile: DatasetProfile) -> Any:
    from ruamel.yaml.comments import CommentedMap

    section = CommentedMap()
    section[_key(profile.path)] = _entry(profile)
    return section


def _entry(profile: DatasetProfile) -> Any:
    """The entry as ruamel nodes: the table keys in block style, each column one flow mapping
    (``tenure: {type: int, min: 0, max: 72}``), as opsctl.yaml's examples write them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def flow(value: Any) -> Any:
        node: CommentedMap | CommentedSeq
        if isinstance(value, dict):
            node = CommentedMap((_key(k), flow(v)) for k, v in value.items())
        elif isinstance(value, list):
            node = CommentedSeq(flow(v) for v in value)
        else:
            return _key(value) if isinstance(value, str) else value
        node.fa.set_flow_style()
        return node

    entry = CommentedMap()
    for key, value in profile.entry().items():
        if key == "columns":
            entry[key] = CommentedMap((_key(name), flow(spec)) for name, spec in value.items())
        else:
            entry[key] = flow(value)
    return entry


def _key(text: str) -> Any:
    """A string as YAML 1.1 (PyYAML, which reads opsctl.yaml) reads it back as that string:
    quoted when it would be read as something else (``yes``, ``1:20``, ``null``, ``1e3``)."""
    import yaml
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
    return text if tag == "tag:yaml.org,2002:str" else SingleQuotedScalarString(text)


def _dump(doc: Any, *, indent: int, yaml: Any = None) -> str:
    import io

    from ruamel.yaml import YAML

    if yaml is None:
        yaml = YAML()
        yaml.width = 4096
        yaml.indent(mapping=indent, sequence=indent + 2, offset=indent)
    yaml.Representer = _representer()
    stream = io.StringIO()
    yaml.dump(doc, stream)
    return stream.getvalue()


def _representer() -> Any:
    """ruamel's round-trip representer, writing floats as PyYAML reads them back: with a dot,
    never in ruamel's ``1e-05`` (a string to YAML 1.1). A subclass: ruamel's
    ``add_representer`` would change every dump in the process (DVC's dvc.lock too)."""
    from ruamel.yaml.representer import RoundTripRepresenter

    class Representer(RoundTripRepresenter):
        pass

    def represent_float(representer: Any, value: float) -> Any:
        text = format(Decimal(repr(value)), "f")
        if "." not in text:
            text += ".0"
        return representer.represent_scalar("tag:yaml.org,2002:float", text)

    Representer.add_representer(float, represent_float)
    return Representer


def _verify(text: str, profile: DatasetProfile, *, source: str, root: Path | None) -> None:
    """The text parses as opsctl.yaml and holds exactly the inferred checks; ConfigError (and
    nothing written) otherwise."""
    from opsctl.core.config import parse_config
    from opsctl.core.yamlload import load_yaml_text

    raw = load_yaml_text(text, source=source)
    raw = raw if raw is not None else {}
    if root is None and isinstance(raw, dict):  # a checks: section alone (no project to name it after)
        raw.setdefault("project", "profile")
    config = parse_config(raw, source=source, root=root)
    if config.checks.get(profile.path) != profile.checks(root):
        raise ConfigError(f"{source}: the inferred checks for {profile.path} would not read back as inferred")


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, flushed, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
