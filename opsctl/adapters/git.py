"""Git through GitPython."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
from collections.abc import Iterator
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


# -- experiments: snapshots of the work tree, isolated work trees, experiment commits ------------
# Plain `git` processes: each is a few ms, and none of them touches the user's index or files.

EXP_REFS = "refs/opsctl/exps"  # one commit per experiment run: its params, dvc.lock, metrics
SNAPSHOT_REFS = "refs/opsctl/snapshots"  # the work trees queued experiments start from


def _git(root: Path, *args: str, env: dict | None = None, check: bool = True, binary: bool = False):
    result = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=not binary,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
    )
    if check and result.returncode != 0:
        err = result.stderr.decode(errors="replace") if binary else result.stderr
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        raise GitError(f"git {args[0]} failed: {lines[-1] if lines else result.returncode}")
    return result.stdout


def head_commit(root: Path) -> str | None:
    return _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip() or None


def _tree_commit(root: Path, parent: str, message: str, exclude: tuple[str, ...]) -> str:
    """A commit whose tree is the work tree at ``root`` as ``git add -A`` sees it (ignored files
    left out), child of ``parent``, made through a throwaway index: the real index, the files
    and every ref stay as they are. Returns ``parent`` itself when nothing differs."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="opsctl-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(root, "read-tree", parent, env=env)
        _git(root, "add", "-A", env=env)
        if exclude:  # (an exclude pathspec naming an ignored directory makes `git add` fail)
            _git(root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *exclude, env=env)
        tree = _git(root, "write-tree", env=env).strip()
    if tree == _git(root, "rev-parse", f"{parent}^{{tree}}").strip():
        return parent
    identity = {} if identity_configured(root) else _fallback_identity()
    return _git(root, "commit-tree", tree, "-p", parent, "-m", message, env=identity).strip()


def snapshot(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """A commit of the work tree as it is now: HEAD plus uncommitted changes and untracked files
    that are not ignored (:func:`snapshot_head` gives HEAD back). It is kept under
    ``refs/opsctl/snapshots/`` until :func:`drop_snapshot`; with nothing uncommitted it is HEAD itself."""
    head = head_commit(root)
    if head is None:
        raise GitError("the repository has no commit yet", hint="commit the project first (git add -A && git commit)")
    commit = _tree_commit(root, head, "opsctl: work tree snapshot for experiments", exclude)
    if commit != head:
        _git(root, "update-ref", f"{SNAPSHOT_REFS}/{commit}", commit)
    return commit


def snapshot_head(root: Path, commit: str) -> str:
    """The commit a snapshot was taken on (a snapshot of a clean work tree is that commit)."""
    if _git(root, "rev-parse", "--verify", "-q", f"{SNAPSHOT_REFS}/{commit}", check=False).strip():
        return parent_of(root, commit) or commit
    return commit


def current_branch(root: Path) -> str | None:
    """The checked-out branch (None: a detached HEAD)."""
    return _git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip() or None


def drop_snapshot(root: Path, commit: str) -> None:
    _git(root, "update-ref", "-d", f"{SNAPSHOT_REFS}/{commit}", check=False)


@contextlib.contextmanager
def _work_trees_locked(root: Path) -> Iterator[None]:
    """One `git worktree add`/`remove` at a time across processes: `git worktree add` reads
    every other work tree's record, and fails on one another process is half way through
    writing ("failed to read .git/worktrees/NAME/commondir")."""
    import fcntl

    common = Path(_git(root, "rev-parse", "--git-common-dir").strip())
    path = (common if common.is_absolute() else root / common) / "opsctl-worktrees.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_work_tree(root: Path, path: Path, head: str, files_from: str) -> None:
    """A linked work tree at ``path`` (detached at ``head``) whose files are ``files_from``'s,
    with the difference left uncommitted: what the user's work tree was when it was taken."""
    with _work_trees_locked(root):
        _git(root, "worktree", "add", "--detach", "--no-checkout", "-q", str(path), head)
    _git(path, "read-tree", "-u", "--reset", files_from)
    if files_from != head:
        _git(path, "reset", "-q", head)  # the index back at HEAD; the files stay


def remove_work_tree(root: Path, path: Path) -> None:
    """Delete a linked work tree and Git's record of it, whatever state it is in. Never
    ``git worktree prune``: it would also drop the record of a work tree that another
    process is adding at that moment."""
    import shutil

    with _work_trees_locked(root):
        result = subprocess.run(
            ["git", "worktree", "remove", "--force", "--force", str(path)], cwd=root, capture_output=True, text=True
        )
    if result.returncode == 0:
        return
    shutil.rmtree(path, ignore_errors=True)
    common = _git(root, "rev-parse", "--git-common-dir", check=False).strip()
    if common:
        record = (root / common / "worktrees" / path.name).resolve()
        gitdir = record / "gitdir"
        if gitdir.is_file() and Path(gitdir.read_text().strip()).parent == path:
            shutil.rmtree(record, ignore_errors=True)


def commit_experiment(work_tree: Path, run_id: str, message: str, exclude: tuple[str, ...] = ()) -> str:
    """Commit the experiment's work tree (on top of its HEAD, off every branch) and keep it as
    ``refs/opsctl/exps/RUN``; the commit's id."""
    head = head_commit(work_tree)
    assert head is not None
    commit = _tree_commit(work_tree, head, message, exclude)
    _git(work_tree, "update-ref", f"{EXP_REFS}/{run_id}", commit)
    return commit


def changed_paths(root: Path, old: str, new: str) -> list[tuple[str, str]]:
    """(status letter, path) of what differs between two commits, renames as delete + add."""
    out = _git(root, "diff", "--name-status", "-z", "--no-renames", old, new, binary=True)
    parts = [os.fsdecode(p) for p in out.split(b"\0") if p]
    return list(zip(parts[0::2], parts[1::2], strict=False))


def blob(root: Path, commit: str, path: str) -> bytes | None:
    """The file ``path`` at ``commit`` (None when it has none)."""
    result = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=root, capture_output=True)
    return result.stdout if result.returncode == 0 else None


def commit_exists(root: Path, commit: str) -> bool:
    return bool(_git(root, "rev-parse", "--verify", "-q", f"{commit}^{{commit}}", check=False).strip())


def parent_of(root: Path, commit: str) -> str | None:
    return _git(root, "rev-parse", "--verify", "-q", f"{commit}^", check=False).strip() or None


def create_branch(root: Path, name: str, commit: str) -> None:
    if _git(root, "check-ref-format", "--branch", name, check=False).strip() == "":
        raise GitError(f"'{name}' is not a valid branch name")
    if _git(root, "rev-parse", "--verify", "-q", f"refs/heads/{name}", check=False).strip():
        raise GitError(f"a branch named '{name}' exists already", hint="choose another name")
    _git(root, "branch", name, commit)


def files_named(root: Path, name: str) -> list[str] | None:
    """Every file called ``name`` in the work tree that Git tracks or would (untracked, not
    ignored), relative to ``root``; None when Git can't say (not a repository)."""
    result = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", f":(glob)**/{name}"],
        cwd=root,
        capture_output=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if result.returncode != 0:
        return None
    return sorted({p for p in result.stdout.decode(errors="replace").split("\0") if p})


# -- comparing revisions (opsctl report) ----------------------------------------------------


def resolve_commit(root: Path, rev: str) -> str | None:
    """The commit ``rev`` names (a branch, tag, sha, ``HEAD~1``…), or None when it names none."""
    if rev.startswith("-"):  # never an option to git
        return None
    return (
        _git(root, "rev-parse", "--verify", "-q", "--end-of-options", f"{rev}^{{commit}}", check=False).strip() or None
    )


def default_branch(root: Path) -> str | None:
    """The repository's default branch as a revision: the remote's HEAD (``origin/main``) when
    a clone knows it, else a local ``main`` or ``master``; None when there is neither."""
    remote_head = _git(root, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD", check=False).strip()
    if remote_head:
        return remote_head
    for name in ("main", "master"):
        if _git(root, "rev-parse", "--verify", "-q", f"refs/heads/{name}", check=False).strip():
            return name
        if _git(root, "rev-parse", "--verify", "-q", f"refs/remotes/origin/{name}", check=False).strip():
            return f"origin/{name}"
    return None


def merge_base(root: Path, a: str, b: str) -> str | None:
    """The best common ancestor of two revisions, or None (unrelated histories)."""
    return _git(root, "merge-base", a, b, check=False).strip() or None


def commit_time(root: Path, commit: str) -> float | None:
    """When ``commit`` was made (committer time, seconds since the epoch)."""
    out = _git(root, "show", "-s", "--format=%ct", commit, check=False).strip()
    return float(out) if out.isdigit() else None


def repository_prefix(root: Path) -> str:
    """``root``'s path inside its repository (``""`` at the top; ``sub/dir`` without a slash)."""
    return _git(root, "rev-parse", "--show-prefix", check=False).strip().rstrip("/")


def files_at(root: Path, commit: str, names: tuple[str, ...]) -> list[str]:
    """Paths (relative to ``root``) of the files at ``commit`` under ``root`` whose name is one
    of ``names`` or, for a name starting with ``*``, ends with it (``*.dvc``)."""
    out = _git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, binary=True)
    prefix = repository_prefix(root)
    prefix = f"{prefix}/" if prefix else ""
    found = []
    for raw in out.split(b"\0"):
        path = os.fsdecode(raw)
        if not path or not path.startswith(prefix):
            continue
        name = path.rsplit("/", 1)[-1]
        if any(name == n or (n.startswith("*") and name.endswith(n[1:])) for n in names):
            found.append(path[len(prefix) :])
    return found


class BlobTooLarge(OSError):
    """A file at a revision is bigger than the reader allows."""


def blobs(root: Path, commit: str, paths: list[str], *, max_bytes: int) -> dict[str, bytes | OSError]:
    """Several files at ``commit`` (paths relative to ``root``) in one ``git cat-file --batch``:
    each file's bytes, FileNotFoundError when the commit has no such file, or BlobTooLarge
    (its content is skipped, never held in memory)."""
    if not paths:
        return {}
    found: dict[str, bytes | OSError] = {}
    with subprocess.Popen(
        ["git", "cat-file", "--batch"],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        # Written whole before reading: a few paths, far below a pipe's buffer per line. A path
        # with a line break would be two queries and shift every answer after it: never asked.
        asked = [p for p in paths if "\n" not in p and "\r" not in p]
        proc.stdin.write(b"".join(f"{commit}:./{p}\n".encode() for p in asked))
        proc.stdin.close()
        for path in paths:
            if path not in asked:
                found[path] = FileNotFoundError(f"{path!r}: not a path Git can be asked for")
                continue
            header = proc.stdout.readline().split()
            if len(header) != 3 or not header[2].isdigit():  # "<name> missing" (a name may hold spaces)
                found[path] = FileNotFoundError(f"{path}: not in {commit[:12]}")
                continue
            size = int(header[2])
            if header[1] != b"blob" or size > max_bytes:
                remaining = size + 1  # the content, then a newline
                while remaining > 0:
                    chunk = proc.stdout.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                if header[1] == b"tree":
                    found[path] = IsADirectoryError(f"{path}: a directory at {commit[:12]}")
                elif header[1] != b"blob":
                    found[path] = FileNotFoundError(f"{path}: not a file at {commit[:12]}")
                else:
                    found[path] = BlobTooLarge(f"{path}: {size:,} bytes at {commit[:12]}, over {max_bytes:,}")
                continue
            found[path] = proc.stdout.read(size)
            proc.stdout.read(1)
    return found
