"""`opsctl data validate` through the CLI in a real Git + DVC project: verdicts, output
shapes, exit codes, the hash DVC records, and bad input (one clear line, its exit code)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import PYTHON, git_dvc_project, opsctl_inprocess, run

CHECKS = """\
project: shop
executor: local
checks:
  data/customers.csv:
    rows: {min: 3}
    unique: [[id]]
    columns:
      id: {type: int}
      age: {type: int, min: 0, max: 120}
      plan: {type: str, in: [basic, plus, pro]}
  data/orders:
    format: csv
    unique: [[order, line]]
    columns:
      order: {type: int}
      line: {type: int}
  data/missing.csv:
    columns:
      id: {type: int}
"""
CUSTOMERS = "id,age,plan\n1,30,basic\n2,41,pro\n3,19,plus\n"


def project(root: Path, config: str = CHECKS, *, customers: str = CUSTOMERS) -> Path:
    """A committed Git + DVC project with two datasets added to DVC and a third declared but absent."""
    git_dvc_project(root)
    (root / "opsctl.yaml").write_text(config)
    data = root / "data"
    (data / "orders").mkdir(parents=True)
    (data / "customers.csv").write_text(customers)
    (data / "orders" / "2024-01.csv").write_text("order,line\n1,1\n1,2\n")
    (data / "orders" / "2024-02.csv").write_text("order,line\n2,1\n3,1\n")
    run([PYTHON, "-m", "dvc", "add", "-q", "data/customers.csv", "data/orders"], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "data"], cwd=root)
    return root


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = stderr_lines(result)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), result.stderr
    return errors[0]


def tsv(result: subprocess.CompletedProcess) -> list[list[str]]:
    return [line.split("\t") for line in result.stdout.splitlines()]


def validate_json(root: Path, *args: str, cwd: Path | None = None) -> tuple[int, dict]:
    result = opsctl_inprocess("data", "validate", *args, "--json", cwd=cwd or root)
    return result.returncode, json.loads(result.stdout)


def dvc_md5(root: Path, dvc_file: str) -> str:
    return yaml.safe_load((root / dvc_file).read_text())["outs"][0]["md5"]


# -- verdicts and output -------------------------------------------------------------------------


def test_all_pass_exit_0_with_a_summary(tmp_path):
    root = project(tmp_path / "p")
    result = opsctl_inprocess("data", "validate", cwd=root)
    assert result.returncode == 0, result.stderr
    assert tsv(result) == [
        ["dataset", "verdict", "check", "column", "failing", "examples"],
        ["data/customers.csv", "passed", "", "", "0", ""],
        ["data/orders", "passed", "", "", "0", ""],
    ]
    assert stderr_lines(result) == ["✓ 2 datasets passed 21 checks"]


def test_a_failing_check_exits_6_with_the_failing_table(tmp_path):
    customers = "id,age,plan\n1,30,basic\n2,-4,pro\n2,19,gold\n4,x,plus\n"
    root = project(tmp_path / "p", customers=customers)
    result = opsctl_inprocess("data", "validate", cwd=root)
    assert result.returncode == 6, result.stderr
    assert one_error_line(result) == "error: 1 of 2 datasets failed its checks: data/customers.csv"
    assert tsv(result) == [
        ["dataset", "verdict", "check", "column", "failing", "examples"],
        ["data/customers.csv", "failed", "unique", "", "1", "rows repeating an earlier (id): row 3: 2"],
        ["data/customers.csv", "failed", "type", "age", "1", "row 4: 'x'"],
        ["data/customers.csv", "failed", "min", "age", "1", "row 2: -4"],
        ["data/customers.csv", "failed", "in", "plan", "1", "row 3: 'gold'"],
        ["data/orders", "passed", "", "", "0", ""],
    ]


def test_json_shape_and_the_hash_dvc_records(tmp_path):
    customers = "id,age,plan\n1,30,basic\n2,-4,pro\n"
    root = project(tmp_path / "p", customers=customers)
    code, doc = validate_json(root)
    assert code == 6
    assert doc["passed"] is False
    customers_doc, orders_doc = doc["datasets"]
    assert {k: customers_doc[k] for k in ("path", "hash", "rows", "passed")} == {
        "path": "data/customers.csv",
        "hash": dvc_md5(root, "data/customers.csv.dvc"),
        "rows": 2,
        "passed": False,
    }
    failures = [{k: f[k] for k in ("check", "column", "count", "examples")} for f in customers_doc["failures"]]
    assert failures == [
        {"check": "rows", "column": None, "count": 1, "examples": []},
        {"check": "min", "column": "age", "count": 1, "examples": [{"row": 2, "value": -4}]},
    ]
    assert orders_doc["hash"] == dvc_md5(root, "data/orders.dvc")
    assert orders_doc["hash"].endswith(".dir")
    assert {k: orders_doc[k] for k in ("path", "rows", "passed", "failures")} == {
        "path": "data/orders",
        "rows": 4,
        "passed": True,
        "failures": [],
    }


def test_unique_across_a_directorys_files_carries_the_file(tmp_path):
    root = project(tmp_path / "p")
    (root / "data" / "orders" / "2024-02.csv").write_text("order,line\n2,1\n1,2\n")
    code, doc = validate_json(root, "data/orders")
    assert code == 6
    [failure] = doc["datasets"][0]["failures"]
    assert failure["check"] == "unique" and failure["column"] is None and failure["count"] == 1
    assert failure["examples"] == [{"row": 2, "value": "1, 2", "file": "data/orders/2024-02.csv"}]


def test_named_paths_and_paths_relative_to_a_subdirectory(tmp_path):
    root = project(tmp_path / "p")
    (root / "notebooks").mkdir()
    code, doc = validate_json(root, "../data/orders/", cwd=root / "notebooks")
    assert code == 0
    assert [d["path"] for d in doc["datasets"]] == ["data/orders"]
    code, doc = validate_json(root, str(root / "data" / "customers.csv"), "data/orders", "data/customers.csv")
    assert [d["path"] for d in doc["datasets"]] == ["data/customers.csv", "data/orders"]


def test_a_path_without_checks_or_not_in_the_workspace_is_a_usage_error(tmp_path):
    root = project(tmp_path / "p")
    result = opsctl_inprocess("data", "validate", "opsctl.yaml", cwd=root)
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: opsctl.yaml: no checks are declared for it")
    result = opsctl_inprocess("data", "validate", "data/missing.csv", cwd=root)
    assert result.returncode == 2
    assert one_error_line(result) == "error: data/missing.csv: is not in the workspace"
    result = opsctl_inprocess("data", "validate", "../elsewhere.csv", cwd=root)
    assert result.returncode == 2
    assert "is outside the project" in one_error_line(result)
    assert result.stdout == ""


def test_no_checks_declared_is_a_usage_error_with_a_hint(tmp_path):
    root = git_dvc_project(tmp_path / "p", "shop")
    result = opsctl_inprocess("data", "validate", cwd=root)
    assert result.returncode == 2
    assert one_error_line(result) == "error: no data checks are declared"
    assert stderr_lines(result)[1].startswith("hint: add a checks: section to opsctl.yaml")


def test_a_bad_check_definition_is_a_config_error(tmp_path):
    root = project(tmp_path / "p", CHECKS.replace("max: 120", "max: 120, regex: '('"))
    result = opsctl_inprocess("data", "validate", cwd=root)
    assert result.returncode == 1
    assert "checks.data/customers.csv.columns.age.regex: expected a regular expression" in one_error_line(result)


# -- bad input -----------------------------------------------------------------------------------


def bad_input(
    tmp_path: Path, name: str, content: bytes | None, columns: str = "id: {type: int}", extra: str = ""
) -> Path:
    root = git_dvc_project(tmp_path / "p")
    (root / "opsctl.yaml").write_text(
        f"project: p\nexecutor: local\nchecks:\n  {name}:\n    {extra}columns: {{{columns}}}\n"
    )
    if content is not None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def validate_bad(root: Path, name: str, code: int) -> str:
    result = opsctl_inprocess("data", "validate", name, "--json", cwd=root)
    assert result.returncode == code, result.stderr
    return one_error_line(result)


def test_an_empty_file_is_a_verdict(tmp_path):
    root = bad_input(tmp_path, "data/e.csv", b"", extra="rows: {min: 1}\n    ")
    result = opsctl_inprocess("data", "validate", "data/e.csv", "--json", cwd=root)
    assert result.returncode == 6
    assert one_error_line(result) == "error: 1 of 1 dataset failed its checks: data/e.csv"
    doc = json.loads(result.stdout)["datasets"][0]
    assert doc["rows"] == 0
    assert [(f["check"], f["column"]) for f in doc["failures"]] == [("rows", None), ("present", "id")]
    result = opsctl_inprocess("data", "validate", cwd=root)  # off a terminal: what was found is in the examples column
    assert tsv(result)[1:] == [
        ["data/e.csv", "failed", "rows", "", "1", "0 rows, expected at least 1"],
        ["data/e.csv", "failed", "present", "id", "1", "column id is missing"],
    ]


def test_a_header_only_file_has_no_rows(tmp_path):
    root = bad_input(tmp_path, "data/h.csv", b"id\n")
    code, doc = validate_json(root, "data/h.csv")
    assert code == 0 and doc["datasets"][0]["rows"] == 0


def test_a_missing_column_and_an_extra_one_with_strict(tmp_path):
    root = bad_input(tmp_path, "data/c.csv", b"id,extra\n1,2\n", "id: {type: int}, name: {}", "strict: true\n    ")
    assert validate_bad(root, "data/c.csv", 6).endswith("data/c.csv")
    doc = validate_json(root, "data/c.csv")[1]["datasets"][0]
    assert [(f["check"], f["column"], f["detail"]) for f in doc["failures"]] == [
        ("strict", "extra", "column extra is not declared (strict: true)"),
        ("present", "name", "column name is missing"),
    ]


def test_mixed_types_in_one_column(tmp_path):
    root = bad_input(tmp_path, "data/m.csv", b"id\n1\n2\nthree\n4.5\n")
    assert validate_bad(root, "data/m.csv", 6).endswith("data/m.csv")
    [failure] = validate_json(root, "data/m.csv")[1]["datasets"][0]["failures"]
    assert (failure["check"], failure["count"]) == ("type", 2)
    assert failure["examples"] == [{"row": 3, "value": "three"}, {"row": 4, "value": "4.5"}]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("data/u.csv", b"id\n1\n2\xff\n", "error: data/u.csv:3:2: byte 0xff at offset 6 is not UTF-8"),
        ("data/z.parquet", b"", "error: data/z.parquet: not a readable parquet file"),
        ("data/r.csv", b"id,b\n1,2\n3,4,5\n", "error: data/r.csv:3:5: expected 2 fields, found 3"),
        ("data/j.jsonl", b'{"id": 1}\n{"id": }\n', "error: data/j.jsonl:2:8: not JSON (Expecting value)"),
    ],
)
def test_unreadable_files_exit_1_naming_file_line_and_column(tmp_path, name, content, expected):
    root = bad_input(tmp_path, name, content)
    assert validate_bad(root, name, 1).startswith(expected)


def test_a_file_that_is_a_directory(tmp_path):
    root = bad_input(tmp_path, "data/x.csv", None)
    (root / "data" / "x.csv").mkdir(parents=True)
    (root / "data" / "x.csv" / "README.txt").write_text("no tables here")
    assert validate_bad(root, "data/x.csv", 1) == (
        "error: data/x.csv: is a directory with no csv files (.csv, .tsv) to read as a table"
    )
    (root / "data" / "x.csv" / "a.csv").write_text("id\n1\n")
    (root / "data" / "x.csv" / "b.csv").write_text("id\n2\n")
    code, doc = validate_json(root, "data/x.csv")
    assert code == 0 and doc["datasets"][0]["rows"] == 2


def test_a_parquet_dataset_through_the_cli(tmp_path):
    root = bad_input(tmp_path, "data/t.parquet", None, "id: {type: int, min: 1}")
    (root / "data").mkdir()
    pq.write_table(pa.table({"id": [1, 0, 3]}), root / "data" / "t.parquet")
    code, doc = validate_json(root)
    assert code == 6
    assert doc["datasets"][0]["failures"][0]["examples"] == [{"row": 2, "value": 0}]


def test_a_line_longer_than_the_bound_is_refused_in_bounded_memory(tmp_path):
    """A 300 MiB 'line' (no newline at all): refused after 64 MiB, never held whole. opsctl
    itself, with pandas and pandera imported, is about 160 MB and the part of the line read
    adds ~64 MB (220 MB measured); holding the line whole would need 300 MB more than that."""
    root = bad_input(tmp_path, "data/l.csv", None)
    (root / "data").mkdir()
    with open(root / "data" / "l.csv", "wb") as f:
        f.write(b"id\n1\n")
        block = b"9" * (1 << 20)
        for _ in range(300):
            f.write(block)
    # The process's own peak (VmHWM, which exec resets), written as it exits: ru_maxrss from
    # wait4 would count the pages of the forking process too (a pytest worker holds ~600 MB).
    peak_file = tmp_path / "peak"
    probe = (
        "import atexit, runpy, sys\n"
        "def peak():\n"
        "    with open('/proc/self/status') as f:\n"
        "        line = next(l for l in f if l.startswith('VmHWM:'))\n"
        f"    open({str(peak_file)!r}, 'w').write(line.split()[1])\n"
        "atexit.register(peak)\n"
        "sys.argv = ['opsctl', 'data', 'validate']\n"
        "runpy.run_module('opsctl', run_name='__main__')\n"
    )
    result = subprocess.run([PYTHON, "-c", probe], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "error: data/l.csv: a line longer than 64 MiB before byte 68,157,440: not a table opsctl reads"
    )
    assert int(peak_file.read_text()) * 1024 < 300 << 20, peak_file.read_text()


# -- Ctrl-C ---------------------------------------------------------------------------------------


def reading(pid: int, path: str) -> bool:
    """Whether process PID has PATH open and has read some of it (its file position is past 0)."""
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            if os.readlink(fd) == path:
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                return int(info.split("pos:")[1].split()[0]) > 0
    except (FileNotFoundError, PermissionError, IndexError, ValueError):
        pass
    return False


def test_ctrl_c_during_a_long_validation_exits_130_and_records_nothing(tmp_path):
    """Two datasets: the first is checked, the second interrupted; neither verdict is recorded."""
    root = git_dvc_project(tmp_path / "p")
    (root / "opsctl.yaml").write_text(
        "project: p\nexecutor: local\nchecks:\n"
        "  data/small.csv: {columns: {id: {type: int}}}\n"
        "  data/big.csv: {columns: {id: {type: int}, name: {type: str, regex: '^n'}}}\n"
    )
    (root / "data").mkdir()
    (root / "data" / "small.csv").write_text("id\n1\n")
    with open(root / "data" / "big.csv", "w") as f:
        f.write("id,name\n")
        for start in range(0, 3_000_000, 100_000):
            f.write("".join(f"{i},n{i}\n" for i in range(start, start + 100_000)))
    data = str(root / "data" / "big.csv")
    # Tracked and hashed once: DVC's state then knows its md5, so the only reader of the file
    # in the opsctl below is the validation itself.
    run([PYTHON, "-m", "dvc", "add", "-q", "data/big.csv", "data/small.csv"], cwd=root)
    proc = subprocess.Popen(
        [PYTHON, "-m", "opsctl", "data", "validate", "--no-cache"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not reading(proc.pid, data):
        time.sleep(0.01)
    assert proc.poll() is None, "opsctl finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["error: interrupted"]
    assert stdout == ""
    store = root / ".opsctl" / "opsctl.db"
    if store.exists():
        with sqlite3.connect(store) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in tables & {"validations"}:
                assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)


def test_an_unchanged_file_is_known_by_its_stat_and_a_changed_one_is_not(tmp_path):
    """The hash computed while reading is DVC's, and the next validate of the unchanged file
    finds its verdict without reading it; a file rewritten with other bytes is read again."""
    root = git_dvc_project(tmp_path / "p")
    (root / "opsctl.yaml").write_text("project: p\nchecks:\n  d.csv: {columns: {n: {type: int, min: 0}}}\n")
    (root / "d.csv").write_text("n\n1\n2\n")
    run(["dvc", "add", "-q", "d.csv"], cwd=root)
    dvc_md5 = yaml.safe_load((root / "d.csv.dvc").read_text())["outs"][0]["md5"]
    first = json.loads(opsctl_inprocess("data", "validate", "--json", cwd=root).stdout)["datasets"][0]
    assert first["hash"] == dvc_md5 and not first["cached"]
    second = json.loads(opsctl_inprocess("data", "validate", "--json", cwd=root).stdout)["datasets"][0]
    assert second["cached"] and second["hash"] == dvc_md5 and second["rows"] == 2
    (root / "d.csv").write_text("n\n1\n-2\n")
    third = opsctl_inprocess("data", "validate", "--json", cwd=root)
    assert third.returncode == 6
    assert not json.loads(third.stdout)["datasets"][0]["cached"]
