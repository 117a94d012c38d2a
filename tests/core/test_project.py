"""opsctl.core.project: finding a Git + DVC project by plain filesystem checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.core.config import CONFIG_FILE
from opsctl.core.project import Project, find_git_root, find_root, open_project
from opsctl.errors import NotAProjectError


@pytest.fixture(autouse=True)
def _isolated(tmp_path):
    # The "no Git above" cases only mean something when tmp_path is not inside a repo.
    if find_git_root(tmp_path) is not None:
        pytest.skip(f"{tmp_path} is inside a Git work tree")


def make_repo(root: Path, *, git: bool = True, dvc: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if git:
        (root / ".git").mkdir()
    if dvc:
        (root / ".dvc").mkdir()
    return root


def test_found_from_nested_subdirectory(tmp_path):
    root = make_repo(tmp_path / "proj")
    nested = root / "src" / "pkg" / "deep"
    nested.mkdir(parents=True)

    assert find_root(nested) == root.resolve()
    project = open_project(nested)
    assert project.root == root.resolve()


def test_found_from_the_root_itself(tmp_path):
    root = make_repo(tmp_path / "proj")
    assert open_project(root).root == root.resolve()


def test_default_start_is_the_working_directory(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "proj")
    (root / "sub").mkdir()
    monkeypatch.chdir(root / "sub")
    assert find_root() == root.resolve()
    assert open_project().root == root.resolve()


def test_git_root_above_dvc_root_counts(tmp_path):
    # DVC initialised in a subdirectory of a Git repository (a monorepo).
    make_repo(tmp_path / "mono", dvc=False)
    sub = make_repo(tmp_path / "mono" / "ml", git=False)
    assert open_project(sub / ".").root == sub.resolve()


def test_git_file_counts_as_work_tree(tmp_path):
    # worktrees and submodules have a `.git` file, not a directory
    root = make_repo(tmp_path / "wt", git=False)
    (root / ".git").write_text("gitdir: /elsewhere\n")
    assert find_root(root) == root.resolve()


def test_dvc_without_git_is_not_a_project(tmp_path):
    root = make_repo(tmp_path / "proj", git=False)
    assert find_root(root) is None
    with pytest.raises(NotAProjectError) as info:
        open_project(root)
    assert info.value.exit_code == 3
    assert "no Git + DVC repository" in str(info.value)
    assert str(root.resolve()) in str(info.value)
    assert "opsctl init" in info.value.hint


def test_git_without_dvc_hints_dvc_init(tmp_path):
    root = make_repo(tmp_path / "proj", dvc=False)
    (root / "src").mkdir()
    with pytest.raises(NotAProjectError) as info:
        open_project(root / "src")
    assert info.value.exit_code == 3
    assert "without DVC" in str(info.value)
    assert "dvc init" in info.value.hint
    assert "opsctl init --existing" in info.value.hint


def test_dvc_file_not_directory_does_not_count(tmp_path):
    root = make_repo(tmp_path / "proj", dvc=False)
    (root / ".dvc").write_text("not a dir")
    assert find_root(root) is None


def test_plain_directory_is_not_a_project(tmp_path):
    with pytest.raises(NotAProjectError) as info:
        open_project(tmp_path)
    assert info.value.exit_code == 3
    assert info.value.hint


def test_without_opsctl_yaml_runs_on_defaults(tmp_path):
    root = make_repo(tmp_path / "adopted")
    project = open_project(root)
    assert project.has_config_file is False
    assert project.config.executor == "local"
    assert project.config.project == "adopted"
    assert project.config.images == {}


def test_with_opsctl_yaml_config_is_loaded(tmp_path):
    root = make_repo(tmp_path / "proj")
    (root / CONFIG_FILE).write_text(
        "project: churn\nexecutor: docker\nimages:\n  app: {}\nstages:\n  default: {image: app}\n",
        encoding="utf-8",
    )
    project = open_project(root)
    assert project.has_config_file is True
    assert project.config.project == "churn"
    assert project.config.executor == "docker"
    assert project.config.settings_for("train").image == "app"


def test_invalid_opsctl_yaml_surfaces_config_error(tmp_path):
    from opsctl.errors import ConfigError

    root = make_repo(tmp_path / "proj")
    (root / CONFIG_FILE).write_text("executor: podman\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="executor"):
        open_project(root)


def test_project_paths(tmp_path):
    project = open_project(make_repo(tmp_path / "proj"))
    assert isinstance(project, Project)
    assert project.state_dir == project.root / ".opsctl"
    assert project.config_path == project.root / "opsctl.yaml"
