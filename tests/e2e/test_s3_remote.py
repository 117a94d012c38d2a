"""`opsctl data` against a real S3 API: moto's server on 127.0.0.1, driven through
the CLI in subprocesses, checked with boto3 and with DVC's own CLI."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from configobj import ConfigObj

from tests.conftest import BIN, run, run_opsctl
from tests.e2e.moto_server import free_port

pytestmark = pytest.mark.slow

N_SMALL = 200
BIG = 5 * 1024 * 1024
# What we add; churn.csv is the template's own DVC-tracked file. (A target-less
# `pull` in the ml template also tries the pipeline's never-run outputs and fails,
# exactly as `dvc pull` does, so pulls here name what was added.)
DATA = ["data/bulk", "data/big.bin"]
TRACKED = [*DATA, "data/raw/churn.csv"]


def _make_data(project: Path) -> None:
    rng = random.Random(1234)
    bulk = project / "data" / "bulk"
    for i in range(N_SMALL):
        sub = bulk / f"part{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:03d}.bin").write_bytes(os.urandom(rng.randint(1, 8192)))
    (project / "data" / "big.bin").write_bytes(os.urandom(BIG))


def _files(project: Path, paths=TRACKED) -> list[Path]:
    found = []
    for rel in paths:
        p = project / rel
        found += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return found


def _digests(project: Path, algo: str = "sha256", paths=TRACKED) -> dict[str, str]:
    return {
        f.relative_to(project).as_posix(): hashlib.new(algo, f.read_bytes()).hexdigest() for f in _files(project, paths)
    }


def _json(result) -> dict:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def _add_s3_remote(project: Path, server, bucket: str, name: str = "s3") -> None:
    run_opsctl(
        "data",
        "remote",
        "add",
        name,
        f"s3://{bucket}/store",
        "--endpoint-url",
        server.endpoint,
        "--default",
        cwd=project,
        env=server.env,
        check=True,
    )


def _add_and_commit(project: Path, env: dict) -> dict:
    _make_data(project)
    added = _json(run_opsctl("data", "add", *DATA, "--json", cwd=project, env=env))
    assert sorted(a["path"] for a in added["added"]) == sorted(DATA)
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "Add data"], cwd=project)
    return added


def _remote_key(md5: str) -> str:
    return f"store/files/md5/{md5[:2]}/{md5[2:]}"


def test_s3_full_cycle(ml_project, tmp_path, moto_s3, s3_bucket):
    env = moto_s3.env
    twin = tmp_path / "twin"
    shutil.copytree(ml_project, twin, symlinks=True)

    # The remote is written exactly as `dvc remote add -d` + `dvc remote modify` write it.
    _add_s3_remote(ml_project, moto_s3, s3_bucket)
    run([str(BIN / "dvc"), "remote", "add", "-d", "s3", f"s3://{s3_bucket}/store"], cwd=twin, env={**os.environ, **env})
    run(
        [str(BIN / "dvc"), "remote", "modify", "s3", "endpointurl", moto_s3.endpoint],
        cwd=twin,
        env={**os.environ, **env},
    )
    ours, theirs = ConfigObj(str(ml_project / ".dvc" / "config")), ConfigObj(str(twin / ".dvc" / "config"))
    assert ours['remote "s3"'] == {"url": f"s3://{s3_bucket}/store", "endpointurl": moto_s3.endpoint}
    assert ours.dict() == theirs.dict()
    listed = {r["name"]: r for r in _json(run_opsctl("data", "remote", "list", "--json", cwd=ml_project, env=env))}
    assert listed["s3"]["default"] and listed["s3"]["options"] == {"endpointurl": moto_s3.endpoint}

    added = _add_and_commit(ml_project, env)
    before = _digests(ml_project)
    assert len(before) == N_SMALL + 2

    dvc_status = [str(BIN / "dvc"), "data", "status", "--json", "--not-in-remote"]
    not_in_remote = json.loads(run(dvc_status, cwd=ml_project, env={**os.environ, **env}).stdout)["not_in_remote"]
    assert {"data/big.bin", "data/bulk/"} <= set(not_in_remote)  # DVC sees the bucket, and it is empty

    pushed = _json(run_opsctl("data", "push", "--json", cwd=ml_project, env=env))
    assert pushed["direction"] == "push" and pushed["remote"] == "s3"
    assert pushed["url"] == f"s3://{s3_bucket}/store"
    assert pushed["files"] >= N_SMALL + 2, pushed  # + the directory's .dir manifest
    data_bytes = sum(f.stat().st_size for f in _files(ml_project))
    assert pushed["bytes"] == data_bytes, (pushed["bytes"], data_bytes)

    # Every file's object (DVC addresses them by md5) and the directory manifest are in the bucket.
    keys = moto_s3.keys(s3_bucket)
    expected = {_remote_key(md5) for md5 in _digests(ml_project, "md5").values()}
    expected |= {_remote_key(a["hash"]) for a in added["added"] if a["hash"].endswith(".dir")}
    assert expected <= keys, sorted(expected - keys)[:5]

    status = _json(run_opsctl("data", "status", "--json", cwd=ml_project, env=env))
    assert status == {"up_to_date": True, "remote": "s3", "remote_checked": True, "entries": []}
    after_push = run(dvc_status, cwd=ml_project, env={**os.environ, **env})
    assert not json.loads(after_push.stdout).get("not_in_remote"), after_push.stdout

    # Nothing left locally: no cache, no data. Pull brings back the same bytes from S3.
    shutil.rmtree(ml_project / ".dvc" / "cache")
    for rel in TRACKED:
        p = ml_project / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    pulled = _json(run_opsctl("data", "pull", *TRACKED, "--json", cwd=ml_project, env=env))
    assert pulled["direction"] == "pull" and pulled["remote"] == "s3"
    assert pulled["files"] >= N_SMALL + 2, pulled
    assert _digests(ml_project) == before
    assert pulled["bytes"] == data_bytes, (pulled["bytes"], data_bytes)

    status = _json(run_opsctl("data", "status", "--json", cwd=ml_project, env=env))
    assert status["up_to_date"], status


def test_s3_pull_into_fresh_clone(ml_project, tmp_path, moto_s3, s3_bucket):
    env = moto_s3.env
    _add_s3_remote(ml_project, moto_s3, s3_bucket)
    _add_and_commit(ml_project, env)
    _json(run_opsctl("data", "push", "--json", cwd=ml_project, env=env))
    before = _digests(ml_project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(ml_project), str(clone)])
    assert not (clone / "data" / "big.bin").exists() and not (clone / ".dvc" / "cache").exists()
    pulled = _json(run_opsctl("data", "pull", *TRACKED, "--json", cwd=clone, env=env))
    assert pulled["remote"] == "s3" and pulled["files"] >= N_SMALL + 2, pulled
    assert pulled["changed"] == ["data/big.bin", "data/bulk/", "data/raw/churn.csv"], pulled
    assert _digests(clone) == before


def _snapshot(root: Path) -> dict[str, bytes]:
    """Workspace and cache (everything but Git and DVC's scratch space in .dvc/tmp)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts and p.relative_to(root).parts[:2] != (".dvc", "tmp")
    }


def test_s3_unreachable_remote(ml_project, moto_s3, s3_bucket):
    env = moto_s3.env
    _add_s3_remote(ml_project, moto_s3, s3_bucket, name="good")
    _add_and_commit(ml_project, env)
    dead_port = free_port()  # bound and released: nothing listens there
    run_opsctl(
        "data",
        "remote",
        "add",
        "dead",
        f"s3://{s3_bucket}/store",
        "--endpoint-url",
        f"http://127.0.0.1:{dead_port}",
        "--default",
        cwd=ml_project,
        env=env,
        check=True,
    )

    snapshot = _snapshot(ml_project)
    fail_fast = {**env, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}
    started = time.monotonic()
    result = run_opsctl("data", "push", cwd=ml_project, env=fail_fast, timeout=120)
    elapsed = time.monotonic() - started
    print(f"push to an unreachable S3 endpoint failed after {elapsed:.1f} s")
    assert result.returncode == 4, (result.returncode, result.stdout, result.stderr)
    first_line = result.stderr.splitlines()[0]
    assert "'dead'" in first_line and "Traceback" not in result.stderr, result.stderr
    assert _snapshot(ml_project) == snapshot
    assert moto_s3.keys(s3_bucket) == set()

    status = run_opsctl("data", "status", cwd=ml_project, env=fail_fast, timeout=120)
    assert status.returncode == 4 and "'dead'" in status.stderr.splitlines()[0], status.stderr
    assert _snapshot(ml_project) == snapshot

    run_opsctl("data", "remote", "default", "good", cwd=ml_project, env=env, check=True)
    pushed = _json(run_opsctl("data", "push", "--json", cwd=ml_project, env=env))
    assert pushed["remote"] == "good" and pushed["files"] >= N_SMALL + 2, pushed
    expected = {_remote_key(md5) for md5 in _digests(ml_project, "md5").values()}
    assert expected <= moto_s3.keys(s3_bucket)
    after = _snapshot(ml_project)
    assert after.pop(".dvc/config") != snapshot.pop(".dvc/config")  # only the default remote changed
    assert after == snapshot  # a successful push changes nothing local either
