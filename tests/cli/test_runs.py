"""`opsctl run` records and `opsctl runs list|show|compare|logs`, on real Git + DVC
projects with the local executor: succeeded, failed, all-cached, interrupted and
killed runs; filters, sorting, prefixes, logs, secrets and the end-of-run summary."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli.test_run import make_project
from tests.conftest import opsctl_inprocess, run, run_opsctl

# -- helpers -------------------------------------------------------------------------------

SCORE_SH = """\
x=$(sed -n 's/^x: //p' params.yaml)
fail=$(sed -n 's/^fail: //p' params.yaml)
echo "scoring x=$x"
if [ "$fail" != "0" ]; then echo "refusing to score"; exit 3; fi
printf '{"m": 0.%s, "x_seen": %s}\\n' "$x" "$x" > metrics.json
"""

SCORE_STAGES = {
    "score": {
        "cmd": "sh score.sh",
        "deps": ["score.sh"],
        "params": ["x", "fail"],
        "metrics": [{"metrics.json": {"cache": False}}],
    },
    "report": {
        "cmd": "echo reporting; cat metrics.json > report.txt",
        "deps": ["metrics.json"],
        "outs": ["report.txt"],
    },
}


def opsctl_ok(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = opsctl_inprocess(*args, cwd=root, env=env)
    assert result.returncode == 0, f"opsctl {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def runs_json(root: Path, *args: str) -> list | dict:
    return json.loads(opsctl_ok(root, "runs", *args, "--json").stdout)


def newest_run(root: Path) -> dict:
    return runs_json(root, "list", "--limit", "1")[0]


def head(root: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], cwd=root).stdout.strip()


def lock_hashes(root: Path, stage: str) -> dict[str, dict[str, str]]:
    """dvc.lock's md5 of every dep and out of a stage: {"deps": {path: md5}, "outs": {...}}."""
    entry = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]
    return {kind: {item["path"]: item["md5"] for item in entry.get(kind, [])} for kind in ("deps", "outs")}


def shared_project(tmp_path_factory, name: str, build: Callable[[Path], dict]) -> dict:
    """``build(directory)`` once per test session, shared by every xdist worker (a file lock
    in the run's common temp directory): tests only read it, and copy it to change it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # popen-gwN's parent: the same for all workers of this run
    info = base / f"{name}.json"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not info.exists():
            directory = base / name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            info.write_text(json.dumps(build(directory)))
    return json.loads(info.read_text())


def copy_project(src: Path, dest: Path) -> Path:
    """A private copy of a shared project. The store's -wal/-shm files are left behind: they
    come and go as other workers read the original (its WAL is empty once the runs ended)."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("opsctl.db-wal", "opsctl.db-shm"))
    return dest


def run_json(root: Path, *args: str, code: int = 0, env: dict | None = None) -> dict:
    """``opsctl run --executor local ARGS --json``: the run's report (its run_id among it)."""
    result = opsctl_inprocess("run", "--executor", "local", *args, "--json", cwd=root, env=env)
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def _build_history(directory: Path) -> dict:
    root = make_project(directory / "p", SCORE_STAGES, params={"x": 2, "fail": 0}, files={"score.sh": SCORE_SH})
    ids, heads = [], []
    for args, code in [((), 0), (("-S", "x=5"), 0), (("-S", "x=8"), 0), (("-S", "fail=1"), 5)]:
        heads.append(head(root))
        ids.append(run_json(root, "-j", "1", *args, code=code)["run_id"])
        time.sleep(0.02)  # distinct start times
    return {"root": str(root), "ids": ids, "heads": heads}


@pytest.fixture(scope="session")
def history(tmp_path_factory) -> dict:
    """A small project with four recorded runs: x=2 (m=0.2), x=5 (m=0.5), x=8 (m=0.8),
    then a failed one (score exits 3, report never starts). Read only: copy it to change it."""
    data = shared_project(tmp_path_factory, "runs-history", _build_history)
    return {**data, "root": Path(data["root"])}


@pytest.fixture
def history_copy(history, tmp_path) -> Path:
    return copy_project(history["root"], tmp_path / "p")


# -- what is recorded ----------------------------------------------------------------------


def test_succeeded_and_failed_runs_are_recorded_with_their_stages(history):
    root, (r1, r2, r3, r4) = history["root"], history["ids"]
    listed = runs_json(root, "list")
    assert [r["id"] for r in listed] == [r4, r3, r2, r1]  # newest first
    assert [r["status"] for r in listed] == ["failed", "succeeded", "succeeded", "succeeded"]
    ok = runs_json(root, "show", r3)
    assert ok["status"] == "succeeded"
    assert {s["name"]: s["outcome"] for s in ok["stages"]} == {"score": "ran", "report": "ran"}
    assert ok["stage_counts"] == {"ran": 2, "cached": 0, "failed": 0, "skipped": 0}
    failed = runs_json(root, "show", r4)
    assert failed["status"] == "failed"
    stages = {s["name"]: s for s in failed["stages"]}
    assert stages["score"]["outcome"] == "failed" and stages["score"]["exit_code"] == 3
    assert "3" in stages["score"]["detail"]
    # the dependant never started: recorded as skipped, with no exit code and no log
    assert stages["report"]["outcome"] == "skipped"
    assert stages["report"]["exit_code"] is None
    assert failed["stage_counts"]["failed"] == 1 and failed["stage_counts"]["ran"] == 0
    assert failed["params"]["fail"] == 1


def test_run_fully_restored_from_the_run_cache_is_a_succeeded_run_of_cached_stages(history_copy):
    before = {r["id"] for r in runs_json(history_copy, "list")}
    result = opsctl_inprocess("run", "--executor", "local", "-j", "1", "-S", "fail=0", "-S", "x=5", cwd=history_copy)
    assert result.returncode == 0, result.stderr
    new = newest_run(history_copy)
    assert new["id"] not in before
    assert new["status"] == "succeeded"
    assert new["stages"] == {"ran": 0, "cached": 2, "failed": 0, "skipped": 0}
    detail = runs_json(history_copy, "show", new["id"])
    assert {s["name"]: s["outcome"] for s in detail["stages"]} == {"score": "cached", "report": "cached"}
    assert detail["metrics"]["m"] == 0.5 and detail["params"]["x"] == 5


def test_a_run_with_nothing_stale_records_nothing(history_copy):
    opsctl_inprocess("run", "--executor", "local", "-S", "fail=0", cwd=history_copy, check=True)
    before = runs_json(history_copy, "list", "--limit", "100")
    result = opsctl_inprocess("run", "--executor", "local", cwd=history_copy)
    assert result.returncode == 0 and "up to date" in result.stderr, result.stderr
    assert runs_json(history_copy, "list", "--limit", "100") == before


def test_show_records_code_params_metrics_and_dvc_hashes(history):
    root, ids = history["root"], history["ids"]
    detail = runs_json(root, "show", ids[2][:6])  # a unique prefix
    assert detail["id"] == ids[2]
    assert detail["git_commit"] == history["heads"][2]
    assert detail["params"] == {"x": 8, "fail": 0}
    assert detail["metrics"] == {"m": 0.8, "x_seen": 8}
    assert detail["executor"] == "local" and detail["jobs"] == 1
    stages = {s["name"]: s for s in detail["stages"]}
    score = stages["score"]
    assert score["cmd"] == "sh score.sh" and score["image"] is None and score["exit_code"] == 0
    assert score["duration"] > 0
    log = root / score["log"]  # relative to the project: a moved or copied project keeps its logs
    assert not Path(score["log"]).is_absolute()
    assert log.is_file() and "scoring x=8" in log.read_text()
    assert log.parent.name == ids[2]
    # the hashes are DVC's: the run was the last to touch these stages, so dvc.lock agrees
    lock = lock_hashes(root, "report")
    assert {d["path"]: d["hash"] for d in stages["report"]["deps"]} == lock["deps"]
    assert {o["path"]: o["hash"] for o in stages["report"]["outs"]} == lock["outs"]
    assert [d["path"] for d in score["deps"]] == ["score.sh"]
    assert [o["path"] for o in score["outs"]] == ["metrics.json"]
    (params,) = score["params"]
    assert params["path"] == "params.yaml" and json.loads(params["hash"]) == {"x": 8, "fail": 0}


def test_show_text_output(history):
    root, ids = history["root"], history["ids"]
    result = opsctl_ok(root, "runs", "show", ids[3][:8])
    assert f"run       {ids[3]}" in result.stdout
    assert "status    failed" in result.stdout
    assert re.search(r"^score\tfailed\t.*\t3\t", result.stdout, re.M), result.stdout
    assert re.search(r"^report\tskipped\t", result.stdout, re.M), result.stdout
    assert "  x = 8" in result.stdout


def test_a_clean_committed_tree_is_not_dirty(tmp_path):
    """A plain Git + DVC project, everything committed: the run's record must say dirty=false.
    (The run store and logs opsctl itself writes under .opsctl/ are not the user's changes.)"""
    root = make_project(tmp_path / "p", {"a": {"cmd": "echo a > a.txt", "outs": ["a.txt"]}})
    assert run(["git", "status", "--porcelain"], cwd=root).stdout == ""
    at = head(root)
    detail = runs_json(root, "show", run_json(root)["run_id"])
    assert detail["git_commit"] == at
    assert detail["dirty"] is False, f"clean tree recorded as dirty (diff_hash {detail['diff_hash']})"
    assert detail["diff_hash"] is None


def test_unknown_short_and_ambiguous_prefixes_are_usage_errors(history_copy, history):
    ids = history["ids"]
    unknown = next(p for p in ("ffff0", "00000", "abcd9") if not any(i.startswith(p) for i in ids))
    result = opsctl_inprocess("runs", "show", unknown, cwd=history_copy)
    assert result.returncode == 2 and f"no run '{unknown}'" in result.stderr
    assert opsctl_inprocess("runs", "show", "not-hex", cwd=history_copy).returncode == 2
    result = opsctl_inprocess("runs", "show", ids[0][:3], cwd=history_copy)
    assert result.returncode == 2 and "at least 4 characters" in result.stderr
    # a second run id sharing the first 6 characters of a real one, written through the store
    from opsctl.store import NewRun, RunRecord, RunStore

    twin = ids[0][:6] + ("000000" if not ids[0].endswith("000000") else "111111")
    with RunStore(history_copy / ".opsctl" / "opsctl.db") as store:
        store.record_run(RunRecord(NewRun(id=twin, started=time.time()), "succeeded", time.time()))
    result = opsctl_inprocess("runs", "show", ids[0][:6], cwd=history_copy)
    assert result.returncode == 2, result.stdout
    assert "matches several runs" in result.stderr and ids[0] in result.stderr and twin in result.stderr
    assert runs_json(history_copy, "show", ids[0])["id"] == ids[0]  # the full id still works


# -- runs list -----------------------------------------------------------------------------


def test_list_json_fields(history):
    root, ids = history["root"], history["ids"]
    (row,) = [r for r in runs_json(root, "list") if r["id"] == ids[1]]
    assert {"id", "status", "started", "duration", "git_commit", "dirty", "stages", "metrics"} <= set(row)
    assert row["status"] == "succeeded" and row["git_commit"] == history["heads"][1]
    assert isinstance(row["dirty"], bool)
    assert row["duration"] > 0 and row["started"] < time.time()
    assert row["stages"] == {"ran": 2, "cached": 0, "failed": 0, "skipped": 0}
    assert row["metrics"] == {"m": 0.5, "x_seen": 5}


def test_list_limit_status_where_and_sort(history):
    root, (r1, r2, r3, r4) = history["root"], history["ids"]

    def ids(*args):
        return [r["id"] for r in runs_json(root, "list", *args)]

    assert ids("--limit", "2") == [r4, r3]
    assert ids("--status", "failed") == [r4]
    assert ids("--status", "succeeded") == [r3, r2, r1]
    assert ids("--where", "params.x>4") == [r4, r3, r2]
    assert ids("--where", "params.x>1", "--where", "params.fail=0") == [r3, r2, r1]
    assert ids("--where", "metrics.m<0.5") == [r1]
    assert ids("--where", "metrics.m>=0.5", "--status", "succeeded") == [r3, r2]
    # highest first by default, lowest first with +; a run without the metric comes last either way
    assert ids("--sort", "metrics.m")[:3] == [r3, r2, r1]
    assert ids("--sort", "+metrics.m")[:3] == [r1, r2, r3]
    assert ids("--sort", "+params.x", "--status", "succeeded") == [r1, r2, r3]


def test_list_off_a_terminal_is_tsv_with_a_header(history):
    root, ids = history["root"], history["ids"]
    result = opsctl_ok(root, "runs", "list", "--limit", "3")
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    header = lines[0]
    assert header[:6] == ["run", "status", "started", "duration", "commit", "stages"]
    assert "m" in header
    assert [row[0] for row in lines[1:]] == [ids[3][:8], ids[2][:8], ids[1][:8]]
    assert all(len(row) == len(header) for row in lines[1:])
    by_id = {row[0]: dict(zip(header, row)) for row in lines[1:]}
    assert by_id[ids[2][:8]]["status"] == "succeeded" and by_id[ids[2][:8]]["m"] == "0.8"
    assert by_id[ids[3][:8]]["status"] == "failed"
    assert "3 of 4 runs" in result.stderr


def test_list_without_runs_says_so(tmp_path):
    root = make_project(tmp_path / "p", {"a": {"cmd": "echo a > a.txt", "outs": ["a.txt"]}})
    result = opsctl_ok(root, "runs", "list")
    assert result.stdout == ""
    assert "No runs yet: `opsctl run`" in result.stderr
    assert runs_json(root, "list") == []


@pytest.mark.parametrize(
    "args",
    [
        ["--where", "params.x"],  # no operator
        ["--where", "bogus.x>1"],  # neither params nor metrics
        ["--where", "metrics>1"],  # no key
        ["--sort", "bogus"],
        ["--status", "exploded"],
        ["--limit", "0"],
    ],
)
def test_malformed_list_options_are_usage_errors(history, args):
    result = opsctl_inprocess("runs", "list", *args, cwd=history["root"])
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


# -- compare -------------------------------------------------------------------------------


def test_compare_side_by_side_with_deltas(history):
    root, (r1, _r2, r3, _r4) = history["root"], history["ids"]
    comparison = runs_json(root, "compare", r1[:6], r3[:6])
    assert comparison["runs"] == [r1, r3]
    rows = {row["key"]: row for row in comparison["rows"]}
    assert set(rows) == {"params.x", "params.fail", "metrics.m", "metrics.x_seen"}
    assert rows["params.x"]["values"] == [2, 8] and rows["params.x"]["changed"] is True
    assert rows["params.x"]["deltas"][1] == 6
    assert rows["params.fail"]["values"] == [0, 0] and rows["params.fail"]["changed"] is False
    assert rows["params.fail"]["deltas"][1] == 0
    assert rows["metrics.m"]["changed"] is True
    assert rows["metrics.m"]["deltas"][1] == pytest.approx(0.6)  # B - A
    assert {k for k, row in rows.items() if row["changed"]} == {"params.x", "metrics.m", "metrics.x_seen"}
    assert rows["metrics.x_seen"]["values"] == [2, 8] and rows["metrics.x_seen"]["deltas"][1] == 6
    text = opsctl_ok(root, "runs", "compare", r1, r3)
    lines = {line.split("\t")[0]: line.split("\t") for line in text.stdout.splitlines()}
    assert lines["key"] == ["key", r1[:8], r3[:8], f"Δ {r3[:8]}"]
    assert lines["params.x"] == ["params.x", "2", "8", "+6"]
    assert "3 of 4 params and metrics differ" in text.stderr


def test_compare_needs_two_known_runs(history):
    root, ids = history["root"], history["ids"]
    assert opsctl_inprocess("runs", "compare", ids[0], cwd=root).returncode == 2
    assert opsctl_inprocess("runs", "compare", ids[0], "eeeeeeeeeeee", cwd=root).returncode == 2


# -- logs ----------------------------------------------------------------------------------


def test_logs_of_a_run_and_of_one_stage(history):
    root, ids = history["root"], history["ids"]
    everything = opsctl_ok(root, "runs", "logs", ids[2][:6])
    assert everything.stdout.splitlines() == ["score | scoring x=8", "report | reporting"]
    one = opsctl_ok(root, "runs", "logs", ids[2][:6], "score")
    assert one.stdout.splitlines() == ["scoring x=8"]
    failed = opsctl_ok(root, "runs", "logs", ids[3], "score")
    assert failed.stdout.splitlines() == ["scoring x=8", "refusing to score"]


def test_logs_of_an_unknown_stage_suggest_a_name(history):
    result = opsctl_inprocess("runs", "logs", history["ids"][2], "scor", cwd=history["root"])
    assert result.returncode == 2
    assert "no stage 'scor'" in result.stderr and "did you mean score?" in result.stderr


def test_logs_follow_on_a_finished_run_prints_and_exits(history):
    started = time.monotonic()
    result = run_opsctl("runs", "logs", "--follow", history["ids"][2], cwd=history["root"], timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["score | scoring x=8", "report | reporting"]
    assert time.monotonic() - started < 20


def test_logs_of_a_copied_project_are_printed_once(history, history_copy):
    """A copy of a project (cp -r, a moved checkout) has its own .opsctl/runs: each log
    line is printed once, from the copy, even while the original still exists."""
    run_id = history["ids"][2]
    everything = opsctl_ok(history_copy, "runs", "logs", run_id)
    assert everything.stdout.splitlines() == ["score | scoring x=8", "report | reporting"]
    one = opsctl_ok(history_copy, "runs", "logs", run_id, "score")
    assert one.stdout.splitlines() == ["scoring x=8"]


# -- secrets -------------------------------------------------------------------------------


def test_secret_environment_values_reach_neither_logs_nor_the_store(tmp_path):
    token = "tok-" + secrets.token_hex(12)
    root = make_project(
        tmp_path / "p",
        {
            "leak": {
                "cmd": 'echo "the token is $OPSCTL_TEST_TOKEN"; echo $OPSCTL_TEST_TOKEN > leak.txt',
                "outs": ["leak.txt"],
            }
        },
    )
    result = opsctl_inprocess("run", "--executor", "local", cwd=root, env={"OPSCTL_TEST_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert (root / "leak.txt").read_text().strip() == token  # the stage did see it
    assert token not in result.stdout + result.stderr
    assert "leak | the token is ***" in result.stdout
    run_id = newest_run(root)["id"]
    log = opsctl_ok(root, "runs", "logs", run_id)
    assert log.stdout.splitlines() == ["the token is ***"]
    shown = opsctl_ok(root, "runs", "show", run_id, "--json").stdout
    assert token not in shown
    needle = token.encode()
    store_files = glob.glob(str(root / ".opsctl" / "opsctl.db*"))
    assert store_files
    for path in [*store_files, *(str(p) for p in (root / ".opsctl").rglob("*") if p.is_file())]:
        assert needle not in Path(path).read_bytes(), f"the secret is in {path}"


# -- interrupted and killed runs -----------------------------------------------------------

SLOW_STAGES = {
    "quick": {"cmd": "echo quick > quick.txt", "outs": ["quick.txt"]},
    "slow": {"cmd": "echo started $$; exec sleep 60", "deps": ["quick.txt"], "outs": ["slow.txt"]},
    "after": {"cmd": "cp slow.txt after.txt", "deps": ["slow.txt"], "outs": ["after.txt"]},
}


def _start_slow_run(root: Path) -> tuple[subprocess.Popen, int]:
    """``opsctl run`` in the background (a process of its own, Ctrl-C not ignored), back
    once the slow stage's ``sleep`` runs: (the process, the sleep's pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsctl", "run", "--executor", "local", "-j", "1"],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for log in (root / ".opsctl" / "runs").glob("*/slow.log") if (root / ".opsctl" / "runs").is_dir() else []:
            found = re.search(r"started (\d+)", log.read_text())
            if found:
                time.sleep(0.3)  # let the shell exec the sleep
                return proc, int(found.group(1))
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"opsctl run ended before the slow stage started: {proc.returncode}\n{out}\n{err}")
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    pytest.fail("the slow stage never started")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too (its parent may not have reaped it yet)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_quietly(pid: int) -> None:
    """Kill the stage's orphaned ``sleep`` — only if that pid is still a sleep."""
    try:
        if b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


def test_ctrl_c_records_an_interrupted_run(tmp_path):
    root = make_project(tmp_path / "p", SLOW_STAGES)
    proc, sleep_pid = _start_slow_run(root)
    try:
        assert newest_run(root)["status"] == "running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        stage_stopped = _wait_gone(sleep_pid)
        _kill_quietly(sleep_pid)
    assert proc.returncode == 130, err
    assert stage_stopped, "Ctrl-C left the stage's process running"
    run_ = newest_run(root)
    assert run_["status"] == "interrupted"
    assert run_["duration"] is not None and run_["duration"] < 60
    detail = runs_json(root, "show", run_["id"])
    outcomes = {s["name"]: s["outcome"] for s in detail["stages"]}
    assert outcomes["quick"] == "ran"
    assert outcomes == {"quick": "ran", "slow": "interrupted", "after": "skipped"}


def test_killed_run_is_marked_interrupted_by_the_next_command(tmp_path):
    root = make_project(tmp_path / "p", SLOW_STAGES)
    proc, sleep_pid = _start_slow_run(root)
    try:
        running = newest_run(root)  # a live run is not reaped by a reader
        assert running["status"] == "running" and running["duration"] is None
        proc.kill()
        proc.communicate(timeout=30)  # reaped: its pid is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        _kill_quietly(sleep_pid)  # the stage was in a session of its own: orphaned, not killed
    assert proc.returncode == -signal.SIGKILL
    listed = runs_json(root, "list")
    assert [(r["id"], r["status"]) for r in listed] == [(running["id"], "interrupted")]
    assert listed[0]["duration"] is not None
    # the store is whole and readable
    detail = runs_json(root, "show", running["id"][:6])
    assert detail["status"] == "interrupted"
    assert {s["name"]: s["outcome"] for s in detail["stages"]}.get("quick") == "ran"
    with sqlite3.connect(root / ".opsctl" / "opsctl.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert runs_json(root, "list", "--status", "interrupted")[0]["id"] == running["id"]


# -- the end-of-run summary ----------------------------------------------------------------


def _build_ml_ran(directory: Path) -> dict:
    opsctl_inprocess("init", "ml", "--defaults", cwd=directory, check=True)
    root = directory / "ml"
    commit = head(root)  # the scaffold is committed: the tree is clean
    return {"root": str(root), "run": run_json(root)["run_id"], "commit": commit}


@pytest.fixture(scope="session")
def ml_ran(tmp_path_factory) -> dict:
    """The ml project after one `opsctl run --executor local` on its clean scaffold commit
    (all four stages recorded); made once for all workers. Read only: copy it to change it."""
    data = shared_project(tmp_path_factory, "ml-ran", _build_ml_ran)
    return {**data, "root": Path(data["root"])}


@pytest.fixture(scope="session")
def ml_twice(ml_ran, tmp_path_factory) -> dict:
    """ml_ran, committed, then run again with -S train.n_estimators=10. Read only."""

    def build(directory: Path) -> dict:
        root = copy_project(ml_ran["root"], directory / "ml")
        run(["git", "add", "-A"], cwd=root)
        run(["git", "commit", "-qm", "first model"], cwd=root)
        result = opsctl_inprocess("run", "--executor", "local", "-S", "train.n_estimators=10", "--json", cwd=root)
        assert result.returncode == 0, result.stderr
        return {
            "root": str(root),
            "run": json.loads(result.stdout)["run_id"],
            "commit": head(root),
            "stderr": result.stderr,
        }

    data = shared_project(tmp_path_factory, "ml-twice", build)
    return {**data, "root": Path(data["root"])}


def test_ml_run_on_a_clean_commit_records_it_with_dvc_hashes(ml_ran):
    root = ml_ran["root"]
    detail = runs_json(root, "show", ml_ran["run"])
    assert detail["git_commit"] == ml_ran["commit"] and detail["dirty"] is False and detail["diff_hash"] is None
    assert detail["branch"] == "main"
    assert [s["name"] for s in detail["stages"]] == ["prepare", "featurize", "train", "evaluate"]
    for stage in detail["stages"]:
        lock = lock_hashes(root, stage["name"])
        assert {d["path"]: d["hash"] for d in stage["deps"]} == lock["deps"], stage["name"]
        assert {o["path"]: o["hash"] for o in stage["outs"]} == lock["outs"], stage["name"]
        assert stage["outcome"] == "ran" and stage["exit_code"] == 0 and stage["image"] is None
    assert detail["params"]["train.n_estimators"] == 100
    assert set(detail["metrics"]) >= {"accuracy", "roc_auc"}


def test_second_run_summary_shows_metric_deltas_against_the_previous_run(ml_ran, ml_twice):
    root = ml_twice["root"]
    first = runs_json(root, "show", ml_ran["run"])
    second = runs_json(root, "show", ml_twice["run"])
    assert second["params"]["train.n_estimators"] == 10
    # -S changed params.yaml before the run: the code that ran is the commit plus that diff
    assert second["git_commit"] == ml_twice["commit"] and second["dirty"] is True and second["diff_hash"]
    assert {s["name"]: s["outcome"] for s in second["stages"]} == {"train": "ran", "evaluate": "ran"}
    stderr = ml_twice["stderr"]
    assert f"run {second['id']}: 2 ran, 0 cached" in stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("metrics: ")]
    assert line.endswith(f"(Δ vs run {first['id'][:8]})")
    assert second["metrics"] != first["metrics"]
    for key, value in second["metrics"].items():
        delta = value - first["metrics"][key]
        expected = f"{key} {value:.4g}" + (f" ({delta:+.4g})" if delta else " (=)")
        assert expected in line, (expected, line)


def test_list_filters_on_nested_params_and_sorts_by_metric(ml_ran, ml_twice):
    root, first, second = ml_twice["root"], ml_ran["run"], ml_twice["run"]

    def ids(*args):
        return [r["id"] for r in runs_json(root, "list", *args)]

    assert ids("--where", "params.train.n_estimators<50") == [second]
    assert ids("--where", "params.train.n_estimators=100") == [first]
    assert ids("--where", "params.train.model=random_forest") == [second, first]
    accuracies = {r["id"]: r["metrics"]["accuracy"] for r in runs_json(root, "list")}
    best_first = sorted(accuracies, key=lambda i: accuracies[i], reverse=True)
    if accuracies[first] != accuracies[second]:
        assert ids("--sort", "metrics.accuracy") == best_first
        assert ids("--sort", "+metrics.accuracy") == best_first[::-1]
