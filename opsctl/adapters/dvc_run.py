"""Running a DVC pipeline stage by stage, the way ``dvc repro`` does, with the
command itself left to the caller (an opsctl executor).

``dvc repro`` does, for each changed stage: remove its outputs, restore them
from the run cache if the same command, deps and params ran before, otherwise
run the command; then hash deps and outs, commit the outs to the cache, save
the run-cache entry and write the stage's ``dvc.lock`` entry. :class:`RunSession`
does the same steps through the same DVC objects, split in two (``prepare``
before the command, ``record`` after) so that commands of independent stages
can run at the same time. One in-process lock serialises the DVC steps, so
``dvc.lock`` is always written whole, by one writer at a time.

A session holds DVC's repository lock (``.dvc/tmp/lock``, which every DVC
command that writes takes) from open to close: two runs of one project, or a
run and ``dvc repro``, never remove and write the same outputs at once. ``dvc
repro`` itself lets go of that lock while a stage's command runs, and then
names the stage's paths in its rwlock file instead; a session counts both.
Another run holding the project is reported at once, naming it
(:class:`LockHolder`); any other holder, a short DVC command, is waited for a
bounded time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.adapters import dvc_compat
from opsctl.adapters.dvc import (
    LOCK_TIMEOUT_ENV,
    PipelineStage,
    _local_paths,
    _pipeline_stages,
    _prepare_dvc,
    _quiet_about,
    _translate,
    lock_timeout,
    project_root_cwd,
)
from opsctl.adapters.dvc_lock import LockHolder, lock_holder, stage_running
from opsctl.adapters.dvc_watch import WatchList
from opsctl.errors import DvcError, ProjectBusyError, RepoLockedError, UsageError

# What ``prepare`` decided for a stage.
UP_TO_DATE, RESTORED, EXECUTE = "up-to-date", "restored", "execute"


@dataclass(frozen=True)
class PathHash:
    path: str
    hash: str | None  # DVC's md5 (".dir" suffix for directories); None when missing
    kind: str  # dep | out | param


@dataclass(frozen=True)
class RecordedStage:
    name: str
    hashes: tuple[PathHash, ...]


@dataclass(frozen=True)
class StageDep:
    """A dependency of a stage about to run, as a remote executor ships it."""

    path: str  # relative to the project root, POSIX
    md5: str | None  # DVC's hash (None for a params file, whose values DVC hashes, not its bytes)
    cached: bool  # the object (a directory: with every file) is in the local cache: it can go by hash


class StageOutputMissing(Exception):
    """The command exited 0 but did not write a declared output."""


class RunSession:
    """One open DVC repository, holding DVC's lock, for the length of a run; thread-safe.

    ``wait``: wait as long as it takes for another holder of the lock (calling
    ``on_wait(holder)`` when a new one is seen) instead of refusing."""

    def __init__(
        self,
        root: Path,
        *,
        wait: bool = False,
        on_wait: Callable[[LockHolder], None] | None = None,
        read_only: bool = False,
    ) -> None:
        """``read_only``: for a session that only plans (``opsctl status``, the dashboard's
        pipeline): it takes no lock, so it answers while a run holds the project — what it
        reads, ``dvc.lock`` included, is only ever replaced whole. It must not prepare,
        record or commit anything."""
        # DVC reads its config as the repo opens, maybe long before the plan (a run waiting for
        # the lock): the no-op fast path keeps no record of anything that changed since.
        self.opened_ns = time.time_ns()
        _prepare_dvc()
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo

        self.root = root
        project_root_cwd.enter(root)  # stage names relative to the root, wherever opsctl started
        try:
            self._repo = Repo(str(root))
        except NotDvcRepoError:
            project_root_cwd.leave()
            raise DvcError(f"{root} is not a DVC repository", hint="run `dvc init` there") from None
        except BaseException:
            project_root_cwd.leave()
            raise
        self.read_only = read_only
        self._held = contextlib.ExitStack()
        try:
            if read_only:
                from dvc.lock import LockNoop

                # DVC's own lock-free stand-in (what it uses for a repo at a Git revision), held:
                # its status methods assert the repo lock is held, and its @locked methods called
                # while planning must not take the real one and queue behind the run.
                self._repo.lock = LockNoop()
                self._repo.lock.lock()
                self._held.enter_context(dvc_compat.lock_counted_as_held(self._repo))
            else:
                self._take_lock(wait, on_wait)
        except BaseException:
            self._repo.close()
            project_root_cwd.leave()
            raise
        self._mutex = threading.Lock()
        self._stages: dict[str, Any] = {}  # name -> the DVC stage object between prepare and record
        self.changed_data_sources: list[str] = []  # set by plan()
        self.data_source_outs: dict[str, tuple[str, ...]] = {}  # .dvc file -> its paths (from the project root)
        self._planned: dict[str, Any] = {}  # name -> DVC stage object, set by plan()
        self._lock_cache: dict[str, tuple] = {}  # dvc.lock path -> (stat signature, parsed data)
        # What the last whole-pipeline plan() depended on (adapters/dvc_watch.py); None when unknown.
        self.watch: WatchList | None = None
        self._lock_file_mutex = threading.Lock()  # one dvc.lock writer at a time (see _write_lock_entries)
        self._lock_pending_mutex = threading.Lock()
        self._lock_pending: dict[int, Any] = {}  # id -> saved stage whose dvc.lock entry is not written yet

    def _must_write(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only RunSession only plans: it holds no lock to write under")

    def _take_lock(self, wait: bool, on_wait: Callable[[LockHolder], None] | None) -> None:
        """DVC's repository lock, for the whole session. Unlike DVC's own ``lock_repo`` the
        repo is not reset on taking it: nothing was read yet."""
        from dvc.lock import Lock, LockError

        repo = self._repo
        # The default flock-based lock can be asked who holds it; `core.hardlink_lock` can't.
        lockfile = repo.lock.lockfile if isinstance(repo.lock, Lock) else None
        deadline: float | None = None
        announced: set[int | None] = set()  # pids on_wait was told about
        while True:
            holder = lock_holder(lockfile) if lockfile else None
            if holder is None:
                try:
                    repo.lock.lock()  # DVC retries for 3 s if another process took it meanwhile
                except LockError:
                    holder = (lock_holder(lockfile) if lockfile else None) or LockHolder(None)
                else:
                    holder = stage_running(repo)
                    if holder is None:
                        break
                    repo.lock.unlock()  # `dvc repro` needs it back when its stage's command ends
            if wait:
                # Once per holder: `dvc repro` is seen by turns through both of its locks, and the
                # pid is missing for a moment while a new holder writes it.
                if on_wait is not None and holder.pid not in announced and (holder.pid or not announced):
                    on_wait(holder)
                announced.add(holder.pid)
            elif holder.is_run:
                raise ProjectBusyError(
                    f"another run holds this project: {holder.describe()}", hint="let it finish, then try again"
                )
            else:
                # A short DVC or opsctl command (add, push, status): worth a bounded wait.
                deadline = deadline or time.monotonic() + lock_timeout()
                if time.monotonic() >= deadline:
                    who = f": {holder.describe()}" if holder.pid else ""
                    raise RepoLockedError(
                        f"another DVC or opsctl command holds this project's lock (waited {lock_timeout():g} s){who}",
                        hint=f"let it finish, or wait longer with {LOCK_TIMEOUT_ENV}=SECONDS",
                    )
            time.sleep(0.1)
        # DVC's @locked methods called during the session see the lock held and don't retake it.
        self._held.enter_context(dvc_compat.lock_counted_as_held(repo))

    def close(self) -> None:
        try:
            self._repo.close()
        finally:
            try:
                self._held.close()
                if not self.read_only and self._repo.lock.is_locked:
                    self._repo.lock.unlock()
            finally:
                project_root_cwd.leave()

    def __enter__(self) -> RunSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        """The repo, to one DVC step at a time (DVC's lock is held for the whole session).

        Unlike DVC's own ``lock_repo`` this does not reset the repo on every step: a reset
        re-reads the config and .dvcignore and reopens the state database, which made each
        stage's record cost 0.1-0.3 s. Between our steps only stage commands touch the
        workspace, and each stage keeps its own object."""
        # A planning session's reads are not entered in DVC's rwlock: they must never make a
        # running stage's outputs "busy" (adapters/dvc_compat.py, reads_not_registered).
        reading = dvc_compat.reads_not_registered() if self.read_only else contextlib.nullcontext()
        with self._mutex, _translate(), reading:
            yield self._repo

    # -- planning ---------------------------------------------------------------------

    def plan(self, targets: list[str]) -> list[PipelineStage]:
        """The pipeline stages ``targets`` need (all when none), upstream first, each with
        DVC's reasons for being stale. Unknown targets: UsageError naming close ones."""
        import networkx as nx
        from dvc.lock import LockError
        from dvc.stage import PipelineStage as DvcPipelineStage

        from opsctl.adapters.dvc_watch import watch_list

        self.watch = None
        with self._locked() as repo, dvc_compat.walk_recorded(repo) as walked:
            graph = repo.index.graph  # edges: stage -> the stages it depends on
            if targets:
                by_name = {s.addressing: s for s in graph if isinstance(s, DvcPipelineStage)}
                _check_targets(targets, by_name)
                wanted: set = set()
                for target in targets:
                    wanted |= {by_name[target]} | nx.descendants(graph, by_name[target])
                graph = graph.subgraph(wanted)
            # DVC's own change detection: the same call as `dvc status [TARGET...]`.
            try:
                with dvc_compat.params_files_read_once():
                    status = repo.status(targets=targets, with_deps=True) if targets else repo.status()
            except LockError:
                # Only a read-only session gets here: `dvc repro` is writing a stage's outputs
                # (DVC's rwlock names it), so their state is not known until it finishes.
                holder = stage_running(repo) or LockHolder(None)
                raise ProjectBusyError(
                    f"another run holds this project: {holder.describe()}", hint="let it finish, then try again"
                ) from None
            # Keep the stage objects: a stage's own dvc.lock entry (what its deps and outs were)
            # changes only when it runs itself, so later steps need not re-read the index.
            self._planned = {s.addressing: s for s in graph if isinstance(s, DvcPipelineStage)}
            # Data tracked by .dvc files that changed in the workspace: `dvc repro` commits it.
            self.changed_data_sources = sorted(
                s.relpath
                for s in graph
                if not isinstance(s, DvcPipelineStage)
                and s.is_data_source
                and not s.is_import
                and s.addressing in status
            )
            if walked is not None and not targets:
                self.watch = watch_list(repo, walked, status)
            root = Path(repo.root_dir)
            self.data_source_outs = {
                s.relpath: _local_paths(root, s.outs)
                for s in graph
                if not isinstance(s, DvcPipelineStage) and s.is_data_source
            }
            return _pipeline_stages(repo, graph, status)

    def commit_data_sources(self, paths: list[str]) -> None:
        """Commit changed data-source ``.dvc`` files, exactly as ``dvc repro`` does."""
        self._must_write()
        with self._locked() as repo:
            for stage in repo.index.stages:
                if stage.relpath in paths:
                    stage.save()
                    stage.commit()
                    stage.dump()

    def in_run_cache(self, name: str) -> bool:
        """Whether the run cache holds this stage with its current deps and params (no writes)."""
        with self._locked() as repo:
            stage = self._stage(repo, name)
            if not dvc_compat.can_hash(stage):
                return False
            try:
                stage.save_deps()  # in memory: the deps' current hashes
            except Exception:  # noqa: BLE001
                return False
            cached = dvc_compat.cached_run(repo, stage)
            return cached is not None and cached.outs_cached()

    def run_cache_key(self, name: str) -> str | None:
        """The run cache's key for this stage as its deps and params are now (None when DVC's
        run cache cannot hold it, or a dep can't be hashed yet). Changes nothing: the stage
        still compares with its dvc.lock entry afterwards."""
        with self._locked() as repo:
            stage = self._stage(repo, name)
            try:
                return dvc_compat.run_cache_key(stage)
            except Exception:  # noqa: BLE001 — a missing dep: the stage fails on its own later
                return None

    def check_out(self) -> None:
        """``dvc checkout`` of every tracked output whose object the cache has, on the session's
        own repository (its index is then planning's too); the others stay missing, so their
        stages are stale and run or come from the run cache."""
        self._must_write()
        with self._locked() as repo, _quiet_about(Path(repo.root_dir), set()):
            repo.checkout(force=True, allow_missing=True)

    # -- running ------------------------------------------------------------------------

    def prepare(self, name: str, *, recheck: bool, use_run_cache: bool, record_restored: bool = True) -> str:
        """Before a stage's command: UP_TO_DATE (``recheck`` and DVC now sees no change,
        e.g. an upstream stage re-ran but produced the same outputs), RESTORED (the run
        cache had it: outputs checked out, lock entry written — unless ``record_restored``
        is False: then the caller checks the outputs first and calls :meth:`record` or
        :meth:`forget`), or EXECUTE (outputs removed, as ``dvc repro`` does; run the
        command, then call :meth:`record`)."""
        self._must_write()
        from dvc.stage.cache import RunCacheNotFoundError

        with self._locked() as repo:
            stage = self._stage(repo, name)
            if recheck and not stage.changed():
                return UP_TO_DATE
            stage.remove_outs(ignore_remove=False, force=False)
            if use_run_cache:
                try:
                    repo.stage_cache.restore(stage)
                except RunCacheNotFoundError:
                    pass
                else:
                    if record_restored:
                        self._save(stage)
                    else:
                        self._stages[name] = stage
                    return RESTORED
            stage.save_deps()
            self._stages[name] = stage
            return EXECUTE

    def record(self, name: str) -> RecordedStage:
        """After a command exited 0: hash deps and outs, commit outs, save the run-cache
        entry, write the ``dvc.lock`` entry. StageOutputMissing when an output is absent
        (nothing written for the stage then).

        Parallel stages finish together, so the slow part — reading each output to hash it
        and copy it into the cache — runs outside the mutex, on this stage's own files and
        the thread-safe parts of DVC only (``dvc_compat.hash_and_cache_outputs`` says why it
        is safe). Under the mutex DVC's own ``save``/``commit`` then find every hash and
        object there and do the bookkeeping that touches shared repo objects (Git's ignore
        files, the run cache). The ``dvc.lock`` entry is written last, together with those
        of stages that finished meanwhile (:meth:`_write_lock_entries`); the call returns
        once this stage's entry is on disk."""
        self._must_write()
        from dvc.output import OutputDoesNotExistError

        # Without the mutex: the entry is this stage's own (only its thread adds and removes
        # it), and a dict's pop is atomic.
        stage = self._stages.pop(name)
        try:
            with _translate():
                missing = [str(o.def_path) for o in stage.outs if not os.path.lexists(o.fs_path)]
                if missing:
                    raise StageOutputMissing(", ".join(missing))
                dvc_compat.hash_and_cache_outputs(self._repo, stage)
            with self._locked():
                missing = [str(o.def_path) for o in stage.outs if not o.exists]  # DVC's view (.dvcignore)
                if missing:
                    raise StageOutputMissing(", ".join(missing))
                self._save(stage, write_lock=False)
        except OutputDoesNotExistError as exc:
            raise StageOutputMissing(str(exc)) from None
        self._write_lock_entries(stage)
        return RecordedStage(name, _hashes(stage))

    # -- a stage run away from the project (a remote executor) ---------------------------

    def stage_deps(self, name: str) -> list[StageDep]:
        """The deps of a stage :meth:`prepare` decided to EXECUTE, hashed as ``dvc repro`` hashes
        them, each saying whether its data is in the local cache."""
        from dvc.dependency.param import ParamsDependency

        with self._locked() as repo:
            stage = self._stages[name]
            deps = []
            for dep in stage.deps:
                path = self._relative(dep)
                if isinstance(dep, ParamsDependency):
                    deps.append(StageDep(path, None, False))  # its bytes go along
                    continue
                md5 = str(dep.hash_info.value) if dep.hash_info and dep.hash_info.value else None
                deps.append(StageDep(path, md5, md5 is not None and dvc_compat.in_cache(repo, md5)))
            return deps

    def _relative(self, item) -> str:
        """A dep's or out's path relative to the project root, POSIX: how opsctl names it."""
        return Path(os.path.relpath(item.fs_path, self.root)).as_posix()

    def stage_outs(self, name: str) -> list[str]:
        """The outputs of a stage to run, relative to the project root."""
        with self._locked():
            return [self._relative(o) for o in self._stages[name].outs]

    def small_outs(self, name: str) -> list[str]:
        """Outputs of a stage to run that are metrics, plots, or not cached by DVC: what a run
        reads itself (its metrics) or what only Git keeps (``cache: false``)."""
        with self._locked():
            outs = self._stages[name].outs
            return [self._relative(o) for o in outs if o.is_metric or o.is_plot or not o.use_cache]

    def record_remote(self, name: str, outputs: dict[str, tuple[str, int | None, int | None]]) -> RecordedStage:
        """Write the ``dvc.lock`` entry of a stage whose outputs stay on the remote (path ->
        (md5, size, nfiles), as the node hashed them): the entry ``record`` would write, without
        the outputs in the workspace or the local cache (``opsctl data pull`` fetches them)."""
        self._must_write()
        with self._locked():
            stage = self._stages.pop(name)
            for out in stage.outs:
                path = self._relative(out)
                if path not in outputs:
                    raise StageOutputMissing(path)
                md5, size, nfiles = outputs[path]
                dvc_compat.set_output_hash(out, md5, size, nfiles)
            self._write_lock_entries(stage)
            return RecordedStage(name, _hashes(stage))

    def push_objects(self, md5s: list[str], remote: str | None) -> int:
        """Send the cache objects ``md5s`` the remote lacks (the inputs of a remote stage)."""
        with self._locked() as repo, _remote_errors(repo, remote):
            return dvc_compat.push_objects(repo, md5s, remote)

    def place_outputs(self, name: str, outputs: dict[str, str], remote: str | None) -> None:
        """Fetch the outputs a node pushed (path -> md5) into the local cache and check them out
        at the stage's output paths, so :meth:`record` finds them as if the command had run here."""
        with self._locked() as repo:
            stage = self._stages[name]
            by_path = {self._relative(o): o for o in stage.outs}
            unknown = sorted(set(outputs) - set(by_path))
            if unknown:
                raise StageOutputMissing(f"the node returned outputs the stage does not declare: {', '.join(unknown)}")
            missing = [m for m in outputs.values() if not dvc_compat.in_cache(repo, m)]
            if missing:
                with _remote_errors(repo, remote):
                    failed = dvc_compat.fetch_objects(repo, missing, remote)
                if failed:
                    raise DvcError(
                        f"{len(failed)} output object(s) of stage {name} are not on the remote: {', '.join(failed[:3])}"
                    )
            for path, md5 in outputs.items():
                dvc_compat.check_out_as(by_path[path], md5)

    def forget(self, name: str) -> None:
        """A stage's command failed or was stopped: nothing to record."""
        with self._mutex:
            self._stages.pop(name, None)

    def params_and_metrics(self) -> tuple[dict, dict]:
        """The workspace's params and metrics through DVC's own APIs (so dvclive's output
        and every params file DVC knows are included), flattened to ``a.b.c`` keys."""
        with self._locked() as repo:
            # hide_workspace=False: the workspace is what we want, and deciding whether to
            # hide it asks Git for the active branch through pygit2 (~60 ms to import).
            params = _flatten_show(repo.params.show(hide_workspace=False), plain_file="params.yaml")
            metrics = _flatten_show(repo.metrics.show(hide_workspace=False), plain_file=None)
        return params, metrics

    def dataset_hash(self, path: str) -> str | None:
        """DVC's hash of a workspace file or directory (relative to the root), None when it
        can't be hashed: what a data check's verdict is cached and recorded by."""
        with self._locked() as repo:
            try:
                return dvc_compat.dataset_hash(repo, str(self.root / path))
            except Exception:  # noqa: BLE001 — the hash only keys the verdict cache
                return None

    def hashes(self, name: str) -> RecordedStage:
        """Deps and outs of a stage as its ``dvc.lock`` entry records them."""
        with self._locked() as repo:
            return RecordedStage(name, _hashes(self._stage(repo, name)))

    def _stage(self, repo, name: str):
        return self._planned.get(name) or _find(repo, name)

    def _save(self, stage, *, write_lock: bool = True) -> None:
        # Stage.run's tail: outs without cache (metrics, plots) keep the stage out of the run cache.
        no_cache_outs = any(not o.use_cache for o in stage.outs if not (o.is_metric or o.is_plot))
        stage.save(run_cache=not no_cache_outs)
        stage.commit()
        if write_lock:
            self._write_lock_entries(stage)

    def _write_lock_entries(self, stage) -> None:
        """Put ``stage``'s entry into ``dvc.lock``, with those of other stages waiting to be
        written at that moment: stages that finish together cost one write, not one each.
        Returns once ``stage``'s entry is on disk (by this thread or by the one that wrote the
        batch it was in). Only the stage objects (each saved and committed, no longer touched
        by DVC) and the lock file itself are used, so this needs no repo mutex: its own lock
        keeps one writer at a time, which DVC's repository lock, held by the session, makes
        the only writer of ``dvc.lock``."""
        with self._lock_pending_mutex:
            self._lock_pending[id(stage)] = stage
        with self._lock_file_mutex:
            with self._lock_pending_mutex:
                if id(stage) not in self._lock_pending:
                    return  # another thread wrote it (with the file mutex held: it is on disk)
                batch, self._lock_pending = list(self._lock_pending.values()), {}
            try:
                with _translate():
                    by_file: dict[str, list] = {}
                    for each in batch:
                        by_file.setdefault(dvc_compat.lockfile_path(each), []).append(each)
                    for path, stages in by_file.items():
                        self._write_lock_file(Path(path), stages)
            except BaseException:
                with self._lock_pending_mutex:  # the others write their own, or fail in turn
                    self._lock_pending.update({id(s): s for s in batch if s is not stage})
                raise

    def _write_lock_file(self, path: Path, stages: list) -> None:
        """``stage.dump(update_pipeline=False)`` — DVC's Lockfile.dump_stages — for ``stages``
        at once, with two differences: the parsed dvc.lock is kept between stages (DVC
        re-parses it for every stage, which grows with the pipeline) unless the file changed
        on disk, and the file is replaced whole (DVC rewrites it in place, so a kill mid-write
        leaves half a dvc.lock). The bytes written are DVC's: same serializer, same dumper."""
        from dvc.stage import serialize
        from dvc.utils.serialize import parse_yaml_for_update

        signature = _signature(path)
        cached = self._lock_cache.get(str(path))
        if cached is not None and cached[0] == signature:
            data = cached[1]
        elif signature is None:
            data = {}
        else:
            data = parse_yaml_for_update(path.read_text(encoding="utf-8"), str(path))
        if not data:
            data.update({"schema": "2.0"})
        data["stages"] = data.get("stages", {})
        for stage in stages:
            data["stages"].update(serialize.to_lockfile(stage))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fd:
            dvc_compat.dump_yaml(data, fd)
        if signature is not None:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
        self._lock_cache[str(path)] = (_signature(path), data)
        self._repo.scm_context.track_file(os.path.relpath(path, self.root))


@contextlib.contextmanager
def _remote_errors(repo, remote: str | None) -> Iterator[None]:
    """A transfer's network or storage failure as one line naming the remote (RemoteUnavailableError)."""
    from opsctl.adapters.dvc import _raise_remote_error

    try:
        yield
    except Exception as exc:
        _raise_remote_error(repo, remote, exc)
        raise


def _flatten_show(result: dict, plain_file: str | None) -> dict:
    """``{rev: {"data": {file: {"data": {...}}}}}`` (DVC's params/metrics show) -> flat dict.

    Keys of ``plain_file`` (or of the only file, when ``plain_file`` is None) stay plain,
    ``train.n_estimators``; others are ``FILE:key`` as DVC prints them."""
    workspace: dict = next(iter(result.values()), {}) if result else {}
    files = {
        name: entry.get("data")
        for name, entry in (workspace.get("data") or {}).items()
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict)
    }
    flat: dict = {}
    for name, data in files.items():
        plain = name == plain_file or (plain_file is None and len(files) == 1)
        _flatten_into(flat, data, "" if plain else f"{name}:")
    return flat


def _flatten_into(flat: dict, data, prefix: str) -> None:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            joiner = "" if prefix.endswith(":") or not prefix else "."
            _flatten_into(flat, value, f"{prefix}{joiner}{key}")
    else:
        flat[prefix] = data


def _signature(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _find(repo, name: str):
    from dvc.stage import PipelineStage as DvcPipelineStage

    # A fresh stage object from dvc.yaml and dvc.lock as they are now on disk.
    for stage in repo.index.stages:
        if isinstance(stage, DvcPipelineStage) and stage.addressing == name:
            return stage
    raise DvcError(f"stage '{name}' is no longer in the pipeline (dvc.yaml changed during the run?)")


def _check_targets(targets: list[str], by_name: dict) -> None:
    import difflib

    for target in targets:
        if target not in by_name:
            close = difflib.get_close_matches(target, list(by_name), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"stages: {', '.join(sorted(by_name)) or 'none'}"
            raise UsageError(f"no stage named '{target}' in the pipeline", hint=hint)


def _hashes(stage) -> tuple[PathHash, ...]:
    import json

    from dvc.dependency.param import ParamsDependency

    result = []
    for dep in stage.deps:
        value = dep.hash_info.value if dep.hash_info else None
        if isinstance(dep, ParamsDependency):
            result.append(PathHash(str(dep.def_path), json.dumps(value, sort_keys=True, default=str), "param"))
        else:
            result.append(PathHash(str(dep.def_path), value, "dep"))
    result += [PathHash(str(o.def_path), o.hash_info.value if o.hash_info else None, "out") for o in stage.outs]
    return tuple(result)


def apply_param_overrides(root: Path, overrides: list[tuple[str, str, object]]) -> list[str]:
    """Write ``(file, dotted.key, value)`` overrides into params files (as ``dvc exp run -S``
    does), keeping comments and order; returns the files changed."""
    from dvc.utils.serialize import modify_yaml

    _prepare_dvc()
    changed = []
    by_file: dict[str, list[tuple[str, object]]] = {}
    for file, key, value in overrides:
        by_file.setdefault(file, []).append((key, value))
    for file, items in by_file.items():
        path = root / file
        if not path.is_file():
            raise UsageError(f"-S: no params file {file}", hint="create it, or name the file: -S FILE:KEY=VALUE")
        with _translate(), modify_yaml(str(path)) as data:
            for key, value in items:
                node = data
                parts = key.split(".")
                for part in parts[:-1]:
                    if not isinstance(node.get(part), dict):
                        node[part] = {}
                    node = node[part]
                node[parts[-1]] = value
        changed.append(file)
    return changed
