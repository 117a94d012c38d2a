"""core/plan_cache.py on its own: what a record keeps, when it is refused, and every way a
record stops holding (the no-op fast path then asks DVC). Files in a temporary directory;
the Docker engine is a fake (``engine_id``)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from opsctl.core import plan_cache
from opsctl.core.project import Project

KEY = {"executor": "docker"}
VERDICT = {"stages": [], "changed_data_sources": [], "images": {}}
REF = "example/tool:1"


def past_racy_window() -> None:
    time.sleep(plan_cache.RACY_NS / 1e9 + 0.02)


@pytest.fixture
def project(tmp_path) -> Project:
    """A project directory with a pipeline file, a data file (its md5 known), a data directory,
    and the state directory the record goes to; all of it older than the racy window."""
    root = tmp_path / "p"
    (root / ".opsctl").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "data.txt").write_text("data\n")
    (root / "dir").mkdir()
    (root / "dir" / "part.txt").write_text("part\n")
    past_racy_window()
    return Project(root)


def watched(project: Project) -> plan_cache.Watched:
    root = str(project.root)
    return plan_cache.Watched(
        content={f"{root}/dvc.yaml", f"{root}/params.yaml"},  # params.yaml: missing, which matters too
        data={f"{root}/data.txt", f"{root}/dir"},
        collected={root},
        md5={f"{root}/data.txt": hashlib.md5(b"data\n").hexdigest()},
        refs={REF: "sha256:aaa"},
    )


def engine(ids: dict | None = None):
    return lambda ref: (ids if ids is not None else {REF: "sha256:aaa"}).get(ref)


def saved(project: Project) -> bool:
    return plan_cache.save(project, KEY, VERDICT, watched(project), time.time_ns())


def load(project: Project, *, key: dict = KEY, ids: dict | None = None) -> tuple[dict | None, plan_cache.Stats]:
    stats = plan_cache.Stats()
    return plan_cache.load(project, key, engine_id=engine(ids), stats=stats), stats


def record_file(project: Project) -> Path:
    return project.state_dir / plan_cache.CACHE_FILE


def test_an_unchanged_project_hits(project):
    assert saved(project)
    verdict, stats = load(project)
    assert verdict == VERDICT and stats.hit and stats.reason == ""


def test_a_record_is_refused_when_a_path_changed_after_the_check_began_or_just_before(project):
    started = time.time_ns()
    (project.root / "data.txt").write_text("DATA\n")  # while DVC looked
    assert not plan_cache.save(project, KEY, VERDICT, watched(project), started)
    past_racy_window()
    (project.root / "dvc.yaml").write_text("stages: {}  \n")  # within the window before the check
    assert not plan_cache.save(project, KEY, VERDICT, watched(project), time.time_ns() + plan_cache.RACY_NS // 2)
    assert not record_file(project).exists()


def test_a_file_changed_while_the_record_is_made_is_not_kept_with_its_old_stat(project, monkeypatch):
    """The bytes are read first and the stat taken after: a write in between shows as a ctime too
    recent to keep. (Stat first, bytes after, would pair the old stat with the new bytes: the
    next check would find the bytes equal and answer with a verdict made on the old ones.)"""
    digest = plan_cache._digest

    def read_then_write(path: str) -> str | None:
        result = digest(path)
        if path.endswith("dvc.yaml"):
            Path(path).write_text("stages: {changed: {cmd: x}}\n")
        return result

    monkeypatch.setattr(plan_cache, "_digest", read_then_write)
    assert not saved(project)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: (root / "dvc.yaml").write_text("stages: {a: {cmd: x}}\n"), id="content"),
        pytest.param(lambda root: (root / "params.yaml").write_text("x: 1\n"), id="a missing file appears"),
        pytest.param(lambda root: (root / "dvc.yaml").unlink(), id="a file goes"),
        pytest.param(lambda root: (root / "data.txt").write_text("other\n"), id="data content"),
        pytest.param(lambda root: (root / "dir" / "part.txt").write_text("PART\n"), id="a file in a data directory"),
        pytest.param(lambda root: (root / "dir" / "new.txt").write_text("new\n"), id="a data directory's listing"),
        pytest.param(lambda root: (root / "raw.csv.dvc").write_text("outs: []\n"), id="a .dvc file appears"),
        pytest.param(lambda root: (root / "sub").mkdir(), id="a new subdirectory"),
    ],
)
def test_a_change_misses(project, change):
    assert saved(project)
    change(project.root)
    verdict, stats = load(project)
    assert verdict is None and not stats.hit and stats.reason


def test_a_name_dvc_does_not_collect_is_no_change(project):
    assert saved(project)
    (project.root / "notes.txt").write_text("notes\n")
    verdict, stats = load(project)
    assert verdict == VERDICT, stats.reason


def test_a_re_tagged_ref_image_misses(project):
    assert saved(project)
    verdict, stats = load(project, ids={REF: "sha256:bbb"})
    assert verdict is None and stats.reason == f"image {REF} changed"
    assert load(project, ids={})[0] is None  # the engine no longer has it


def test_a_record_for_another_key_format_or_directory_misses(project, tmp_path):
    assert saved(project)
    assert load(project, key={"executor": "local"})[1].reason == "made for another plan"
    record = json.loads(record_file(project).read_text())
    elsewhere = Project(tmp_path / "copy")
    elsewhere.state_dir.mkdir(parents=True)
    record_file(elsewhere).write_text(json.dumps(record))  # `cp -r`: the record watches the original's files
    assert load(elsewhere)[1].reason == "made for a project elsewhere (copied or moved)"
    record_file(project).write_text(json.dumps({**record, "format": plan_cache.FORMAT - 1}))
    assert load(project)[1].reason == "another cache format"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,  # nested past the recursion limit
        b"[]",
        b'{"format": 2}',
        b'{"format": 2, "root": 1, "key": 2, "install": 3, "environment": 4}',
    ],
    ids=["empty", "not utf-8", "deeply nested", "a list", "fields missing", "fields of the wrong kind"],
)
def test_a_garbage_record_misses_without_an_exception(project, content):
    record_file(project).write_bytes(content)
    verdict, stats = load(project)
    assert verdict is None and not stats.hit and stats.reason


def test_a_record_with_its_fingerprint_of_the_wrong_shape_misses(project):
    assert saved(project)
    record = json.loads(record_file(project).read_text())
    for field, value in [("content", []), ("data", {"x": 5}), ("listings", {"x": [1]}), ("refs", [1])]:
        record_file(project).write_text(json.dumps({**record, field: value}))
        verdict, stats = load(project)
        assert verdict is None and stats.reason, field


def test_an_oversized_record_is_neither_kept_nor_read(project, monkeypatch):
    assert saved(project)
    size = record_file(project).stat().st_size
    monkeypatch.setattr(plan_cache, "MAX_CACHE_BYTES", size - 1)
    assert load(project)[1].reason == "cache too large"
    assert not saved(project)


def test_a_garbage_verdict_behind_a_good_fingerprint_misses(project):
    """The plan is rebuilt from the kept verdict (core/pipeline.py): one edited by hand is a miss."""
    from opsctl.core.pipeline import cached_plan

    no_image = watched(project)
    no_image.refs = {}
    assert plan_cache.save(project, {"executor": "local"}, {"stages": [{"name": 1}]}, no_image, time.time_ns())
    stats = plan_cache.Stats()
    assert cached_plan(project, [], executor="local", force=False, stats=stats) is None
    assert not stats.hit and stats.reason == "unreadable verdict (KeyError)"


def test_a_touched_file_with_a_known_md5_hits_and_the_refreshed_record_is_kept(project):
    assert saved(project)
    data = project.root / "data.txt"
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    verdict, stats = load(project)  # the touch is too recent for the refreshed stat to be kept
    assert verdict == VERDICT and stats.hit
    assert json.loads(record_file(project).read_text())["data"][str(data)] != plan_cache.signature(str(data))
    past_racy_window()
    assert load(project)[0] == VERDICT
    kept = json.loads(record_file(project).read_text())
    assert kept["data"][str(data)] == plan_cache.signature(str(data)) and "_dirty" not in kept
    # Touched again with other bytes of the same length: re-hashed, and a miss.
    data.write_text("DATA\n")
    assert load(project)[0] is None


def test_a_touched_file_without_a_known_md5_misses(project):
    assert saved(project)
    part = project.root / "dir" / "part.txt"
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    assert load(project)[0] is None


def test_a_pipeline_file_saved_with_the_same_bytes_hits(project):
    assert saved(project)
    (project.root / "dvc.yaml").unlink()
    (project.root / "dvc.yaml").write_text("stages: {}\n")
    verdict, stats = load(project)
    assert verdict == VERDICT, stats.reason


def test_opsctl_no_plan_cache_always_asks_dvc(project, monkeypatch):
    assert saved(project)
    monkeypatch.setenv(plan_cache.DISABLE_ENV, "1")
    verdict, stats = load(project)
    assert verdict is None and stats.reason == f"{plan_cache.DISABLE_ENV}=1"
    assert not saved(project)
    monkeypatch.delenv(plan_cache.DISABLE_ENV)
    assert load(project)[0] == VERDICT  # nothing was forgotten by the refusal itself


def test_the_environment_dvc_and_git_read_is_part_of_the_record(project, monkeypatch):
    assert saved(project)
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", "/elsewhere")
    assert load(project)[1].reason == "environment changed"


@pytest.mark.parametrize("package", plan_cache.STATUS_PACKAGES)
def test_an_upgrade_of_dvc_or_a_library_its_status_rests_on_misses(project, tmp_path, monkeypatch, package):
    """Each package is stood in for by a module file of its own; rewriting it (what pip does on
    an upgrade or a reinstall) misses."""
    import importlib.machinery
    import importlib.util

    stand_in = tmp_path / f"{package}__init__.py"
    stand_in.write_text("# 1\n")
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name == package:
            return importlib.machinery.ModuleSpec(name, None, origin=str(stand_in))
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    past_racy_window()
    assert saved(project)
    assert load(project)[1].hit
    stand_in.unlink()
    stand_in.write_text("# 2\n")  # a new file: a new inode, as pip writes it
    assert load(project)[1].reason == "opsctl or DVC changed"
