"""The docker executor opens before DVC plans when an image of the project is already in the
engine (core/run.py, ``_executor_opened_early``): the run's network sandbox then starts while
DVC plans. Whatever the plan says next — stages to run, nothing to do, an interrupt — no
container of the run is left behind; without such an image, or without an engine that
answers, the run opens after the plan as it always did."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

import opsctl.core.run as core_run
from opsctl.core.project import open_project
from opsctl.executors.docker import OWNER_LABEL, STAGE_LABEL
from opsctl.executors.registry import executor_spec
from tests.cli.test_bad_input import project
from tests.conftest import opsctl_inprocess
from tests.e2e.test_run_docker import BUSYBOX, busybox_image  # noqa: F401  (a fixture)

# In-process runs: this process owns the run's containers.
OWNER = f"{socket.gethostname()}:{os.getpid()}"


def docker_project(root: Path, image: str = BUSYBOX) -> Path:
    return project(
        root,
        f"project: r{uuid.uuid4().hex[:10]}\nexecutor: docker\nimages:\n  tools: {{ref: '{image}'}}\n"
        "stages:\n  default: {image: tools}\n",
    )


def containers_of_this_process(client) -> list:
    return client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={OWNER}"})


def running_sandbox(client, within: float = 30.0) -> bool:
    """Whether a network sandbox of this process (a run's container without a stage) is running,
    waiting for it up to ``within`` seconds: it is started in the background."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for container in containers_of_this_process(client):
            if STAGE_LABEL not in container.labels and container.status == "running":
                return True
        time.sleep(0.05)
    return False


def watch_planning(monkeypatch, client, *, then_interrupt: bool = False) -> list[bool]:
    """make_plan, preceded by a look for the run's sandbox; what each look saw."""
    seen: list[bool] = []
    real = core_run.make_plan

    def planning(*args, **kwargs):
        seen.append(running_sandbox(client))
        if then_interrupt:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(core_run, "make_plan", planning)
    return seen


@pytest.mark.docker
@pytest.mark.usefixtures("busybox_image")
def test_the_sandbox_runs_while_dvc_plans_and_is_gone_after_the_run(tmp_path, docker_engine, monkeypatch):
    root = docker_project(tmp_path / "p")
    seen = watch_planning(monkeypatch, docker_engine)
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert seen == [True]
    assert (root / "out.txt").read_text() == "hi\n"
    assert containers_of_this_process(docker_engine) == []


@pytest.mark.docker
@pytest.mark.usefixtures("busybox_image")
def test_a_full_check_with_nothing_to_run_stops_the_early_sandbox(tmp_path, docker_engine, monkeypatch):
    root = docker_project(tmp_path / "p")
    assert opsctl_inprocess("run", cwd=root).returncode == 0
    seen = watch_planning(monkeypatch, docker_engine)
    # No kept record: DVC's full check answers, with the executor already open.
    again = opsctl_inprocess("run", "--json", cwd=root, env={"OPSCTL_NO_PLAN_CACHE": "1"})
    assert again.returncode == 0, again.stderr
    assert '"status": "up to date"' in again.stdout
    assert seen == [True]
    assert containers_of_this_process(docker_engine) == []


@pytest.mark.docker
@pytest.mark.usefixtures("busybox_image")
def test_an_interrupt_while_dvc_plans_removes_the_early_sandbox(tmp_path, docker_engine, monkeypatch):
    root = docker_project(tmp_path / "p")
    seen = watch_planning(monkeypatch, docker_engine, then_interrupt=True)
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 130, result.stderr
    assert seen == [True]
    assert containers_of_this_process(docker_engine) == []
    assert not (root / "dvc.lock").exists() and not (root / "out.txt").exists()


@pytest.mark.docker
@pytest.mark.usefixtures("busybox_image")
def test_without_the_image_the_executor_opens_after_the_plan_as_before(tmp_path, docker_engine, monkeypatch):
    root = docker_project(tmp_path / "p", image="opsctl-test/nosuch:1")
    seen = []
    real = core_run.make_plan

    def planning(*args, **kwargs):
        seen.append(containers_of_this_process(docker_engine))
        return real(*args, **kwargs)

    monkeypatch.setattr(core_run, "make_plan", planning)
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 4, result.stderr
    assert "image 'tools' (opsctl-test/nosuch:1) is not available locally" in result.stderr
    assert seen == [[]]  # nothing was started before the plan
    assert containers_of_this_process(docker_engine) == []


@pytest.mark.parametrize("engine", ["tcp://127.0.0.1:9", "unix:///nonexistent/docker.sock"])
def test_an_engine_that_does_not_answer_opens_nothing_early(tmp_path, monkeypatch, engine):
    root = docker_project(tmp_path / "p")
    monkeypatch.setenv("DOCKER_HOST", engine)
    with core_run._executor_opened_early(
        open_project(root), executor_spec("docker"), core_run.RunOptions(), "0123456789ab"
    ) as early:
        assert early is None


@pytest.mark.docker
@pytest.mark.usefixtures("busybox_image")
@pytest.mark.parametrize("options", [core_run.RunOptions(dry_run=True), core_run.RunOptions(executor="local")])
def test_a_dry_run_or_a_host_run_opens_nothing_early(tmp_path, docker_engine, options):
    root = docker_project(tmp_path / "p")
    with core_run._executor_opened_early(
        open_project(root), executor_spec(options.executor or "docker"), options, "0123456789ab"
    ) as early:
        assert early is None
        assert containers_of_this_process(docker_engine) == []


def test_the_early_image_is_a_ref_or_one_a_configured_image_last_ran_as(tmp_path):
    root = project(
        tmp_path / "p",
        "project: p\nexecutor: docker\nimages:\n  built: {dockerfile: Dockerfile}\n  tools: {ref: 'example/tools:1'}\n"
        "stages:\n  default: {image: built}\n",
    )
    (root / "opsctl.lock").write_text(
        "schema: 1\nstages:\n"
        "  train: {executor: docker, image: built, ref: 'opsctl/p-built:abc', identity: 'inputs:1'}\n"
        "  test: {executor: docker, image: built, ref: 'opsctl/p-built:abc', identity: 'inputs:1'}\n"
        "  old: {executor: docker, image: gone, ref: 'example/gone:1', identity: 'inputs:2'}\n"
        "  host: {executor: local}\n"
    )
    assert list(core_run._images_already_here_maybe(open_project(root))) == ["example/tools:1", "opsctl/p-built:abc"]


@pytest.mark.docker
@pytest.mark.usefixtures("busybox_image")
def test_image_here_says_yes_no_or_cannot_ask(monkeypatch):
    from opsctl.adapters.engine_api import image_here

    assert image_here(BUSYBOX) is True
    assert image_here("opsctl-test/nosuch:1") is False
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert image_here(BUSYBOX) is None
    monkeypatch.setenv("DOCKER_HOST", "ssh://user@example.invalid")  # the SDK's to ask, never this module's
    assert image_here(BUSYBOX) is None


def test_image_here_is_no_answer_from_something_else_than_an_engine(tmp_path, monkeypatch):
    import socketserver
    import threading

    from opsctl.adapters.engine_api import image_here

    class NotAnEngine(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")  # a line, but no HTTP status line

    path = str(tmp_path / "s.sock")
    with socketserver.ThreadingUnixStreamServer(path, NotAnEngine) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        assert image_here(BUSYBOX) is None
        server.shutdown()
