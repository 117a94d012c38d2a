"""The cluster parts that the remote executors' tests build on really work: tasks reach both Dask
workers and respect resources, an image travels through the registry to an empty second engine
and runs there by digest, and a killed worker leaves the cluster (which still stops cleanly)."""

from __future__ import annotations

import io
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.cluster_parts import processes_mentioning, running_dask_cluster, two_worker_cluster, unavailable

pytestmark = pytest.mark.docker

BUSYBOX = "opsctl-test/busybox:latest"


def test_tasks_run_on_both_workers_and_gpu_tasks_only_on_the_gpu_worker(dask_cluster):
    from distributed import Client

    def worker_name() -> str:
        from distributed import get_worker

        return get_worker().name

    with Client(dask_cluster.address, timeout=30) as client:
        seen = {
            client.submit(worker_name, pure=False, workers=[name], allow_other_workers=False).result(timeout=30)
            for name in dask_cluster.worker_names
        }
        assert seen == {"w-cpu", "w-gpu"}
        gpu = client.gather([client.submit(worker_name, pure=False, resources={"GPU": 1}) for _ in range(4)])
        assert set(gpu) == {"w-gpu"}
    for name in dask_cluster.worker_names:
        assert dask_cluster.worker(name).directory.is_dir()


def test_an_image_pushed_to_the_registry_runs_by_digest_on_the_empty_second_engine(
    docker_engine, image_registry, second_engine
):
    import docker

    second = docker.DockerClient(base_url=second_engine, timeout=60)
    try:
        # An image of its own (one label more than busybox), so its digest is one no other test
        # has put on the second engine: it can only get there from the registry.
        repo = f"{image_registry}/opsctl-test/busybox"
        tag = f"smoke-{uuid.uuid4().hex[:8]}"
        dockerfile = io.BytesIO(f"FROM {BUSYBOX}\nLABEL opsctl.test.smoke={tag}\n".encode())
        image, _ = docker_engine.images.build(fileobj=dockerfile, tag=f"{repo}:{tag}", rm=True)
        assert not [i for i in second.images.list() if i.id == image.id]
        try:
            events = list(docker_engine.images.push(repo, tag=tag, stream=True, decode=True))
            assert not [e for e in events if "error" in e], events
            digest = next(e["aux"]["Digest"] for e in events if "Digest" in e.get("aux", {}))
        finally:
            docker_engine.images.remove(f"{repo}:{tag}")
        ref = f"{repo}@{digest}"
        subprocess.run(["docker", "-H", second_engine, "pull", ref], check=True, capture_output=True, timeout=60)
        out = subprocess.run(
            ["docker", "-H", second_engine, "run", "--rm", ref, "echo", "ok"],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.stdout.strip() == "ok"
        assert ref in second.images.get(ref).attrs["RepoDigests"]
        # the second engine has a bridge of its own: the main engine keeps docker0, which its builds use
        assert Path("/sys/class/net/docker0").exists()
        assert docker_engine.networks.get("bridge").attrs["Options"].get("com.docker.network.bridge.name", "docker0")
    finally:
        second.close()


def test_a_killed_worker_leaves_the_cluster_and_nothing_is_left_running(tmp_path):
    cluster = two_worker_cluster(tmp_path)
    with running_dask_cluster(cluster):
        pids = cluster.pids()
        cluster.kill_worker("w-gpu")
        deadline = time.monotonic() + 30
        while cluster.connected_workers() != ["w-cpu"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cluster.connected_workers() == ["w-cpu"]
    assert all(p is None for p in cluster.processes())
    for pid in pids:
        assert not _alive(pid), f"process {pid} of the cluster is still running"
    assert processes_mentioning(str(tmp_path)) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


def test_a_missing_part_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("OPSCTL_REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no registry here"):
        unavailable("no registry here")
    monkeypatch.setenv("OPSCTL_REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.fail.Exception, match=r"no registry here \(OPSCTL_REQUIRE_DOCKER=1\)"):
        unavailable("no registry here")
