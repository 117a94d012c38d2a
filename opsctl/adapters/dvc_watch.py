"""Everything a ``dvc status`` answer depends on, listed while DVC gives it: the input of the
no-op fast path (core/plan_cache.py; docs/architecture.md, "The no-op fast path").

DVC's status of a pipeline is a function of
- which ``dvc.yaml`` and ``.dvc`` files exist: found by walking the workspace, minus what
  ``.dvcignore`` and Git ignore, and minus output directories (``collect_files``);
- the bytes of those files, their ``dvc.lock`` files, the params and ``vars`` files they read,
  DVC's and Git's config and ignore files;
- each local dep's and out's content (DVC trusts a file whose inode, size and mtime are unchanged);
- the cache objects of each cached out (a missing or damaged one is "not in cache").

:func:`watch_list` names all of them, from the repo DVC just used, so a later check can stat
them instead of asking DVC again. (Imported by the fast path itself for :func:`collected`:
nothing heavy at the top.) It is deliberately a superset (every ``params.yaml`` beside a
``dvc.yaml``, every subdirectory name of a walked directory, ``vars`` files relative to both
the file and the stage): watching too much only costs a fall-back to DVC, watching too little
would give a wrong answer. Anything it cannot watch (an import, a dep on another repository or
a URL) makes the list incomplete, and then nothing is recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Names in a walked directory that decide what DVC collects: a new or removed one is a new
# pipeline (or new ignore rules), so a directory whose listing of these changed is a fall-back.
COLLECTED_NAMES = frozenset({"dvc.yaml", "dvc.lock", ".dvcignore", ".gitignore", "params.yaml"})


def collected(name: str, is_dir: bool) -> bool:
    """Whether an entry of a directory DVC walked matters to which files DVC collects: every
    subdirectory (it may hold a ``dvc.yaml``), DVC's files and the ignore files."""
    return is_dir or name in COLLECTED_NAMES or name.endswith(".dvc")


@dataclass
class WatchList:
    """Absolute paths, by how a change to each shows."""

    content: set[str] = field(default_factory=set)  # files whose bytes DVC reads (missing ones too)
    data: set[str] = field(default_factory=set)  # deps and outs: files or directories, compared by stat
    cache_objects: set[str] = field(default_factory=set)  # objects the status of a cached out checks
    walked: set[str] = field(default_factory=set)  # directories DVC walked to collect its files
    md5: dict[str, str] = field(default_factory=dict)  # file -> DVC's md5 of it (plain md5, up-to-date stages)
    incomplete: str | None = None  # why this status can't be watched (then nothing is recorded)


def watch_list(repo: Any, walked: list[str], status: dict) -> WatchList:
    """What ``status`` (``repo.status()`` of the whole pipeline) depends on. ``walked``: the
    directories DVC's collection walked (dvc_compat.walk_recorded)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.dependency.repo import RepoDependency

    from opsctl.adapters import dvc_compat

    watch = WatchList(walked=set(walked))
    root = repo.root_dir
    parsed: dict[str, Any] = {}  # dvc.yaml path -> its content (each file parsed once)
    for directory in walked:
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name in COLLECTED_NAMES or entry.name.endswith(".dvc"):
                        watch.content.add(entry.path)
        except OSError:
            continue
    for stage in repo.index.stages:
        watch.content.add(stage.path)
        if stage.path.endswith(("dvc.yaml", "dvc.yml")):
            directory = os.path.dirname(stage.path)
            watch.content.add(os.path.join(directory, "dvc.lock"))
            watch.content.add(os.path.join(directory, "params.yaml"))
            if stage.path not in parsed:
                parsed[stage.path] = _parsed(stage.path)
            watch.content |= _vars_files(parsed[stage.path], directory, stage.wdir)
        if stage.is_import or getattr(stage, "is_repo_import", False):
            watch.incomplete = f"{stage.addressing} is an import (its status asks the source)"
        up_to_date = stage.addressing not in status
        for dep in stage.deps:
            if isinstance(dep, RepoDependency) or dep.protocol != "local":
                watch.incomplete = f"{stage.addressing} depends on {dep.def_path} (not a local path)"
                continue
            if isinstance(dep, ParamsDependency):
                watch.content.add(dep.fs_path)
                continue
            _add_data(watch, dep, up_to_date)
        for out in stage.outs:
            if out.protocol != "local":
                watch.incomplete = f"{stage.addressing} has an output at {out.def_path} (not a local path)"
                continue
            _add_data(watch, out, up_to_date)
            if out.use_cache and out.hash_info and out.hash_info.value:
                watch.cache_objects |= set(dvc_compat.cache_object_paths(out))
    if repo.config["core"].get("hardlink_lock", False):
        # Such a lock (for NFS) can't be asked who holds it without taking it: only DVC knows
        # whether a run is under way (adapters/dvc_lock.py, run_in_progress).
        watch.incomplete = "core.hardlink_lock is set"
    watch.content |= set(dvc_compat.config_files(repo))
    watch.content |= _git_files(root)
    return watch


def _add_data(watch: WatchList, item: Any, up_to_date: bool) -> None:
    watch.data.add(item.fs_path)
    hash_info = item.hash_info
    # A file of an up-to-date stage has the hash its lock entry records, so a file that was only
    # touched can be re-hashed and found equal, as DVC's own status would.
    if up_to_date and hash_info and hash_info.value and hash_info.name == "md5" and not hash_info.isdir:
        watch.md5[item.fs_path] = str(hash_info.value)


def _parsed(dvc_yaml: str) -> Any:
    from opsctl.adapters.dvc_records import load_structure_file

    try:
        return load_structure_file(dvc_yaml)
    except Exception:  # noqa: BLE001 — DVC read it a moment ago; unreadable now is a change the stat sees
        return None


def _vars_files(doc: Any, directory: str, stage_wdir: str) -> set[str]:
    """The files ``vars:`` entries of a parsed ``dvc.yaml`` name, relative to the file's
    directory and to the stage's wdir."""
    if not isinstance(doc, dict):
        return set()
    entries = list(doc.get("vars") or []) if isinstance(doc.get("vars"), list) else []
    for stage in (doc.get("stages") or {}).values() if isinstance(doc.get("stages"), dict) else []:
        if isinstance(stage, dict) and isinstance(stage.get("vars"), list):
            entries += stage["vars"]
    files = set()
    for entry in entries:
        if isinstance(entry, str):
            name = entry.split(":", 1)[0]
            files |= {os.path.normpath(os.path.join(directory, name)), os.path.normpath(os.path.join(stage_wdir, name))}
    return files


def _git_files(root: str) -> set[str]:
    """Git's config and ignore files: which directories DVC walks depends on them. Found where
    Git keeps them: a linked work tree's are in the main repository, and a DVC project in a
    subdirectory of its Git work tree (``dvc init --subdir``) is ignored by the ``.gitignore``
    files above it too."""
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = {str(home / ".gitconfig"), str(xdg / "git" / "config"), str(xdg / "git" / "ignore"), "/etc/gitconfig"}
    where = _git("rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir", cwd=root)
    if len(where) == 3:
        top, git_dir, common_dir = (Path(line) for line in where)
        files |= {str(Path(common_dir, "config")), str(Path(common_dir, "info", "exclude"))}
        files.add(str(Path(git_dir, "config.worktree")))
        here = Path(root)
        while here != top and top in here.parents:
            here = here.parent
            files.add(str(here / ".gitignore"))
    else:  # an older Git: where they are when the project is a Git work tree's top
        files |= {os.path.join(root, ".git", "config"), os.path.join(root, ".git", "info", "exclude")}
    excludes = _git("config", "--path", "--get", "core.excludesFile", cwd=root)
    if excludes:
        files.add(os.path.join(root, excludes[0]))
    return files


def _git(*args: str, cwd: str) -> list[str]:
    """The lines ``git ARGS`` prints; none when it fails."""
    import subprocess

    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return result.stdout.splitlines() if result.returncode == 0 else []
