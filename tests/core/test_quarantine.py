"""max_failing_rows, quarantine: and datetime bounds in checks: (parsing), tolerated verdicts,
and core.quarantine moving rows (on real files; no DVC needed)."""

from __future__ import annotations

import pytest

from opsctl.core.check_engine import check_rows
from opsctl.core.checks import MIN, PRESENT, DatasetVerdict, Failure
from opsctl.core.config import parse_config
from opsctl.core.quarantine import quarantine_rows
from opsctl.errors import ConfigError


def checks_of(spec: dict, path: str = "out/rows.csv"):
    return parse_config({"project": "p", "checks": {path: spec}}).checks[path]


def test_tolerance_as_a_count_or_a_share():
    assert checks_of({"max_failing_rows": 3}).allowed_failing_rows(1000) == 3
    assert checks_of({"max_failing_rows": "10%"}).allowed_failing_rows(1000) == 100
    assert checks_of({"max_failing_rows": "10%"}).allowed_failing_rows(9) == 0
    assert checks_of({}).allowed_failing_rows(1000) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"max_failing_rows": -1}, "checks.out/rows.csv.max_failing_rows: expected a number of rows or a percentage"),
        ({"max_failing_rows": "150%"}, "max_failing_rows: expected a number of rows or a percentage"),
        ({"max_failing_rows": "ten%"}, "max_failing_rows: expected a number of rows or a percentage"),
        ({"quarantine": "out/rejected.parquet"}, "quarantine: expected a .csv file, for a csv dataset"),
        ({"quarantine": "../rejected.csv"}, "quarantine: expected a relative path in the project"),
        ({"quarantine": "out/rows.csv"}, "quarantine: expected a file other than the dataset itself"),
        ({"columns": {"d": {"type": "datetime", "min": "yesterday"}}}, "d.min: expected a date such as 2024-01-31"),
        ({"columns": {"d": {"type": "str", "min": 1}}}, "d.type: expected int, float or datetime"),
        (
            {"columns": {"d": {"type": "datetime", "min": "2024-02-01", "max": "2024-01-01"}}},
            "d.max: expected at least",
        ),
    ],
)
def test_bad_tolerance_quarantine_and_bounds_name_the_key(spec, message):
    with pytest.raises(ConfigError, match="opsctl.yaml: ") as error:
        checks_of(spec)
    assert message in str(error.value)


def test_quarantine_needs_a_csv_dataset():
    with pytest.raises(ConfigError, match="quarantine: expected a .csv file, for a csv dataset"):
        checks_of({"quarantine": "out/bad.csv"}, path="out/rows.parquet")


def test_a_yaml_date_is_a_datetime_bound(tmp_path):
    import yaml

    spec = yaml.safe_load("columns: {d: {type: datetime, min: 2024-01-01, max: 2024-06-30}}")
    checks = checks_of(spec, path="t.csv")
    assert (checks.column("d").min, checks.column("d").max) == ("2024-01-01", "2024-06-30")
    (tmp_path / "t.csv").write_text("d\n2024-01-01\n2023-12-31\n2024-07-01\n2024-06-30\n")
    found = check_rows(tmp_path, checks)
    assert [(f.check, f.count, [e.row for e in f.examples]) for f in found.failures] == [
        ("min", 1, [2]),
        ("max", 1, [3]),
    ]


def test_failing_rows_are_counted_once_however_many_checks_they_fail(tmp_path):
    (tmp_path / "t.csv").write_text("id,n\n1,-1\n1,x\n2,5\n")
    checks = checks_of(
        {"unique": [["id"]], "columns": {"id": {"type": "int"}, "n": {"type": "int", "min": 0}}}, path="t.csv"
    )
    found = check_rows(tmp_path, checks, keep_rows=10)
    assert found.failing_rows == 2  # row 1 (min) and row 2 (type and unique)
    assert found.row_checks == {(None, 1): ["min(n)"], (None, 2): ["type(n)", "unique(id)"]}
    assert check_rows(tmp_path, checks, keep_rows=1).row_checks == {(None, 1): ["min(n)"]}


def test_a_tolerated_verdict_passes_but_table_checks_never_do():
    row_level = [Failure(MIN, "n", 2)]
    assert DatasetVerdict("t", None, "h", 10, 3, row_level, failing_rows=2, allowed_failing_rows=2).passed
    assert not DatasetVerdict("t", None, "h", 10, 3, row_level, failing_rows=3, allowed_failing_rows=2).passed
    table = [Failure(PRESENT, "n", 1)]
    assert not DatasetVerdict("t", None, "h", 10, 3, table, failing_rows=0, allowed_failing_rows=5).passed
    assert DatasetVerdict("t", None, "h", 10, 3).passed and not DatasetVerdict("t", None, "h", 10, 3).tolerated


def test_quarantine_rows_moves_exactly_the_named_rows_as_text(tmp_path):
    text = 'id,name,price\n1,"Smith, J",1.50\n2,x,007\n\n3,NA,\n4,ok,2\n'
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "rows.csv").write_text(text)
    checks = checks_of({"quarantine": "out/bad/rejected.csv"})
    moved = quarantine_rows(tmp_path, checks, {(None, 2): ["min(price)"], (None, 4): ["nullable(price)", "in(name)"]})
    assert moved == 2
    # Values stay as the file wrote them (007, NA, the quoted comma); the blank line is row 3
    # (a row of empty values, as the checks count it) and stays one.
    assert (tmp_path / "out" / "rows.csv").read_text() == 'id,name,price\n1,"Smith, J",1.50\n,,\n4,ok,2\n'
    assert (tmp_path / "out" / "bad" / "rejected.csv").read_text() == (
        "id,name,price,failed_checks\n2,x,007,min(price)\n3,NA,,nullable(price);in(name)\n"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bad", "rows.csv"]  # no temporary files left
