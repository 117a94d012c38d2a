"""`opsctl run` and `opsctl doctor` with the containers' fences: pipeline files read-only,
a pids limit from opsctl.yaml, and `network:` checked before any container starts (host
warned about). Real Git, DVC and Docker engine; busybox stages."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import run, run_opsctl
from tests.e2e.test_run_docker import _lock_stages, _run_json, busybox_image, busybox_project  # noqa: F401

pytestmark = pytest.mark.docker


@pytest.fixture
def make_project(request):
    return request.getfixturevalue("busybox_project")


def _doctor_check(root, name: str) -> tuple[dict, object]:
    result = run_opsctl("doctor", "--json", cwd=root)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return checks[name], result


def test_a_stage_cannot_plant_a_hook_through_opsctl_run(make_project, tmp_path):
    marker = tmp_path / "pwned"
    root = make_project(
        {
            "sneaky": {
                "cmd": f"(echo 'touch {marker}' > .git/hooks/post-commit && chmod +x .git/hooks/post-commit) "
                "2>/dev/null || echo refused; ls -A .opsctl | wc -l; echo ok > out.txt",
                "outs": ["out.txt"],
            }
        }
    )
    result = run_opsctl("run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "sneaky | refused" in result.stdout
    assert "sneaky | 0" in result.stdout  # .opsctl looks empty from inside
    assert (root / "out.txt").read_text() == "ok\n"
    assert sorted(_lock_stages(root)) == ["sneaky"]  # opsctl itself still writes dvc.lock on the host
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "after the run"], cwd=root)
    assert not marker.exists()


def test_pids_limit_defaults_and_per_stage_from_opsctl_yaml(make_project):
    read = "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"
    root = make_project(
        {"a": {"cmd": f"({read}) > a.txt", "outs": ["a.txt"]}, "b": {"cmd": f"({read}) > b.txt", "outs": ["b.txt"]}},
        config_stages={"default": {"image": "tools"}, "a": {"pids": 50}},
    )
    result, report = _run_json(root)
    assert result.returncode == 0, result.stderr
    assert (root / "a.txt").read_text() == "50\n"
    assert (root / "b.txt").read_text() == "4096\n"


def test_network_host_is_warned_about_in_run_and_doctor(make_project):
    root = make_project(
        {"s": {"cmd": "echo ok > out.txt", "outs": ["out.txt"]}},
        config_stages={"default": {"image": "tools", "network": "host"}},
    )
    result = run_opsctl("run", cwd=root)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: network host for stage s:"))
    assert "loopback" in lines[warning]
    assert warning < lines.index("▶ s")  # before the stage runs

    check, doctor = _doctor_check(root, "stage networks")
    assert doctor.returncode == 0, doctor.stderr
    assert check["status"] == "warn"
    assert "network host for stages.default.network" in check["detail"] and check["fix"]
    table = run_opsctl("doctor", cwd=root)
    assert table.returncode == 0
    assert "network host for stages.default.network" in table.stdout and "! warn" in table.stdout


def test_an_unknown_network_stops_the_run_before_any_container(make_project):
    missing = f"opsctl-no-such-net-{uuid.uuid4().hex[:8]}"
    root = make_project(
        {
            "prep": {"cmd": "echo p > p.txt", "outs": ["p.txt"]},
            "train": {"cmd": "cat p.txt > t.txt", "deps": ["p.txt"], "outs": ["t.txt"]},
        },
        config_stages={"default": {"image": "tools"}, "train": {"network": missing}},
    )
    result = run_opsctl("run", cwd=root)
    assert result.returncode == 1, result.stderr
    assert f"opsctl.yaml: stages.train.network: no Docker network named '{missing}'" in result.stderr
    assert f"docker network create {missing}" in result.stderr
    assert not (root / "p.txt").exists()  # prep, which would have run first, did not start
    assert not (root / "dvc.lock").exists()
    assert not (root / ".opsctl" / "runs").exists() or not any((root / ".opsctl" / "runs").iterdir())

    check, doctor = _doctor_check(root, "stage networks")
    assert check["status"] == "fail" and missing in check["detail"] and "stages.train.network" in check["detail"]
    assert doctor.returncode != 0


def test_a_user_defined_network_is_joined(make_project, docker_engine):
    name = f"opsctl-test-net-{uuid.uuid4().hex[:8]}"
    docker_engine.networks.create(name)
    try:
        root = make_project(
            {"s": {"cmd": "ls /sys/class/net > nets.txt", "outs": ["nets.txt"]}},
            config_stages={"default": {"image": "tools", "network": name}},
        )
        result = run_opsctl("run", cwd=root)
        assert result.returncode == 0, result.stderr
        assert "eth0" in (root / "nets.txt").read_text().split()
        assert "warning" not in result.stderr
        check, _ = _doctor_check(root, "stage networks")
        assert check["status"] == "ok" and name in check["detail"]
    finally:
        docker_engine.networks.get(name).remove()
