"""DVC through its Python API (``dvc.repo.Repo``), never by shelling out.

Everything opsctl does to a project's data and pipeline is exactly what DVC
would do, so ``dvc`` itself agrees with the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import DvcError, ToolUnavailableError


def dvc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dvc")
    except PackageNotFoundError:
        raise ToolUnavailableError(
            "DVC is not installed in opsctl's environment", hint="pip install 'opsctl' (it depends on dvc)"
        ) from None


_logging_tamed = False


def _tame_dvc_logging() -> None:
    """``import dvc`` installs handlers that print INFO lines ("Initialized DVC
    repository.") to stdout; stdout is ours (tables, --json), so keep DVC to
    warnings and errors, which it prints to stderr."""
    global _logging_tamed
    if _logging_tamed:
        return
    import logging
    import os

    import dvc  # noqa: F401  (sets up its loggers on import)

    level = logging.DEBUG if os.environ.get("OPSCTL_DEBUG") == "1" else logging.WARNING
    for name in ("dvc", "dvc_objects", "dvc_data"):
        logging.getLogger(name).setLevel(level)
    # DVC's tqdm bars switch themselves off only above ERROR on these loggers;
    # they would draw over our own output, so opsctl shows progress itself.
    for name in ("dvc.progress", "dvc_data.callbacks"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _logging_tamed = True


@contextlib.contextmanager
def open_repo(root: Path) -> Iterator[object]:
    """A ``dvc.repo.Repo`` for ``root``, closed afterwards; DVC errors become :class:`DvcError`."""
    _tame_dvc_logging()
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise DvcError(f"{root} is not a DVC repository", hint="run `dvc init` there") from None
    try:
        with _translate():
            yield repo
    finally:
        repo.close()


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise DvcError(_one_line(exc)) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def init_repo(root: Path) -> None:
    """``dvc init`` in an existing Git work tree."""
    _tame_dvc_logging()
    from dvc.repo import Repo

    with _translate():
        Repo.init(str(root)).close()


def add_remote(root: Path, name: str, url: str, *, default: bool = False) -> None:
    """Write a remote to ``.dvc/config`` exactly as ``dvc remote add [-d]`` does."""
    _tame_dvc_logging()
    from dvc.config import Config

    with _translate():
        config = Config(dvc_dir=str(root / ".dvc"))
        with config.edit("repo") as conf:
            if name in conf["remote"]:
                raise DvcError(f"remote '{name}' already exists")
            conf["remote"][name] = {"url": url}
            if default:
                conf["core"]["remote"] = name


def track(root: Path, paths: list[str]) -> list[str]:
    """``dvc add`` each path; returns the ``.dvc`` files and ``.gitignore`` files that Git should track."""
    if not paths:
        return []
    to_git: list[str] = []
    with open_repo(root) as repo:
        stages = repo.add([str(root / p) for p in paths])
        for stage in stages:
            to_git.append(str(Path(stage.path).relative_to(root)))
            for out in stage.outs:
                gitignore = Path(out.fs_path).parent / ".gitignore"
                if gitignore.exists():
                    to_git.append(str(gitignore.relative_to(root)))
    return sorted(set(to_git))


@dataclass(frozen=True)
class StageChange:
    """One reason a pipeline stage is stale, as DVC's change detection sees it."""

    kind: str  # dep | param | out | command | always | never-run
    path: str | None
    change: str  # modified, new, deleted, not in cache, ...


@dataclass(frozen=True)
class PipelineStage:
    name: str
    dvcfile: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    upstream: tuple[str, ...]
    changes: tuple[StageChange, ...]


def pipeline_status(root: Path) -> list[PipelineStage]:
    """Every pipeline stage (topological order) with DVC's reasons for it being stale."""
    import networkx as nx
    from dvc.stage import PipelineStage as DvcPipelineStage

    with open_repo(root) as repo:
        graph = repo.index.graph
        stages = [s for s in nx.topological_sort(graph.reverse(copy=False)) if isinstance(s, DvcPipelineStage)]
        raw = repo.status(targets=None)
        result = []
        for stage in stages:
            upstream = tuple(
                sorted(dep.addressing for dep in graph.successors(stage) if isinstance(dep, DvcPipelineStage))
            )
            changes = list(_parse_changes(raw.get(stage.addressing, [])))
            if not _has_lock_entry(stage):
                changes.insert(0, StageChange("never-run", None, "no entry in dvc.lock"))
            result.append(
                PipelineStage(
                    name=stage.addressing,
                    dvcfile=stage.relpath,
                    cmd=stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd),
                    deps=tuple(str(d.def_path) for d in stage.deps),
                    outs=tuple(str(o.def_path) for o in stage.outs),
                    upstream=upstream,
                    changes=tuple(changes),
                )
            )
        return result


def _has_lock_entry(stage) -> bool:
    try:
        lock = stage.dvcfile._lockfile.load()
    except Exception:  # a missing or unreadable lock means "never ran" for our purpose
        return False
    return stage.name in (lock or {}).get("stages", lock or {})


def _parse_changes(entries) -> Iterator[StageChange]:
    for entry in entries:
        if isinstance(entry, str):
            kind = "always" if entry == "always changed" else "command" if "command" in entry else "other"
            yield StageChange(kind, None, entry)
            continue
        for section, items in entry.items():
            kind = "dep" if "deps" in section else "out" if "outs" in section else "other"
            if not isinstance(items, dict):
                yield StageChange(kind, None, str(items))
                continue
            for path, change in items.items():
                if isinstance(change, dict):  # a params file: {param: change}
                    for param, pchange in change.items():
                        yield StageChange("param", f"{path}:{param}", str(pchange))
                else:
                    yield StageChange(kind, path, str(change))
