"""Data versioning: the short, friendly path through DVC (``opsctl data ...``).

Everything here is done through DVC's Python API (``opsctl.adapters.dvc``), so
``dvc`` itself agrees with the result.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.core.project import Project
from opsctl.errors import ToolUnavailableError, UsageError

ProgressSink = Callable[[object], None]  # receives adapters.dvc.ProgressEvent


@dataclass(frozen=True)
class AddedData:
    path: str
    dvcfile: str
    files: int
    bytes: int | None
    hash: str | None


@dataclass(frozen=True)
class AddResult:
    added: list[AddedData]
    staged: list[str]  # files staged in Git (.dvc files, .gitignore)


def add_data(
    project: Project, paths: list[str], *, cwd: Path | None = None, progress: ProgressSink | None = None
) -> AddResult:
    """Track files or directories with DVC and stage the ``.dvc`` files in Git.

    Every path is checked first (exists, inside the project, not tracked by Git),
    so bad input changes nothing.
    """
    from opsctl.adapters import dvc as dvc_adapter
    from opsctl.adapters.git import stage_files

    if not paths:
        raise UsageError("give at least one file or directory to add")
    cwd = Path(cwd or os.getcwd())
    # A path Git already tracks is refused by DVC itself before anything changes.
    relative = [_inside_project(project, cwd, raw) for raw in paths]
    tracked, to_git = dvc_adapter.add_paths(project.root, relative, progress=progress)
    stage_files(project.root, to_git)
    return AddResult(
        added=[AddedData(t.path, t.dvcfile, t.nfiles or 1, t.size, t.hash) for t in tracked],
        staged=to_git,
    )


def _inside_project(project: Project, cwd: Path, raw: str) -> str:
    path = (cwd / raw).absolute()
    resolved = Path(os.path.normpath(path))
    root = project.root.resolve()
    if not (path.exists() or path.is_symlink()):
        raise UsageError(f"{raw}: no such file or directory")
    try:
        rel = resolved.resolve().relative_to(root)
    except ValueError:
        raise UsageError(f"{raw} is outside the project ({root}); copy or move it inside first") from None
    if not rel.parts:
        raise UsageError("cannot add the project root itself; add the data directories inside it")
    if rel.parts[0] in (".git", ".dvc", ".opsctl"):
        raise UsageError(f"{raw} is inside {rel.parts[0]}/, which opsctl and DVC manage themselves")
    return rel.as_posix()


# -- status ----------------------------------------------------------------------

# What each state means for the user, in the order they are shown.
STATE_HINTS = {
    "new": "in the workspace, not yet recorded: `opsctl data add`",
    "modified": "changed in the workspace since it was recorded: `opsctl data add` (or re-run its stage)",
    "deleted": "recorded but missing from the workspace: `opsctl data pull` or `dvc checkout`",
    "not in cache": "recorded, but not in the local cache: `opsctl data pull`",
    "not committed": "recorded in a .dvc/dvc.lock change that Git has not committed: `git commit`",
    "not pushed": "in the local cache, not on the remote: `opsctl data push`",
}


@dataclass(frozen=True)
class DataStatusEntry:
    path: str  # a tracked directory as a whole ends with "/"
    state: str


@dataclass(frozen=True)
class DataStatus:
    entries: list[DataStatusEntry]
    remote: str | None
    remote_checked: bool
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def up_to_date(self) -> bool:
        return not self.entries


def data_status(project: Project, *, remote: str | None = None, check_remote: bool = True) -> DataStatus:
    """Workspace versus cache (new, modified, deleted, not in cache), what Git has not
    committed, and cache versus the remote (not pushed) — from ``dvc data status``."""
    from opsctl.adapters import dvc as dvc_adapter

    raw, compared_with = dvc_adapter.data_status(project.root, remote=remote, check_remote=check_remote)
    entries: list[DataStatusEntry] = []
    uncommitted = raw.get("uncommitted", {})
    for key, state in (("added", "new"), ("modified", "modified"), ("deleted", "deleted")):
        entries += [DataStatusEntry(p, state) for p in uncommitted.get(key, [])]
    entries += [DataStatusEntry(p, "not in cache") for p in raw.get("not_in_cache", [])]
    committed = raw.get("committed", {})
    for key in ("added", "modified", "deleted", "renamed"):
        for item in committed.get(key, []):
            entries.append(DataStatusEntry(item["new"] if isinstance(item, dict) else item, "not committed"))
    entries += [DataStatusEntry(p, "not pushed") for p in raw.get("not_in_remote", [])]
    order = list(STATE_HINTS)
    entries.sort(key=lambda e: (order.index(e.state), e.path))
    return DataStatus(entries, compared_with or remote, compared_with is not None, raw)


# -- push / pull ------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    direction: str  # push | pull
    remote: str
    url: str
    files: int
    bytes: int | None
    changed: list[str]
    not_produced: list[str] = field(default_factory=list)  # pull: outputs of stages that never ran (no hash yet)


def transfer_data(
    project: Project,
    direction: str,
    targets: list[str],
    *,
    remote: str | None = None,
    jobs: int | None = None,
    progress: ProgressSink | None = None,
) -> Transfer:
    """``push`` cached data to a remote, or ``pull`` it into the cache and the workspace."""
    from opsctl.adapters import dvc as dvc_adapter

    if direction not in ("push", "pull"):
        raise UsageError(f"direction must be push or pull, got {direction!r}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {jobs}")
    _require_backend(project, remote)
    move = dvc_adapter.push if direction == "push" else dvc_adapter.pull
    # DVC works from the project root (adapters/dvc.py): targets given from a subdirectory
    # are made relative to the root, as DVC itself would have resolved them there.
    cwd = Path(os.getcwd())
    if targets and cwd.resolve() != project.root.resolve():
        targets = [os.path.relpath(cwd / t, project.root) for t in targets]
    result = move(project.root, targets, remote=remote, jobs=jobs, progress=progress)
    return Transfer(
        direction, result.remote, result.url, result.files, result.bytes, result.changed, result.not_produced
    )


# -- diff and ls --------------------------------------------------------------------


@dataclass(frozen=True)
class DataChange:
    path: str
    change: str
    old_hash: str | None
    new_hash: str | None
    old_size: int | None
    new_size: int | None


def diff_data(project: Project, a_rev: str | None = None, b_rev: str | None = None) -> list[DataChange]:
    """Tracked data that changed between two Git revisions (default: HEAD vs the workspace)."""
    from opsctl.adapters import dvc as dvc_adapter

    return [DataChange(**vars(e)) for e in dvc_adapter.diff(project.root, a_rev, b_rev)]


@dataclass(frozen=True)
class DataItem:
    path: str
    size: int | None
    files: int
    hash: str | None
    stage: str | None
    in_workspace: bool
    in_cache: bool
    on_remote: bool | None  # None: not checked (no remote, or --no-remote)


def list_data(
    project: Project, path: str | None = None, *, cwd: Path | None = None, check_remote: bool = True
) -> list[DataItem]:
    """Tracked data (added with DVC or produced by stages) and where each copy is."""
    from opsctl.adapters import dvc as dvc_adapter

    prefix: str | None = None
    if path:
        absolute = Path(os.path.normpath((Path(cwd or os.getcwd()) / path).absolute())).resolve()
        try:
            prefix = absolute.relative_to(project.root.resolve()).as_posix()
        except ValueError:
            raise UsageError(f"{path} is outside the project ({project.root})") from None
        prefix = "" if prefix == "." else prefix
    outputs, raw, compared = dvc_adapter.tracked_outputs(project.root, check_remote=check_remote)
    outputs = [o for o in outputs if o.cached]
    if prefix:
        outputs = [
            o for o in outputs if o.path == prefix or o.path.startswith(prefix + "/") or prefix.startswith(o.path + "/")
        ]
    missing = set(raw.get("uncommitted", {}).get("deleted", []))
    not_in_cache = set(raw.get("not_in_cache", []))
    not_on_remote = set(raw.get("not_in_remote", []))
    items = []
    for out in outputs:
        keys = {out.path, out.path + "/"}
        items.append(
            DataItem(
                path=out.path + ("/" if out.isdir else ""),
                size=out.size,
                files=out.nfiles or 1,
                hash=out.hash,
                stage=out.stage,
                in_workspace=(project.root / out.path).exists() and not keys & missing,
                in_cache=out.hash is not None and not keys & not_in_cache,
                on_remote=(not keys & not_on_remote and out.hash is not None) if compared else None,
            )
        )
    return items


# -- remotes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    default: bool
    options: dict


def list_remotes(project: Project) -> list[Remote]:
    from opsctl.adapters import dvc as dvc_adapter

    return [Remote(r.name, r.url, r.default, r.options) for r in dvc_adapter.list_remotes(project.root)]


def add_remote(
    project: Project,
    name: str,
    url: str,
    *,
    default: bool = False,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Remote:
    """Add a remote exactly as ``dvc remote add [-d]`` (+ ``dvc remote modify``) would."""
    from opsctl.adapters import dvc as dvc_adapter

    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"remote name '{name}' must be letters, digits, '-' or '_'")
    scheme = url.split("://", 1)[0] if "://" in url else "local"
    options = {}
    if scheme == "s3":
        _require_s3()
        if endpoint_url:
            options["endpointurl"] = endpoint_url
        if region:
            options["region"] = region
    elif endpoint_url or region:
        raise UsageError("--endpoint-url and --region apply to s3:// remotes only")
    elif scheme not in ("local", "file"):
        raise UsageError(
            f"unsupported remote URL scheme '{scheme}://' (opsctl supports local paths and s3://)",
            hint="other DVC remotes can be added with `dvc remote add`; opsctl uses them as they are",
        )
    dvc_adapter.configure_remote(project.root, name, url=url, options=options, default=default, create=True)
    return next(r for r in list_remotes(project) if r.name == name)


def set_default_remote(project: Project, name: str) -> Remote:
    from opsctl.adapters import dvc as dvc_adapter

    dvc_adapter.configure_remote(project.root, name, default=True)
    return next(r for r in list_remotes(project) if r.name == name)


def _require_backend(project: Project, remote: str | None) -> None:
    """An s3:// remote needs the opsctl[s3] extra; say so before DVC fails obscurely."""
    remotes = {r.name: r for r in list_remotes(project)}
    chosen = remotes.get(remote) if remote else next((r for r in remotes.values() if r.default), None)
    if chosen is not None and chosen.url.startswith("s3://"):
        _require_s3()


def _require_s3() -> None:
    if importlib.util.find_spec("dvc_s3") is None:
        raise ToolUnavailableError(
            "s3:// remotes need DVC's S3 support, which is not installed",
            hint="pip install 'opsctl[s3]'",
        )
