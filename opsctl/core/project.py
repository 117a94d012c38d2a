"""Finding the project a command works on.

An opsctl project is any Git repository with DVC initialised; ``opsctl.yaml``
is optional. Finding it must stay cheap (plain filesystem checks, no DVC or
Git import) because every project command starts here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opsctl.core.config import CONFIG_FILE, ProjectConfig, default_config, load_config
from opsctl.errors import NotAProjectError

STATE_DIR = ".opsctl"

CREATE_HINT = "create one with `opsctl init DIR`, or adopt a Git + DVC repository with `opsctl init --existing`"


@dataclass(frozen=True)
class Project:
    root: Path
    config: ProjectConfig
    has_config_file: bool

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE


def find_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` holding a ``.dvc/`` directory inside a Git work tree."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir():
            return candidate if _in_git_work_tree(candidate) else None
    return None


def find_git_root(start: Path) -> Path | None:
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _in_git_work_tree(path: Path) -> bool:
    return find_git_root(path) is not None


def open_project(start: Path | None = None) -> Project:
    """The project containing ``start`` (default: the working directory), or :class:`NotAProjectError`."""
    start = Path(start) if start is not None else Path(os.getcwd())
    root = find_root(start)
    if root is None:
        where = start.resolve()
        if find_git_root(where) is not None:
            raise NotAProjectError(
                f"not an opsctl project: {where} is in a Git repository without DVC",
                hint="run `dvc init` there and then `opsctl init --existing`, or " + CREATE_HINT.split(", or ")[0],
            )
        raise NotAProjectError(
            f"not an opsctl project: no Git + DVC repository at or above {where}", hint=CREATE_HINT
        )
    config = load_config(root)
    return Project(root=root, config=config or default_config(root), has_config_file=config is not None)
