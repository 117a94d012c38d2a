"""The docker executor against a real engine, with an image built from local material."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from opsctl.adapters.docker import containers_labelled
from opsctl.executors.base import ContainerSettings, StageInvocation
from opsctl.executors.docker import RUN_LABEL, STAGE_LABEL, DockerExecutor
from tests.conftest import REPO

pytestmark = pytest.mark.docker
IMAGE = "opsctl-test/busybox:latest"


@pytest.fixture(scope="session")
def busybox_image(docker_engine):
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-test-images.sh"), "--only", "busybox"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return IMAGE


def invoke(tmp_path, cmd, *, run_id="run-test", env=None, **settings) -> tuple:
    lines = []
    invocation = StageInvocation(
        stage="s",
        cmd=cmd,
        workdir=tmp_path,
        log_path=tmp_path / ".opsctl" / "s.log",
        env=env or {},
        run_id=run_id,
        container=ContainerSettings(image=IMAGE, **settings),
    )
    executor = DockerExecutor()
    try:
        outcome = executor.run(invocation, on_line=lambda stage, line: lines.append((stage, line)))
    finally:
        executor.close(run_id)  # what the run does when its stages are done: the network sandbox goes
    return outcome, lines


def test_runs_in_the_workspace_as_the_given_user(tmp_path, busybox_image):
    os.chmod(tmp_path, 0o777)
    outcome, lines = invoke(tmp_path, "pwd; id -u; echo data > out.txt", user="4321:4321")
    assert outcome.exit_code == 0
    assert [line for _, line in lines][:2] == ["/workspace", "4321"]
    assert (tmp_path / "out.txt").read_text() == "data\n"
    assert (tmp_path / "out.txt").stat().st_uid == 4321  # never root-owned
    assert outcome.log_path.read_text().splitlines()[:2] == ["/workspace", "4321"]


def test_default_user_is_the_invoking_one(tmp_path, busybox_image):
    outcome, _ = invoke(tmp_path, "touch made-here")
    assert outcome.exit_code == 0
    assert (tmp_path / "made-here").stat().st_uid == os.getuid()


def test_safe_defaults(tmp_path, busybox_image):
    outcome, lines = invoke(
        tmp_path,
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /sys/class/net; ls /var/run/docker.sock 2>&1 || true",
    )
    text = [line for _, line in lines]
    assert outcome.exit_code == 0
    assert "CapEff:\t0000000000000000" in text
    assert "NoNewPrivs:\t1" in text
    assert "lo" in text and "eth0" not in text  # network none
    assert not any(line.endswith("docker.sock") and "No such file" not in line for line in text)


def test_limits_env_passthrough_and_masked_secrets(tmp_path, busybox_image):
    env = {"GREETING": "hello", "API_TOKEN": "s3cr3t-value"}
    outcome, lines = invoke(
        tmp_path,
        "echo $GREETING; echo token=$API_TOKEN; echo other=${UNPASSED:-unset}; "
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        env=env,
        memory="64m",
        cpus=0.5,
    )
    text = [line for _, line in lines]
    assert text[:3] == ["hello", "token=***", "other=unset"]
    assert text[3] == str(64 * 1024 * 1024)
    assert "s3cr3t-value" not in outcome.log_path.read_text()


def test_failure_exit_code_and_container_removed(tmp_path, busybox_image):
    outcome, lines = invoke(tmp_path, "echo about to fail; exit 7", run_id="run-fail")
    assert outcome.exit_code == 7 and not outcome.succeeded
    assert lines[-1] == ("s", "about to fail")
    assert containers_labelled(RUN_LABEL, "run-fail") == []


CHILD = """
import sys
from pathlib import Path
from opsctl.executors.base import ContainerSettings, StageInvocation
from opsctl.executors.docker import DockerExecutor
ws = Path(sys.argv[1])
inv = StageInvocation(stage="sleeper", cmd="echo started; sleep 60", workdir=ws, log_path=ws / "sleeper.log",
                      run_id="run-ctrl-c", container=ContainerSettings(image="opsctl-test/busybox:latest"))
executor = DockerExecutor()
try:
    executor.run(inv, on_line=lambda s, l: print(l, flush=True))
except KeyboardInterrupt:
    executor.close("run-ctrl-c")
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_and_removes_the_container(tmp_path, busybox_image):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "started"
    assert len(containers_labelled(STAGE_LABEL, "sleeper")) == 1
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in out
    assert time.monotonic() - started < 30  # stopped, not waited out
    assert containers_labelled(STAGE_LABEL, "sleeper") == []
    assert containers_labelled(RUN_LABEL, "run-ctrl-c") == []


def test_missing_image_is_a_clear_error(tmp_path, busybox_image):
    from opsctl.errors import EngineUnavailableError

    invocation = StageInvocation(
        stage="s",
        cmd="true",
        workdir=tmp_path,
        log_path=tmp_path / "s.log",
        container=ContainerSettings(image="opsctl-test/does-not-exist:1"),
    )
    with pytest.raises(EngineUnavailableError, match="never pulls"):
        DockerExecutor().run(invocation)


def test_a_runs_stages_share_one_empty_network_namespace(tmp_path, busybox_image):
    """Network none, paid for once per run: stage containers join the run's sandbox."""
    executor = DockerExecutor()
    seen = []
    try:
        for stage in ("a", "b"):
            invocation = StageInvocation(
                stage=stage,
                cmd="readlink /proc/self/ns/net; ip -o link | cut -d: -f2",
                workdir=tmp_path,
                log_path=tmp_path / f"{stage}.log",
                run_id="run-shared-ns",
                container=ContainerSettings(image=IMAGE),
            )
            outcome = executor.run(invocation, on_line=lambda s, line: seen.append((s, line.strip())))
            assert outcome.succeeded
        assert len(containers_labelled(RUN_LABEL, "run-shared-ns")) == 1  # the sandbox, until close
    finally:
        executor.close("run-shared-ns")
    namespaces = {line for stage, line in seen if line.startswith("net:")}
    assert len(namespaces) == 1
    assert {line for stage, line in seen if not line.startswith("net:")} == {"lo"}  # loopback only
    assert containers_labelled(RUN_LABEL, "run-shared-ns") == []


def test_containers_of_a_killed_opsctl_are_reaped(tmp_path, busybox_image, docker_engine):
    import socket

    from opsctl.executors.docker import OWNER_LABEL

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = docker_engine.containers.create(
        IMAGE,
        ["sleep", "600"],
        labels={RUN_LABEL: "run-orphan", OWNER_LABEL: f"{socket.gethostname()}:{dead.stdout.strip()}"},
    )
    mine = docker_engine.containers.create(
        IMAGE, ["sleep", "600"], labels={RUN_LABEL: "run-alive", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
    )
    try:
        outcome, _ = invoke(tmp_path, "true", run_id="run-reaper")
        assert outcome.succeeded
        assert containers_labelled(RUN_LABEL, "run-orphan") == []  # its opsctl is gone
        assert containers_labelled(RUN_LABEL, "run-alive") == [mine.id]  # a live owner's container stays
    finally:
        for container in (orphan, mine):
            try:
                container.remove(force=True)
            except Exception:
                pass
