"""A damaged run store (4 KiB of garbage over one of its pages) or a full disk: later runs
keep their own status (never "interrupted"), the damage is reported once with the way out,
and `opsctl runs repair` keeps every run that can still be read."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from opsctl.store import ArtifactRecord, NewRun, RunRecord, RunStore, StageRecord
from opsctl.store.repair import problems_of, repair
from tests.cli.test_run import make_project
from tests.conftest import opsctl_inprocess, run_opsctl

STAGES = {
    "score": {
        "cmd": "sh score.sh",
        "deps": ["score.sh"],
        "params": ["x", "fail"],
        "metrics": [{"metrics.json": {"cache": False}}],
    }
}
SCORE_SH = """\
x=$(sed -n 's/^x: //p' params.yaml)
fail=$(sed -n 's/^fail: //p' params.yaml)
echo "scoring x=$x"
if [ "$fail" != "0" ]; then exit 3; fi
printf '{"m": 0.%s}\\n' "$x" > metrics.json
"""


def leaf_pages(db: Path, table: str) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))]
    finally:
        conn.close()


def garble(db: Path, page: int) -> None:
    """4 KiB of garbage over one page (4096 bytes: SQLite's default page size)."""
    with open(db, "r+b") as f:
        f.seek((page - 1) * 4096)
        f.write(os.urandom(4096))


def statuses(root: Path) -> dict[str, str]:
    result = opsctl_inprocess("runs", "list", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    return {r["id"]: r["status"] for r in json.loads(result.stdout)}


def opsctl_run(root: Path, *args: str, code: int) -> tuple[str, str]:
    # A process of its own: the runs whose end the store could not take belong to a process that ended.
    result = run_opsctl("run", "--executor", "local", *args, "--json", cwd=root)
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout)["run_id"], result.stderr


def test_runs_after_damage_keep_their_status_and_repair_keeps_every_readable_run(tmp_path):
    root = make_project(tmp_path / "p", STAGES, params={"x": 1, "fail": 0}, files={"score.sh": SCORE_SH})
    before = [opsctl_run(root, "-S", f"x={x}", code=0)[0] for x in range(2, 6)]
    db = root / ".opsctl" / "opsctl.db"
    # The page under the params, in the middle of the file: the run's end (its params) can't be written.
    garble(db, leaf_pages(db, "params")[0])
    assert problems_of(db)

    ok, ok_err = opsctl_run(root, "-S", "x=7", code=0)
    failed, failed_err = opsctl_run(root, "-S", "fail=1", code=5)
    for stderr, run_id in ((ok_err, ok), (failed_err, failed)):
        warnings = [line for line in stderr.splitlines() if "damaged" in line]
        assert len(warnings) == 1, stderr  # once per run, with the way out
        assert "opsctl runs repair" in warnings[0] and f".opsctl/pending/{run_id}.json" in warnings[0]
    # Not "interrupted", not even after the next command's reaper looked at them.
    assert statuses(root)[ok] == "succeeded" and statuses(root)[failed] == "failed"

    repaired = opsctl_inprocess("runs", "repair", "--json", cwd=root)
    assert repaired.returncode == 0, repaired.stderr
    report = json.loads(repaired.stdout)
    assert report["problems"] and report["backup"].startswith(".opsctl/opsctl.db.damaged-")
    assert (root / report["backup"]).is_file()  # the damaged file is kept
    assert sorted(report["settled"]) == sorted([ok, failed])
    assert problems_of(db) == []
    after = statuses(root)
    assert after == {**{run_id: "succeeded" for run_id in [*before, ok]}, failed: "failed"}
    shown = json.loads(opsctl_inprocess("runs", "show", ok, "--json", cwd=root).stdout)
    assert shown["metrics"] == {"m": 0.7} and shown["params"]["x"] == 7  # recorded whole after the repair
    assert [s["name"] for s in shown["stages"]] == ["score"]
    assert not list((root / ".opsctl" / "pending").iterdir())

    again = opsctl_inprocess("runs", "repair", cwd=root)
    assert again.returncode == 0 and "nothing to repair" in again.stderr


def _record(store: RunStore, n: int) -> None:
    start = 1_700_000_000.0
    store.record_runs(
        RunRecord(
            NewRun(f"{i:012x}", started=start + i, user="ana", host="box", git_commit="c" * 40, branch="main"),
            status="succeeded",
            finished=start + i + 1,
            stages=[
                StageRecord(
                    "train",
                    "ran",
                    cmd="python train.py " + "x" * 200,
                    artifacts=[ArtifactRecord("out", f"model-{i}.pkl", f"{i:032x}")],
                )
            ],
            params={"lr": i / 1000},
            metrics={"acc": i / n},
        )
        for i in range(n)
    )


def test_repair_skips_a_damaged_page_of_runs_and_keeps_the_runs_on_either_side(tmp_path):
    db = tmp_path / "opsctl.db"
    with RunStore(db) as store:
        _record(store, 3000)
    pages = leaf_pages(db, "runs")
    assert len(pages) > 20
    garble(db, pages[len(pages) // 2])
    report = repair(db)
    assert report.repaired and "runs" in report.damaged
    assert report.backup is not None and report.backup.is_file()
    assert problems_of(db) == []
    with RunStore(db) as store:
        ids = {r.id for r in store.list_runs(limit=5000)}
        lost = 3000 - len(ids)
        assert 0 < lost < 3000 // len(pages) * 3  # about one page of runs, no more
        assert f"{0:012x}" in ids and f"{2999:012x}" in ids  # before and after the damaged page
        kept = store.get_run(f"{2999:012x}")
        assert [s.name for s in kept.stages] == ["train"] and kept.metrics == {"acc": 2999 / 3000}
    conn = sqlite3.connect(db)
    try:  # no stage, param or metric left without its run
        assert conn.execute("SELECT count(*) FROM stages WHERE rid NOT IN (SELECT rid FROM runs)").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM stages").fetchone() == (len(ids),)
        assert conn.execute("SELECT count(*) FROM params WHERE rid NOT IN (SELECT rid FROM runs)").fetchone() == (0,)
    finally:
        conn.close()


@pytest.fixture
def small_disk(tmp_path):
    """A real 16 MiB file system (tmpfs) that a test can fill; unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root (CI runs as root)"
        if os.environ.get("CI") or os.environ.get("OPSCTL_REQUIRE_DOCKER") == "1":
            pytest.fail(message)  # in CI the full-disk test must run, never skip
        pytest.skip(message)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def test_a_run_that_fills_the_disk_is_recorded_failed_once_there_is_space(small_disk):
    filler = small_disk / "filler"
    root = make_project(
        small_disk / "p",
        {"fill": {"cmd": f"dd if=/dev/zero of={filler} bs=64k >/dev/null 2>&1; exit 1", "outs": ["never.txt"]}},
    )
    result = run_opsctl("run", "--executor", "local", "--json", cwd=root)  # its end is pending: a process that ended
    assert result.returncode == 5, result.stdout + result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert "kept in .opsctl/pending/" in result.stderr  # the store could not take the run's end
    filler.unlink()  # space again
    listed = statuses(root)
    assert listed == {run_id: "failed"}  # not "interrupted"
    shown = json.loads(opsctl_inprocess("runs", "show", run_id, "--json", cwd=root).stdout)
    assert [(s["name"], s["outcome"]) for s in shown["stages"]] == [("fill", "failed")]
    assert not list((root / ".opsctl" / "pending").iterdir())
