"""opsctl.core.run's -S parsing and opsctl.core.stagelock (opsctl.lock) round trips."""

from __future__ import annotations

import threading
import time

import pytest

from opsctl.core import stagelock
from opsctl.core.run import parse_overrides
from opsctl.core.stagelock import LOCK_FILE, StageImage, read_lock, record_stage
from opsctl.errors import UsageError


@pytest.mark.parametrize(
    ("item", "parsed"),
    [
        ("train.n_est=50", ("params.yaml", "train.n_est", 50)),
        ("lr=0.1", ("params.yaml", "lr", 0.1)),
        ("flag=true", ("params.yaml", "flag", True)),
        ("name=forest", ("params.yaml", "name", "forest")),
        ("list=[1, 2]", ("params.yaml", "list", [1, 2])),
        ("empty=", ("params.yaml", "empty", "")),
        ("conf/p.yaml:a.b=x", ("conf/p.yaml", "a.b", "x")),
        ("text=a: b", ("params.yaml", "text", {"a": "b"})),
    ],
)
def test_parse_overrides(item, parsed):
    assert parse_overrides([item]) == [parsed]


@pytest.mark.parametrize("item", ["novalue", "=1", "a..b=1", ".a=1", "f.yaml:=1"])
def test_parse_overrides_refuses_malformed(item):
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_overrides([item])


def test_stagelock_round_trip_and_replace(tmp_path):
    assert read_lock(tmp_path) == {}
    record_stage(tmp_path, "train", StageImage("docker", "app", "opsctl/p-app:abc", "inputs:abc"))
    record_stage(tmp_path, "prepare", StageImage("local"))
    record_stage(tmp_path, "train", StageImage("docker", "app", "opsctl/p-app:def", "inputs:def"))
    lock = read_lock(tmp_path)
    assert lock == {
        "prepare": StageImage("local"),
        "train": StageImage("docker", "app", "opsctl/p-app:def", "inputs:def"),
    }
    text = (tmp_path / LOCK_FILE).read_text()
    assert text.startswith("# Written by `opsctl run`")
    assert text.index("prepare:") < text.index("train:")  # sorted: stable diffs in Git
    assert "null" not in text
    assert not list(tmp_path.glob(".opsctl.lock.*"))  # no temp file left


def test_unreadable_stagelock_counts_as_empty(tmp_path):
    (tmp_path / LOCK_FILE).write_text("stages: [unclosed\n")
    assert read_lock(tmp_path) == {}


def test_stagelock_records_at_once_keep_every_entry(tmp_path):
    writers = 4
    images = {f"s{i}": StageImage("docker", "tools", f"img:{i}", f"sha256:{i}") for i in range(writers)}
    with stagelock._write_lock:  # a write in progress: the others queue and go in one write
        threads = [threading.Thread(target=record_stage, args=(tmp_path, n, image)) for n, image in images.items()]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(stagelock._pending) < writers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(stagelock._pending) == writers
    for thread in threads:
        thread.join(timeout=30)
    assert read_lock(tmp_path) == images
    assert not stagelock._pending
