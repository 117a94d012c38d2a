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


@pytest.mark.parametrize("network", [None, "host"])
def test_containers_of_a_killed_opsctl_are_reaped(tmp_path, busybox_image, docker_engine, network):
    """Removed before the run's first container starts, whatever the stage's network (with
    network host no sandbox is made: the reap used to come with the sandbox)."""
    import socket

    from opsctl.executors.docker import OWNER_LABEL

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = docker_engine.containers.create(
        IMAGE,
        ["sleep", "600"],
        labels={RUN_LABEL: f"run-orphan-{network}", OWNER_LABEL: f"{socket.gethostname()}:{dead.stdout.strip()}"},
    )
    mine = docker_engine.containers.create(
        IMAGE,
        ["sleep", "600"],
        labels={RUN_LABEL: f"run-alive-{network}", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"},
    )
    seen_while_running = []
    try:
        invocation = StageInvocation(
            stage="s",
            cmd="echo running",
            workdir=tmp_path,
            log_path=tmp_path / "s.log",
            run_id=f"run-reaper-{network}",
            container=ContainerSettings(image=IMAGE, network=network),
        )
        executor = DockerExecutor()
        try:
            # What the engine holds while the stage runs: the reap happened before it started.
            outcome = executor.run(
                invocation,
                on_line=lambda s, line: seen_while_running.append(
                    containers_labelled(RUN_LABEL, f"run-orphan-{network}")
                ),
            )
        finally:
            executor.close(f"run-reaper-{network}")
        assert outcome.succeeded
        assert seen_while_running == [[]]  # its opsctl is gone
        assert containers_labelled(RUN_LABEL, f"run-orphan-{network}") == []
        assert containers_labelled(RUN_LABEL, f"run-alive-{network}") == [mine.id]  # a live owner's container stays
    finally:
        for container in (orphan, mine):
            try:
                container.remove(force=True)
            except Exception:
                pass


PARENT = """
import os, sys, time
from opsctl.adapters.reaper import start_reaper
reaper = start_reaper("org.opsctl.run", sys.argv[1])
print(reaper.pid, flush=True)
if sys.argv[2] == "close":
    reaper.close()
    print("closed", flush=True)
if sys.argv[2] == "fork" and os.fork() == 0:  # a library's detached helper: fork, no exec
    time.sleep(60)
    os._exit(0)
time.sleep(600)
"""


def _labelled_sleeper(docker_engine, run_id: str):
    container = docker_engine.containers.run(IMAGE, ["sleep", "600"], labels={RUN_LABEL: run_id}, detach=True)
    return container


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until init reaps it: as good as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _poll(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize("forked", [False, True])
def test_the_reaper_removes_the_containers_when_its_opsctl_is_killed(busybox_image, docker_engine, forked):
    """Also when opsctl had forked a child that lives on (it gets no copy of the pipe)."""
    run_id = f"run-reaper-sigkill-{forked}"
    container = _labelled_sleeper(docker_engine, run_id)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, run_id, "fork" if forked else "keep"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        reaper_pid = int(parent.stdout.readline())
        parent.kill()  # SIGKILL: the pipe to the reaper ends with it
        parent.wait()
        assert _poll(lambda: containers_labelled(RUN_LABEL, run_id) == []), "the run's container is still there"
        assert _poll(lambda: _gone(reaper_pid)), "the reaper did not exit"
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)  # the forked child too
        except ProcessLookupError:
            pass
        try:
            container.remove(force=True)
        except Exception:
            pass


def test_a_closed_reaper_leaves_and_removes_nothing(busybox_image, docker_engine):
    """A run that cleaned up after itself tells its reaper so: it exits without a sweep."""
    run_id = "run-reaper-closed"
    container = _labelled_sleeper(docker_engine, run_id)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, run_id, "close"], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        reaper_pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "closed"
        assert _poll(lambda: _gone(reaper_pid)), "the reaper did not exit"
        parent.kill()
        parent.wait()
        time.sleep(0.5)
        assert containers_labelled(RUN_LABEL, run_id) == [container.id]
    finally:
        parent.kill()
        try:
            container.remove(force=True)
        except Exception:
            pass


def test_a_ctrl_c_at_the_terminal_does_not_reach_the_reaper(busybox_image, docker_engine):
    """The reaper lives in a session of its own: the terminal's SIGINT to opsctl's process
    group leaves it watching (it is what cleans up should opsctl then be killed)."""
    run_id = "run-reaper-group"
    container = _labelled_sleeper(docker_engine, run_id)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, run_id, "keep"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        reaper_pid = int(parent.stdout.readline())
        assert os.getpgid(reaper_pid) != parent.pid
        os.killpg(parent.pid, signal.SIGINT)
        parent.wait(timeout=30)
        assert _poll(lambda: containers_labelled(RUN_LABEL, run_id) == []), "the run's container is still there"
    finally:
        parent.kill()
        try:
            container.remove(force=True)
        except Exception:
            pass


def test_the_sandbox_goes_once_every_stage_started_and_the_stages_run_on(tmp_path, busybox_image, docker_engine):
    """release_network: no stage will join any more, so the sandbox is stopped while the
    stages still run; they keep its (loopback-only) namespace and finish normally."""
    import threading

    run_id = "run-release-ns"
    executor = DockerExecutor()
    started = threading.Semaphore(0)
    outcomes = {}
    seen = []

    def stage(name: str, cmd: str) -> None:
        invocation = StageInvocation(
            stage=name,
            cmd=cmd,
            workdir=tmp_path,
            log_path=tmp_path / f"{name}.log",
            run_id=run_id,
            container=ContainerSettings(image=IMAGE),
            on_started=started.release,
        )
        outcomes[name] = executor.run(invocation, on_line=lambda s, line: seen.append((s, line.strip())))

    def sandboxes() -> list:
        return [
            c
            for c in docker_engine.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
            if STAGE_LABEL not in (c.get("Labels") or {})
        ]

    # Each stage waits (bounded) for a file the test writes once the sandbox is gone.
    go = "i=0; while [ ! -e go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"
    threads = [
        threading.Thread(target=stage, args=(name, f"{go}; ip -o link | cut -d: -f2; echo {name}"))
        for name in ("a", "b")
    ]
    try:
        for thread in threads:
            thread.start()
        for _ in threads:
            assert started.acquire(timeout=60), "a stage's container did not start"
        assert len(sandboxes()) == 1
        executor.release_network(run_id)
        deadline = time.monotonic() + 30
        while sandboxes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandboxes() == []  # gone while both stages still run
        assert all(thread.is_alive() for thread in threads)
        (tmp_path / "go").write_text("")
        for thread in threads:
            thread.join(timeout=60)
    finally:
        (tmp_path / "go").write_text("")
        executor.close(run_id)
    assert {name: o.exit_code for name, o in outcomes.items()} == {"a": 0, "b": 0}
    assert sorted(line for _, line in seen) == ["a", "b", "lo", "lo"]  # still loopback only
    assert containers_labelled(RUN_LABEL, run_id) == []
