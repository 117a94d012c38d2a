"""`opsctl data ...` against a local remote, checked against the real `dvc` CLI."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, PYTHON, opsctl_inprocess, run, tree


def dvc(cwd, *args) -> subprocess.CompletedProcess:
    return run([BIN / "dvc", *args], cwd=cwd)


def sums(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def make_files(directory: Path, count: int, size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"part-{i:04d}.bin").write_bytes(os.urandom(size))


def opsctl_json(cwd, *args):
    result = opsctl_inprocess(*args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dvc_status_pairs(cwd) -> set[tuple[str, str]]:
    """What the real `dvc data status --not-in-remote` reports, in opsctl's state names."""
    raw = json.loads(dvc(cwd, "data", "status", "--json", "--not-in-remote").stdout)
    pairs = set()
    for key, state in (("added", "new"), ("modified", "modified"), ("deleted", "deleted")):
        pairs |= {(p, state) for p in raw.get("uncommitted", {}).get(key, [])}
    pairs |= {(p, "not in cache") for p in raw.get("not_in_cache", [])}
    for key in ("added", "modified", "deleted", "renamed"):
        pairs |= {
            (p if isinstance(p, str) else p["new"], "not committed") for p in raw.get("committed", {}).get(key, [])
        }
    pairs |= {(p, "not pushed") for p in raw.get("not_in_remote", [])}
    return pairs


def opsctl_status_pairs(cwd) -> set[tuple[str, str]]:
    return {(e["path"], e["state"]) for e in opsctl_json(cwd, "data", "status")["entries"]}


def test_add_status_push_pull_roundtrip(ml_project, tmp_path):
    make_files(ml_project / "data" / "images", 40, 4096)
    (ml_project / "data" / "labels.csv").write_text("id,label\n1,cat\n")
    before = sums(ml_project / "data")

    added = opsctl_json(ml_project, "data", "add", "data/images", "data/labels.csv")
    by_path = {a["path"]: a for a in added["added"]}
    assert by_path["data/images"]["files"] == 40 and by_path["data/images"]["bytes"] == 40 * 4096
    assert by_path["data/images"]["hash"].endswith(".dir")
    assert by_path["data/labels.csv"]["hash"] == hashlib.md5(b"id,label\n1,cat\n").hexdigest()
    staged = run(["git", "diff", "--cached", "--name-only"], cwd=ml_project).stdout.split()
    assert {"data/images.dvc", "data/labels.csv.dvc", "data/.gitignore"} <= set(staged)
    assert "/images" in (ml_project / "data" / ".gitignore").read_text().split()

    # opsctl and dvc agree, before and after the push.
    assert opsctl_status_pairs(ml_project) == dvc_status_pairs(ml_project)
    states = {(e["path"], e["state"]) for e in opsctl_json(ml_project, "data", "status")["entries"]}
    assert ("data/images/", "not pushed") in states and ("data/labels.csv", "not committed") in states

    pushed = opsctl_json(ml_project, "data", "push")
    assert pushed["remote"] == "storage" and pushed["files"] >= 41 and pushed["bytes"] >= 40 * 4096
    run(["git", "commit", "-qm", "data"], cwd=ml_project)
    status = opsctl_json(ml_project, "data", "status")
    assert status["up_to_date"] is True and status["remote_checked"] is True
    assert dvc_status_pairs(ml_project) == set()
    assert "up to date" in opsctl_inprocess("data", "status", cwd=ml_project).stderr.lower()
    assert opsctl_json(ml_project, "data", "push")["files"] == 0

    # Another clone, with the same remote: pull restores exactly the bytes that were added.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(ml_project), str(clone)])
    remote_dir = ml_project / ".opsctl" / "remote"
    opsctl_inprocess("data", "remote", "add", "origin-storage", str(remote_dir), "--default", cwd=clone, check=True)
    pulled = opsctl_json(clone, "data", "pull", "data/images.dvc", "data/labels.csv.dvc", "data/raw/churn.csv.dvc")
    assert pulled["files"] >= 42
    assert sums(clone / "data") == {**before, **{k: v for k, v in sums(clone / "data").items() if k not in before}}
    for name, digest in before.items():
        assert sums(clone / "data")[name] == digest


def test_ls_and_diff_between_commits(ml_project):
    (ml_project / "data" / "table.csv").write_text("a\n1\n")
    opsctl_inprocess("data", "add", "data/table.csv", cwd=ml_project, check=True)
    run(["git", "commit", "-qm", "v1"], cwd=ml_project)
    v1 = run(["git", "rev-parse", "HEAD"], cwd=ml_project).stdout.strip()
    (ml_project / "data" / "table.csv").write_text("a\n1\n2\n3\n")
    opsctl_inprocess("data", "add", "data/table.csv", cwd=ml_project, check=True)

    workspace = {c["path"]: c for c in opsctl_json(ml_project, "data", "diff")}
    assert workspace["data/table.csv"]["change"] == "modified"
    assert workspace["data/table.csv"]["old_size"] == 4 and workspace["data/table.csv"]["new_size"] == 8

    run(["git", "commit", "-qm", "v2"], cwd=ml_project)
    between = {c["path"]: c for c in opsctl_json(ml_project, "data", "diff", v1, "HEAD")}
    assert between["data/table.csv"]["old_hash"] == hashlib.md5(b"a\n1\n").hexdigest()
    assert between["data/table.csv"]["new_hash"] == hashlib.md5(b"a\n1\n2\n3\n").hexdigest()
    dvc_diff = json.loads(dvc(ml_project, "diff", "--json", v1, "HEAD").stdout)
    assert {m["path"] for m in dvc_diff["modified"]} == {p for p, c in between.items() if c["change"] == "modified"}

    items = {i["path"]: i for i in opsctl_json(ml_project, "data", "ls")}
    table = items["data/table.csv"]
    assert table["size"] == 8 and table["in_workspace"] and table["in_cache"] and table["on_remote"] is False
    assert items["data/raw/churn.csv"]["stage"] is None
    assert items["models/model.pkl"]["stage"] == "train" and items["models/model.pkl"]["in_workspace"] is False
    assert [i["path"] for i in opsctl_json(ml_project, "data", "ls", "data/raw", "--no-remote")] == [
        "data/raw/churn.csv"
    ]
    assert opsctl_json(ml_project, "data", "ls", "data/raw", "--no-remote")[0]["on_remote"] is None


def test_remote_commands_write_what_dvc_would(ml_project, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    run(["git", "init", "-q"], cwd=twin)
    dvc(twin, "init", "-q")
    # Same relative location from each project, written by each tool.
    dvc(twin, "remote", "add", "backup", "../backup-store")
    opsctl_inprocess("data", "remote", "add", "backup", "../backup-store", cwd=ml_project, check=True)
    ours = (ml_project / ".dvc" / "config").read_text()
    theirs = (twin / ".dvc" / "config").read_text()
    assert theirs.split("['remote \"backup\"']")[1].strip() in ours

    remotes = {r["name"]: r for r in opsctl_json(ml_project, "data", "remote", "list")}
    assert remotes["storage"]["default"] and not remotes["backup"]["default"]
    opsctl_inprocess("data", "remote", "default", "backup", cwd=ml_project, check=True)
    assert "remote = backup" in (ml_project / ".dvc" / "config").read_text()
    assert "backup" in dvc(ml_project, "remote", "default").stdout

    duplicate = opsctl_inprocess("data", "remote", "add", "backup", "/elsewhere", cwd=ml_project)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    unknown = opsctl_inprocess("data", "remote", "default", "nope", cwd=ml_project)
    assert unknown.returncode == 1 and "no remote named 'nope'" in unknown.stderr
    bad_scheme = opsctl_inprocess("data", "remote", "add", "g", "gs://bucket/x", cwd=ml_project)
    assert bad_scheme.returncode == 2


@pytest.mark.parametrize(
    "make_path, code, message",
    [
        (lambda root, tmp: "does-not-exist.csv", 2, "no such file or directory"),
        (lambda root, tmp: str(tmp / "outside.csv"), 2, "outside the project"),
        (lambda root, tmp: "params.yaml", 1, "tracked by Git"),
        (lambda root, tmp: ".dvc/config", 2, "inside .dvc/"),
    ],
)
def test_bad_add_changes_nothing(ml_project, tmp_path, make_path, code, message):
    (tmp_path / "outside.csv").write_text("x\n")
    before = tree(ml_project)
    git_before = run(["git", "status", "--porcelain"], cwd=ml_project).stdout
    result = opsctl_inprocess("data", "add", make_path(ml_project, tmp_path), cwd=ml_project)
    assert result.returncode == code, result.stderr
    assert message in result.stderr.splitlines()[0]
    assert "Traceback" not in result.stderr
    assert tree(ml_project) == before
    assert run(["git", "status", "--porcelain"], cwd=ml_project).stdout == git_before


def test_data_commands_outside_a_project(tmp_path):
    for args in (["data", "status"], ["data", "add", "x"], ["data", "remote", "list"]):
        assert opsctl_inprocess(*args, cwd=tmp_path).returncode == 3


def test_unreachable_local_remote_is_reported_and_nothing_lost(ml_project, tmp_path):
    # A remote directory we cannot write to: a path under a regular file.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    opsctl_inprocess("data", "remote", "add", "broken", str(blocker / "store"), "--default", cwd=ml_project, check=True)
    (ml_project / "data" / "more.csv").write_text("b\n2\n")
    opsctl_inprocess("data", "add", "data/more.csv", cwd=ml_project, check=True)
    before = tree(ml_project)
    result = opsctl_inprocess("data", "push", cwd=ml_project)
    assert result.returncode == 4, result.stderr
    assert "remote 'broken'" in result.stderr.splitlines()[0]
    assert tree(ml_project) == before  # cache, workspace and .dvc files untouched

    opsctl_inprocess("data", "remote", "default", "storage", cwd=ml_project, check=True)
    assert opsctl_json(ml_project, "data", "push")["files"] >= 1


HOLD_LOCK = """
import sys, time, zc.lockfile
lock = zc.lockfile.LockFile(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_dvc_lock(project: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [PYTHON, "-c", HOLD_LOCK, str(project / ".dvc" / "tmp" / "lock"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_command_waits_for_the_lock_then_proceeds(ml_project):
    (ml_project / "data" / "late.csv").write_text("c\n")
    holder = _hold_dvc_lock(ml_project, 2.0)
    try:
        result = opsctl_inprocess("data", "add", "data/late.csv", cwd=ml_project, env={"OPSCTL_LOCK_TIMEOUT": "20"})
    finally:
        holder.wait()
    assert result.returncode == 0, result.stderr
    assert (ml_project / "data" / "late.csv.dvc").exists()


def test_lock_held_too_long_is_a_clear_error(ml_project):
    (ml_project / "data" / "late.csv").write_text("c\n")
    holder = _hold_dvc_lock(ml_project, 30.0)
    try:
        result = opsctl_inprocess("data", "add", "data/late.csv", cwd=ml_project, env={"OPSCTL_LOCK_TIMEOUT": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    # The holder is named: its pid (and command line, as far as /proc tells).
    assert result.stderr.splitlines()[0].startswith(
        f"error: another DVC or opsctl command holds this project's lock (waited 1 s): pid {holder.pid} ("
    ), result.stderr
    assert "OPSCTL_LOCK_TIMEOUT" in result.stderr
    assert not (ml_project / "data" / "late.csv.dvc").exists()


def test_interrupted_add_keeps_the_users_files(ml_project):
    big = ml_project / "data" / "big"
    make_files(big, 3000, 64 * 1024)  # ~190 MB: 1500 files could be added whole before the first Ctrl-C at 0.8 s
    before = sums(big)
    interrupted = 0
    for delay in (0.8, 1.6, 2.4):
        proc = subprocess.Popen(
            [PYTHON, "-m", "opsctl", "data", "add", "data/big"],
            cwd=ml_project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=300)
        assert sums(big) == before, f"files changed after Ctrl-C at {delay}s"
        assert "Traceback" not in err
        if proc.returncode == 130:
            interrupted += 1
            if (ml_project / "data" / "big.dvc").exists():
                # Interrupted after DVC wrote the .dvc file (while staging it): then the add is complete.
                assert "up to date" in dvc(ml_project, "status", "data/big.dvc").stdout
        else:
            assert proc.returncode == 0 and (ml_project / "data" / "big.dvc").exists()
            break
    assert interrupted, "the add finished before any interrupt: make the data bigger"
    # A later add still works and records exactly those bytes.
    result = opsctl_inprocess("data", "add", "data/big", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert sums(big) == before
    assert "up to date" in dvc(ml_project, "status", "data/big.dvc").stdout


def test_bad_jobs_and_unknown_remote(ml_project):
    assert opsctl_inprocess("data", "push", "-j", "0", cwd=ml_project).returncode == 2
    unknown = opsctl_inprocess("data", "push", "--remote", "nowhere", cwd=ml_project)
    assert unknown.returncode == 1 and "no remote named 'nowhere'" in unknown.stderr
