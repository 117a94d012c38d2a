"""opsctl.core.checks: the checks: section of opsctl.yaml, its errors (with key paths) and its digest."""

from __future__ import annotations

import pytest
import yaml

from opsctl.core.checks import ColumnChecks, DatasetChecks
from opsctl.core.config import parse_config
from opsctl.errors import ConfigError

SOURCE = "opsctl.yaml"

FULL = """\
project: churn
executor: local
checks:
  data/raw/churn.csv:
    format: csv
    rows: {min: 100, max: 10000000}
    unique: [[customer_id], [plan, signup]]
    strict: true
    columns:
      customer_id: {type: int, nullable: false}
      tenure: {type: int, min: 0, max: 120}
      fee: {type: float, min: 0.5}
      plan: {type: str, in: [basic, plus, pro]}
      email: {type: str, regex: '^[^@]+@[^@]+$', nullable: true}
      signup: {type: datetime, format: '%d/%m/%Y'}
      active: {type: bool}
      code: {in: [1, 2, 3]}
      free: ~
  data/features/:
    format: parquet
    rows: 5
    unique: [id]
"""


def checks_of(text: str) -> dict[str, DatasetChecks]:
    return parse_config(yaml.safe_load(text), source=SOURCE).checks


def error_of(checks_yaml: str) -> str:
    text = "project: p\nexecutor: local\nchecks:\n" + checks_yaml
    with pytest.raises(ConfigError) as info:
        checks_of(text)
    assert info.value.exit_code == 1
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: ")
    assert "\n" not in message
    return message


def test_every_key_is_parsed():
    checks = checks_of(FULL)
    assert list(checks) == ["data/raw/churn.csv", "data/features"]
    churn = checks["data/raw/churn.csv"]
    assert churn.format == "csv"
    assert (churn.rows_min, churn.rows_max) == (100, 10_000_000)
    assert churn.unique == (("customer_id",), ("plan", "signup"))
    assert churn.strict is True
    assert churn.columns == (
        ColumnChecks("customer_id", type="int", nullable=False),
        ColumnChecks("tenure", type="int", min=0, max=120),
        ColumnChecks("fee", type="float", min=0.5),
        ColumnChecks("plan", type="str", allowed=("basic", "plus", "pro")),
        ColumnChecks("email", type="str", regex="^[^@]+@[^@]+$", nullable=True),
        ColumnChecks("signup", type="datetime", date_format="%d/%m/%Y"),
        ColumnChecks("active", type="bool"),
        ColumnChecks("code", allowed=(1, 2, 3)),
        ColumnChecks("free"),
    )
    features = checks["data/features"]  # the trailing slash of a directory is not part of its key
    assert features.path == "data/features"
    assert (features.format, features.rows_min, features.rows_max) == ("parquet", 5, 5)
    assert features.unique == (("id",),)  # `unique: [id]` is one set of one column
    assert features.strict is False and features.columns == ()


def test_names_lists_every_check_in_report_order():
    churn = checks_of(FULL)["data/raw/churn.csv"]
    names = churn.names()
    assert names[:4] == [("rows", None), ("unique", "customer_id"), ("unique", "plan,signup"), ("strict", None)]
    assert ("regex", "email") in names and ("nullable", "email") not in names
    assert [n for n, c in names if c == "tenure"] == ["present", "type", "nullable", "min", "max"]


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.TSV", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("dir.csv/", "csv"),
    ],
)
def test_format_defaults_from_the_extension(path, fmt):
    text = f"project: p\nexecutor: local\nchecks:\n  {path}: {{}}\n"
    assert checks_of(text)[path.rstrip("/")].format == fmt


def test_dataset_keys_are_normalised_like_a_typed_path():
    checks = checks_of("project: p\nexecutor: local\nchecks:\n  ./data//raw/x.csv: {}\n  data/d/: {format: csv}\n")
    assert list(checks) == ["data/raw/x.csv", "data/d"]
    assert checks["data/raw/x.csv"].path == "data/raw/x.csv"


def test_an_empty_dataset_entry_is_no_checks():
    assert checks_of("project: p\nexecutor: local\nchecks:\n  a.csv:\n").get("a.csv") == DatasetChecks("a.csv", "csv")


@pytest.mark.parametrize(
    ("checks_yaml", "expected"),
    [
        (
            "  a.csv: {columns: {email: {type: str, regex: '([a-z'}}}\n",
            "checks.a.csv.columns.email.regex: expected a regular expression that compiles",
        ),
        ("  a.csv: {columns: {n: {type: integer}}}\n", "checks.a.csv.columns.n.type: expected one of int, float"),
        ("  a.csv: {columns: {n: {type: int, min: 5, max: 1}}}\n", "checks.a.csv.columns.n.max: expected at least"),
        (
            "  a.csv: {columns: {n: {type: str, min: 0}}}\n",
            "checks.a.csv.columns.n.type: expected int, float or datetime",
        ),
        ("  a.csv: {columns: {n: {type: str, in: basic}}}\n", "checks.a.csv.columns.n.in: expected a list"),
        ("  a.csv: {columns: {n: {type: str, in: []}}}\n", "checks.a.csv.columns.n.in: expected a list"),
        ("  a.csv: {columns: {n: {in: [[1]]}}}\n", "checks.a.csv.columns.n.in[0]: expected a string, number"),
        ("  a.csv: {columns: {n: {type: int, regex: 'x'}}}\n", "checks.a.csv.columns.n.type: expected str"),
        ("  a.csv: {columns: {n: {type: str, format: '%Y'}}}\n", "checks.a.csv.columns.n.type: expected datetime"),
        ("  a.csv: {columns: {n: {type: int, min: 'zero'}}}\n", "checks.a.csv.columns.n.min: expected a number"),
        ("  a.csv: {columns: {n: {nullable: 'yes'}}}\n", "checks.a.csv.columns.n.nullable: expected true or false"),
        ("  a.csv: {columns: {n: {type: int, unique: true}}}\n", "unknown key 'checks.a.csv.columns.n.unique'"),
        ("  a.csv: {colums: {}}\n", "unknown key 'checks.a.csv.colums'"),
        ("  a.csv: {rows: {min: 1, most: 2}}\n", "unknown key 'checks.a.csv.rows.most'"),
        ("  a.csv: {rows: {min: 10, max: 2}}\n", "checks.a.csv.rows.max: expected at least rows.min (10)"),
        ("  a.csv: {rows: -1}\n", "checks.a.csv.rows: expected a number of rows"),
        ("  a.csv: {rows: {min: 1.5}}\n", "checks.a.csv.rows.min: expected a number of rows"),
        ("  a.csv: {unique: id}\n", "checks.a.csv.unique: expected a list of column sets"),
        ("  a.csv: {unique: [[]]}\n", "checks.a.csv.unique[0]: expected a list of column names"),
        ("  a.csv: {strict: 1}\n", "checks.a.csv.strict: expected true or false"),
        ("  a.csv: {format: xlsx}\n", "checks.a.csv.format: expected one of csv, parquet, jsonl"),
        ("  data/table: {}\n", "checks.data/table.format: expected csv, parquet or jsonl"),
        ("  ../outside.csv: {}\n", "checks.../outside.csv: expected a relative path in the project"),
        ("  /abs/data.csv: {}\n", "checks./abs/data.csv: expected a relative path in the project"),
        ("  a.csv: [1]\n", "checks.a.csv: expected a mapping"),
        ("  a.csv: {columns: [n]}\n", "checks.a.csv.columns: expected a mapping"),
    ],
)
def test_bad_definitions_are_config_errors_naming_the_key_path(checks_yaml, expected):
    assert expected in error_of(checks_yaml)


def test_checks_must_be_a_mapping():
    with pytest.raises(ConfigError, match="checks: expected a mapping"):
        checks_of("project: p\nexecutor: local\nchecks: [a.csv]\n")


def test_digest_is_stable_across_key_order_and_yaml_spelling():
    block = checks_of(FULL)["data/raw/churn.csv"]
    respelled = """\
project: churn
executor: local
checks:
  data/raw/churn.csv:
    columns:
      customer_id:
        nullable: false
        type: int
      tenure: {max: 120, min: 0, type: int}
      fee: {min: 0.5, type: float}
      plan:
        in:
          - basic
          - plus
          - "pro"
        type: str
      email: {nullable: true, regex: "^[^@]+@[^@]+$", type: str}
      signup: {format: "%d/%m/%Y", type: datetime}
      active: {type: bool}
      code: {in: [1, 2, 3]}
      free: {}
    strict: true
    unique:
      - [customer_id]
      - - plan
        - signup
    rows: {max: 10000000, min: 100}
"""
    same = checks_of(respelled)["data/raw/churn.csv"]
    assert same == block
    assert same.digest == block.digest
    assert len(block.digest) == 16


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("tenure: {type: int, min: 0, max: 120}", "tenure: {type: int, min: 0, max: 121}"),
        ("plan: {type: str, in: [basic, plus, pro]}", "plan: {type: str, in: [basic, plus]}"),
        ("rows: {min: 100, max: 10000000}", "rows: {min: 101, max: 10000000}"),
        ("strict: true", "strict: false"),
        ("customer_id: {type: int, nullable: false}", "customer_id: {type: int, nullable: true}"),
        ("unique: [[customer_id], [plan, signup]]", "unique: [[customer_id]]"),
        ("format: '%d/%m/%Y'", "format: '%m/%d/%Y'"),
        ("free: ~", "free: {type: str}"),
    ],
)
def test_digest_changes_when_a_check_changes(old, new):
    assert old in FULL
    before = checks_of(FULL)["data/raw/churn.csv"].digest
    assert checks_of(FULL.replace(old, new))["data/raw/churn.csv"].digest != before
