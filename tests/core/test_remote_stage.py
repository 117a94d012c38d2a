"""What a remote stage ships as bytes (core/remote_stage.py): bounded before anything is read."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from opsctl.core.remote_stage import MAX_INLINE_BYTES, RunRemote, stage_work
from opsctl.errors import UsageError


class FakeSession:
    """The RunSession calls stage_work makes, for deps DVC does not track."""

    def __init__(self, deps: list[str]) -> None:
        self.deps = deps
        self.pushed: list = []

    def stage_deps(self, name):
        return [SimpleNamespace(path=p, md5=None, cached=False) for p in self.deps]

    def stage_outs(self, name):
        return ["out.txt"]

    def push_objects(self, md5s, remote):
        self.pushed.append(md5s)


def project_at(root):
    return SimpleNamespace(root=root)


def test_small_untracked_deps_travel_as_their_bytes(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    (tmp_path / "params.yaml").write_text("lr: 0.1\n")
    work = stage_work(FakeSession(["src", "params.yaml"]), project_at(tmp_path), "s", ".", RunRemote("r", "s3://b"))
    assert {i.path: i.content for i in work.inputs} == {"src/a.py": b"print(1)\n", "params.yaml": b"lr: 0.1\n"}
    assert work.outs == ("out.txt",) and work.remote_name == "r" and not work.remote_is_cache


def test_an_untracked_dep_past_the_bound_is_refused_without_being_read(tmp_path):
    huge = tmp_path / "data.bin"
    with open(huge, "wb") as f:  # sparse: 64 GiB that take no disk; reading it would exhaust memory
        f.truncate(1 << 36)
    assert os.stat(huge).st_size > MAX_INLINE_BYTES
    with pytest.raises(UsageError, match=r"pass 64 MiB \(at data.bin\)"):
        stage_work(FakeSession(["data.bin"]), project_at(tmp_path), "s", ".", RunRemote("r", "s3://b"))


def test_a_symlink_out_of_the_project_is_refused(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("key\n")
    root = tmp_path / "p"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    with pytest.raises(UsageError, match="points outside the project"):
        stage_work(FakeSession(["link.txt"]), project_at(root), "s", ".", RunRemote(None, "/cache"))
