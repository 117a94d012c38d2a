"""core/drift_data.py on real files: CSV (and TSV), parquet, JSON lines and a directory of
CSVs read into columns of the right kind, with their nulls; a type that changes far down a
CSV; the memory bounds; profiles that round-trip, stay small, and are refused clearly when
damaged or written by a newer opsctl."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opsctl.core import drift, drift_data
from opsctl.core.drift_data import (
    MAX_PROFILE_BYTES,
    OTHER,
    PROBABILITIES,
    PROFILE_FORMAT,
    PROFILE_KEY,
    build_profile,
    is_profile_file,
    load_profile,
    profile_json,
    read_dataset,
    read_profile_file,
)
from opsctl.errors import DataParseError, OpsctlError, UsageError

MIXED = """\
n,x,day,plan,churned,empty
1,1.5,2024-01-01,basic,true,
2,,2024-01-02,,false,
3,NaN,2024-01-03,pro,true,
2,2.5,2024-01-04,basic,,
"""


def columns_of(data):
    return {c.name: (c.kind, c.count, c.nulls) for c in data.columns.values()}


def test_a_csv_has_numeric_and_categorical_columns_with_their_nulls(tmp_path):
    (tmp_path / "d.csv").write_text(MIXED)
    data = read_dataset(tmp_path, "d.csv")
    assert data.rows == 4 and list(data.columns) == ["n", "x", "day", "plan", "churned", "empty"]
    assert columns_of(data) == {
        "n": ("numeric", 4, 0),
        "x": ("numeric", 2, 2),  # an empty field and NaN are both nulls
        "day": ("numeric", 4, 0),  # dates compare as numbers (seconds)
        "plan": ("categorical", 3, 1),
        "churned": ("categorical", 3, 1),  # booleans are categories
        "empty": ("categorical", 0, 4),
    }
    assert data.columns["n"].values.tolist() == [1, 2, 3, 2] and data.columns["n"].counts == {1: 1, 2: 2, 3: 1}
    assert data.columns["x"].values.tolist() == [1.5, 2.5]
    assert data.columns["day"].values[1] - data.columns["day"].values[0] == 86400
    assert data.columns["day"].values[0] == 1704067200  # 2024-01-01 in seconds since 1970
    assert data.columns["plan"].counts == {"basic": 2, "pro": 1}
    assert data.columns["churned"].counts == {True: 2, False: 1}


def test_a_tsv_is_split_on_tabs(tmp_path):
    (tmp_path / "d.tsv").write_text("a\tb\n1\tx,y\n2\tz\n")
    data = read_dataset(tmp_path, "d.tsv")
    assert columns_of(data) == {"a": ("numeric", 2, 0), "b": ("categorical", 2, 0)}
    assert data.columns["b"].counts == {"x,y": 1, "z": 1}


def test_parquet_and_json_lines(tmp_path):
    pq.write_table(
        pa.table({"f": [1.0, None, float("nan"), 4.0], "s": ["a", None, "b", "a"], "t": pa.array([1, 2, 3, 4])}),
        tmp_path / "d.parquet",
    )
    data = read_dataset(tmp_path, "d.parquet")
    assert columns_of(data) == {"f": ("numeric", 2, 2), "s": ("categorical", 3, 1), "t": ("numeric", 4, 0)}
    assert data.columns["s"].counts == {"a": 2, "b": 1}
    lines = [{"i": 1, "s": "a", "f": 0.5}, {"i": 2, "s": None, "f": None}, {"i": 3, "s": "a", "f": 1.5}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    data = read_dataset(tmp_path, "d.jsonl")
    assert data.rows == 3
    assert columns_of(data) == {"i": ("numeric", 3, 0), "s": ("categorical", 2, 1), "f": ("numeric", 2, 1)}
    assert data.columns["s"].counts == {"a": 2}


def test_a_directory_of_csvs_is_one_table(tmp_path):
    part = tmp_path / "parts"
    part.mkdir()
    (part / "1.csv").write_text("a,b\n1,x\n2,y\n")
    (part / "2.csv").write_text("a,c\n,z\n4,w\n")  # no b, a new c: nulls where a file lacks them
    (part / "3.csv").write_text("a,c\n,z\n,w\n")  # a column empty in one file stays numeric
    (part / ".hidden.csv").write_text("a\nnot read\n")
    data = read_dataset(tmp_path, "parts")
    assert data.rows == 6
    assert columns_of(data) == {"a": ("numeric", 3, 3), "b": ("categorical", 2, 4), "c": ("categorical", 4, 2)}
    assert data.columns["a"].values.tolist() == [1, 2, 4]


def test_files_that_disagree_on_a_columns_type_compare_it_as_text(tmp_path):
    part = tmp_path / "parts"
    part.mkdir()
    (part / "1.csv").write_text("a\n1\n2\n")
    (part / "2.csv").write_text("a\nx\n")
    column = read_dataset(tmp_path, "parts").columns["a"]
    assert (column.kind, column.counts, column.values) == ("categorical", {"1": 1, "2": 1, "x": 1}, None)


def test_a_numeric_column_keeps_counts_while_it_has_few_values(tmp_path):
    rng = np.random.default_rng(1)
    pq.write_table(
        pa.table({"few": rng.integers(0, drift_data.FEW, 5000), "many": rng.normal(0, 1, 5000)}),
        tmp_path / "d.parquet",
    )
    data = read_dataset(tmp_path, "d.parquet")
    few, many = data.columns["few"], data.columns["many"]
    assert len(few.counts) == drift_data.FEW and sum(few.counts.values()) == 5000
    assert many.counts is None and len(many.values) == 5000


def test_whole_numbers_keep_counts_up_to_their_own_limit_and_profiles_keep_their_ties(tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    frame = {
        "age": rng.integers(18, 18 + 150, n),  # 150 whole numbers: counted
        "wide": rng.integers(0, drift_data.WHOLE_NUMBERS + 100, n),  # more whole numbers than kept
        "thirds": rng.integers(0, 100, n) / 3,  # 100 values, not whole: continuous
    }
    pq.write_table(pa.table(frame), tmp_path / "ref.parquet")
    ref = read_dataset(tmp_path, "ref.parquet")
    assert len(ref.columns["age"].counts) == 150 and sum(ref.columns["age"].counts.values()) == n
    assert ref.columns["wide"].counts is None and ref.columns["thirds"].counts is None
    # The profile's age column is its exact values: KS against it is KS against the raw data.
    pq.write_table(pa.table({"age": rng.integers(20, 20 + 150, 800)}), tmp_path / "cur.parquet")
    cur = read_dataset(tmp_path, "cur.parquet")
    profile = load_profile(profile_json(build_profile(ref, "ref.parquet", "")), "p")
    raw = drift.compare_datasets(ref, cur, columns=("age",), method="ks").columns[0]
    rebuilt = drift.compare_datasets(profile, cur, columns=("age",), method="ks").columns[0]
    assert rebuilt.statistic == raw.statistic and rebuilt.p_value == pytest.approx(raw.p_value, abs=1e-12)


def test_an_int_column_with_a_float_or_text_far_down_is_read_again(tmp_path, monkeypatch):
    """The types come from the first block; a value the type can't hold in a later block
    makes the column float, then text, and every row is counted once."""
    monkeypatch.setattr(drift_data, "BLOCK_BYTES", 1024)
    rows = [f"{i},{i},{i}," for i in range(3000)] + ["1.5,abc,7,3"]
    (tmp_path / "far.csv").write_text("a,b,c,late\n" + "\n".join(rows) + "\n")
    assert (tmp_path / "far.csv").stat().st_size > 10 * 1024  # many blocks before the odd values
    data = read_dataset(tmp_path, "far.csv")
    assert data.rows == 3001
    a, b, c, late = (data.columns[n] for n in ("a", "b", "c", "late"))
    assert (a.kind, a.dtype, a.count) == ("numeric", "double", 3001) and a.values[-1] == 1.5
    assert a.values[:3000].tolist() == list(range(3000))
    assert (b.kind, b.count, len(b.counts)) == ("categorical", 3001, 3001) and b.counts["abc"] == 1
    assert (c.kind, c.dtype, c.count) == ("numeric", "int64", 3001)
    # empty for 3000 rows (the first block's guess is "null"), then a number: numeric, not text
    assert (late.kind, late.count, late.nulls, late.values.tolist()) == ("numeric", 1, 3000, [3.0])


def test_too_many_categories_are_not_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(drift_data, "MAX_CATEGORIES", 10)
    (tmp_path / "d.csv").write_text("id,plan\n" + "".join(f"u{i},p{i % 3}\n" for i in range(50)))
    data = read_dataset(tmp_path, "d.csv")
    assert data.columns["id"].too_many and data.columns["id"].counts is None
    assert data.columns["id"].count == 50
    assert not data.columns["plan"].too_many and len(data.columns["plan"].counts) == 3
    profile = build_profile(data, "d.csv", "")
    assert profile["columns"]["id"]["distinct"] == "over 10" and "top" not in profile["columns"]["id"]
    assert load_profile(profile_json(profile), "p").columns["id"].too_many


def test_the_numeric_values_held_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(drift_data, "MAX_VALUES", 100)
    (tmp_path / "d.csv").write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(60)))
    with pytest.raises(OpsctlError) as error:
        read_dataset(tmp_path, "d.csv")
    assert error.value.message == "d.csv: too large to compare whole (over 100 numeric values)"
    assert "sample" in error.value.hint


def test_a_line_longer_than_a_block_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(drift_data, "BLOCK_BYTES", 1024)
    (tmp_path / "long.csv").write_text("a,b\n1,x\n2," + "y" * 5000 + "\n3,z\n")
    with pytest.raises(DataParseError, match=r"^long\.csv: not a readable CSV file \("):
        read_dataset(tmp_path, "long.csv")


def test_what_cannot_be_read_is_a_usage_or_parse_error(tmp_path):
    with pytest.raises(UsageError, match="not a dataset opsctl can read"):
        read_dataset(tmp_path, "d.xlsx")
    with pytest.raises(UsageError, match="no such file"):
        read_dataset(tmp_path, "missing.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataParseError, match=r"^bad\.parquet: not a readable parquet file"):
        read_dataset(tmp_path, "bad.parquet")


def test_a_profile_round_trips(tmp_path):
    rng = np.random.default_rng(7)
    plans = np.array([f"p{i}" for i in range(150)])[rng.zipf(1.5, 4000) % 150]
    pq.write_table(
        pa.table(
            {
                "x": np.where(rng.random(4000) < 0.1, np.nan, rng.normal(10, 2, 4000)),
                "k": rng.integers(0, 3, 4000),
                "plan": pa.array(plans.tolist()),
                "gone": pa.nulls(4000, pa.float64()),
            }
        ),
        tmp_path / "d.parquet",
    )
    data = read_dataset(tmp_path, "d.parquet")
    profile = build_profile(data, "d.parquet", "a" * 32)
    assert profile[PROFILE_KEY] == PROFILE_FORMAT and profile["hash"] == "a" * 32 and profile["rows"] == 4000
    back = load_profile(profile_json(profile), "monitor/d.profile.json")
    assert (
        back.label == "monitor/d.profile.json"
        and back.rows == 4000
        and back.profile == json.loads(profile_json(profile))
    )
    for name, column in data.columns.items():
        got = back.columns[name]
        assert (got.kind, got.dtype, got.count, got.nulls) == (column.kind, column.dtype, column.count, column.nulls)
    x = back.columns["x"]
    assert x.count == data.columns["x"].count < 4000
    assert x.quantiles.tolist() == pytest.approx(np.quantile(data.columns["x"].values, PROBABILITIES).tolist())
    assert x.probabilities.tolist() == PROBABILITIES and x.std == pytest.approx(data.columns["x"].values.std())
    assert back.columns["k"].counts == data.columns["k"].counts  # few values: kept exactly
    assert np.sort(back.columns["k"].numbers("ks")).tolist() == np.sort(data.columns["k"].values).tolist()
    ranked = sorted(data.columns["plan"].counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = back.columns["plan"].counts
    assert len(ranked) > drift_data.TOP and len(kept) == drift_data.TOP + 1
    assert kept[OTHER] == sum(v for _k, v in ranked[drift_data.TOP :])
    assert {k: v for k, v in kept.items() if k != OTHER} == dict(ranked[: drift_data.TOP])
    assert sum(kept.values()) == data.columns["plan"].count
    assert back.columns["gone"].count == 0 and back.columns["gone"].nulls == 4000


def test_a_profile_rebuilds_a_sample_of_the_columns_distribution(tmp_path):
    values = np.random.default_rng(3).exponential(2.0, 30_000)
    pq.write_table(pa.table({"x": values}), tmp_path / "d.parquet")
    back = load_profile(profile_json(build_profile(read_dataset(tmp_path, "d.parquet"), "d", "")), "p")
    ks_sample, sample = back.columns["x"].numbers("ks"), back.columns["x"].numbers("wasserstein")
    assert len(ks_sample) == 30_000 and len(sample) == drift_data.REBUILT_ROWS  # KS's p-value needs the real count
    assert sample.min() == values.min() and sample.max() == values.max()
    assert np.median(sample) == pytest.approx(np.median(values), rel=1e-3)


def test_the_profile_of_20_columns_is_at_most_100_kb(tmp_path):
    """A profile's size doesn't grow with the rows (fixed quantiles, histogram bins and top
    values): 250,000 rows stand for bench/drift.py's million, which measures it too."""
    rng = np.random.default_rng(11)
    n = 250_000
    names = np.array([f"category-{i:03d}" for i in range(400)])
    columns = {}
    for i in range(5):
        columns[f"normal{i}"] = rng.normal(i, 1 + i, n)
        columns[f"tail{i}"] = rng.exponential(1 + i, n)
    for i in range(2):
        columns[f"int{i}"] = rng.integers(0, 10 ** (i + 1), n)
    for i, distinct in enumerate((3, 20, 150, 400, 50, 8, 2)):
        columns[f"cat{i}"] = pa.array(names[rng.integers(0, distinct, n)])
    columns["id"] = pa.array(np.char.add("id-", rng.integers(0, 5000, n).astype(str)))
    assert len(columns) == 20
    pq.write_table(pa.table(columns), tmp_path / "big.parquet")
    data = read_dataset(tmp_path, "big.parquet")
    assert data.rows == n and len(data.columns) == 20
    text = profile_json(build_profile(data, "big.parquet", ""))
    size = len(text.encode())
    assert size <= 100 * 1024, size
    # observed: about 59 KB (quantiles of 12 numeric columns, top values of 8 categorical ones)
    assert load_profile(text, "p").rows == n


def a_profile() -> dict:
    data = drift_data.DatasetData("d", 3)
    data.columns["x"] = drift_data.ColumnData("x", "numeric", "double", 3, 0, values=np.array([1.0, 2.0, 30.0]))
    data.columns["c"] = drift_data.ColumnData("c", "categorical", "string", 3, 0, counts={"a": 2, "b": 1})
    return json.loads(profile_json(build_profile(data, "d.csv", "")))


def refused(profile_or_text, label="monitor/d.profile.json") -> OpsctlError:
    text = profile_or_text if isinstance(profile_or_text, (str, bytes)) else json.dumps(profile_or_text)
    with pytest.raises(OpsctlError) as error:
        load_profile(text, label)
    assert error.value.message.startswith(f"{label}: ") and "\n" not in error.value.message
    return error.value


def test_a_profile_from_a_newer_opsctl_is_refused_with_a_hint():
    newer = {**a_profile(), PROFILE_KEY: PROFILE_FORMAT + 1}
    error = refused(newer)
    assert f"format {PROFILE_FORMAT + 1}, written by a newer opsctl" in error.message
    assert error.hint.startswith("upgrade opsctl")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a profile: invalid JSON"),
        pytest.param("[" * 200_000, "not a profile: invalid JSON", id="nested-deeper-than-the-parser-goes"),
        (b"\xff\xfe{}", "not a profile: invalid JSON"),
        ('{"dataset": "d.csv", "columns": {}}', "not an opsctl profile (no opsctl_profile key)"),
        ("[1, 2]", "not an opsctl profile (no opsctl_profile key)"),
        ('{"opsctl_profile": "1"}', "not an opsctl profile (opsctl_profile is '1')"),
        ('{"opsctl_profile": 0}', "not an opsctl profile (opsctl_profile is 0)"),
        ('{"opsctl_profile": true}', "not an opsctl profile (opsctl_profile is True)"),
    ],
)
def test_what_is_not_a_profile_is_refused(text, message):
    assert message in refused(text).message


def damaged(change) -> dict:
    profile = a_profile()
    change(profile)
    return profile


def _set(path: list, value):
    def change(profile):
        target = profile
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (_set(["columns", "x", "quantiles"], [3.0] * 60 + [1.0] * 56), "one increasing quantile per probability"),
        (_set(["columns", "x", "quantiles"], [1.0, 2.0]), "one increasing quantile per probability"),
        (_set(["columns", "x", "quantiles"], [float("nan")] * len(PROBABILITIES)), "quantiles must be finite"),
        (_set(["columns", "x", "count"], -1), "-1 is not a count"),
        (_set(["columns", "x", "nulls"], 1 << 60), f"{1 << 60} is not a count"),
        (_set(["columns", "c", "top"], [["a", -2]]), "-2 is not a count"),
        (_set(["columns", "c", "top"], [["a", 10**30]]), "is not a count"),
        (_set(["columns", "c", "top"], [[["a"], 1]]), "['a'] is not a category"),
        (_set(["columns", "c", "top"], "ab"), "not enough values to unpack"),
        (_set(["columns", "c", "other"], 1.5), "1.5 is not a count"),
        (_set(["rows"], "3"), "'3' is not a count"),
        (_set(["probabilities"], [0.5, 1.0]), "probabilities must run from 0 to 1"),
        (_set(["probabilities"], [0.0, 0.6, 0.4, 1.0]), "probabilities must increase"),
        (_set(["columns"], []), "columns is not a mapping"),
        (_set(["columns", "x", "kind"], "image"), "unknown kind 'image'"),
        (_set(["columns", "x"], "numeric"), ""),
        (_set(["columns", "x", "std"], None), ""),
        (lambda p: p["columns"]["x"].pop("quantiles"), "quantiles"),
        (lambda p: p.pop("rows"), "rows"),
        (_set(["columns", "x", "values"], [[1.0, 5]]), "its values do not add up to its count"),
    ],
)
def test_a_damaged_profile_is_refused_clearly(change, detail):
    error = refused(damaged(change))
    assert error.message.startswith("monitor/d.profile.json: a damaged profile (")
    assert detail in error.message


def test_a_profile_over_the_size_limit_is_refused_unread(tmp_path):
    big = " " * (MAX_PROFILE_BYTES + 1)
    assert "not a profile (over 8 MB)" in refused(big).message
    (tmp_path / "big.profile.json").write_text(big)
    with pytest.raises(OpsctlError, match=r"^big\.profile\.json: not a profile \(over 8 MB\)"):
        read_profile_file(tmp_path / "big.profile.json", "big.profile.json")


def test_a_profile_file_has_the_md5_of_its_bytes(tmp_path):
    import hashlib

    path = tmp_path / "d.profile.json"
    path.write_text(profile_json(a_profile()))
    data = read_profile_file(path, "d.profile.json")
    assert data.hash == hashlib.md5(path.read_bytes()).hexdigest() and data.rows == 3
    with pytest.raises(UsageError, match=r"^gone\.profile\.json: cannot be read"):
        read_profile_file(tmp_path / "gone.profile.json", "gone.profile.json")


def test_a_profile_file_is_told_from_a_json_lines_dataset(tmp_path):
    (tmp_path / "d.profile.json").write_text(profile_json(a_profile()))
    (tmp_path / "rows.json").write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    (tmp_path / "rows.jsonl").write_text(profile_json(a_profile()))  # not .json: a dataset whatever it holds
    assert is_profile_file(tmp_path / "d.profile.json")
    assert not is_profile_file(tmp_path / "rows.json")
    assert not is_profile_file(tmp_path / "rows.jsonl")
    assert not is_profile_file(tmp_path / "missing.json")
    (tmp_path / "dir.json").mkdir()
    assert not is_profile_file(tmp_path / "dir.json")


def test_a_profile_is_plain_json_without_nan():
    data = drift_data.DatasetData("d", 2)
    data.columns["f"] = drift_data.ColumnData("f", "categorical", "double", 2, 0, counts={math.inf: 1, 1.5: 1})
    text = profile_json(build_profile(data, "d", ""))
    assert "Infinity" not in text.replace('"inf"', "")
    assert load_profile(text, "p").columns["f"].counts == {"inf": 1, 1.5: 1}


def test_infinities_are_nulls_and_a_profile_of_them_is_plain_json(tmp_path):
    (tmp_path / "d.csv").write_text("x\n" + "".join(f"{i}.5\n" for i in range(40)) + "inf\n-inf\n")
    data = read_dataset(tmp_path, "d.csv")
    x = data.columns["x"]
    assert (x.count, x.nulls) == (40, 2) and np.isfinite(x.values).all()
    back = load_profile(profile_json(build_profile(data, "d.csv", "")), "p")
    assert back.columns["x"].quantiles[-1] == 39.5 and back.columns["x"].nulls == 2
