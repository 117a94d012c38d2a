"""DVC's private internals opsctl uses live in one module (opsctl.adapters.dvc_compat), checked
against one supported DVC range; outside it opsctl refuses with one clear line and exit 4."""

from __future__ import annotations

import json
import os
import re

import pytest

from opsctl.adapters import dvc as dvc_adapter
from opsctl.adapters import dvc_compat
from opsctl.errors import EXIT_UNAVAILABLE, DvcVersionError
from tests.conftest import REPO, git_dvc_project, run_opsctl


def test_the_installed_dvc_is_inside_the_supported_range():
    installed = dvc_adapter.dvc_version()
    assert dvc_compat.check_dvc_version(installed) == installed


def test_pyproject_pins_dvc_to_the_supported_range_and_bounds_textual():
    text = (REPO / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    pins = dict(re.findall(r'"([a-z]+)([<>=!~][^"]*)"', dependencies))
    assert pins["dvc"] == dvc_compat.SUPPORTED_DVC
    assert "<" in pins["textual"], "the dashboard's snapshots depend on Textual's rendering: bound it"


@pytest.mark.parametrize("version", ["3.49.9", "3.68.0", "3.68.0rc1", "4.0.0", "2.58.2", "not-a-version"])
def test_a_dvc_outside_the_range_is_refused_naming_both_versions(version):
    with pytest.raises(DvcVersionError) as caught:
        dvc_compat.check_dvc_version(version)
    error = caught.value
    assert error.exit_code == EXIT_UNAVAILABLE
    assert str(error) == f"DVC {version} is installed; this opsctl works with DVC {dvc_compat.SUPPORTED_DVC}"
    assert f"pip install 'dvc{dvc_compat.SUPPORTED_DVC}'" in error.hint


@pytest.mark.parametrize("version", ["3.50.0", "3.67.1", "3.67.99"])
def test_versions_inside_the_range_pass(version):
    assert dvc_compat.check_dvc_version(version) == version


def test_the_adapter_checks_the_version_before_first_using_dvc(monkeypatch, tmp_path):
    monkeypatch.setattr(dvc_adapter, "_dvc_prepared", False)
    monkeypatch.setattr(dvc_adapter, "dvc_version", lambda: "3.99.0")
    with pytest.raises(DvcVersionError, match=r"DVC 3\.99\.0 is installed"):
        with dvc_adapter.open_repo(git_dvc_project(tmp_path / "p")):
            pass


@pytest.fixture
def newer_dvc_env(tmp_path) -> dict:
    """The environment of a process that sees DVC 3.99.0 as installed: a dist-info found
    before the real one (the real package is still what imports)."""
    fake = tmp_path / "fake-site"
    info = fake / "dvc-3.99.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dvc\nVersion: 3.99.0\n")
    path = os.pathsep.join(p for p in [str(fake), os.environ.get("PYTHONPATH", ""), str(REPO)] if p)
    return {"PYTHONPATH": path}


def test_cli_refuses_an_unsupported_dvc_with_one_line_and_exit_4(newer_dvc_env, tmp_path):
    project = git_dvc_project(tmp_path / "p", "p")
    result = run_opsctl("data", "status", cwd=project, env=newer_dvc_env)
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert f"DVC 3.99.0 is installed; this opsctl works with DVC {dvc_compat.SUPPORTED_DVC}" in lines[0]
    assert "Traceback" not in result.stderr


def test_doctor_fails_the_dvc_check_for_an_unsupported_dvc(newer_dvc_env, tmp_path):
    result = run_opsctl("doctor", "--json", cwd=tmp_path, env=newer_dvc_env)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["dvc"]["status"] == "fail"
    assert "DVC 3.99.0 is installed" in checks["dvc"]["detail"]
    assert result.returncode == 4


def test_every_private_dvc_name_is_used_only_in_the_compat_module():
    """A new use of a DVC internal elsewhere goes through (and is documented in) dvc_compat."""
    private = re.compile(
        r"from dvc[\w.]* import [^\n]*\b_[a-z]\w*|dvc[\w.]*\._[a-z]\w*|\b(?:repo|stage|rwlock|stage_cache)\._[a-z]\w*"
    )
    offenders = []
    for path in sorted((REPO / "opsctl").rglob("*.py")):
        if path.name == "dvc_compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if private.search(line.split("#", 1)[0]):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_internals_exist_in_the_installed_dvc(tmp_path):
    """What dvc_compat relies on, looked up in the DVC that is installed: the failure names
    what a new DVC release moved."""
    import dvc.fs.callbacks
    import dvc.rwlock
    import dvc.stage.cache
    import dvc.utils.serialize._yaml
    import dvc_data.callbacks
    from dvc.dvcfile import ProjectFile
    from dvc.repo import Repo
    from dvc.ui import ui

    repo = Repo(str(git_dvc_project(tmp_path / "p")))
    try:
        needed = {
            "dvc.rwlock._edit_rwlock": (dvc.rwlock, "_edit_rwlock"),
            "dvc.rwlock._check_blockers": (dvc.rwlock, "_check_blockers"),
            "dvc.rwlock.rwlock": (dvc.rwlock, "rwlock"),
            "Repo.cloud.push": (repo.cloud, "push"),
            "Repo.cloud.pull": (repo.cloud, "pull"),
            "dvc.stage.cache._can_hash": (dvc.stage.cache, "_can_hash"),
            "StageCache._load": (dvc.stage.cache.StageCache, "_load"),
            "StageCache._create_stage": (dvc.stage.cache.StageCache, "_create_stage"),
            "dvc.utils.serialize._yaml._dump": (dvc.utils.serialize._yaml, "_dump"),
            "ProjectFile._lockfile": (ProjectFile, "_lockfile"),
            "Repo._lock_depth": (repo, "_lock_depth"),
            "dvc.fs.callbacks.Tqdm": (dvc.fs.callbacks, "Tqdm"),
            "dvc_data.callbacks.Tqdm": (dvc_data.callbacks, "Tqdm"),
            "dvc.ui.ui.progress": (ui, "progress"),
        }
        missing = [label for label, (owner, name) in needed.items() if not hasattr(owner, name)]
    finally:
        repo.close()
    assert not missing, f"DVC internals opsctl.adapters.dvc_compat uses are gone: {missing}"


def test_planning_reads_without_entering_itself_in_the_rwlock_but_still_sees_writers(tmp_path, monkeypatch):
    """A planner (opsctl status, the dashboard) must never make a running stage's output "busy":
    its reads are not written into .dvc/tmp/rwlock, while a writer there is still seen."""
    import json
    import subprocess

    import dvc.rwlock

    from opsctl.adapters.dvc_run import RunSession
    from opsctl.errors import ProjectBusyError

    root = git_dvc_project(tmp_path / "p")
    (root / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n")
    registered = []
    original = dvc.rwlock._acquire_read
    monkeypatch.setattr(
        dvc.rwlock, "_acquire_read", lambda lock, info, paths: registered.append(paths) or original(lock, info, paths)
    )

    with RunSession(root, read_only=True) as session:
        assert [s.name for s in session.plan([])] == ["s"]
    assert registered == []

    writer = subprocess.Popen(["sleep", "30"])
    try:
        (root / ".dvc" / "tmp").mkdir(exist_ok=True)
        entry = {"pid": writer.pid, "cmd": "dvc repro"}
        (root / ".dvc" / "tmp" / "rwlock").write_text(json.dumps({"write": {str(root / "out.txt"): entry}}))
        with pytest.raises(ProjectBusyError), RunSession(root, read_only=True) as session:
            session.plan([])
    finally:
        writer.kill()
        writer.wait()
