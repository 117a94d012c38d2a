"""``opsctl run --executor dask`` on real parts, all on 127.0.0.1: a ``dask scheduler`` and two
``dask worker`` processes, each with its own directory and DVC cache; one worker talks to a
second, empty Docker engine, so the image must travel through a real registry and the data
through a real S3 server (moto). Nothing is shared with the project but those two."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.conftest import PYTHON, git_dvc_project, run, run_opsctl
from tests.e2e.cluster_parts import DaskCluster, DaskWorker, running_dask_cluster
from tests.e2e.moto_server import HOST, free_port

pytestmark = pytest.mark.docker

DVC = [sys.executable, "-m", "dvc"]
BUSYBOX = "opsctl-test/busybox:latest"
RUN_LABEL = "org.opsctl.run"

# A fan-out of independent stages and a join. `part@2` asks for more memory than worker "small"
# declares, so it can only run on "big" (the worker on the second engine).
PIPELINE = {
    "stages": {
        "part": {
            "foreach": [0, 1, 2],
            "do": {
                "cmd": "mkdir -p out && sh src/part.sh ${item}",
                "deps": ["data/nums.txt", "src/part.sh"],
                "params": ["scale"],
                "outs": ["out/part${item}.txt"],
            },
        },
        "join": {
            "cmd": "mkdir -p report && cat out/part0.txt out/part1.txt out/part2.txt > report/total.txt"
            " && ls data/images | wc -l > report/images.txt && echo '{\"parts\": 3}' > summary.json",
            "deps": ["out/part0.txt", "out/part1.txt", "out/part2.txt", "data/images"],
            "outs": ["report"],  # a directory
            "metrics": [{"summary.json": {"cache": False}}],  # an output DVC doesn't cache
        },
    }
}
PART = """#!/bin/sh
# the sum of the numbers n with n % 3 == $1, times params.yaml's scale
scale=$(sed -n 's/^scale: //p' params.yaml)
awk -v k="$1" -v s="$scale" '$1 % 3 == k {t += $1} END {print t * s}' data/nums.txt > "out/part$1.txt"
"""


def make_project(root: Path, *, bucket: str, endpoint: str, registry: str | None, executor: str) -> Path:
    git_dvc_project(root)
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "nums.txt").write_text("".join(f"{n}\n" for n in range(1, 1001)))
    for i in range(5):
        (root / "data" / "images" / f"{i}.txt").write_text(f"image {i}\n")
    (root / "src").mkdir()
    (root / "src" / "part.sh").write_text(PART)
    (root / "params.yaml").write_text("scale: 2\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (root / "Dockerfile").write_text(f"FROM {BUSYBOX}\nLABEL org.opsctl.test=dask\n")
    config = {
        "project": "dasktest",
        "executor": executor,
        "images": {"tools": {"dockerfile": "Dockerfile"}},
        "stages": {"default": {"image": "tools"}, "part@2": {"memory": "512m"}},
    }
    if registry:
        config["registry"] = registry
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run([*DVC, "add", "-q", "data/nums.txt", "data/images"], cwd=root)
    run([*DVC, "remote", "add", "-q", "-d", "s3", f"s3://{bucket}/store"], cwd=root)
    run([*DVC, "remote", "modify", "s3", "endpointurl", endpoint], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "pipeline"], cwd=root)
    return root  # the data is not pushed: the run pushes what its stages need


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, moto_s3, second_engine):
    """Scheduler + worker "small" (this machine's engine, MEMORY=256 MiB) + worker "big" (the
    second engine, MEMORY=4 GiB), both with the S3 server's dummy credentials."""
    tmp = tmp_path_factory.mktemp("dask-run")
    env = dict(moto_s3.env)
    workers = [
        DaskWorker("small", tmp / "small", resources=f"MEMORY={256 << 20}", env=env),
        DaskWorker("big", tmp / "big", resources=f"MEMORY={4 << 30}", env={**env, "DOCKER_HOST": second_engine}),
    ]
    with running_dask_cluster(DaskCluster(tmp, workers)) as running:
        yield running


def labelled(engine_url: str | None, run_id: str) -> list[str]:
    args = ["docker"] + (["-H", engine_url] if engine_url else [])
    out = run([*args, "ps", "-aq", "--filter", f"label={RUN_LABEL}"], check=False).stdout.split()
    return [
        c
        for c in out
        if run_id
        in run([*args, "inspect", "-f", f"{{{{index .Config.Labels \"{RUN_LABEL}\"}}}}", c], check=False).stdout
    ]


def test_a_pipeline_runs_across_both_workers_and_leaves_what_a_docker_run_leaves(
    cluster, moto_s3, s3_bucket, image_registry, second_engine, docker_engine, tmp_path
):
    root = make_project(
        tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=image_registry, executor="dask"
    )
    (root / "params.yaml").write_text("scale: 3\n")  # uncommitted: the workers get the workspace's params

    result = run_opsctl("run", "--json", "--scheduler", cluster.address, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    stages = {s["stage"]: s for s in report["stages"]}
    assert report["executor"] == "dask" and {s["status"] for s in stages.values()} == {"ran"}
    workers = {name: s["worker"] for name, s in stages.items()}
    addresses = {w["name"]: a for a, w in _workers(cluster).items()}
    assert workers["part@2"] == addresses["big"]  # only "big" has the memory it asks for
    assert set(workers.values()) == {addresses["small"], addresses["big"]}  # both workers ran stages
    # the image reached the empty second engine through the registry, by digest
    second_images = run(
        ["docker", "-H", second_engine, "images", "--digests", "--format", "{{.Repository}}@{{.Digest}}"]
    ).stdout
    assert f"{image_registry}/opsctl/dasktest@sha256:" in second_images

    total = (root / "report" / "total.txt").read_text().split()
    assert total == [str(3 * sum(n for n in range(1, 1001) if n % 3 == k)) for k in range(3)]
    assert (root / "report" / "images.txt").read_text().strip() == "5"
    assert json.loads((root / "summary.json").read_text()) == {"parts": 3}
    assert "Data and pipelines are up to date" in run([*DVC, "status"], cwd=root).stdout

    # the same pipeline with the docker executor, in a clone, writes the same dvc.lock (its
    # stages in the order they finished, as DVC writes them: the entries are what must agree)
    twin = tmp_path / "twin"
    run(["git", "clone", "-q", str(root), str(twin)])
    shutil.copy(root / "params.yaml", twin / "params.yaml")
    run([*DVC, "pull", "-q", "data/nums.txt.dvc", "data/images.dvc"], cwd=twin)
    run_opsctl("run", "--executor", "docker", "--force", cwd=twin, check=True)
    assert yaml.safe_load((twin / "dvc.lock").read_text()) == yaml.safe_load((root / "dvc.lock").read_text())

    # a fresh clone gets every output from the remote
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "ran on the cluster"], cwd=root)
    fresh = tmp_path / "fresh"
    run(["git", "clone", "-q", str(root), str(fresh)])
    run_opsctl("data", "pull", cwd=fresh, check=True)
    for path in ("out/part0.txt", "out/part1.txt", "out/part2.txt", "report/total.txt", "report/images.txt"):
        assert (fresh / path).read_bytes() == (root / path).read_bytes()
    assert not labelled(None, report["run_id"]) and not labelled(second_engine, report["run_id"])


def _workers(cluster) -> dict[str, dict]:
    from distributed import Client

    with Client(cluster.address, timeout=30) as client:
        return client.scheduler_info(n_workers=-1)["workers"]


def test_without_a_registry_workers_on_other_engines_are_refused(cluster, moto_s3, s3_bucket, tmp_path):
    stages = {"s": {"cmd": "echo s > s.txt", "outs": ["s.txt"]}}
    root = slow_project(tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=None, stages=stages)
    result = run_opsctl("run", "--scheduler", cluster.address, cwd=root)
    assert result.returncode == 2, result.stderr
    assert "no image registry is set" in result.stderr and "registry: HOST:PORT" in result.stderr
    assert not (root / "dvc.lock").exists()


def test_a_stage_no_worker_can_take_fails_at_once_naming_the_resource(
    cluster, moto_s3, s3_bucket, image_registry, tmp_path
):
    stages = {"s": {"cmd": "echo s > s.txt", "outs": ["s.txt"]}}
    root = slow_project(
        tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=image_registry, stages=stages
    )
    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    config["stages"]["s"] = {"gpus": 1}
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    result = run_opsctl("run", "--scheduler", cluster.address, cwd=root)
    assert result.returncode == 5, result.stderr
    assert "s needs GPU=1 and no worker declares it" in result.stdout + result.stderr
    assert not (root / "dvc.lock").exists()


def test_an_unreachable_scheduler_is_exit_4_with_how_to_start_one(tmp_path):
    root = git_dvc_project(tmp_path / "p")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {"cmd": "echo", "outs": ["o"]}}}))
    (root / "opsctl.yaml").write_text(
        f"project: p\nexecutor: dask\nimages: {{b: {{ref: '{BUSYBOX}'}}}}\nstages: {{default: {{image: b}}}}\n"
    )
    address = f"tcp://{HOST}:{free_port()}"
    result = run_opsctl("run", cwd=root, env={"OPSCTL_DASK_SCHEDULER": address})
    assert result.returncode == 4, result.stderr
    assert f"Dask scheduler {address} is not reachable" in result.stderr and "dask scheduler" in result.stderr
    assert not (root / "dvc.lock").exists()


def slow_project(root: Path, *, bucket: str, endpoint: str, registry: str | None, stages: dict) -> Path:
    git_dvc_project(root)
    config = {
        "project": "slow",
        "executor": "dask",
        "images": {"b": {"ref": BUSYBOX}},
        "stages": {"default": {"image": "b"}},
    }
    if registry:
        config["registry"] = registry
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    run([*DVC, "remote", "add", "-q", "-d", "s3", f"s3://{bucket}/store"], cwd=root)
    run([*DVC, "remote", "modify", "s3", "endpointurl", endpoint], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "pipeline"], cwd=root)
    return root


@contextmanager
def opsctl_running(*args: str, cwd: Path):
    """``opsctl ARGS`` started in the background (killed at the end if still running)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "opsctl", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def stage_containers(engine_url: str | None, stage: str) -> list[dict]:
    """The containers of ``stage`` on an engine: id and the owner label (host:pid of the node)."""
    args = ["docker"] + (["-H", engine_url] if engine_url else [])
    ids = run([*args, "ps", "-q", "--filter", f"label=org.opsctl.stage={stage}"], check=False).stdout.split()
    found = []
    for cid in ids:
        owner = run([*args, "inspect", "-f", '{{index .Config.Labels "org.opsctl.owner"}}', cid], check=False).stdout
        found.append({"id": cid, "owner": owner.strip()})
    return found


def test_a_worker_killed_mid_stage_the_stage_runs_again_on_the_other(tmp_path, moto_s3, s3_bucket, docker_engine):
    stages = {"slow": {"cmd": "sleep 4 && echo done > slow.txt", "outs": ["slow.txt"]}}
    root = slow_project(tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=None, stages=stages)
    env = dict(moto_s3.env)
    cluster = DaskCluster(
        tmp_path, [DaskWorker("a", tmp_path / "a", env=env), DaskWorker("b", tmp_path / "b", env=env)]
    )
    with running_dask_cluster(cluster):
        with opsctl_running("run", "--json", "--scheduler", cluster.address, cwd=root) as proc:
            (first,) = wait_for(lambda: stage_containers(None, "slow"), "the stage's container started")
            pid = int(first["owner"].rpartition(":")[2])
            victim = next(w for w in cluster.workers if w.proc is not None and w.proc.pid == pid)
            cluster.kill_worker(victim.name)
            stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stdout + stderr
        (stage,) = json.loads(stdout)["stages"]
        survivor = next(w for w in cluster.workers if w is not victim)
        assert stage["status"] == "ran" and stage["attempts"] == 2
        assert stage["worker"].endswith(f":{_port_of(cluster, survivor.name)}")
        assert (root / "slow.txt").read_text() == "done\n"
        # the dead node's container went with it (its reaper removed it)
        wait_for(lambda: not any(c["id"] == first["id"] for c in stage_containers(None, "slow")), "reaped", 30)
        shown = run_opsctl("runs", "show", json.loads(stdout)["run_id"], "--json", cwd=root, check=True)
        assert json.loads(shown.stdout)["stages"][0]["attempts"] == 2


def _port_of(cluster, name: str) -> str:
    return next(a for a, w in _workers(cluster).items() if w["name"] == name).rpartition(":")[2]


def test_ctrl_c_cancels_every_task_and_removes_every_container_on_every_engine(
    cluster, moto_s3, s3_bucket, image_registry, second_engine, docker_engine, tmp_path
):
    stages = {f"s{i}": {"cmd": f"sleep 60 && echo {i} > s{i}.txt", "outs": [f"s{i}.txt"]} for i in range(2)}
    stages["quick"] = {"cmd": "echo quick > quick.txt", "outs": ["quick.txt"]}
    root = slow_project(
        tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=image_registry, stages=stages
    )
    with opsctl_running("run", "--keep-going", "--scheduler", cluster.address, cwd=root) as proc:
        # both slow stages running: one on each engine
        wait_for(
            lambda: (
                len(stage_containers(None, "s0") + stage_containers(None, "s1")) == 1
                and len(stage_containers(second_engine, "s0") + stage_containers(second_engine, "s1")) == 1
            ),
            "a slow stage running on each engine",
        )
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    for engine in (None, second_engine):
        assert not stage_containers(engine, "s0") and not stage_containers(engine, "s1")
    lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").exists() else {"stages": {}}
    assert not {"s0", "s1"} & set(lock.get("stages", {}))


def test_doctor_checks_the_scheduler_workers_remote_and_registry(cluster, moto_s3, s3_bucket, image_registry, tmp_path):
    root = make_project(
        tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=image_registry, executor="dask"
    )
    result = run_opsctl("doctor", "--executor", "dask", "--scheduler", cluster.address, "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["dask scheduler"]["status"] == "ok" and "2 worker(s)" in checks["dask scheduler"]["detail"]
    engines = checks["worker engine"]
    assert engines["status"] == "ok" and "big: Docker" in engines["detail"] and "small: Docker" in engines["detail"]
    assert f"MEMORY={4 << 30}" in engines["detail"]
    assert checks["remote from workers"]["status"] == "ok"
    assert checks["registry from workers"]["status"] == "ok"

    # a remote the workers can't reach, a registry that isn't there
    run([*DVC, "remote", "modify", "s3", "endpointurl", f"http://{HOST}:{free_port()}"], cwd=root)
    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    config["registry"] = f"{HOST}:{free_port()}"
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    broken = run_opsctl("doctor", "--executor", "dask", "--scheduler", cluster.address, "--json", cwd=root)
    assert broken.returncode == 4
    checks = {c["name"]: c for c in json.loads(broken.stdout)["checks"]}
    assert checks["remote from workers"]["status"] == "fail" and "credentials" in checks["remote from workers"]["fix"]
    assert checks["registry from workers"]["status"] == "fail"

    gone = run_opsctl("doctor", "--executor", "dask", "--scheduler", f"tcp://{HOST}:{free_port()}", cwd=root)
    assert gone.returncode == 4 and "dask scheduler" in gone.stderr


def test_opsctl_worker_joins_with_the_machines_resources(tmp_path, docker_engine):
    scheduler = DaskCluster(tmp_path, [])
    with running_dask_cluster(scheduler):
        proc = subprocess.Popen(
            [PYTHON, "-m", "opsctl", "worker", scheduler.address, "--name", "ow", "--resources", "GPU=1",
             "--nthreads", "2", "--node-dir", str(tmp_path / "node")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            joined = wait_for(
                lambda: [w for w in _workers(scheduler).values() if w["name"] == "ow"], "the worker joined"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    (worker,) = joined
    assert worker["nthreads"] == 2 and worker["resources"]["GPU"] == 1
    assert worker["resources"]["CPU"] == os.cpu_count() and worker["resources"]["MEMORY"] > 1 << 30
    assert (tmp_path / "node").is_dir()

    no_engine = run_opsctl("worker", scheduler.address, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert no_engine.returncode == 4 and "Docker engine not reachable" in no_engine.stderr
    bad = run_opsctl("worker", scheduler.address, "--resources", "GPU")
    assert bad.returncode == 2 and "expected NAME=NUMBER" in bad.stderr


def test_a_remote_the_worker_cannot_reach_fails_the_stage_with_the_workers_error(
    tmp_path, moto_s3, s3_bucket, docker_engine
):
    """The coordinator reaches the remote; the only worker has no credentials for it."""
    stages = {"s": {"cmd": "echo s > s.txt", "outs": ["s.txt"]}, "t": {"cmd": "echo t > t.txt", "outs": ["t.txt"]}}
    root = slow_project(tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=None, stages=stages)
    bare = DaskWorker("bare", tmp_path / "bare", unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    with running_dask_cluster(DaskCluster(tmp_path, [bare])) as cluster:
        result = run_opsctl("run", "s", "--scheduler", cluster.address, "--retries", "0", cwd=root)
    assert result.returncode == 5, result.stdout + result.stderr
    shown = result.stdout + result.stderr
    assert "remote 's3'" in shown and "unable to locate credentials" in shown.lower()
    assert not (root / "dvc.lock").exists() and not (root / "s.txt").exists()


def test_without_a_scheduler_a_local_cluster_runs_the_pipeline_through_the_projects_cache(
    tmp_path, docker_engine, monkeypatch
):
    """No scheduler, no remote, no registry: a laptop's first try. The local cluster's workers
    share this machine's engine and files, so the project's own DVC cache is the remote."""
    monkeypatch.delenv("OPSCTL_DASK_SCHEDULER", raising=False)
    root = git_dvc_project(tmp_path / "p")
    (root / "nums.txt").write_text("1\n2\n3\n")
    run([*DVC, "add", "-q", "nums.txt"], cwd=root)
    config = {
        "project": "laptop",
        "executor": "dask",
        "images": {"b": {"ref": BUSYBOX}},
        "stages": {"default": {"image": "b"}},
    }
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config))
    stages = {
        "count": {"cmd": "echo counting && wc -l < nums.txt > count.txt", "deps": ["nums.txt"], "outs": ["count.txt"]},
        "double": {"cmd": "cat count.txt count.txt > double.txt", "deps": ["count.txt"], "outs": ["double.txt"]},
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "pipeline"], cwd=root)

    result = run_opsctl("run", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["jobs"] == os.cpu_count()  # the local cluster's workers: one per core
    assert all(s["status"] == "ran" and s["worker"].startswith(f"tcp://{HOST}:") for s in report["stages"])
    assert (root / "double.txt").read_text() == "3\n3\n"
    assert "count  | counting" in result.stderr  # the worker's log lines stream back as they come
    assert (root / ".opsctl" / "runs" / report["run_id"] / "count.log").read_text() == "counting\n"
    assert "Data and pipelines are up to date" in run([*DVC, "status"], cwd=root).stdout
    assert run([*DVC, "remote", "list"], cwd=root).stdout == ""  # nothing configured behind the user's back


def test_no_download_leaves_on_the_remote_what_nothing_here_reads(
    cluster, moto_s3, s3_bucket, image_registry, tmp_path
):
    root = make_project(
        tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=image_registry, executor="dask"
    )
    result = run_opsctl("run", "--no-download", "--scheduler", cluster.address, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    # the parts are read by join (DVC hashes its deps here): fetched; join's report is not: left on the remote
    assert all((root / f"out/part{k}.txt").exists() for k in range(3))
    assert not (root / "report").exists() and "outputs left on the remote" in result.stdout + result.stderr
    assert json.loads((root / "summary.json").read_text()) == {"parts": 3}  # a metric: always fetched
    status = run([*DVC, "status"], cwd=root).stdout
    assert "not in cache:       report" in status  # recorded in dvc.lock, its data on the remote
    run_opsctl("data", "pull", cwd=root, check=True)
    assert (root / "report" / "images.txt").read_text().strip() == "5"
    assert "Data and pipelines are up to date" in run([*DVC, "status"], cwd=root).stdout


def test_a_sweep_runs_its_experiments_on_the_cluster_and_applies_like_a_local_one(
    cluster, moto_s3, s3_bucket, image_registry, tmp_path
):
    """`opsctl exp run --executor dask`: each experiment's stages go to the workers (data through
    the remote, the image through the registry); the stage both experiments share (`join`'s
    image count does not depend on `scale`, but `join` does) and the parts run per experiment;
    applying one brings its outputs back here."""
    root = make_project(
        tmp_path / "p", bucket=s3_bucket, endpoint=moto_s3.endpoint, registry=image_registry, executor="dask"
    )
    result = run_opsctl(
        "exp",
        "run",
        "-S",
        "scale=2,3",
        "-j",
        "2",
        "--name",
        "on-dask",
        "--scheduler",
        cluster.address,
        "--json",
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sweep = json.loads(result.stdout)
    assert [e["status"] for e in sweep["experiments"]] == ["succeeded", "succeeded"]
    runs = {e["overrides"][0]: e["run"] for e in sweep["experiments"]}
    addresses = set(_workers(cluster))
    for run_id in runs.values():
        shown = json.loads(run_opsctl("runs", "show", run_id, "--json", cwd=root, check=True).stdout)
        assert {s["worker"] for s in shown["stages"] if s["outcome"] == "ran"} <= addresses
    assert run(["git", "status", "--porcelain", "--", ".", ":!.opsctl"], cwd=root).stdout == ""  # files untouched

    run_opsctl("exp", "apply", runs["scale=3"], cwd=root, check=True)
    total = (root / "report" / "total.txt").read_text().split()
    assert total == [str(3 * sum(n for n in range(1, 1001) if n % 3 == k)) for k in range(3)]
    assert "Data and pipelines are up to date" in run([*DVC, "status"], cwd=root).stdout
