"""Finding the project a command works on.

An opsctl project is any Git repository with DVC initialised; ``opsctl.yaml``
is optional. Finding it must stay cheap (plain filesystem checks, no DVC or
Git import) because every project command starts here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.errors import NotAProjectError

if TYPE_CHECKING:
    from opsctl.core.config import ProjectConfig

STATE_DIR = ".opsctl"

CREATE_HINT = "create one with `opsctl init DIR`, or adopt a Git + DVC repository with `opsctl init --existing`"


class Project:
    """A project found on disk. Its ``opsctl.yaml`` is read and validated on first use
    of :attr:`config` (``open_project`` does that up front unless told not to), so a
    command that never needs it, such as `opsctl runs list`, skips the YAML parser and
    the config types (bench/runs.py)."""

    __slots__ = ("root", "_loaded", "_state_dir")

    def __init__(self, root: Path, *, state_dir: Path | None = None) -> None:
        """``state_dir``: where runs are recorded and logged, when not the project's own
        ``.opsctl/`` — an experiment's isolated work tree records into the project it came
        from (docs/architecture.md, *Experiments*)."""
        self.root = root
        self._loaded: tuple[ProjectConfig, bool] | None = None
        self._state_dir = state_dir

    def _load(self) -> tuple[ProjectConfig, bool]:
        if self._loaded is None:
            from opsctl.core.config import default_config, load_config

            config = load_config(self.root)
            self._loaded = (config or default_config(self.root), config is not None)
        return self._loaded

    @property
    def config(self) -> ProjectConfig:
        """``opsctl.yaml``, validated, or the defaults when there is none."""
        return self._load()[0]

    @property
    def has_config_file(self) -> bool:
        return self._load()[1]

    @property
    def state_dir(self) -> Path:
        return self._state_dir if self._state_dir is not None else self.root / STATE_DIR

    @property
    def config_path(self) -> Path:
        from opsctl.core.config import CONFIG_FILE

        return self.root / CONFIG_FILE

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"


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


def open_project(start: Path | None = None, *, read_config: bool = True) -> Project:
    """The project containing ``start`` (default: the working directory), or :class:`NotAProjectError`.

    With ``read_config`` (the default) a broken ``opsctl.yaml`` fails here, before any
    work; without it, only when something asks for :attr:`Project.config`."""
    start = Path(start) if start is not None else Path(os.getcwd())
    root = find_root(start)
    if root is None:
        where = start.resolve()
        if find_git_root(where) is not None:
            raise NotAProjectError(
                f"not an opsctl project: {where} is in a Git repository without DVC",
                hint="run `dvc init` there and then `opsctl init --existing`, or " + CREATE_HINT.split(", or ")[0],
            )
        raise NotAProjectError(f"not an opsctl project: no Git + DVC repository at or above {where}", hint=CREATE_HINT)
    project = Project(root)
    if read_config:
        project.config  # noqa: B018 - validates opsctl.yaml now
    return project
