"""opsctl.core.check_engine on real files: each check against data whose answer is known.

Row numbers are 1-based data rows (a CSV's line is its row + 1). CHUNK_BYTES is made small
in some tests so that a small file is read in many chunks: what spans chunks (unique, row
numbers, counts) is then exercised without generating hundreds of megabytes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opsctl.core import check_engine
from opsctl.core.checks import ColumnChecks, DatasetChecks, Example, Failure
from opsctl.errors import DataParseError


def col(name: str, **kw) -> ColumnChecks:
    if "in_" in kw:
        kw["allowed"] = tuple(kw.pop("in_"))
    return ColumnChecks(name, **kw)


def validate(root: Path, path: str, *columns: ColumnChecks, fmt: str = "csv", **kw) -> tuple[int, dict]:
    rows, failures = check_engine.run_checks(root, DatasetChecks(path, fmt, columns=columns, **kw))
    return rows, {(f.check, f.column): f for f in failures}


def write(root: Path, name: str, text: str) -> str:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return name


def ex(*pairs) -> tuple[Example, ...]:
    return tuple(Example(row, value) for row, value in pairs)


@pytest.fixture
def small_chunks(monkeypatch):
    """About 1000 rows per chunk (the engine's floor) whatever the file."""
    monkeypatch.setattr(check_engine, "CHUNK_BYTES", 1)


# -- types --------------------------------------------------------------------------------


def test_int_column_with_text_and_a_fraction(tmp_path):
    root = tmp_path
    rows, found = validate(root, write(root, "t.csv", "n\n1\nx\n3\n2.5\n\n6\n"), col("n", type="int", nullable=True))
    assert rows == 6
    assert list(found) == [("type", "n")]
    assert found["type", "n"].count == 2
    assert found["type", "n"].examples == ex((2, "x"), (4, "2.5"))


def test_int_column_with_a_fraction_only_keeps_the_number_as_example(tmp_path):
    rows, found = validate(tmp_path, write(tmp_path, "t.csv", "n\n1\n2.5\n3\n"), col("n", type="int"))
    assert found["type", "n"].count == 1
    assert found["type", "n"].examples == ex((2, 2.5))


def test_float_and_bool_columns(tmp_path):
    text = "f,b\n1.5,true\n2,no\nabc,maybe\n-3e2,1\n,Y\n"
    rows, found = validate(
        tmp_path, write(tmp_path, "t.csv", text), col("f", type="float", nullable=True), col("b", type="bool")
    )
    assert rows == 5
    assert list(found) == [("type", "f"), ("type", "b")]
    assert found["type", "f"].count == 1 and found["type", "f"].examples == ex((3, "abc"))
    assert found["type", "b"].count == 1 and found["type", "b"].examples == ex((3, "maybe"))


def test_datetime_iso_and_with_a_format(tmp_path):
    text = "iso,eu\n2024-01-31,31/01/2024\n2024-02-30,30/02/2024\n2024-03-01T10:00:00,2024-03-01\nsoon,01/03/2024\n"
    rows, found = validate(
        tmp_path,
        write(tmp_path, "t.csv", text),
        col("iso", type="datetime"),
        col("eu", type="datetime", date_format="%d/%m/%Y"),
    )
    assert found["type", "iso"].examples == ex((2, "2024-02-30"), (4, "soon"))
    assert found["type", "iso"].count == 2
    assert found["type", "eu"].examples == ex((2, "30/02/2024"), (3, "2024-03-01"))
    assert found["type", "eu"].count == 2
    assert ("nullable", "iso") not in found  # a value of the wrong type is not also a null


def test_datetime_chunks_read_fast_or_by_pandas_give_pandas_verdicts(tmp_path, small_chunks):
    """Chunks of plain ISO dates take pyarrow's fast path; a chunk with any other spelling goes
    to pandas' ISO 8601 parser: the verdicts are the same as pandas' alone."""
    dates = [f"2024-01-{1 + i % 28:02d}" for i in range(4000)]
    dates[1500] = "2024-1-5"  # pandas reads it; pyarrow refuses it: that chunk goes to pandas
    dates[2500] = "2024-02-30"  # no such day
    dates[2501] = "2024-01-01T10:00:00"
    dates[3500] = "2024-01-02 03:04:05.123456789"  # nanoseconds: pandas, in its own unit
    write(tmp_path, "d.csv", "when\n" + "\n".join(dates) + "\n")
    _, found = validate(tmp_path, "d.csv", col("when", type="datetime"))
    expected = pd.to_datetime(pd.Series(dates), errors="coerce", format="ISO8601").isna()
    assert found["type", "when"].count == int(expected.sum()) == 1
    assert found["type", "when"].examples == ex((2501, "2024-02-30"))


def test_unique_datetimes_across_chunks_parsed_in_different_units(tmp_path, small_chunks):
    dates = [f"{2000 + i // 3000}-{1 + i // 250 % 12:02d}-{1 + i % 25:02d} {i % 24:02d}:00:00" for i in range(6000)]
    dates[5000] = dates[10]  # a chunk read by pyarrow (us) repeats one...
    dates[5001] = dates[10].replace(" ", "T") + ".000000000"  # ...and the same instant, written in ns
    write(tmp_path, "d.csv", "when\n" + "\n".join(dates) + "\n")
    assert len(set(pd.to_datetime(pd.Series(dates), format="ISO8601"))) == 6000 - 2
    _, found = validate(tmp_path, "d.csv", col("when", type="datetime"), unique=(("when",),))
    assert [e.row for e in found["unique", None].examples] == [5001, 5002]


def test_str_column_in_jsonl_with_a_number(tmp_path):
    lines = [{"s": "a"}, {"s": 5}, {"s": None}, {"s": "b"}]
    write(tmp_path, "t.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    rows, found = validate(tmp_path, "t.jsonl", col("s", type="str"), fmt="jsonl")
    assert rows == 4
    assert found["type", "s"].count == 1 and found["type", "s"].examples == ex((2, 5))
    assert found["nullable", "s"].count == 1 and found["nullable", "s"].examples == ex((3, None))


def test_a_number_in_a_csv_str_column_is_text(tmp_path):
    _, found = validate(tmp_path, write(tmp_path, "t.csv", "s\n42\nabc\n"), col("s", type="str"))
    assert found == {}


def test_na_null_none_are_values_only_an_empty_field_is_null(tmp_path):
    text = "code,n\nNA,1\nnull,2\nNone,3\n,4\nnan,5\n"
    rows, found = validate(
        tmp_path, write(tmp_path, "t.csv", text), col("code", type="str", in_=["NA", "null", "None", "nan"])
    )
    assert rows == 5
    assert list(found) == [("nullable", "code")]
    assert found["nullable", "code"].count == 1
    assert found["nullable", "code"].examples == ex((4, None))


# -- nullable, min, max, in, regex ---------------------------------------------------------


def test_nullable_counts_empty_fields_not_type_failures(tmp_path):
    rows, found = validate(tmp_path, write(tmp_path, "t.csv", "n\n1\n\nx\n\n5\n"), col("n", type="int"))
    assert found["type", "n"].count == 1 and found["type", "n"].examples == ex((3, "x"))
    assert found["nullable", "n"].count == 2 and found["nullable", "n"].examples == ex((2, None), (4, None))


def test_nullable_true_allows_empty_fields(tmp_path):
    _, found = validate(tmp_path, write(tmp_path, "t.csv", "n\n1\n\n3\n"), col("n", type="int", nullable=True))
    assert found == {}


def test_min_and_max(tmp_path):
    text = "age,fee\n-1,0.5\n50,0.49\n121,99.5\n120,100.01\n0,\n"
    rows, found = validate(
        tmp_path,
        write(tmp_path, "t.csv", text),
        col("age", type="int", min=0, max=120),
        col("fee", type="float", min=0.5, max=100, nullable=True),
    )
    assert found["min", "age"] == Failure("min", "age", 1, ex((1, -1)))
    assert found["max", "age"] == Failure("max", "age", 1, ex((3, 121)))
    assert found["min", "fee"] == Failure("min", "fee", 1, ex((2, 0.49)))
    assert found["max", "fee"] == Failure("max", "fee", 1, ex((4, 100.01)))
    assert len(found) == 4


def test_min_and_max_still_checked_when_a_value_is_not_a_number(tmp_path):
    _, found = validate(tmp_path, write(tmp_path, "t.csv", "n\n5\nx\n500\n"), col("n", type="int", max=100))
    assert found["type", "n"].examples == ex((2, "x"))
    assert found["max", "n"].examples == ex((3, 500))  # a number, though this chunk read the column as text
    assert ("nullable", "n") not in found


def test_in_strings_and_numbers(tmp_path):
    text = "plan,level,free\nbasic,1,a\npro,4,b\ngold,2,c\nBasic,3,1\n"
    rows, found = validate(
        tmp_path,
        write(tmp_path, "t.csv", text),
        col("plan", type="str", in_=["basic", "plus", "pro"]),
        col("level", type="int", in_=[1, 2, 3]),
        col("free", in_=["a", "b", 1]),  # untyped: compared as the file's text
    )
    assert found["in", "plan"] == Failure("in", "plan", 2, ex((3, "gold"), (4, "Basic")))
    assert found["in", "level"] == Failure("in", "level", 1, ex((2, 4)))
    assert found["in", "free"] == Failure("in", "free", 1, ex((3, "c")))
    assert len(found) == 3


def test_regex_is_a_search_anchors_make_it_a_full_match(tmp_path):
    text = "code,email\nAB-12,a@b.c\nxAB-12x,nope\nab-12,@b\n"
    _, found = validate(
        tmp_path,
        write(tmp_path, "t.csv", text),
        col("code", type="str", regex=r"AB-\d+"),
        col("email", type="str", regex=r"^[^@]+@[^@]+$"),
    )
    assert found["regex", "code"] == Failure("regex", "code", 1, ex((3, "ab-12")))
    assert found["regex", "email"] == Failure("regex", "email", 2, ex((2, "nope"), (3, "@b")))

    anchored = validate(tmp_path, "t.csv", col("code", type="str", regex=r"^AB-\d+$"))[1]
    assert anchored["regex", "code"] == Failure("regex", "code", 2, ex((2, "xAB-12x"), (3, "ab-12")))


def test_python_regex_syntax_is_honoured(tmp_path):
    """The config compiles patterns with Python's re: lookaheads must work on the data too."""
    _, found = validate(tmp_path, write(tmp_path, "t.csv", "s\nfoo1\nbar\n"), col("s", type="str", regex=r"^(?!foo)"))
    assert found["regex", "s"] == Failure("regex", "s", 1, ex((1, "foo1")))


def test_examples_are_capped_counts_are_not(tmp_path):
    text = "n\n" + "".join(f"{-i}\n" for i in range(1, 21))
    _, found = validate(tmp_path, write(tmp_path, "t.csv", text), col("n", type="int", min=0))
    assert found["min", "n"].count == 20
    assert found["min", "n"].examples == ex(*((i, -i) for i in range(1, 6)))


# -- unique ---------------------------------------------------------------------------------


def test_unique_on_one_and_on_two_columns(tmp_path):
    text = "id,a,b\n1,x,1\n2,x,2\n3,y,1\n2,x,1\n5,x,2\n"
    write(tmp_path, "t.csv", text)
    first, second = (
        f for f in check_engine.run_checks(tmp_path, DatasetChecks("t.csv", "csv", unique=(("id",), ("a", "b"))))[1]
    )
    assert first == Failure("unique", None, 1, ex((4, 2)), "rows repeating an earlier (id)")
    assert second == Failure("unique", None, 2, ex((4, "x, 1"), (5, "x, 2")), "rows repeating an earlier (a,b)")


def test_unique_across_chunk_boundaries(tmp_path, small_chunks):
    ids = list(range(5000))
    ids[2500] = 10  # repeats row 11, three chunks earlier
    ids[4999] = 4998  # repeats the row right before it
    ids[1000] = 999  # the first row of a chunk repeats the last of the previous one
    write(tmp_path, "t.csv", "id\n" + "".join(f"{i}\n" for i in ids))
    rows, found = validate(tmp_path, "t.csv", col("id", type="int"), unique=(("id",),))
    assert rows == 5000
    assert found["unique", None].count == 3
    assert found["unique", None].examples == ex((1001, 999), (2501, 10), (5000, 4998))


def test_unique_across_chunks_that_pandas_reads_in_different_dtypes(tmp_path, small_chunks):
    """One chunk is all ints (int64), a later one holds an empty value (float64) or a bad
    one (text): the same id must still be the same key."""
    ids = [str(i) for i in range(3000)]
    ids[1500] = ""
    ids[1501] = "7"
    ids[2500] = "oops"
    ids[2501] = "8"
    write(tmp_path, "t.csv", "id\n" + "".join(f"{i}\n" for i in ids))
    _, typed = validate(tmp_path, "t.csv", col("id", type="int", nullable=True), unique=(("id",),))
    assert typed["unique", None].examples == ex((1502, 7), (2502, 8))  # numbers, however each chunk read them
    _, untyped = validate(tmp_path, "t.csv", unique=(("id",),))
    assert untyped["unique", None].examples == ex((1502, 7.0), (2502, "8"))  # as each chunk read them


def test_unique_skips_keys_with_an_empty_part(tmp_path):
    write(tmp_path, "t.csv", "id,a,b\n,1,\n,1,\nx,1,\n7,2,\n7,2,x\n7,2,x\n")
    checks = DatasetChecks(
        "t.csv", "csv", unique=(("id",), ("a", "b")), columns=(col("id", type="int", nullable=True),)
    )
    by_key = {f.detail: f for f in check_engine.run_checks(tmp_path, checks)[1] if f.check == "unique"}
    assert by_key["rows repeating an earlier (id)"].examples == ex((5, 7), (6, 7))
    assert by_key["rows repeating an earlier (a,b)"].examples == ex((6, "2, x"))


def test_unique_ids_past_2_to_the_53_stay_distinct(tmp_path):
    big = 2**60
    write(tmp_path, "t.csv", f"id\n{big}\n{big + 1}\n")
    assert validate(tmp_path, "t.csv", col("id", type="int"), unique=(("id",),))[1] == {}


# -- table-level checks ---------------------------------------------------------------------


def test_rows_min_and_max(tmp_path):
    write(tmp_path, "t.csv", "n\n1\n2\n3\n")
    assert validate(tmp_path, "t.csv", rows_min=3, rows_max=3)[1] == {}
    low = validate(tmp_path, "t.csv", rows_min=4)[1]
    assert low == {("rows", None): Failure("rows", None, 1, (), "3 rows, expected at least 4")}
    high = validate(tmp_path, "t.csv", rows_max=2)[1]
    assert high == {("rows", None): Failure("rows", None, 1, (), "3 rows, expected at most 2")}


def test_strict_and_present(tmp_path):
    write(tmp_path, "t.csv", "a,b,extra\n1,2,3\n")
    _, found = validate(tmp_path, "t.csv", col("a"), col("b"), col("c"), strict=True)
    assert found["present", "c"] == Failure("present", "c", 1, (), "column c is missing")
    assert found["strict", "extra"] == Failure("strict", "extra", 1, (), "column extra is not declared (strict: true)")
    assert len(found) == 2
    assert validate(tmp_path, "t.csv", col("a"), col("b"))[1] == {}  # not strict: extra is fine


# -- formats ---------------------------------------------------------------------------------


def test_parquet(tmp_path):
    table = pa.table({"id": [1, 2, 2, 4], "plan": ["basic", "gold", None, "pro"], "fee": [1.0, -2.0, 3.0, 4.0]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    rows, found = validate(
        tmp_path,
        "t.parquet",
        col("id", type="int"),
        col("plan", type="str", in_=["basic", "pro"]),
        col("fee", type="float", min=0),
        fmt="parquet",
        unique=(("id",),),
    )
    assert rows == 4
    assert found["in", "plan"] == Failure("in", "plan", 1, ex((2, "gold")))
    assert found["nullable", "plan"] == Failure("nullable", "plan", 1, ex((3, None)))
    assert found["min", "fee"] == Failure("min", "fee", 1, ex((2, -2.0)))
    assert found["unique", None].examples == ex((3, 2))
    assert len(found) == 4


def test_parquet_with_a_str_column_holding_ints_is_a_type_failure(tmp_path):
    pq.write_table(pa.table({"s": [1, 2]}), tmp_path / "t.parquet")
    _, found = validate(tmp_path, "t.parquet", col("s", type="str"), fmt="parquet")
    assert found["type", "s"].count == 2


def test_jsonl(tmp_path):
    lines = [{"id": 1, "age": 30}, {"id": 2, "age": -1}, {"id": 2, "age": "old"}, {"id": 4}]
    write(tmp_path, "t.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    rows, found = validate(tmp_path, "t.jsonl", col("id", type="int"), col("age", type="int", min=0), fmt="jsonl")
    assert rows == 4
    assert found["min", "age"].examples == ex((2, -1))
    assert found["type", "age"].examples == ex((3, "old"))
    assert found["nullable", "age"].examples == ex((4, None))


def test_tsv(tmp_path):
    write(tmp_path, "t.tsv", "name\tage\nAnn, Jr.\t30\nBob\t-2\n")
    rows, found = validate(tmp_path, "t.tsv", col("name", type="str"), col("age", type="int", min=0))
    assert rows == 2
    assert found == {("min", "age"): Failure("min", "age", 1, ex((2, -2)))}


def test_a_directory_is_read_as_one_table_and_examples_carry_the_file(tmp_path):
    write(tmp_path, "d/part-1.csv", "id,n\n1,5\n2,-1\n")
    write(tmp_path, "d/part-2.csv", "id,n\n3,7\n1,-2\n")
    write(tmp_path, "d/.hidden/x.csv", "garbage\n")
    write(tmp_path, "d/notes.txt", "not a table")
    rows, found = validate(tmp_path, "d", col("id", type="int"), col("n", type="int", min=0), unique=(("id",),))
    assert rows == 4
    assert found["min", "n"].examples == (Example(2, -1, "d/part-1.csv"), Example(2, -2, "d/part-2.csv"))
    assert found["unique", None].examples == (Example(2, 1, "d/part-2.csv"),)


def test_a_directory_file_missing_a_column_is_reported(tmp_path):
    write(tmp_path, "d/a.csv", "id,n\n1,5\n")
    write(tmp_path, "d/b.csv", "id\n2\n")
    _, found = validate(tmp_path, "d", col("id"), col("n"))
    assert found["present", "n"].count == 1


# -- cross-check against plain pandas ---------------------------------------------------------


def test_counts_match_plain_pandas_on_random_data(tmp_path, small_chunks):
    rng = np.random.default_rng(12)
    n = 10_000
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1).astype(object),
            "age": rng.integers(0, 100, n).astype(object),
            "fee": rng.uniform(0, 50, n).round(2).astype(object),
            "plan": rng.choice(["basic", "plus", "pro"], n).astype(object),
            "email": [f"user{i}@example.com" for i in range(n)],
        }
    )
    bad = rng.choice(n, 400, replace=False)
    groups = np.array_split(bad, 8)
    frame.loc[groups[0], "age"] = "x"  # type
    frame.loc[groups[1], "age"] = -5  # min
    frame.loc[groups[2], "age"] = ""  # nullable
    frame.loc[groups[3], "fee"] = 99.5  # max
    frame.loc[groups[4], "plan"] = "gold"  # in
    frame.loc[groups[5], "email"] = "broken"  # regex
    frame.loc[groups[6], "id"] = 1 + groups[6] % 100  # duplicates of early ids (1..100)
    frame.loc[groups[7], "fee"] = "1,5"  # type (a quoted field with a comma)
    frame.to_csv(tmp_path / "r.csv", index=False)

    rows, found = validate(
        tmp_path,
        "r.csv",
        col("id", type="int"),
        col("age", type="int", min=0, max=99),
        col("fee", type="float", max=50),
        col("plan", type="str", in_=["basic", "plus", "pro"]),
        col("email", type="str", regex=r"^[^@]+@[^@]+$"),
        unique=(("id",),),
    )

    plain = pd.read_csv(tmp_path / "r.csv", keep_default_na=False, na_values=[""], dtype=str)
    age = pd.to_numeric(plain["age"], errors="coerce")
    fee = pd.to_numeric(plain["fee"], errors="coerce")
    expected = {
        ("type", "age"): int((plain["age"].notna() & age.isna()).sum()),
        ("min", "age"): int((age < 0).sum()),
        ("nullable", "age"): int(plain["age"].isna().sum()),
        ("type", "fee"): int((plain["fee"].notna() & fee.isna()).sum()),
        ("max", "fee"): int((fee > 50).sum()),
        ("in", "plan"): int((~plain["plan"].isin(["basic", "plus", "pro"])).sum()),
        ("regex", "email"): int((~plain["email"].str.contains(r"^[^@]+@[^@]+$")).sum()),
        ("unique", None): int(plain["id"].astype(int).duplicated().sum()),
    }
    assert rows == n
    assert {key: f.count for key, f in found.items()} == expected
    assert all(v == 50 for k, v in expected.items() if k != ("unique", None))
    first_bad_age = sorted(groups[0])[:5]
    assert found["type", "age"].examples == ex(*((int(i) + 1, "x") for i in first_bad_age))
    first_dups = [int(i) + 1 for i in np.flatnonzero(plain["id"].astype(int).duplicated().to_numpy())[:5]]
    assert [e.row for e in found["unique", None].examples] == first_dups


# -- bad input ---------------------------------------------------------------------------------


def test_an_empty_file_is_a_verdict_not_a_crash(tmp_path):
    write(tmp_path, "e.csv", "")
    rows, found = validate(tmp_path, "e.csv", col("id"), rows_min=1)
    assert rows == 0
    assert set(found) == {("rows", None), ("present", "id")}


def test_a_header_only_file_has_its_columns_and_no_rows(tmp_path):
    write(tmp_path, "h.csv", "id,n\n")
    rows, found = validate(tmp_path, "h.csv", col("id", type="int"), col("n"), rows_min=1)
    assert rows == 0
    assert list(found) == [("rows", None)]


def test_mixed_types_in_one_column_across_chunks(tmp_path, small_chunks):
    values = [str(i) for i in range(3000)]
    values[2200] = "twelve"
    write(tmp_path, "m.csv", "n\n" + "\n".join(values) + "\n")
    _, found = validate(tmp_path, "m.csv", col("n", type="int"))
    assert found == {("type", "n"): Failure("type", "n", 1, ex((2201, "twelve")), "values that are not int")}


def parse_error(root: Path, path: str, fmt: str = "csv") -> str:
    with pytest.raises(DataParseError) as info:
        check_engine.run_checks(root, DatasetChecks(path, fmt))
    assert info.value.exit_code == 1
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_non_utf8_byte_names_file_line_and_column(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"name\nok\nbad \xe9t\xe9\n")
    assert parse_error(tmp_path, "b.csv").startswith("b.csv:3:5: byte 0xe9 at offset 12 is not UTF-8")


def test_a_non_utf8_byte_far_into_a_file(tmp_path, small_chunks):
    (tmp_path / "b.csv").write_bytes(b"name\n" + b"ok\n" * 5000 + b"x\xff\n")
    assert parse_error(tmp_path, "b.csv").startswith("b.csv:5002:2: byte 0xff")


def test_a_zero_byte_parquet_is_unreadable(tmp_path):
    (tmp_path / "z.parquet").write_bytes(b"")
    assert parse_error(tmp_path, "z.parquet", "parquet").startswith("z.parquet: not a readable parquet file")


def test_a_directory_named_like_a_file(tmp_path):
    (tmp_path / "x.csv").mkdir()
    assert parse_error(tmp_path, "x.csv").startswith("x.csv: is a directory with no csv files")
    write(tmp_path, "x.csv/part.csv", "id\n1\n")
    assert check_engine.run_checks(tmp_path, DatasetChecks("x.csv", "csv"))[0] == 1


def test_a_ragged_row_names_file_line_and_column(tmp_path, small_chunks):
    write(tmp_path, "r.csv", "a,b\n" + "1,2\n" * 2500 + '1,"x,y",3\n')
    assert parse_error(tmp_path, "r.csv") == "r.csv:2502:9: expected 2 fields, found 3 (a stray comma or quote?)"


def test_a_ragged_tsv_row_names_the_column_by_tabs(tmp_path):
    write(tmp_path, "r.tsv", "a\tb\n1,5\t2\n1\t2\t3\n")
    assert parse_error(tmp_path, "r.tsv").startswith("r.tsv:3:5: expected 2 fields, found 3")


@pytest.mark.parametrize("newlines", [False, True])
def test_a_line_past_the_bound_is_refused_without_reading_it_all(tmp_path, monkeypatch, newlines):
    monkeypatch.setattr(check_engine, "MAX_LINE_BYTES", 4096)
    body = b"a\n1\n" + b"x" * 10_000 + (b"\n2\n" if newlines else b"")
    (tmp_path / "l.csv").write_bytes(body + b"y" * (8 << 20))
    read = []
    real = check_engine._BoundedReader.readinto

    def counting(self, buffer):
        n = real(self, buffer)
        read.append(n)
        return n

    monkeypatch.setattr(check_engine._BoundedReader, "readinto", counting)
    message = parse_error(tmp_path, "l.csv")
    assert re.fullmatch(r"l\.csv: a line longer than 4,096 bytes before byte [\d,]+: not a table opsctl reads", message)
    assert sum(read) <= 2 << 20  # refused within the first blocks, not after reading 8 MiB


def test_bad_json_lines_name_line_and_column(tmp_path):
    write(tmp_path, "j.jsonl", '{"a": 1}\n{"a": tru}\n{"a": 3}\n')
    assert parse_error(tmp_path, "j.jsonl", "jsonl") == "j.jsonl:2:7: not JSON (Expecting value)"
    write(tmp_path, "k.jsonl", '{"a": 1}\n[1, 2]\n')
    assert parse_error(tmp_path, "k.jsonl", "jsonl") == "k.jsonl:2:1: expected a JSON object per line, found list"


def test_progress_reaches_the_total(tmp_path, small_chunks):
    write(tmp_path, "p.csv", "n\n" + "1\n" * 5000)
    seen = []
    check_engine.run_checks(tmp_path, DatasetChecks("p.csv", "csv"), on_progress=lambda d, t: seen.append((d, t)))
    size = (tmp_path / "p.csv").stat().st_size
    assert len(seen) > 2 and seen[-1] == (size, size)
    assert [d for d, _t in seen] == sorted(d for d, _t in seen)


def test_a_byte_order_mark_and_crlf_line_ends_are_read_as_excel_writes_them(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xef\xbb\xbfid,n\r\n1,2\r\n3,x\r\n")
    rows, found = validate(tmp_path, "x.csv", col("id", type="int"), col("n", type="int"), strict=True)
    assert rows == 2
    assert found == {("type", "n"): Failure("type", "n", 1, ex((2, "x")), "values that are not int")}


def test_a_short_row_reads_its_missing_fields_as_empty(tmp_path):
    """pandas' parser can't tell `1` from `1,` in a two-column file: both are a row whose
    second field is empty, which `nullable` reports (a long row is a parse error)."""
    write(tmp_path, "s.csv", "a,b\n1,2\n3\n")
    _, found = validate(tmp_path, "s.csv", col("a", type="int"), col("b", type="int"))
    assert found == {("nullable", "b"): Failure("nullable", "b", 1, ex((2, None)))}


def test_json_lines_rows_count_objects_blank_lines_skipped(tmp_path):
    write(tmp_path, "b.jsonl", '{"a": 1}\n\n{"a": -1}\n')
    _, found = validate(tmp_path, "b.jsonl", col("a", type="int", min=0), fmt="jsonl")
    assert found["min", "a"].examples == ex((2, -1))
