"""DVC through its Python API (``dvc.repo.Repo``), never by shelling out.

Everything opsctl does to a project's data and pipeline is exactly what DVC
would do, so ``dvc`` itself agrees with the result.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.adapters import dvc_compat
from opsctl.errors import (
    AlreadyInGitError,
    DvcError,
    ProjectBusyError,
    RemoteUnavailableError,
    RepoLockedError,
    ToolUnavailableError,
)
from opsctl.secrets import mask_url, mask_value

if TYPE_CHECKING:
    from opsctl.adapters.dvc_lock import LockHolder


def dvc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dvc")
    except PackageNotFoundError:
        raise ToolUnavailableError(
            "DVC is not installed in opsctl's environment", hint="pip install 'opsctl' (it depends on dvc)"
        ) from None


_dvc_prepared = False


def _prepare_dvc() -> None:
    """Once per process, before DVC is used. ``import dvc`` installs handlers that
    print INFO lines ("Initialized DVC repository.") to stdout; stdout is ours
    (tables, --json), so keep DVC to warnings and errors, which it prints to stderr.
    And an interrupt must not corrupt DVC's lock file (:func:`_guard_rwlock_edits`)."""
    global _dvc_prepared
    if _dvc_prepared:
        return
    dvc_compat.check_dvc_version(dvc_version())  # before importing it: DvcVersionError, exit 4
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
    _guard_rwlock_edits()
    dvc_compat.install_reader_rwlock()
    _dvc_prepared = True


def _guard_rwlock_edits() -> None:
    """DVC rewrites ``.dvc/tmp/rwlock`` in place: truncate, then ``json.dump``. A
    Ctrl-C between the two leaves a file that every later DVC command refuses ("JSON
    structure is corrupted") until someone deletes it. So Ctrl-C waits for those few
    milliseconds: it is raised as soon as the edit is written."""
    dvc_compat.wrap_rwlock_edits(_sigint_deferred)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back until the block is done, then deliver it to whatever handler
    was in place (raise KeyboardInterrupt, or nothing if SIGINT was being ignored)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            signal.raise_signal(signal.SIGINT)


class _ProjectRootCwd:
    """While DVC works, the working directory is the project root.

    DVC names a stage and resolves a target relative to the working directory
    (from ``src/`` the root's ``train`` is ``../dvc.yaml:train``); opsctl names them
    relative to the project root, as the run store records them and as users write
    them in ``opsctl run train``, from wherever opsctl was started. The working
    directory is the process's, so users are counted (the dashboard's workers overlap):
    the first moves there, the last moves back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._before: str | None = None

    def enter(self, root: Path) -> None:
        with self._lock:
            if self._users == 0:
                self._before = os.getcwd()
            self._users += 1
            os.chdir(root)

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._before is not None:
                with contextlib.suppress(OSError):  # the original directory was removed meanwhile
                    os.chdir(self._before)
                self._before = None


project_root_cwd = _ProjectRootCwd()


@contextlib.contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    """A ``dvc.repo.Repo`` for ``root``, closed afterwards; DVC errors become :class:`DvcError`.
    Stage names and targets are relative to ``root`` (see :class:`_ProjectRootCwd`)."""
    _prepare_dvc()
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    project_root_cwd.enter(root)
    try:
        try:
            repo = Repo(str(root))
        except NotDvcRepoError:
            raise DvcError(f"{root} is not a DVC repository", hint="run `dvc init` there") from None
        try:
            with _translate():
                yield repo
        finally:
            repo.close()
    finally:
        project_root_cwd.leave()


def dataset_hashes(root: Path, paths: list[str]) -> dict[str, str | None]:
    """DVC's hash of each workspace path (see dvc_compat.dataset_hash); None for one that
    can't be hashed. Takes no lock: it reads the workspace and DVC's state database only."""
    from opsctl.adapters import dvc_compat

    hashes: dict[str, str | None] = {}
    with open_repo(root) as repo:
        for path in paths:
            try:
                hashes[path] = dvc_compat.dataset_hash(repo, str(root / path))
            except Exception:  # noqa: BLE001 — a hash is an optimisation (verdict cache) and a record detail
                hashes[path] = None
    return hashes


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise DvcError(_one_line(exc)) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text += _yaml_detail(exc)
    return mask_url(" ".join(text.split()))  # a remote's URL in DVC's message may carry a password


def _yaml_detail(exc: BaseException) -> str:
    """Where in the file DVC's YAML errors are: DVC prints that with rich panels
    (``__pretty_exc__``); opsctl's one line says it in words."""
    problem = exc.__cause__
    mark = getattr(problem, "problem_mark", None)
    if mark is not None:  # ruamel's parse error under YAMLFileCorruptedError
        return f": {getattr(problem, 'problem', '') or 'syntax error'} (line {mark.line + 1}, column {mark.column + 1})"
    errors = getattr(getattr(exc, "exc", None), "errors", None)
    if errors:  # YAMLValidationError: voluptuous errors with their key paths
        text = getattr(exc, "text", "") or ""
        parts = []
        for error in errors[:3]:
            where = " -> ".join(str(p) for p in error.path)
            line = _line_of(text, error.path)
            parts.append(
                f"{error.error_message}" + (f" in {where}" if where else "") + (f" (line {line})" if line else "")
            )
        return ": " + "; ".join(parts)
    return ""


def _line_of(text: str, path) -> int | None:
    try:
        from dvc.utils.strictyaml import determine_linecol, parse_yaml_for_update

        line, _col, _step = determine_linecol(parse_yaml_for_update(text, ""), path)
        return line or None
    except Exception:  # noqa: BLE001
        return None


def init_repo(root: Path) -> None:
    """``dvc init`` in an existing Git work tree."""
    _prepare_dvc()
    from dvc.repo import Repo

    with _translate():
        Repo.init(str(root)).close()


def add_remote(root: Path, name: str, url: str, *, default: bool = False) -> None:
    """Write a remote to ``.dvc/config`` exactly as ``dvc remote add [-d]`` does."""
    _prepare_dvc()
    from dvc.config import Config

    with _translate():
        config = Config(dvc_dir=str(root / ".dvc"))
        with config.edit("repo") as conf:
            if name in conf["remote"]:
                raise DvcError(f"remote '{name}' already exists")
            conf["remote"][name] = {"url": url}
            if default:
                conf["core"]["remote"] = name


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
    changes: tuple[StageChange, ...]  # DVC's reasons for it being stale; empty when up to date (or not asked)
    wdir: str = "."  # where its command runs, relative to the project root
    frozen: bool = False
    dep_paths: tuple[str, ...] = ()  # local deps and outs relative to the project root (deps/outs are
    out_paths: tuple[str, ...] = ()  # as dvc.yaml writes them, relative to the stage's wdir)


def pipeline_graph(root: Path) -> list[PipelineStage]:
    """Every pipeline stage in topological order with its upstream stages (no change detection)."""
    with open_repo(root) as repo:
        return _pipeline_stages(repo, repo.index.graph)


def _pipeline_stages(repo, graph, status: dict | None = None) -> list[PipelineStage]:
    """The pipeline stages (not .dvc files) of ``graph``, upstream first; with DVC's
    change reasons from ``status`` (a ``repo.status()`` result) when given."""
    import networkx as nx
    from dvc.stage import PipelineStage as DvcPipelineStage

    # Edges point from a stage to the stages it depends on.
    ordered = [s for s in nx.topological_sort(graph.reverse(copy=False)) if isinstance(s, DvcPipelineStage)]
    root = Path(repo.root_dir)
    locked: dict[str, set[str]] = {}  # dvc.yaml path -> stage names in its dvc.lock: each lock parsed once
    result = []
    for stage in ordered:
        changes: list[StageChange] = []
        if status is not None:
            changes = list(_parse_changes(status.get(stage.addressing, [])))
            if stage.path not in locked:
                locked[stage.path] = _lock_entries(stage)
            if stage.name not in locked[stage.path]:
                changes.insert(0, StageChange("never-run", None, "no entry in dvc.lock"))
        result.append(
            PipelineStage(
                name=stage.addressing,
                dvcfile=stage.relpath,
                cmd=stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd),
                deps=tuple(str(d.def_path) for d in stage.deps),
                outs=tuple(str(o.def_path) for o in stage.outs),
                dep_paths=_local_paths(root, stage.deps),
                out_paths=_local_paths(root, stage.outs),
                upstream=tuple(
                    sorted(d.addressing for d in graph.successors(stage) if isinstance(d, DvcPipelineStage))
                ),
                changes=tuple(changes),
                wdir=_rel(root, stage.wdir) if Path(stage.wdir) != root else ".",
                frozen=bool(stage.frozen),
            )
        )
    return result


def _lock_entries(stage) -> set[str]:
    """Names of the stages recorded in the dvc.lock beside ``stage``'s dvc.yaml. Read with
    libyaml (adapters/dvc_records.py): DVC's own reader parses it again with ruamel's pure-Python
    parser, 0.7 s for a 50-stage lock, only for the names."""
    from opsctl.adapters.dvc_records import load_structure_file

    try:
        lock = load_structure_file(dvc_compat.lockfile_path(stage))
    except Exception:  # noqa: BLE001 — a missing or unreadable lock means "never ran" for our purpose
        return set()
    stages = lock.get("stages") if isinstance(lock, dict) else None
    return {str(name) for name in stages} if isinstance(stages, dict) else set()


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


# -- data versioning ---------------------------------------------------------------

LOCK_TIMEOUT_ENV = "OPSCTL_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProgressEvent:
    """One update of a DVC progress bar: ``completed`` of ``total`` ``unit`` in phase ``desc``."""

    desc: str
    completed: float
    total: float | None
    unit: str


@contextlib.contextmanager
def reporting_progress(sink) -> Iterator[None]:
    """Route DVC's progress bars to ``sink(ProgressEvent)`` instead of tqdm: the
    places DVC and dvc-data create them are ``dvc.ui.ui.progress`` and the ``Tqdm``
    classes that their fsspec callbacks instantiate."""
    if sink is None:
        yield
        return
    _prepare_dvc()
    from dvc.progress import Tqdm

    class SinkTqdm(Tqdm):
        def __init__(self, iterable=None, *args, desc=None, total=None, unit="it", bytes=False, **kwargs):  # noqa: A002
            self._label = str(desc or "")
            self._unit = "B" if bytes else unit
            kwargs["disable"] = True  # tqdm itself draws nothing; we count
            super().__init__(iterable, *args, desc=desc, total=total, bytes=bytes, **kwargs)
            self._emit()

        def update(self, n=1):
            self.n += n or 0
            self._emit()

        def _emit(self):
            try:
                sink(ProgressEvent(self._label, self.n, self.total, self._unit))
            except Exception:  # noqa: BLE001 — a display problem must never break a data operation
                pass

    with dvc_compat.progress_bars_replaced(SinkTqdm):
        yield


def lock_timeout() -> float:
    import os

    try:
        return float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


@contextlib.contextmanager
def locked_repo(root: Path, timeout: float | None = None) -> Iterator[Any]:
    """An open repo holding DVC's own lock, waiting up to ``timeout`` seconds for
    another process to release it (DVC alone gives up after 3 s)."""
    import time

    from dvc.lock import LockError
    from dvc.repo import lock_repo

    timeout = lock_timeout() if timeout is None else timeout
    with open_repo(root) as repo, contextlib.ExitStack() as stack:
        deadline = time.monotonic() + timeout
        while True:
            try:
                # DVC's @locked methods called inside see the lock held and don't retake it.
                stack.enter_context(lock_repo(repo))
                break
            except LockError:
                holder = _lock_holder_of(repo)
                if holder is not None and holder.is_run:
                    # A pipeline run holds the project for as long as its stages take: say so now.
                    raise ProjectBusyError(
                        f"a run holds this project: {holder.describe()}", hint="let it finish, then try again"
                    ) from None
                if time.monotonic() >= deadline:
                    who = f": {holder.describe()}" if holder is not None and holder.pid else ""
                    raise RepoLockedError(
                        f"another DVC or opsctl command holds this project's lock (waited {timeout:g} s){who}",
                        hint=f"let it finish, or wait longer with {LOCK_TIMEOUT_ENV}=SECONDS",
                    ) from None
                time.sleep(0.2)
        yield repo


def _lock_holder_of(repo: Any) -> LockHolder | None:
    """Who holds ``repo``'s lock (see adapters/dvc_lock.py); None when it can't be told."""
    from dvc.lock import Lock

    from opsctl.adapters.dvc_lock import lock_holder

    return lock_holder(repo.lock.lockfile) if isinstance(repo.lock, Lock) else None


@dataclass(frozen=True)
class TrackedOutput:
    path: str  # relative to the project root
    dvcfile: str
    hash: str | None
    size: int | None
    nfiles: int | None
    isdir: bool
    stage: str | None  # the pipeline stage producing it; None for `dvc add`ed data
    cached: bool  # does DVC cache it (`cache: false` metrics do not)


def add_paths(root: Path, paths: list[str], *, progress=None) -> tuple[list[TrackedOutput], list[str]]:
    """``dvc add`` each path. Returns what is tracked now and the files Git should stage
    (the ``.dvc`` files and the ``.gitignore`` files DVC wrote)."""
    from dvc.exceptions import DvcException
    from dvc.output import OutputAlreadyTrackedError

    if not paths:
        return [], []
    with reporting_progress(progress), locked_repo(root) as repo:
        try:
            stages = repo.add([str(root / p) for p in paths])
        except OutputAlreadyTrackedError as exc:
            path = str(exc).split("'")[1] if "'" in str(exc) else "it"
            raise AlreadyInGitError(
                f"{path} is tracked by Git; DVC cannot track it as well",
                hint=f"untrack it first: git rm -r --cached {path} && git commit -m 'Move {path} to DVC'",
            ) from None
        except DvcException as exc:
            raise DvcError(_one_line(exc)) from exc
        tracked, staged = [], []
        for stage in stages:
            staged.append(_rel(root, stage.path))
            for out in stage.outs:
                tracked.append(_output(root, out))
                gitignore = Path(out.fs_path).parent / ".gitignore"
                if gitignore.exists():
                    staged.append(_rel(root, gitignore))
    return tracked, sorted(set(staged))


def add_and_push(root: Path, paths: list[str], *, remote: str) -> list[TrackedOutput]:
    """``dvc add`` the paths, then push their objects to ``remote``, in one open repository
    (a node publishing a stage's outputs: opening DVC's repo twice costs more than the push)."""
    from dvc.exceptions import DvcException

    if not paths:
        return []
    with locked_repo(root) as repo:
        try:
            stages = repo.add([str(root / p) for p in paths])
        except DvcException as exc:
            raise DvcError(_one_line(exc)) from exc
        tracked = [_output(root, out) for stage in stages for out in stage.outs]
        try:
            dvc_compat.push_objects(repo, [t.hash for t in tracked if t.hash], remote)
        except Exception as exc:
            _raise_remote_error(repo, remote, exc)
            raise
    return tracked


def _rel(root: Path, path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def _local_paths(root: Path, items) -> tuple[str, ...]:
    """The deps or outs of a stage that are in the project, relative to its root."""
    paths = []
    for item in items:
        if item.protocol != "local":
            continue
        try:
            paths.append(_rel(root, item.fs_path))
        except ValueError:  # outside the project
            continue
    return tuple(paths)


def _output(root: Path, out) -> TrackedOutput:
    from dvc.stage import PipelineStage

    meta = out.meta
    return TrackedOutput(
        path=_rel(root, out.fs_path),
        dvcfile=out.stage.relpath,
        hash=out.hash_info.value if out.hash_info else None,
        size=meta.size if meta else None,
        nfiles=meta.nfiles if meta else None,
        isdir=bool(meta and meta.isdir) or bool(out.hash_info and out.hash_info.isdir),
        stage=out.stage.addressing if isinstance(out.stage, PipelineStage) else None,
        cached=bool(out.use_cache),
    )


def tracked_outputs(root: Path, *, check_remote: bool = True) -> tuple[list[TrackedOutput], dict, str | None]:
    """Every DVC-tracked output, with ``data_status``'s dict and compared remote, from one repo open."""
    with open_repo(root) as repo:
        outputs = sorted((_output(root, out) for out in repo.index.outs), key=lambda o: o.path)
        raw, compared = _status(repo, None, check_remote)
        return outputs, raw, compared


def data_status(root: Path, *, remote: str | None = None, check_remote: bool = True) -> tuple[dict, str | None]:
    """DVC's own ``data status`` — the dict ``dvc data status --json [--not-in-remote]``
    prints — and the name of the remote it was compared with (None: not compared).

    Directories are reported as a whole (``dir/``), as ``dvc data status`` does
    without ``--granular``: listing every file of a large dataset is slow and unreadable.
    """
    with open_repo(root) as repo:
        return _status(repo, remote, check_remote)


def _status(repo, remote: str | None, check_remote: bool) -> tuple[dict, str | None]:
    name = remote or repo.config["core"].get("remote")
    check = check_remote and name is not None
    if check:
        _require_remote(repo, remote)
    try:
        raw = repo.data_status(granular=False, not_in_remote=check, remote_refresh=check, remote=remote)
    except Exception as exc:
        _raise_remote_error(repo, remote, exc)
        raise
    return raw, (name if check else None)


def default_remote(root: Path) -> str | None:
    with open_repo(root) as repo:
        return repo.config["core"].get("remote")


def _require_remote(repo, remote: str | None):
    from dvc.config import NoRemoteError, RemoteNotFoundError

    try:
        return repo.cloud.get_remote(name=remote)
    except RemoteNotFoundError:
        raise DvcError(f"no remote named '{remote}'", hint="see `opsctl data remote list`") from None
    except NoRemoteError:
        raise DvcError(
            "no default remote configured", hint="add one with `opsctl data remote add NAME URL --default`"
        ) from None


def _raise_remote_error(repo, remote: str | None, exc: BaseException) -> None:
    """Turn network and storage failures into one line that names the remote."""
    from dvc.exceptions import DownloadError, UploadError

    name, url = _remote_identity(repo, remote)
    # OSError covers a local remote that cannot be written (missing mount, a file in the way).
    if isinstance(exc, (UploadError, DownloadError, OSError)) or _looks_like_network(exc):
        raise RemoteUnavailableError(
            f"remote '{name}' ({url}) is unreachable or refused the transfer: {_one_line(exc)}",
            hint="check the URL, credentials and network; nothing local was changed",
        ) from exc


def _looks_like_network(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(
        names
        & {
            "ConnectionError",
            "ConnectionRefusedError",
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ClientConnectorError",
            "ServerDisconnectedError",
            "NoCredentialsError",
            "ClientError",
            "PermissionError",
            "TimeoutError",
            "gaierror",
            "NewConnectionError",
            "MaxRetryError",
        }
    )


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


@dataclass(frozen=True)
class TransferResult:
    remote: str
    url: str
    files: int
    bytes: int | None
    changed: list[str]
    not_produced: list[str] = field(default_factory=list)  # pull: outputs of stages that never ran


def push(
    root: Path, targets: list[str] | None, *, remote: str | None, jobs: int | None, progress=None
) -> TransferResult:
    """``dvc push``: upload cached data that the remote lacks."""
    with reporting_progress(progress), locked_repo(root) as repo:
        _require_remote(repo, remote)
        name, url = _remote_identity(repo, remote)
        pending = _pending_bytes(root, repo, targets, remote)
        try:
            files = repo.push(targets=targets or None, jobs=jobs, remote=remote)
        except Exception as exc:
            _raise_remote_error(repo, remote, exc)
            raise
        return TransferResult(name, url, files, pending if files else 0, [])


def pull(
    root: Path, targets: list[str] | None, *, remote: str | None, jobs: int | None, progress=None
) -> TransferResult:
    """``dvc pull``: download what the workspace lacks and check it out."""
    from dvc.exceptions import CheckoutError

    with reporting_progress(progress), locked_repo(root) as repo:
        _require_remote(repo, remote)
        name, url = _remote_identity(repo, remote)
        unproduced = _unproduced_outputs(root, repo)
        not_produced: list[str] = []
        try:
            with _quiet_about(root, unproduced):
                result = repo.pull(targets=targets or None, jobs=jobs, remote=remote)
        except CheckoutError as exc:
            # An output with no hash in dvc.lock (its stage never ran) is not data the remote
            # lacks: there is nothing to download yet. Only recorded data that is missing fails.
            failed = sorted({_rel(root, root / p) for p in exc.target_infos})
            missing = [p for p in failed if p not in unproduced]
            if missing:
                raise DvcError(
                    f"pulled what remote '{name}' has, but {len(missing)} output(s) recorded in the lock files "
                    "are missing there: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
                    hint="push them from a clone that has them, or produce them with the pipeline",
                ) from exc
            not_produced, result = failed, exc.result
        except Exception as exc:
            _raise_remote_error(repo, remote, exc)
            raise
        # checkout's result: {"added": [abs paths, dirs end with /], "modified": [...], "stats": {"fetched": n, ...}}
        changed = sorted(
            {
                _rel(root, p) + ("/" if str(p).endswith(("/", "\\")) else "")
                for p in [*result.get("added", []), *result.get("modified", [])]
            }
        )
        nbytes = sum(_tree_size(root / p) for p in changed)
        fetched = int(result.get("stats", {}).get("fetched", 0))
        return TransferResult(name, url, fetched, nbytes, changed, not_produced)


def _unproduced_outputs(root: Path, repo) -> set[str]:
    """Cached outputs with no hash recorded (a stage that never ran, or is not in dvc.lock yet)."""
    return {_rel(root, out.fs_path) for out in repo.index.outs if out.use_cache and not out.hash_info}


@contextlib.contextmanager
def _quiet_about(root: Path, paths: set[str]) -> Iterator[None]:
    """Drop DVC's "No file hash info found for ..." warnings about ``paths``: opsctl says it in words."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("No file hash info found") or not record.args:
            return True
        try:
            return _rel(root, str(record.args[0])) not in paths  # type: ignore[index]
        except ValueError:
            return True

    loggers = [logging.getLogger(n) for n in ("dvc_data.index.checkout", "dvc_data.hashfile.checkout")]
    for logger in loggers:
        logger.addFilter(keep)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(keep)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _remote_identity(repo, remote: str | None) -> tuple[str, str]:
    """The remote's name and URL as they may be shown (the URL's password masked)."""
    name = remote or repo.config["core"].get("remote") or "?"
    return name, mask_url(str(repo.config["remote"].get(name, {}).get("url", "?")))


def _pending_bytes(root: Path, repo, targets, remote) -> int | None:
    """Bytes of the cached objects that the remote lacks, for the push summary (best effort)."""
    try:
        status = repo.data_status(granular=True, not_in_remote=True, remote_refresh=True, remote=remote)
    except Exception:  # noqa: BLE001
        return None
    total = 0
    for path in status.get("not_in_remote", []):
        if path.endswith("/"):
            continue
        if targets and not any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets):
            continue
        file = root / path
        if file.is_file():
            total += file.stat().st_size
    return total


@dataclass(frozen=True)
class DiffEntry:
    path: str
    change: str  # added | deleted | modified | renamed | not in cache
    old_hash: str | None
    new_hash: str | None
    old_size: int | None
    new_size: int | None


def diff(root: Path, a_rev: str | None, b_rev: str | None) -> list[DiffEntry]:
    """DVC's ``diff`` between two Git revisions (``b_rev`` None: the workspace), with sizes."""
    with open_repo(root) as repo, dvc_compat.status_spinners_off():
        raw = repo.diff(a_rev or "HEAD", b_rev)
        old_sizes = _sizes_at(repo, a_rev or "HEAD")
        new_sizes = _sizes_at(repo, b_rev) if b_rev else _sizes_at(repo, None)
    entries = []
    for change in ("added", "deleted", "modified", "renamed", "not in cache"):
        for item in raw.get(change, []):
            path = item["path"]["new"] if isinstance(item.get("path"), dict) else item["path"]
            hashes = item.get("hash")
            old_hash, new_hash = (
                (hashes.get("old"), hashes.get("new"))
                if isinstance(hashes, dict)
                else ((hashes, None) if change == "deleted" else (None, hashes))
            )
            key = path.rstrip("/")
            entries.append(
                DiffEntry(
                    path=path,
                    change=change,
                    old_hash=old_hash,
                    new_hash=new_hash,
                    old_size=old_sizes(key, old_hash) if old_hash else None,
                    new_size=new_sizes(key, new_hash) if new_hash else None,
                )
            )
    return sorted(entries, key=lambda e: e.path)


def _sizes_at(repo, rev: str | None):
    """A size lookup ``(path, hash) -> bytes | None`` at ``rev`` (None: the workspace): the size
    ``dvc.lock`` or the ``.dvc`` file records for that hash (read from Git, not through another
    pass of DVC's brancher), a workspace file's own, else its object's in the cache (a file
    inside a tracked directory)."""
    from opsctl.adapters import git
    from opsctl.adapters.dvc_records import recorded_outputs

    root = Path(repo.root_dir)
    commit = git.resolve_commit(root, rev) if rev is not None else None
    recorded = recorded_outputs(root, commit) if rev is None or commit is not None else {}

    def lookup(path: str, hash_value: str) -> int | None:
        entry = recorded.get(path)
        if entry is not None and entry.md5 == hash_value and entry.size is not None:
            return entry.size
        if rev is None and (root / path).is_file():
            return (root / path).stat().st_size
        if rev is None and (root / path).is_dir():  # a directory changed since its lock: what is there now
            return _tree_size(root / path)
        if hash_value.endswith(".dir"):
            return None  # (the cache's .dir object is a listing, not the data)
        try:  # a file inside a tracked directory: its object in the cache knows its size
            cached = Path(repo.cache.local.oid_to_path(hash_value))
            return cached.stat().st_size if cached.is_file() else None
        except Exception:  # noqa: BLE001
            return None

    return lookup


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    default: bool
    options: dict


def list_remotes(root: Path) -> list[RemoteInfo]:
    from dvc.config import Config

    _prepare_dvc()
    with _translate():
        config = Config(dvc_dir=str(root / ".dvc"))
        default = config["core"].get("remote")
        # Options as written in the config files (read() merges every level, .dvc/config.local
        # included: they are the user's remotes, without the schema's defaults), each value
        # masked by the one rule of opsctl/secrets.py: secret options as ***, URL passwords too.
        written = config.read()
        return [
            RemoteInfo(
                name,
                mask_url(str(conf.get("url", ""))),
                name == default,
                {k: mask_value(k, v) for k, v in written.get("remote", {}).get(name, {}).items() if k != "url"},
            )
            for name, conf in sorted(config["remote"].items())
        ]


def remote_for_workers(root: Path, name: str | None = None) -> RemoteInfo | None:
    """The remote (``name``, else the default) as a machine without the project's config
    reaches it: its URL and options from ``.dvc/config`` and ``.dvc/config.local``, without
    credentials (a worker brings its own: environment variables, ``~/.aws``, its own DVC
    config). None when there is no remote. A URL with a password in it is refused."""
    from dvc.config import Config

    from opsctl.errors import UsageError
    from opsctl.secrets import looks_secret

    _prepare_dvc()
    with _translate():
        config = Config(dvc_dir=str(root / ".dvc"))
        name = name or config["core"].get("remote")
        if not name:
            return None
        written = config.read().get("remote", {}).get(name)
        if written is None:
            raise UsageError(f"no DVC remote named '{name}'", hint="see `opsctl data remote list`")
        url = str(config["remote"][name].get("url", ""))  # a local path resolved against its config file
    if mask_url(url) != url:
        raise UsageError(
            f"remote '{name}' has credentials in its URL, which would travel to every worker",
            hint="remove them from the URL and give the workers their own (environment or DVC config)",
        )
    options = {str(k): str(v) for k, v in written.items() if k != "url" and not looks_secret(str(k))}
    return RemoteInfo(name, url, True, options)


def cache_dir(root: Path) -> Path:
    """The project's DVC cache directory (``.dvc/cache`` unless configured elsewhere); a local
    remote at this path holds the same objects, since DVC 3 lays out both alike."""
    from dvc.config import Config

    _prepare_dvc()
    with _translate():
        configured = Config(dvc_dir=str(root / ".dvc"))["cache"].get("dir")
    return Path(configured) if configured else root / ".dvc" / "cache"


def configure_remote(
    root: Path,
    name: str,
    *,
    url: str | None = None,
    options: dict | None = None,
    default: bool = False,
    create: bool = False,
) -> None:
    """Write a remote the way ``dvc remote add``/``modify``/``default`` do (``.dvc/config``)."""
    from dvc.config import Config

    _prepare_dvc()
    with _translate():
        config = Config(dvc_dir=str(root / ".dvc"))
        with config.edit("repo") as conf:
            if create:
                if name in conf["remote"]:
                    raise DvcError(
                        f"remote '{name}' already exists", hint="pick another name, or `opsctl data remote list`"
                    )
                conf["remote"][name] = {"url": url}
            elif name not in conf["remote"]:
                raise DvcError(f"no remote named '{name}'", hint="see `opsctl data remote list`")
            conf["remote"][name].update(options or {})
            if default:
                conf["core"]["remote"] = name


def set_cache_dir(root: Path, cache: Path) -> None:
    """Point the repository's DVC cache at ``cache`` (``dvc cache dir --local``)."""
    from dvc.config import Config

    _prepare_dvc()
    with _translate():
        config = Config(dvc_dir=str(root / ".dvc"))
        with config.edit("local") as conf:
            conf["cache"]["dir"] = str(cache)


@dataclass(frozen=True)
class LockedStage:
    """A pipeline stage as its ``dvc.lock`` entry records it: the command, and the
    hashes of what it read and wrote, and the params values, when it last ran."""

    name: str  # DVC's addressing: "train", or "sub/dvc.yaml:train"
    cmd: str
    deps: list[tuple[str, str | None]]  # (path relative to the root, hash)
    params: dict[str, dict]  # params file -> {key: value}
    outs: list[tuple[str, str | None]]


def locked_stages(root: Path) -> dict[str, LockedStage]:
    """Every pipeline stage that has a ``dvc.lock`` entry, by its addressing."""
    from dvc.dependency.param import ParamsDependency
    from dvc.stage import PipelineStage

    def hash_of(item) -> Any:  # a str (md5) for files and dirs, a dict of values for params
        return item.hash_info.value if item.hash_info else None

    stages = {}
    with open_repo(root) as repo:
        for stage in repo.index.stages:
            if not isinstance(stage, PipelineStage) or not stage.outs or all(hash_of(o) is None for o in stage.outs):
                continue  # never run: nothing in dvc.lock
            deps: list[tuple[str, str | None]] = []
            params: dict[str, dict] = {}
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    params[_rel(root, dep.fs_path)] = dict(hash_of(dep) or {})
                else:
                    deps.append((_rel(root, dep.fs_path), hash_of(dep)))
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            stages[stage.addressing] = LockedStage(
                stage.addressing, cmd, deps, params, [(_rel(root, o.fs_path), hash_of(o)) for o in stage.outs]
            )
    return stages


def outputs(root: Path) -> list[TrackedOutput]:
    """Every DVC-tracked output with the hash dvc.lock / its .dvc file records (no status)."""
    with open_repo(root) as repo:
        return sorted((_output(root, out) for out in repo.index.outs), key=lambda o: o.path)


# -- experiments' work trees (core/experiments.py) -------------------------------------------------


def share_cache(home: Path, work_tree: Path) -> None:
    """Make ``work_tree`` (a linked Git work tree of ``home``) use ``home``'s DVC cache, and its
    local config (remotes' credentials, which never go into Git)."""
    import shutil

    from dvc.config import Config

    local = home / ".dvc" / "config.local"
    if local.is_file():
        shutil.copy2(local, work_tree / ".dvc" / "config.local")
    cache = cache_dir(home).resolve()
    with _translate():
        with Config(dvc_dir=str(work_tree / ".dvc")).edit("local") as conf:
            conf["cache"]["dir"] = str(cache)
            # DVC keeps a state database per repository path in a machine-wide directory; a work
            # tree's own goes with it when it is removed, instead of piling up there.
            conf["core"]["site_cache_dir"] = str(work_tree / ".dvc" / "tmp" / "site")


def missing_lock_objects(root: Path, lock_text: bytes | None) -> tuple[int, list[str]]:
    """The cached outputs a ``dvc.lock`` (its bytes) names that the cache lacks: fetched from the
    default remote when there is one. Returns (objects fetched, paths still missing)."""
    import yaml

    if not lock_text:
        return 0, []
    try:
        data = yaml.safe_load(lock_text) or {}
    except yaml.YAMLError:
        return 0, []
    with open_repo(root) as repo, _translate():
        uncached = {_rel(root, o.fs_path) for o in repo.index.outs if not o.use_cache}
        wanted: dict[str, str] = {}
        for stage in (data.get("stages") or {}).values():
            for out in (stage or {}).get("outs") or []:
                path, md5 = out.get("path"), out.get("md5")
                if path and md5 and path not in uncached and not dvc_compat.in_cache(repo, md5):
                    wanted[md5] = path
        if not wanted:
            return 0, []
        failed = list(wanted)
        if repo.config["core"].get("remote"):
            try:
                failed = dvc_compat.fetch_objects(repo, list(wanted), remote=None)
            except Exception:  # noqa: BLE001 — a remote that can't be reached: the objects stay missing
                failed = list(wanted)
        return len(wanted) - len(failed), sorted(wanted[m] for m in failed)


def apply_checkout(root: Path) -> list[str]:
    """``dvc checkout --force`` after an experiment's ``dvc.lock`` was written: the outputs it names."""
    with open_repo(root) as repo, _translate(), _quiet_about(root, set()):
        result = repo.checkout(force=True)
    changed = [*result.get("added", []), *result.get("modified", [])]
    return sorted({str(p).rstrip("/") for p in changed})


def modified_outputs(root: Path) -> list[str]:
    """Pipeline outputs whose workspace content is not what ``dvc.lock`` records (edited by
    hand, or made by a command outside the pipeline): a checkout would replace them."""
    from dvc.stage import PipelineStage

    modified = []
    with open_repo(root) as repo, _translate():
        for stage in repo.index.stages:
            if not isinstance(stage, PipelineStage):
                continue
            for out in stage.outs:
                if out.use_cache and out.hash_info and "modified" in out.workspace_status().values():
                    modified.append(_rel(root, out.fs_path))
    return sorted(modified)


# What opening a repository and running its pipeline imports (measured: each of these was
# imported by every experiment of a sweep before it was listed here).
_RUN_MODULES = (
    "dvc.repo",
    "dvc.repo.checkout",
    "dvc.repo.index",
    "dvc.repo.graph",
    "dvc.repo.stage",
    "dvc.repo.trie",
    "dvc.repo.brancher",
    "dvc.repo.artifacts",
    "dvc.repo.datasets",
    "dvc.repo.metrics.show",
    "dvc.repo.params.show",
    "dvc.repo.plots",
    "dvc.stage",
    "dvc.stage.cache",
    "dvc.cachemgr",
    "dvc.data_cloud",
    "dvc.dirs",
    "dvc.scm",
    "dvc.utils.strictyaml",
    "dvc.config",
    "dvc_data.index.checkout",
    "dvc_data.hashfile.db.local",
    "dvc_render",
    "scmrepo.git",
    "scmrepo.git.backend.dulwich",
    "dulwich.repo",
    "networkx",
    "ruamel.yaml",
    "yaml",
    "configobj",
    "flatten_dict",
    "platformdirs",
    "fsspec.implementations.memory",
)


def preload() -> None:
    """Import the DVC modules a run uses, for a process that forks runs (core/experiments.py)."""
    import importlib

    _prepare_dvc()
    for name in _RUN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a module a newer DVC moved: imported by the run itself if it needs it
            pass
