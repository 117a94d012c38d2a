"""RunSession.record with parallel stages: each stage's outputs are read (hashed, copied into
the cache) outside the session's mutex, and stages recorded at the same moment share one
dvc.lock write — which must still be whole, hold every entry, and equal `dvc repro`'s."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import yaml

from tests.conftest import git_dvc_project, run

PIPELINE = {
    "stages": {
        "one": {"cmd": "echo one > one.txt", "deps": ["in.txt"], "outs": ["one.txt"]},
        "many": {
            "cmd": "mkdir -p many && echo a > many/a.txt && echo b > many/b.txt",
            "deps": ["in.txt"],
            "outs": ["many"],
        },
    }
}


def _project(root):
    git_dvc_project(root)
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (root / "in.txt").write_text("input\n")
    return root


def _dvc_repro_lock(root, tmp_path) -> dict:
    """dvc.lock as `dvc repro` writes it for a copy of the pristine project."""
    copy = tmp_path / "by-dvc"
    shutil.copytree(root, copy, symlinks=True)
    run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=copy)
    return yaml.safe_load((copy / "dvc.lock").read_text())


def _cache_object(root, md5: str):
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _prepared(session, names):
    from opsctl.adapters.dvc_run import EXECUTE

    session.plan([])
    for name in names:
        assert session.prepare(name, recheck=False, use_run_cache=False) == EXECUTE
        subprocess.run(PIPELINE["stages"][name]["cmd"], shell=True, check=True, cwd=session.root)


def _record_in_threads(session, names) -> tuple[list[threading.Thread], dict]:
    results: dict = {}

    def record(name):
        try:
            results[name] = session.record(name)
        except Exception as exc:  # the test asserts on it
            results[name] = exc

    threads = [threading.Thread(target=record, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    return threads, results


def test_stages_recorded_at_once_write_one_whole_lock_equal_to_dvc_repro(tmp_path):
    from opsctl.adapters.dvc_run import RunSession

    root = _project(tmp_path / "p")
    expected = _dvc_repro_lock(root, tmp_path)
    with RunSession(root) as session:
        _prepared(session, ["one", "many"])
        # Both stages finish while another dvc.lock write is in progress: they queue, and
        # the one that gets the file next writes both entries at once.
        with session._lock_file_mutex:
            threads, results = _record_in_threads(session, ["one", "many"])
            deadline = time.monotonic() + 60
            while len(session._lock_pending) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(session._lock_pending) == 2, results  # both saved and committed, waiting
        for thread in threads:
            thread.join(timeout=60)
    assert sorted(results) == ["many", "one"]
    assert not any(isinstance(r, Exception) for r in results.values()), results
    assert yaml.safe_load((root / "dvc.lock").read_text()) == expected
    assert not list(root.glob(".dvc.lock.*"))  # no temporary file left
    status = run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root)
    assert status.stdout.strip() in ("{}", "")  # outputs committed to the cache: nothing to do
    for name, entry in expected["stages"].items():
        for out in entry["outs"]:
            assert _cache_object(root, out["md5"]).is_file(), (name, out)


def test_outputs_are_read_into_the_cache_outside_the_mutex(tmp_path):
    from opsctl.adapters.dvc_run import RunSession

    root = _project(tmp_path / "p")
    expected = _dvc_repro_lock(root, tmp_path)
    out_md5 = expected["stages"]["one"]["outs"][0]["md5"]
    with RunSession(root) as session:
        _prepared(session, ["one"])
        with session._mutex:  # another stage's DVC step holds the repo
            threads, results = _record_in_threads(session, ["one"])
            deadline = time.monotonic() + 60
            while not _cache_object(root, out_md5).is_file() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _cache_object(root, out_md5).is_file(), "the output was not hashed and cached while waiting"
            assert "one" not in results  # its lock entry waits for the mutex
        threads[0].join(timeout=60)
    assert not isinstance(results["one"], Exception), results
    assert yaml.safe_load((root / "dvc.lock").read_text())["stages"]["one"] == expected["stages"]["one"]


def test_a_stage_missing_its_output_writes_no_entry_beside_one_that_succeeds(tmp_path):
    from opsctl.adapters.dvc_run import RunSession, StageOutputMissing

    root = _project(tmp_path / "p")
    expected = _dvc_repro_lock(root, tmp_path)
    with RunSession(root) as session:
        _prepared(session, ["one", "many"])
        shutil.rmtree(root / "many")  # as a command that exited 0 without writing it
        threads, results = _record_in_threads(session, ["one", "many"])
        for thread in threads:
            thread.join(timeout=60)
    assert isinstance(results["many"], StageOutputMissing)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"] == {"one": expected["stages"]["one"]}
