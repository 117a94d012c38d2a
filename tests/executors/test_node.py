"""A stage's node-local workspace (executors/node.py): inputs from a DVC remote by hash
and from bytes, outputs hashed as DVC does and pushed — with real git, DVC and a local
directory remote, and nothing shared with the project but that remote."""

from __future__ import annotations

import hashlib
import shutil
import sys

import pytest
import yaml

from opsctl.errors import UsageError
from opsctl.executors.base import ContainerSettings, Input, RemoteWork
from opsctl.executors.node import NodeStage, prepare, publish, run_stage
from tests.conftest import git_dvc_project, run

DVC = [sys.executable, "-m", "dvc"]


@pytest.fixture
def project(tmp_path):
    """A project whose data (a file and a directory) is pushed to a local remote."""
    root = git_dvc_project(tmp_path / "project")
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "raw.csv").write_text("a,b\n1,2\n3,4\n")
    for i in range(3):
        (root / "data" / "images" / f"{i}.txt").write_text(f"image {i}\n")
    run([*DVC, "add", "-q", "data/raw.csv", "data/images"], cwd=root)
    run([*DVC, "remote", "add", "-d", "store", str(tmp_path / "remote")], cwd=root)
    run([*DVC, "push", "-q"], cwd=root)
    return root


def hash_of(root, dvcfile):
    return yaml.safe_load((root / dvcfile).read_text())["outs"][0]["md5"]


def test_inputs_arrive_by_hash_and_outputs_go_back_by_hash(project, tmp_path):
    task = NodeStage(
        "count",
        RemoteWork(
            inputs=(
                Input("data/raw.csv", md5=hash_of(project, "data/raw.csv.dvc")),
                Input("data/images", md5=hash_of(project, "data/images.dvc")),
                Input("src/count.py", content=b"print('edited, not committed')\n"),
            ),
            outs=("out/summary.txt", "out/parts"),
            remote_url=str(tmp_path / "remote"),
        ),
    )
    node = tmp_path / "node"
    workspace = prepare(node, "run1-count", task)

    assert (workspace / "data/raw.csv").read_text() == "a,b\n1,2\n3,4\n"
    assert sorted(p.name for p in (workspace / "data/images").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert (workspace / "src/count.py").read_bytes() == b"print('edited, not committed')\n"
    assert (workspace / ".git").is_dir() and (workspace / ".dvc").is_dir()
    assert (node / "cache").is_dir()  # the node's own cache, kept between tasks
    assert (workspace / "out").is_dir()  # the outputs' directory, as a checkout of the project has it

    # the stage runs (here: by hand) and writes its outputs
    (workspace / "out/parts").mkdir(parents=True)
    (workspace / "out/summary.txt").write_text("2 rows, 3 images\n")
    (workspace / "out/parts/a.txt").write_text("a\n")
    outputs = {o.path: o for o in publish(workspace, task)}

    summary = outputs["out/summary.txt"]
    assert summary.md5 == hashlib.md5(b"2 rows, 3 images\n").hexdigest() and not summary.isdir
    parts = outputs["out/parts"]
    assert parts.isdir and parts.md5.endswith(".dir") and parts.nfiles == 1

    # the project gets them back from the remote by those hashes, as the coordinator will
    (project / "out").mkdir()
    (project / "out/summary.txt.dvc").write_text(f"outs:\n- md5: {summary.md5}\n  path: summary.txt\n  hash: md5\n")
    (project / "out/parts.dvc").write_text(f"outs:\n- md5: {parts.md5}\n  path: parts\n  hash: md5\n")
    run([*DVC, "pull", "-q", "out/summary.txt.dvc", "out/parts.dvc"], cwd=project)
    assert (project / "out/summary.txt").read_text() == "2 rows, 3 images\n"
    assert (project / "out/parts/a.txt").read_text() == "a\n"

    # a second task on the node finds the inputs in the node's cache: nothing to download
    shutil.move(tmp_path / "remote", tmp_path / "remote-away")
    again = prepare(node, "run2-count", task)
    assert (again / "data/raw.csv").read_text() == "a,b\n1,2\n3,4\n"


def test_bad_tasks_are_refused(project, tmp_path):
    remote = str(tmp_path / "remote")
    escaping = NodeStage("s", RemoteWork((Input("../outside.txt", content=b"x"),), (), remote))
    with pytest.raises(UsageError, match="not a path inside the workspace"):
        prepare(tmp_path / "node", "t", escaping)
    git_dir = NodeStage("s", RemoteWork((Input(".git/hooks/pre-commit", content=b"x"),), (), remote))
    with pytest.raises(UsageError, match="not a path inside the workspace"):
        prepare(tmp_path / "node", "t", git_dir)
    empty = NodeStage("s", RemoteWork((Input("a.txt"),), (), remote))
    with pytest.raises(UsageError, match="neither a hash nor content"):
        prepare(tmp_path / "node", "t", empty)
    missing_out = NodeStage("s", RemoteWork((), ("never.txt",), remote))
    workspace = prepare(tmp_path / "node", "t", missing_out)
    with pytest.raises(UsageError, match="did not write its output never.txt"):
        publish(workspace, missing_out)


@pytest.mark.docker
def test_a_stage_runs_in_its_container_in_the_node_workspace(project, tmp_path, docker_engine):
    task = NodeStage(
        "count",
        RemoteWork(
            (Input("data/raw.csv", md5=hash_of(project, "data/raw.csv.dvc")),),
            ("out/count.txt",),
            str(tmp_path / "remote"),
        ),
        cmd="mkdir -p out && wc -l < data/raw.csv > out/count.txt && touch .git/tampered",
        container=ContainerSettings(image="opsctl-test/busybox:latest"),
    )
    result = run_stage(tmp_path / "node", "r1-count", task)
    assert result.outcome.exit_code != 0  # .git is read-only in the container: the stage can't touch it
    assert "Read-only file system" in result.outcome.log_path.read_text() and result.outputs == []
    assert not (tmp_path / "node" / "workspaces" / "r1-count").exists()  # removed: nothing left to tamper with

    honest = NodeStage(**{**task.__dict__, "cmd": "mkdir -p out && wc -l < data/raw.csv > out/count.txt"})
    result = run_stage(tmp_path / "node", "r2-count", honest)
    assert result.outcome.succeeded, result.outcome.log_path.read_text()
    (out,) = result.outputs
    assert out.path == "out/count.txt" and out.md5 == hashlib.md5(b"3\n").hexdigest()
