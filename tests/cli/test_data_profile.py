"""`opsctl data profile PATH [--write]` as a user runs it, in real Git + DVC projects: the block
it prints, what --write does to opsctl.yaml, and the round trip through `opsctl data validate`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import PYTHON, git_dvc_project, opsctl_inprocess

ROWS = 30


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": range(1, ROWS + 1),
            "qty": [1 + i % 9 for i in range(ROWS)],
            "price": [round(2.5 + i * 1.75, 2) for i in range(ROWS)],
            "status": ["new", "paid", "shipped"] * (ROWS // 3),
            "note": [None if i % 4 else f"n{i}" for i in range(ROWS)],
            "at": [f"2025-03-{1 + i % 28:02d}T10:00:00" for i in range(ROWS)],
        }
    )


def write_dataset(root, kind: str) -> str:
    """The same table as a csv, parquet or jsonl file, or a directory of csv files; its path."""
    data = frame()
    (root / "data").mkdir(exist_ok=True)
    if kind == "csv":
        data.to_csv(root / "data/orders.csv", index=False)
        return "data/orders.csv"
    if kind == "parquet":
        data.to_parquet(root / "data/orders.parquet")
        return "data/orders.parquet"
    if kind == "jsonl":
        data.to_json(root / "data/orders.jsonl", orient="records", lines=True)
        return "data/orders.jsonl"
    (root / "data/orders").mkdir()
    data.iloc[:12].to_csv(root / "data/orders/2025-01.csv", index=False)
    data.iloc[12:].to_csv(root / "data/orders/2025-02.csv", index=False)
    return "data/orders"


def break_a_row(root, kind: str, path: str) -> None:
    """A row the inferred checks refuse: an order id seen before, a status never seen."""
    bad = frame().iloc[[0]].assign(status="lost")
    if kind == "csv":
        bad.to_csv(root / path, mode="a", header=False, index=False)
    elif kind == "parquet":
        pd.concat([frame(), bad]).to_parquet(root / path)
    elif kind == "jsonl":
        with open(root / path, "a") as f:
            f.write(bad.to_json(orient="records", lines=True))
    else:
        bad.to_csv(root / path / "2025-03.csv", index=False)


@pytest.fixture
def project(tmp_path):
    return git_dvc_project(tmp_path / "shop")


def test_prints_a_checks_section_and_a_summary(project):
    write_dataset(project, "csv")
    result = opsctl_inprocess("data", "profile", "data/orders.csv", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "profiled 30 rows, 6 columns; review the ranges before committing\n"
    assert result.stdout == (
        "# Inferred by `opsctl data profile`: min/max and in: are the values seen in the data;\n"
        "# widen them to what valid data may hold before committing.\n"
        "checks:\n"
        "  data/orders.csv:\n"
        "    rows: {min: 1}\n"
        "    unique: [[order_id]]\n"
        "    strict: false\n"
        "    columns:\n"
        "      order_id: {type: int}\n"
        "      qty: {type: int, min: 1, max: 9}\n"
        "      price: {type: float, min: 2.5, max: 53.3}\n"
        "      status: {type: str, in: [new, paid, shipped]}\n"
        "      note: {type: str, nullable: true}\n"
        "      at: {type: datetime}\n"
    )
    assert not (project / "opsctl.yaml").exists()  # printing writes nothing


def test_output_from_a_subdirectory_is_keyed_by_the_project_path(project):
    write_dataset(project, "csv")
    result = opsctl_inprocess("data", "profile", "orders.csv", cwd=project / "data")
    assert result.returncode == 0, result.stderr
    assert "\n  data/orders.csv:\n" in result.stdout
    assert set(yaml.safe_load(result.stdout)["checks"]) == {"data/orders.csv"}


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl", "directory"])
def test_write_then_validate_passes_and_a_broken_row_fails(project, kind):
    path = write_dataset(project, kind)
    written = opsctl_inprocess("data", "profile", path, "--write", cwd=project)
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert f"added the checks of {path} in opsctl.yaml" in written.stderr
    config = yaml.safe_load((project / "opsctl.yaml").read_text())
    assert config["project"] == "shop"
    entry = config["checks"][path]
    assert entry["unique"] == [["order_id"]]
    assert entry["columns"]["status"] == {"type": "str", "in": ["new", "paid", "shipped"]}
    assert entry["columns"]["note"] == {"type": "str", "nullable": True}
    assert entry.get("format") == ("csv" if kind == "directory" else None)

    checked = opsctl_inprocess("data", "validate", path, "--json", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["passed"] is True

    break_a_row(project, kind, path)
    failed = opsctl_inprocess("data", "validate", path, "--json", "--no-cache", cwd=project)
    assert failed.returncode == 6, failed.stdout + failed.stderr
    failures = {f["check"] for f in json.loads(failed.stdout)["datasets"][0]["failures"]}
    assert failures == {"unique", "in"}


EXISTING = """\
# Shop pipeline settings.
project: shop
executor: local   # runs on the host

stages:
  train:
    cpus: 2    # keep it small
checks:
  data/legacy.csv: {columns: {a: {type: int}}}   # hand-written
"""


def test_write_keeps_the_files_comments_and_order(project):
    (project / "opsctl.yaml").write_text(EXISTING)
    write_dataset(project, "csv")
    result = opsctl_inprocess("data", "profile", "data/orders.csv", "--write", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "opsctl.yaml").read_text()
    assert text.startswith(EXISTING)
    assert text[len(EXISTING) :].startswith(
        "  # Inferred by `opsctl data profile`: min/max and in: are the values seen in the data;\n"
        "  # widen them to what valid data may hold before committing.\n"
        "  data/orders.csv:\n"
        "    rows: {min: 1}\n"
    )
    assert list(yaml.safe_load(text)["checks"]) == ["data/legacy.csv", "data/orders.csv"]


def test_existing_checks_are_kept_unless_forced(project):
    (project / "opsctl.yaml").write_text(EXISTING.replace("data/legacy.csv", "data/orders.csv"))
    write_dataset(project, "csv")
    before = (project / "opsctl.yaml").read_text()
    refused = opsctl_inprocess("data", "profile", "data/orders.csv", "--write", cwd=project)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: data/orders.csv: opsctl.yaml has checks for it already",
        "hint: `opsctl data profile data/orders.csv --write --force` replaces them",
    ]
    assert (project / "opsctl.yaml").read_text() == before

    forced = opsctl_inprocess("data", "profile", "data/orders.csv", "--write", "--force", cwd=project)
    assert forced.returncode == 0, forced.stderr
    assert "replaced the checks of data/orders.csv in opsctl.yaml" in forced.stderr
    text = (project / "opsctl.yaml").read_text()
    assert text.startswith(before.split("  data/orders.csv:")[0])  # everything above the entry as it was
    assert re.search(
        r"\n  data/orders.csv: +# hand-written\n    rows: \{min: 1\}\n", text
    )  # in its place, comment kept
    assert yaml.safe_load(text)["checks"]["data/orders.csv"]["columns"]["qty"] == {"type": "int", "min": 1, "max": 9}
    assert opsctl_inprocess("data", "validate", cwd=project).returncode == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["data/none.csv"], 2, "error: data/none.csv: is not in the workspace"),
        (["/"], 2, "error: /: is outside the project"),
        (["."], 2, "error: .: is the project itself, not a dataset"),
        (["data/orders.txt"], 2, "error: data/orders.txt: its extension names no format"),
        (["data/orders.csv", "--format", "xml"], 2, "error: --format xml: expected one of csv, parquet, jsonl"),
        (["data/orders.csv", "--force"], 2, "error: --force only means something with --write"),
        (["data/empty.csv"], 1, "error: data/empty.csv: has no columns to profile (an empty file?)"),
        (["data/latin1.csv"], 1, "error: data/latin1.csv:3:6: byte 0xff at offset 13 is not UTF-8"),
        (["data/ragged.csv"], 1, "error: data/ragged.csv:3:5: expected 2 fields, found 3"),
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(project, args, code, message):
    write_dataset(project, "csv")
    (project / "data/orders.txt").write_text("a\n1\n")
    (project / "data/empty.csv").write_bytes(b"")
    (project / "data/latin1.csv").write_bytes(b"a,b\n1,x\n2,caf\xff\n")
    (project / "data/ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    for write in ([], ["--write"]) if "--force" not in args else ([],):
        result = opsctl_inprocess("data", "profile", *args, *write, cwd=project)
        assert result.returncode == code, result.stderr
        assert result.stderr.splitlines()[0].startswith(message), result.stderr
        assert result.stdout == ""
        assert not (project / "opsctl.yaml").exists()  # nothing written


def test_ctrl_c_while_reading_exits_130_and_writes_nothing(project):
    (project / "opsctl.yaml").write_text(EXISTING)
    n = 2_000_000
    pd.DataFrame({"id": np.arange(n), "v": np.arange(n) % 97, "s": np.arange(n).astype(str)}).to_csv(
        project / "big.csv", index=False
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "opsctl", "data", "profile", "big.csv", "--write"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:  # until it has the data file open
        try:
            if any(
                os.readlink(f"/proc/{proc.pid}/fd/{fd}").endswith("big.csv")
                for fd in os.listdir(f"/proc/{proc.pid}/fd")
            ):
                break
        except OSError:
            pass
        time.sleep(0.01)
    assert proc.poll() is None, "profile finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (project / "opsctl.yaml").read_text() == EXISTING
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []
