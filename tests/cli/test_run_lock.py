"""One run at a time per project: `opsctl run` holds DVC's repository lock
(``.dvc/tmp/lock``, the one `dvc repro` holds) for its whole length, so two runs,
or a run and `dvc repro`, never write the same outputs at once. The loser is
refused with one line naming the holder. Real Git, real DVC, local executor."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import yaml

from tests.cli.test_run import make_project
from tests.conftest import PYTHON, run, run_opsctl

RESULT = "output/result.txt"
BUSY = "error: another run holds this project: pid {pid} ({command})"


def gated_stage(release: Path) -> dict:
    """A stage that writes a first line, waits until RELEASE exists (at most 60 s), then a
    second line: two runs writing at once would mix their lines."""
    wait = f'i=0; while [ ! -f "{release}" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done'
    cmd = f'mkdir -p output && echo "begin $$" > {RESULT} && {wait} && echo "end $$" >> {RESULT}'
    return {"work": {"cmd": cmd, "outs": [RESULT]}}


def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )


def opsctl(*args: str) -> list[str]:
    return [PYTHON, "-m", "opsctl", *args]


def wait_until(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def began(root: Path) -> bool:
    path = root / RESULT
    return path.is_file() and path.read_text().startswith("begin")


def finish(proc: subprocess.Popen, release: Path | None = None, timeout: float = 60.0) -> tuple[int, str, str]:
    """Wait for PROC; if it does not end within TIMEOUT (old code: it runs the gated stage
    too), let the stage finish so nothing hangs, and report it as not refused."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if release is not None:
            release.touch()
        stdout, stderr = proc.communicate(timeout=120)
        return -999, stdout, stderr + "\n(did not end while the other run held the project)"
    return proc.returncode, stdout, stderr


def first_line(stream, timeout: float = 60.0) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, "no line within the timeout"
    return lines[0]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def lock_out_hash(root: Path) -> str:
    entry = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["work"]
    return entry["outs"][0]["md5"]


def runs(root: Path) -> list[dict]:
    result = run_opsctl("runs", "list", "--json", "--limit", "100", cwd=root, check=True)
    return json.loads(result.stdout)


def recorded_out_hash(root: Path, run_id: str) -> str:
    detail = json.loads(run_opsctl("runs", "show", run_id, "--json", cwd=root, check=True).stdout)
    (stage,) = detail["stages"]
    return {o["path"]: o["hash"] for o in stage["outs"]}[RESULT]


def assert_one_whole_result(root: Path) -> None:
    lines = (root / RESULT).read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("begin ") and lines[1].startswith("end "), lines
    assert lines[0].split()[1] == lines[1].split()[1], f"two runs wrote the output: {lines}"
    assert lock_out_hash(root) == md5(root / RESULT)


def test_second_run_is_refused_naming_the_first(tmp_path):
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    first = start(opsctl("run", "--executor", "local", "-j", "1"), root)
    try:
        wait_until(lambda: began(root), what="the first run's stage")
        second = start(opsctl("run", "--executor", "local"), root)
        code, _out, err = finish(second, release)
    finally:
        release.touch()
        first_code, _first_out, first_err = finish(first)
    assert code == 1, err
    lines = err.splitlines()
    assert lines[0] == BUSY.format(pid=first.pid, command="opsctl run --executor local -j 1"), err
    assert "--wait" in lines[1] and len(lines) == 2, err
    assert first_code == 0, first_err
    assert_one_whole_result(root)
    # The refused run left no record: one run, the first, and its hash is the file's.
    (only,) = runs(root)
    assert only["status"] == "succeeded"
    assert recorded_out_hash(root, only["id"]) == md5(root / RESULT)


def test_refused_run_leaves_its_param_overrides_unapplied(tmp_path):
    release = tmp_path / "release"
    stages = gated_stage(release)
    stages["work"]["params"] = ["x"]
    root = make_project(tmp_path / "p", stages, params={"x": 1})
    first = start(opsctl("run", "--executor", "local"), root)
    try:
        wait_until(lambda: began(root), what="the first run's stage")
        code, _out, err = finish(start(opsctl("run", "--executor", "local", "-S", "x=2"), root), release)
        dry = run_opsctl("run", "--dry-run", "-S", "x=3", cwd=root, timeout=60)
        status = run_opsctl("status", cwd=root, timeout=60)
    finally:
        release.touch()
        first_code, _first_out, first_err = finish(first)
    assert code == 1, err
    assert err.startswith("error: another run holds this project: pid ") and len(err.splitlines()) == 2, err
    # A dry run with -S would change params.yaml under the running stage: refused, naming the run.
    assert dry.returncode == 1, dry.stderr
    assert dry.stderr.startswith(f"error: another run holds this project: pid {first.pid} ("), dry.stderr
    assert "Traceback" not in dry.stderr
    # Status only reads (dvc.lock is only ever replaced whole): it answers during the run.
    assert status.returncode == 0, status.stderr
    assert "work" in status.stdout
    assert yaml.safe_load((root / "params.yaml").read_text()) == {"x": 1}
    assert first_code == 0, first_err
    assert_one_whole_result(root)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], cwd=root).stdout


def test_dvc_repro_is_refused_while_opsctl_runs(tmp_path):
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    first = start(opsctl("run", "--executor", "local"), root)
    try:
        wait_until(lambda: began(root), what="opsctl run's stage")
        code, _out, err = finish(start(["dvc", "repro"], root), release)
    finally:
        release.touch()
        first_code, _first_out, first_err = finish(first)
    assert code != 0 and "Unable to acquire lock" in err, err
    assert first_code == 0, first_err
    assert_one_whole_result(root)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], cwd=root).stdout


def test_opsctl_run_is_refused_while_dvc_repro_runs(tmp_path):
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    repro = start(["dvc", "repro"], root)
    try:
        wait_until(lambda: began(root), what="dvc repro's stage")
        code, _out, err = finish(start(opsctl("run", "--executor", "local"), root), release)
        # Status reads without the lock, but dvc repro is writing the stage's outputs: it says who.
        status = run_opsctl("status", cwd=root, timeout=60)
    finally:
        release.touch()
        repro_code, _repro_out, repro_err = finish(repro)
    assert code == 1, err
    assert err.splitlines()[0] == BUSY.format(pid=repro.pid, command="dvc repro"), err
    assert status.returncode == 1, status.stderr
    assert status.stderr.splitlines()[0] == BUSY.format(pid=repro.pid, command="dvc repro"), status.stderr
    assert repro_code == 0, repro_err
    assert_one_whole_result(root)
    assert runs(root) == []


def test_opsctl_run_and_dvc_repro_started_together_never_interleave(tmp_path):
    for attempt in range(3):
        release = tmp_path / f"release{attempt}"
        root = make_project(tmp_path / f"p{attempt}", gated_stage(release))
        procs = [start(["dvc", "repro"], root), start(opsctl("run", "--executor", "local"), root)]
        try:
            wait_until(lambda: began(root), what="either stage")  # noqa: B023
            # The loser gives up while the winner's stage waits (DVC retries for 3 s).
            wait_until(lambda: any(p.poll() is not None for p in procs), timeout=30, what="one to give up")  # noqa: B023
        finally:
            release.touch()
            results = [finish(p) for p in procs]
        assert sorted(code == 0 for code, _out, _err in results) == [False, True], results
        code, _out, err = results[1]
        if code != 0:  # opsctl lost: it says who won
            assert err.startswith(f"error: another run holds this project: pid {procs[0].pid} (dvc repro)"), err
        assert_one_whole_result(root)


def test_parallel_forced_runs_record_only_their_own_output(tmp_path):
    cmd = f'mkdir -p output && echo "begin $$" > {RESULT} && sleep 1 && echo "end $$" >> {RESULT} && cat {RESULT}'
    root = make_project(tmp_path / "p", {"work": {"cmd": cmd, "outs": [RESULT]}})
    procs = [start(opsctl("run", "--force", "--executor", "local", "--json"), root) for _ in range(4)]
    results = [finish(p, timeout=120) for p in procs]
    for code, _out, err in results:
        assert code in (0, 1), err
        if code == 1:
            assert err.startswith("error: another run holds this project: pid "), err
    succeeded = [r for r in runs(root) if r["status"] == "succeeded"]
    assert succeeded and len(succeeded) == sum(code == 0 for code, _o, _e in results)
    for record in runs(root):
        assert record["status"] == "succeeded", record
        # What the stage itself saw at its end (its log) is what the run recorded.
        log = next((root / ".opsctl" / "runs" / record["id"]).glob("*.log")).read_text()
        assert len(log.splitlines()) == 2, log
        assert recorded_out_hash(root, record["id"]) == hashlib.md5(log.encode()).hexdigest(), record["id"]
    assert_one_whole_result(root)


def test_killed_run_releases_the_project(tmp_path):
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    first = start(opsctl("run", "--executor", "local"), root)
    try:
        wait_until(lambda: began(root), what="the first run's stage")
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        release.touch()  # the orphaned stage command ends too
    wait_until(lambda: len((root / RESULT).read_text().splitlines()) == 2, what="the orphaned stage command")
    result = run_opsctl("run", "--executor", "local", cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_one_whole_result(root)


def test_interrupted_run_releases_the_project(tmp_path):
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    first = start(opsctl("run", "--executor", "local"), root)
    try:
        wait_until(lambda: began(root), what="the first run's stage")
        first.send_signal(signal.SIGINT)
        code, _out, err = finish(first, timeout=120)
    finally:
        release.touch()
    assert code == 130, err
    result = run_opsctl("run", "--executor", "local", cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_one_whole_result(root)


def test_wait_starts_the_second_run_when_the_first_ends(tmp_path):
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    first = start(opsctl("run", "--executor", "local"), root)
    try:
        wait_until(lambda: began(root), what="the first run's stage")
        second = start(opsctl("run", "--executor", "local", "--force", "--wait"), root)
        said = first_line(second.stderr)  # before anything else happens
        assert said == f"waiting for pid {first.pid} (opsctl run --executor local) to finish (it holds this project)\n"
        assert second.poll() is None and len((root / RESULT).read_text().splitlines()) == 1
    finally:
        release.touch()
        first_code, _first_out, first_err = finish(first)
    code, _out, err = finish(second, timeout=120)
    assert first_code == 0, first_err
    assert code == 0, err
    assert_one_whole_result(root)
    assert [r["status"] for r in runs(root)] == ["succeeded", "succeeded"]


HOLD_LOCK = """
import sys, time, zc.lockfile
lock = zc.lockfile.LockFile(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_short_command_holding_the_lock_is_waited_for_then_named(tmp_path):
    root = make_project(tmp_path / "p", {"work": {"cmd": f"mkdir -p output && echo hi > {RESULT}", "outs": [RESULT]}})
    holder = start([PYTHON, "-c", HOLD_LOCK, str(root / ".dvc" / "tmp" / "lock"), "60"], root)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run_opsctl("run", "--executor", "local", cwd=root, env={"OPSCTL_LOCK_TIMEOUT": "1"}, timeout=60)
    finally:
        holder.kill()
        holder.communicate()
    assert result.returncode == 1, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(
        f"error: another DVC or opsctl command holds this project's lock (waited 1 s): pid {holder.pid} (python -c "
    ), first
    assert not (root / RESULT).exists() and runs(root) == []
    # Once it is gone, the run goes ahead.
    assert run_opsctl("run", "--executor", "local", cwd=root, timeout=120).returncode == 0
    assert (root / RESULT).read_text() == "hi\n"


def test_the_holder_is_named_as_the_user_typed_it():
    from opsctl.adapters.dvc_lock import LockHolder, _as_typed

    assert _as_typed(["/usr/bin/python3.11", "-u", "-m", "opsctl", "run", "-j", "2"]) == ("opsctl", "run", "-j", "2")
    assert _as_typed(["/venv/bin/python", "/venv/bin/dvc", "repro"]) == ("dvc", "repro")
    assert _as_typed(["/venv/bin/opsctl", "status"]) == ("opsctl", "status")
    assert LockHolder(5, ("opsctl", "run", "-S", "a=b c")).describe() == "pid 5 (opsctl run -S 'a=b c')"
    assert LockHolder(5).describe() == "pid 5" and LockHolder(None).describe() == "another process"
    runs_ = [("opsctl", "run"), ("opsctl", "-q", "run", "train"), ("dvc", "repro"), ("dvc", "exp", "run")]
    others = [("opsctl", "run", "--dry-run"), ("opsctl", "status"), ("dvc", "add", "data"), ("python", "-c", "x")]
    assert all(LockHolder(5, argv).is_run for argv in runs_)
    assert not any(LockHolder(5, argv).is_run for argv in others)
    assert LockHolder(5, ("dvc", "commit"), in_stage=True).is_run  # DVC is running a stage's command


def test_a_data_command_during_a_run_is_refused_at_once_naming_the_run(tmp_path):
    """A run holds the project for as long as its stages take: `data add` says so instead of
    waiting out its lock timeout (set long here: the refusal must come while the run goes on)."""
    release = tmp_path / "release"
    root = make_project(tmp_path / "p", gated_stage(release))
    (root / "data.csv").write_text("a,b\n1,2\n")
    first = start(opsctl("run", "--executor", "local"), root)
    try:
        wait_until(lambda: began(root), what="the run's stage")
        added = run_opsctl("data", "add", "data.csv", cwd=root, timeout=120, env={"OPSCTL_LOCK_TIMEOUT": "60"})
        still_running = first.poll() is None
    finally:
        release.touch()
        first_code, _first_out, first_err = finish(first)
    assert added.returncode == 1, added.stderr
    assert (
        added.stderr.splitlines()[0]
        == f"error: a run holds this project: pid {first.pid} (opsctl run --executor local)"
    )
    assert still_running, "data add waited for the run to end"
    assert not (root / "data.csv.dvc").exists()
    assert first_code == 0, first_err
    assert_one_whole_result(root)
