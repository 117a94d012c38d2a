"""Git through GitPython."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import GitError, ToolUnavailableError

INSTALL_HINT = "install Git (e.g. `apt-get install git` or https://git-scm.com) and make sure `git` is on PATH"


def git_version() -> str:
    """The installed Git's version string, or :class:`ToolUnavailableError`."""
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise ToolUnavailableError("git is not installed or not on PATH", hint=INSTALL_HINT) from None
    return out.strip().removeprefix("git version ")


def identity_configured(path: Path) -> bool:
    """Whether Git can name an author here without guessing (``user.name`` + ``user.email``)."""
    result = subprocess.run(
        ["git", "var", "GIT_AUTHOR_IDENT"],
        cwd=path,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    return result.returncode == 0


def _fallback_identity() -> dict[str, str]:
    user = getpass.getuser() or "opsctl"
    email = f"{user}@{socket.gethostname() or 'localhost'}"
    return {
        "GIT_AUTHOR_NAME": user,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": user,
        "GIT_COMMITTER_EMAIL": email,
    }


def stage_files(root: Path, paths: list[str]) -> None:
    """``git add`` PATHS in the work tree at ROOT.

    A plain ``git`` process rather than GitPython: this runs after every
    ``opsctl data add``, where importing GitPython (or DVC's pygit2 autostage)
    would cost more than the whole ``git add``.
    """
    if not paths:
        return
    result = subprocess.run(["git", "add", "--", *paths], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        raise GitError(f"git add failed: {lines[-1] if lines else result.returncode}")


class GitRepo:
    """A thin wrapper over ``git.Repo`` with the few operations opsctl needs."""

    def __init__(self, repo) -> None:
        self._repo = repo

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        import git

        try:
            return cls(git.Repo(path, search_parent_directories=True))
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitError(f"{path} is not in a Git repository") from None

    @classmethod
    def init(cls, path: Path) -> GitRepo:
        import git

        args = []
        if not _default_branch_configured():
            # Keep git from printing its "default branch name" hint into our output.
            args.append("--initial-branch=main")
        try:
            git.Git(str(path)).init("-q", *args)
            return cls(git.Repo(path))
        except git.GitCommandError as exc:
            raise GitError(f"git init failed in {path}: {_stderr(exc)}") from None

    @property
    def root(self) -> Path:
        return Path(self._repo.working_tree_dir)

    def add(self, paths: list[str]) -> None:
        import git

        if not paths:
            return
        try:
            self._repo.git.add("--", *paths)
        except git.GitCommandError as exc:
            raise GitError(f"git add failed: {_stderr(exc)}") from None

    def commit(self, message: str) -> tuple[str, bool]:
        """Commit what is staged. Returns (sha, used_fallback_identity).

        A machine without ``user.name``/``user.email`` (fresh CI images, containers)
        still gets a commit, authored as ``login@hostname`` like Git's own
        guess; the caller tells the user.
        """
        import git

        fallback = not identity_configured(self.root)
        env = _fallback_identity() if fallback else {}
        try:
            with self._repo.git.custom_environment(**env):
                self._repo.git.commit("-q", "--no-verify", "-m", message)
        except git.GitCommandError as exc:
            raise GitError(f"git commit failed: {_stderr(exc)}") from None
        return self._repo.head.commit.hexsha, fallback


def _default_branch_configured() -> bool:
    result = subprocess.run(["git", "config", "--get", "init.defaultBranch"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


def _stderr(exc) -> str:
    text = (getattr(exc, "stderr", "") or str(exc)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # GitPython wraps stderr as "stderr: '...'"; keep the last meaningful line.
    return (lines[-1] if lines else str(exc)).strip("'").removeprefix("stderr: ").strip("'")


@dataclass(frozen=True)
class WorkTreeState:
    """Which code a run ran: the commit, the branch, and whether (and how) the work tree differed."""

    commit: str | None  # None in a repository without commits
    branch: str | None  # None when HEAD is detached
    dirty: bool
    diff_hash: str | None  # sha256 of the uncommitted changes (tracked diff + untracked files); None when clean


def work_tree_state(root: Path, exclude: tuple[str, ...] = ()) -> WorkTreeState:
    """Plain ``git`` calls (a few ms each; GitPython's import alone costs more). ``exclude``:
    paths that never count as a change (opsctl's own state: its run store and logs)."""
    import hashlib

    def git(*args: str, binary: bool = False):
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=not binary)
        return result.stdout if result.returncode == 0 else None

    commit = (git("rev-parse", "--verify", "-q", "HEAD") or "").strip() or None
    branch = (git("symbolic-ref", "-q", "--short", "HEAD") or "").strip() or None
    pathspec = [".", *(f":(exclude){path}" for path in exclude)]
    status = git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *pathspec, binary=True) or b""
    if not status:
        return WorkTreeState(commit, branch, False, None)
    digest = hashlib.sha256()
    if commit:
        digest.update(git("diff", "HEAD", "--binary", "--", *pathspec, binary=True) or b"")
    for entry in status.split(b"\0"):
        if entry.startswith(b"?? "):  # untracked: its name and content are part of what ran
            path = root / os.fsdecode(entry[3:])
            digest.update(entry[3:] + b"\0")
            if path.is_file():
                digest.update(path.read_bytes())
    return WorkTreeState(commit, branch, True, digest.hexdigest())
