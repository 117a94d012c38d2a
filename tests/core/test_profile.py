"""core/profile.py: what `opsctl data profile` infers from data, and how --write edits opsctl.yaml.

Real files in a real Git + DVC project; what is inferred is checked by running the engine's
own checks on the same data (they must all pass)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from opsctl.core import check_engine
from opsctl.core.check_engine import run_checks
from opsctl.core.config import load_config, parse_config
from opsctl.core.profile import DatasetProfile, _round, profile, profile_dataset, render, write_checks
from opsctl.core.project import Project
from opsctl.core.yamlload import load_yaml_text
from opsctl.errors import ConfigError, DataParseError, OpsctlError, UsageError
from tests.conftest import git_dvc_project

PLANS = ["basic", "plus", "pro"]


def churn_rows(n: int = 40) -> list[dict]:
    return [
        {
            "customer_id": 1000 + i,
            "email": f"user{i}@example.com",
            "tenure": (i * 7) % 73,
            "monthly_fee": round(18.25 + (i * 3.3) % 100, 2),
            "plan": PLANS[i % 3],
            "country": "NA" if i % 2 else "DE",  # Namibia: not a null
            "churned": i % 4 == 0,
            "signup": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "discount": None if i % 5 == 0 else i % 3,
            "flag01": i % 2,
        }
        for i in range(n)
    ]


def write_csv(path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    root = git_dvc_project(tmp_path / "proj")
    monkeypatch.chdir(root)  # a PATH as typed is relative to the working directory
    return Project(root)


def columns(found: DatasetProfile) -> dict[str, dict]:
    return found.entry()["columns"]


def assert_passes(root, found: DatasetProfile) -> None:
    """The engine's own verdict on the same data: every inferred check passes."""
    rows, failures = run_checks(root, found.checks(root))
    assert failures == [], failures
    assert rows == found.rows


def test_csv_types_nulls_ranges_categories_and_keys(project):
    write_csv(project.root / "data/churn.csv", churn_rows())
    found = profile(project, str(project.root / "data/churn.csv"))
    assert found.path == "data/churn.csv" and found.rows == 40 and found.format == "csv"
    entry = found.entry()
    assert "format" not in entry  # the extension says it
    assert entry["rows"] == {"min": 1}
    assert entry["strict"] is False
    assert entry["unique"] == [["customer_id"], ["email"]]  # the key-named one first
    assert columns(found) == {
        "customer_id": {"type": "int"},  # a key: no range (new rows get new ids)
        "email": {"type": "str"},  # all-unique strings: no category set
        "tenure": {"type": "int", "min": 0, "max": 71},
        "monthly_fee": {"type": "float", "min": 18.2, "max": 118},  # 117.25 observed
        "plan": {"type": "str", "in": ["basic", "plus", "pro"]},
        "country": {"type": "str", "in": ["DE", "NA"]},
        "churned": {"type": "bool"},
        "signup": {"type": "datetime"},
        "discount": {"type": "int", "nullable": True, "min": 0, "max": 2},  # read as floats with blanks
        "flag01": {"type": "int", "min": 0, "max": 1},  # 0/1 stays int
    }
    assert_passes(project.root, found)


def test_a_column_of_decimals_is_float_and_text_is_str(project):
    rows = [{"x": 1.0 + i, "code": f"{i:03d}x", "mixed": "7" if i % 2 else "seven"} for i in range(10)]
    write_csv(project.root / "d.csv", rows)
    found = profile_dataset(project.root, "d.csv", "csv")
    cols = columns(found)
    assert cols["x"] == {"type": "float", "min": 1, "max": 10}  # "1.0" written: not an int column
    assert cols["mixed"] == {"type": "str", "in": ["7", "seven"]}
    assert cols["code"]["type"] == "str"
    assert_passes(project.root, found)


def test_categories_need_repetition_and_few_values(project):
    rows = [{"few": f"v{i % 20}", "many": f"v{i % 21}", "once": f"u{i}"} for i in range(42)]
    rows += [{"few": "v0", "many": "v0", "once": "u0x"}]
    write_csv(project.root / "d.csv", rows)
    cols = columns(profile_dataset(project.root, "d.csv", "csv"))
    assert cols["few"]["in"] == sorted(f"v{i}" for i in range(20))
    assert "in" not in cols["many"]  # 21 distinct values: more than a category set
    assert "in" not in cols["once"]
    # Half the rows distinct at most: 3 values in 4 rows are not "clearly repeated".
    write_csv(project.root / "e.csv", [{"c": c} for c in "aabc"] + [{"c": "d"}])
    assert "in" not in columns(profile_dataset(project.root, "e.csv", "csv"))["c"]


def test_no_range_holds_an_infinite_value_and_big_ints_stay_exact(project):
    (project.root / "d.csv").write_text("x,big\n1.5,9007199254740993\ninf,9007199254740995\n2.5,1\n")
    found = profile_dataset(project.root, "d.csv", "csv")
    assert columns(found) == {"x": {"type": "float"}, "big": {"type": "int", "min": 1, "max": 9007199254740995}}
    assert_passes(project.root, found)


def test_every_value_null_gives_no_type(project):
    (project.root / "d.csv").write_text("a,b\n,1\n,2\n")
    found = profile_dataset(project.root, "d.csv", "csv")
    assert columns(found)["a"] == {"nullable": True}
    assert_passes(project.root, found)


def test_parquet_dtypes(project):
    frame = pd.DataFrame(
        {
            "id": ["a1", "a2", "a3", "a4"],
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "x": [0.5, 1.25, None, 2.0],
            "ok": [True, False, True, True],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"]),
        }
    )
    frame.to_parquet(project.root / "t.parquet")
    found = profile_dataset(project.root, "t.parquet", "parquet")
    assert columns(found) == {
        "id": {"type": "str"},
        "n": {"type": "int", "nullable": True, "min": 1, "max": 4},
        "x": {"type": "float", "nullable": True, "min": 0.5, "max": 2},
        "ok": {"type": "bool"},
        "at": {"type": "datetime", "nullable": True},
    }
    assert found.entry()["unique"] == [["id"]]
    assert_passes(project.root, found)


def test_jsonl_and_a_column_of_mixed_types(project):
    lines = [{"id": i, "kind": ["a", "b"][i % 2], "v": i if i % 2 else "text", "nested": {"k": i}} for i in range(8)]
    (project.root / "e.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    found = profile_dataset(project.root, "e.jsonl", "jsonl")
    cols = columns(found)
    assert cols["id"] == {"type": "int"} and found.entry()["unique"] == [["id"]]
    assert cols["kind"] == {"type": "str", "in": ["a", "b"]}
    assert cols["v"] == {}  # numbers and text: no one type validate would accept
    assert "type" not in cols["nested"]
    assert_passes(project.root, found)


def test_directory_of_files_is_one_table(project):
    folder = project.root / "data/parts"
    write_csv(folder / "a.csv", [{"id": i, "extra": 1, "v": i / 2} for i in range(5)])
    write_csv(folder / "b.csv", [{"id": i, "v": i / 2} for i in range(5, 9)])
    found = profile(project, "data/parts")
    assert found.format == "csv" and found.files == 2 and found.rows == 9
    entry = found.entry()
    assert entry["format"] == "csv"  # a directory's name doesn't say it
    assert list(entry["columns"]) == ["id", "v"]  # `extra` is not in every file
    assert entry["unique"] == [["id"]]
    assert_passes(project.root, found)
    # A repeated key across files is no key.
    write_csv(folder / "c.csv", [{"id": 0, "v": 1.5}])
    assert "unique" not in profile(project, "data/parts").entry()


def test_across_chunks(project, monkeypatch):
    """Small chunks (1,000 rows): duplicates, nulls and categories are tracked across them."""
    monkeypatch.setattr(check_engine, "CHUNK_BYTES", 1)
    n = 3500
    rows = [
        {
            "id": i,
            "dup_id": i if i != 3400 else 5,  # repeats an id of the first chunk in the fourth
            "late_null": "" if i == 3200 else i,
            "grade": "abc"[i % 3] if i < 3000 else "d",  # a fourth category in the last chunk
            "wide": f"w{i % 60}",  # past the categories tracked
            # ints, then text in the last chunk, where "5" repeats the 5 of the first as validate reads it
            "late_text_id": i if i < 3000 else ("5" if i == 3000 else f"x{i}"),
        }
        for i in range(n)
    ]
    write_csv(project.root / "big.csv", rows)
    found = profile_dataset(project.root, "big.csv", "csv")
    cols = columns(found)
    assert found.rows == n
    assert found.entry()["unique"] == [["id"]]
    assert cols["dup_id"] == {"type": "int", "min": 0, "max": 3499}
    assert cols["late_null"] == {"type": "int", "nullable": True, "min": 0, "max": 3499}
    assert cols["grade"]["in"] == ["a", "b", "c", "d"]
    assert "in" not in cols["wide"]
    assert cols["late_text_id"] == {"type": "str"}  # not proposed as a key
    assert_passes(project.root, found)


@pytest.mark.parametrize(
    ("value", "rounding", "expected"),
    [
        (18.25, "ROUND_FLOOR", 18.2),
        (118.75, "ROUND_CEILING", 119),
        (0.123456789, "ROUND_CEILING", 0.124),
        (-0.0000123456, "ROUND_FLOOR", -0.0000124),
        (123456.7, "ROUND_FLOOR", 123000),
        (0.29, "ROUND_FLOOR", 0.29),
        (0.0, "ROUND_FLOOR", 0),
    ],
)
def test_float_bounds_are_rounded_outwards(value, rounding, expected):
    result = _round(value, rounding)
    assert result == expected
    assert (result <= value) if rounding == "ROUND_FLOOR" else (result >= value)


def test_render_reads_back_as_inferred_with_yaml_1_1_lookalikes_quoted(project):
    rows = [
        {"yes": "no", "ans": ["yes", "no", "null", "1:20", "on"][i % 5], "tiny": 0.00001 * (i + 1)} for i in range(20)
    ]
    write_csv(project.root / "q.csv", rows)
    found = profile_dataset(project.root, "q.csv", "csv")
    text = render(found, project.root)
    assert text.startswith("# Inferred by `opsctl data profile`")
    assert "\nchecks:\n  q.csv:\n" in text
    assert "'yes': {type: str, in: ['no']}" in text
    assert "in: ['1:20', 'no', 'null', 'on', 'yes']" in text
    assert "min: 0.00001," in text  # not 1e-05, which YAML 1.1 reads as a string
    config = parse_config(load_yaml_text(text, source="out"), root=project.root)
    assert config.checks["q.csv"] == found.checks(project.root)
    assert config.checks["q.csv"].column("ans").allowed == ("1:20", "no", "null", "on", "yes")
    assert_passes(project.root, found)


# ---- bad input --------------------------------------------------------------------------------


def test_paths_outside_or_missing_and_formats(project, tmp_path):
    with pytest.raises(UsageError, match="outside the project"):
        profile(project, str(tmp_path))
    with pytest.raises(UsageError, match="data/none.csv: is not in the workspace"):
        profile(project, str(project.root / "data/none.csv"))
    (project.root / "plain.txt").write_text("a\n1\n")
    with pytest.raises(UsageError, match="extension names no format"):
        profile(project, str(project.root / "plain.txt"))
    assert profile(project, str(project.root / "plain.txt"), "csv").entry()["format"] == "csv"
    with pytest.raises(UsageError, match="--format xml"):
        profile(project, str(project.root / "plain.txt"), "xml")
    mixed = project.root / "mixed"
    write_csv(mixed / "a.csv", [{"a": 1}])
    (mixed / "b.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(UsageError, match="holds csv and jsonl files"):
        profile(project, str(mixed))


def test_unreadable_data_is_the_engines_error(project):
    (project.root / "empty.csv").write_bytes(b"")
    with pytest.raises(DataParseError, match="empty.csv: has no columns"):
        profile(project, str(project.root / "empty.csv"))
    (project.root / "bad.csv").write_bytes(b"a,b\n1,2\n3,\xff\n")
    with pytest.raises(DataParseError, match=r"bad.csv:3:3: byte 0xff"):
        profile(project, str(project.root / "bad.csv"))
    (project.root / "bad.parquet").write_bytes(b"")
    with pytest.raises(DataParseError, match="not a readable parquet file"):
        profile(project, str(project.root / "bad.parquet"))


# ---- --write ----------------------------------------------------------------------------------

EXISTING = """\
# Settings for the churn project.
project: churn   # the name in listings
executor: local

stages:
    train:
        cpus: 2   # two cores
        env:
            - SEED
checks:
    data/other.csv:   # hand-written
        columns: {a: {type: int}}
# the end
"""


def test_write_keeps_comments_order_and_indentation(project):
    (project.root / "opsctl.yaml").write_text(EXISTING)
    write_csv(project.root / "data/churn.csv", churn_rows())
    found = profile(project, "data/churn.csv")
    write_checks(Project(project.root), found)
    text = (project.root / "opsctl.yaml").read_text()
    head = EXISTING.replace("# the end\n", "")
    assert text.startswith(head) and text.endswith("\n# the end\n")  # the file's last comment stays last
    added = text[len(head) :]
    assert added.startswith(
        "    # Inferred by `opsctl data profile`: min/max and in: are the values seen in the data;\n"
        "    # widen them to what valid data may hold before committing.\n"
        "    data/churn.csv:\n        rows: {min: 1}\n"
    )
    assert "        columns:\n            customer_id: {type: int}\n" in added
    config = load_config(project.root)
    assert list(config.checks) == ["data/other.csv", "data/churn.csv"]
    assert config.checks["data/churn.csv"] == found.checks(project.root)


def test_write_refuses_existing_checks_unless_forced(project):
    (project.root / "opsctl.yaml").write_text(EXISTING)
    write_csv(project.root / "data/other.csv", [{"a": i, "b": "x"} for i in range(4)])
    found = profile(project, "data/other.csv")
    with pytest.raises(OpsctlError, match="data/other.csv: opsctl.yaml has checks for it already") as exc:
        write_checks(Project(project.root), found)
    assert exc.value.exit_code == 1 and "--force" in (exc.value.hint or "")
    assert (project.root / "opsctl.yaml").read_text() == EXISTING
    write_checks(Project(project.root), found, force=True)
    text = (project.root / "opsctl.yaml").read_text()
    assert text.startswith(EXISTING.split("    data/other.csv:")[0])
    assert "    data/other.csv:   # hand-written\n        rows: {min: 1}\n" in text
    assert text.endswith("            b: {type: str, in: [x]}\n# the end\n")
    assert load_config(project.root).checks["data/other.csv"] == found.checks(project.root)


def test_write_makes_the_file_or_the_section(project):
    write_csv(project.root / "d.csv", [{"a": i} for i in range(3)])
    found = profile(project, "d.csv")
    write_checks(Project(project.root), found)  # no opsctl.yaml: one with project: and checks:
    text = (project.root / "opsctl.yaml").read_text()
    assert text.startswith("project: proj\nchecks:\n  # Inferred by")
    assert load_config(project.root).project == "proj"

    (project.root / "opsctl.yaml").write_text("project: p\nchecks:\n")  # an empty section
    write_checks(Project(project.root), found)
    assert (project.root / "opsctl.yaml").read_text().startswith("project: p\nchecks:\n  # Inferred")

    (project.root / "opsctl.yaml").write_text("# nothing yet\n")  # only a comment: kept
    write_checks(Project(project.root), found)
    assert (project.root / "opsctl.yaml").read_text().startswith("# nothing yet\nchecks:\n  # Inferred")
    assert load_config(project.root).checks["d.csv"] == found.checks(project.root)


def test_write_never_leaves_a_broken_or_half_written_file(project, monkeypatch):
    (project.root / "opsctl.yaml").write_text(EXISTING)
    write_csv(project.root / "d.csv", [{"a": i} for i in range(3)])
    found = profile(project, "d.csv")
    # Text that would not read back as inferred is not written.
    monkeypatch.setattr(DatasetProfile, "checks", lambda self, root=None: None)
    with pytest.raises(ConfigError, match="would not read back as inferred"):
        write_checks(Project(project.root), found)
    monkeypatch.undo()
    assert (project.root / "opsctl.yaml").read_text() == EXISTING

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        write_checks(Project(project.root), found)
    assert (project.root / "opsctl.yaml").read_text() == EXISTING
    assert sorted(p.name for p in project.root.iterdir() if p.name.endswith(".tmp")) == []
