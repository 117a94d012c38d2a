"""Every use of DVC's private internals, in one place.

DVC's only stable Python API is ``dvc.api``; running stages the way ``dvc repro`` does
(see ``opsctl.adapters.dvc_run``) needs a few names with a leading underscore, and
routing DVC's progress bars and lock-file edits through opsctl replaces a few module
attributes. Each function below is the only place its internal is touched, and says
what it does and which DVC versions it was read against.

:data:`SUPPORTED_DVC` is the range all of them were checked against. It is enforced
once per process, when the DVC adapter is first used (``opsctl.adapters.dvc._prepare_dvc``,
and ``opsctl doctor``), and ``pyproject.toml`` pins ``dvc`` to the same range
(``tests/adapters/test_dvc_compat.py`` checks that they agree).

To support a newer DVC: read each function here against its source, run the test suite
with it installed, then widen SUPPORTED_DVC and the pin in pyproject.toml together.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

from opsctl.errors import DvcVersionError

# Read against DVC 3.50.0 and 3.67.1 (the suite runs on 3.67.1).
SUPPORTED_DVC = ">=3.50,<3.68"


def check_dvc_version(installed: str) -> str:
    """``installed`` when it is inside :data:`SUPPORTED_DVC`; otherwise DvcVersionError
    (exit 4) naming both. A pre-release counts as its release (3.68.0rc1 is outside)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        inside = Version(installed) in SpecifierSet(SUPPORTED_DVC, prereleases=True)
    except InvalidVersion:
        inside = False
    if not inside:
        raise DvcVersionError(
            f"DVC {installed} is installed; this opsctl works with DVC {SUPPORTED_DVC}",
            hint=f"pip install 'dvc{SUPPORTED_DVC}' in opsctl's environment (opsctl uses DVC internals "
            "checked only against these versions)",
        )
    return installed


# -- the repository lock ------------------------------------------------------------------


@contextlib.contextmanager
def lock_counted_as_held(repo: Any) -> Iterator[None]:
    """While opsctl holds ``repo.lock`` itself, DVC's ``@locked`` methods called inside
    must see it held and not take it again: DVC's ``lock_repo`` counts that in
    ``Repo._lock_depth`` (DVC 3.50-3.67: an int, 0 when unlocked). Unlike ``lock_repo``
    this does not reset the repo's caches on every take and release."""
    repo._lock_depth += 1
    try:
        yield
    finally:
        repo._lock_depth -= 1


# -- the run cache ---------------------------------------------------------------------


def can_hash(stage: Any) -> bool:
    """Whether the run cache can hold ``stage`` at all (a command, no always_changed,
    deps and outs DVC can hash): ``dvc.stage.cache._can_hash`` (DVC 3.50-3.67)."""
    from dvc.stage.cache import _can_hash

    return bool(_can_hash(stage))


def cached_run(repo: Any, stage: Any) -> Any | None:
    """The run-cache entry for ``stage``'s current deps and params, as a stage object
    whose ``outs_cached()`` says whether its outputs are in the cache; None when there is
    no entry. No writes. ``StageCache._load`` (RunCacheNotFoundError or a falsy entry when
    absent) and ``StageCache._create_stage(cache, wdir=)`` (DVC 3.50-3.67), the same
    calls ``StageCache.restore`` makes before it checks outputs out."""
    from dvc.stage.cache import RunCacheNotFoundError

    try:
        cache = repo.stage_cache._load(stage)
    except RunCacheNotFoundError:
        return None
    if not cache:
        return None
    return repo.stage_cache._create_stage(cache, wdir=stage.wdir)


def run_cache_key(stage: Any) -> str | None:
    """The run cache's key for ``stage`` with its deps and params as they are now (None when
    the run cache cannot hold it), leaving the stage object as it was: its deps' recorded
    hashes are what DVC compares to decide whether it changed. ``_can_hash``/``_get_stage_hash``
    of ``dvc.stage.cache`` and ``Output.hash_info``/``meta``/``obj``/``files`` (DVC 3.50-3.67)."""
    from dvc.stage.cache import _can_hash, _get_stage_hash

    kept = [
        (dep, dep.hash_info, dep.meta, getattr(dep, "obj", None), getattr(dep, "files", None)) for dep in stage.deps
    ]
    try:
        stage.save_deps()
        return str(_get_stage_hash(stage)) if _can_hash(stage) else None
    finally:
        for dep, hash_info, meta, obj, files in kept:
            dep.hash_info, dep.meta, dep.obj, dep.files = hash_info, meta, obj, files


# -- hashing -------------------------------------------------------------------------------


def dataset_hash(repo: Any, path: str) -> str:
    """DVC's md5 of a workspace file or directory (a directory's ends in ``.dir``), as ``dvc
    add`` would record it, through DVC's state database: a file unchanged since DVC last
    hashed it is not read again. ``dvc_data.hashfile.build.build(odb, path, fs, "md5",
    ignore=, dry_run=True)`` (dvc-data 3.x, DVC 3.50-3.67); nothing is written to the cache."""
    from dvc_data.hashfile.build import build

    _odb, _meta, obj = build(repo.cache.local, path, repo.fs, "md5", ignore=repo.dvcignore, dry_run=True)
    return str(obj.hash_info.value)


def hash_and_cache_outputs(repo: Any, stage: Any) -> None:
    """Read a finished stage's outputs once, outside the session's mutex: each file's md5 into
    DVC's state database and, for a cached output, its object into the cache — the slow part
    of ``stage.save()`` + ``stage.commit()``, which then find both there and only do their
    bookkeeping. ``dvc_data.hashfile.hash.hash_file(path, fs, "md5", state=)`` and
    ``HashFileDB.add(path, fs, oid, hardlink=)`` (dvc-data 3.x, DVC 3.50-3.67).

    Thread-safe because it touches no shared DVC object that is not: the stage's own outputs
    (no two stages share a path), the local filesystem (stateless ``os`` calls), the state
    database (a diskcache Cache, documented thread-safe: one SQLite connection per thread),
    and the content-addressed cache (an object is copied to a unique temporary name, then
    renamed into place; DVC itself hashes files and copies objects in from worker threads).
    It does not use ``repo.dvcignore``, whose pattern trie is filled lazily (not thread-safe):
    a file of an output directory that DVC ignores is hashed and cached for nothing, never
    recorded. Nothing here decides what is recorded: DVC's ``save`` under the mutex does,
    and a hash it does not find in the state database it computes again. Outputs with
    another hash name (a legacy ``md5-dos2unix`` entry) are left to DVC."""
    from dvc_data.hashfile.hash import hash_file

    for out in stage.outs:
        if out.hash_name != "md5" or not out.is_in_repo:
            continue
        odb = out.cache if out.use_cache else None
        hardlink = odb is not None and next(iter(odb.cache_types), None) == "hardlink"  # as Output.commit
        root = out.fs_path
        if os.path.isdir(root) and not os.path.islink(root):
            paths = [os.path.join(top, name) for top, _dirs, files in os.walk(root) for name in files]
        elif os.path.isfile(root):
            paths = [root]
        else:
            continue
        for path in paths:
            _meta, info = hash_file(path, out.fs, "md5", state=repo.state)
            if odb is not None and info.value:
                odb.add(path, out.fs, info.value, hardlink=hardlink)


# -- dvc.lock ------------------------------------------------------------------------------


def lockfile_path(stage: Any) -> str:
    """The ``dvc.lock`` a pipeline stage's entry lives in: ``ProjectFile._lockfile.path``
    (DVC 3.50-3.67: a property building the Lockfile next to the stage's dvc.yaml)."""
    return str(stage.dvcfile._lockfile.path)


def dump_yaml(data: Any, stream: IO[str]) -> None:
    """Write ``data`` as DVC writes dvc.lock (ruamel, its width and indentation, comments
    kept from ``parse_yaml_for_update``): ``dvc.utils.serialize._yaml._dump`` (DVC 3.50-3.67)."""
    from dvc.utils.serialize._yaml import _dump

    _dump(data, stream)


# -- module attributes opsctl replaces -----------------------------------------------------


def wrap_rwlock_edits(around: Callable[[], AbstractContextManager[Any]]) -> None:
    """Run every edit of ``.dvc/tmp/rwlock`` inside ``around()``: replaces
    ``dvc.rwlock._edit_rwlock(lock_dir, fs, hardlink)`` (DVC 3.50-3.67: a context manager
    that reads the file, yields the dict, then truncates and rewrites it), which DVC's
    own ``rwlock`` helpers look up at call time. Once per process: the replacement is
    marked ``opsctl_guarded``."""
    from dvc import rwlock

    edit = rwlock._edit_rwlock
    if getattr(edit, "opsctl_guarded", False):
        return

    @contextlib.contextmanager
    def guarded_edit(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with around(), edit(*args, **kwargs) as lock:
            yield lock

    guarded_edit.opsctl_guarded = True  # type: ignore[attr-defined]  # a marker on the function object
    rwlock._edit_rwlock = guarded_edit


_reading = threading.local()  # .active: this thread's DVC steps only read (a planning session)


@contextlib.contextmanager
def reads_not_registered() -> Iterator[None]:
    """Within the block, this thread's DVC steps that only read paths check, as DVC does, that
    no other process is writing them (LockError, "... is busy"), but do not enter themselves as
    readers in ``.dvc/tmp/rwlock``: a planner (``opsctl status``, the dashboard) looking at the
    pipeline must never make a running stage's output "busy" and fail it."""
    before = getattr(_reading, "active", False)
    _reading.active = True
    try:
        yield
    finally:
        _reading.active = before


def install_reader_rwlock() -> None:
    """Make :func:`reads_not_registered` work: replaces ``dvc.rwlock.rwlock(tmp_dir, fs, cmd,
    read, write, hardlink)``, which ``dvc.stage.decorators.rwlocked`` imports at each call, and
    uses its ``_edit_rwlock`` and ``_check_blockers`` (DVC 3.50-3.67). Once per process."""
    from dvc import rwlock as dvc_rwlock

    original = dvc_rwlock.rwlock
    if getattr(original, "opsctl_readers", False):
        return

    @contextlib.contextmanager
    def rwlock(tmp_dir, fs, cmd, read, write, hardlink):
        if write or not getattr(_reading, "active", False):
            with original(tmp_dir, fs, cmd, read, write, hardlink):
                yield
            return
        info = {"pid": os.getpid(), "cmd": cmd}
        with dvc_rwlock._edit_rwlock(tmp_dir, fs, hardlink) as lock:
            dvc_rwlock._check_blockers(tmp_dir, lock, info, mode="write", waiters=read)
        yield

    rwlock.opsctl_readers = True  # type: ignore[attr-defined]  # a marker on the function object
    dvc_rwlock.rwlock = rwlock


@contextlib.contextmanager
def progress_bars_replaced(tqdm_class: type) -> Iterator[None]:
    """Inside the block, every progress bar DVC and dvc-data make is a ``tqdm_class``
    (a subclass of ``dvc.progress.Tqdm``): DVC makes them with ``dvc.ui.ui.progress(...)``
    and from ``Tqdm`` looked up in ``dvc.fs.callbacks`` and ``dvc_data.callbacks`` (DVC
    3.50-3.67, dvc-data 3.x). Those three attributes are replaced and put back after."""
    import dvc.fs.callbacks as fs_callbacks
    import dvc_data.callbacks as data_callbacks
    from dvc.ui import ui

    original_progress = ui.__dict__.get("progress")  # normally none: the class's method
    original_classes = (fs_callbacks.Tqdm, data_callbacks.Tqdm)
    ui.progress = lambda *a, **k: tqdm_class(*a, **k)
    # Replacing a class of a typed module (dvc_data) is the point here; dvc_data's Tqdm is a sibling of
    # dvc.progress.Tqdm (same interface), not a base of it.
    fs_callbacks.Tqdm = data_callbacks.Tqdm = tqdm_class  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        fs_callbacks.Tqdm, data_callbacks.Tqdm = original_classes  # type: ignore[misc]
        if original_progress is None:
            del ui.progress
        else:
            ui.progress = original_progress


class _Quiet:
    """What ``Console.status`` returns, doing nothing (a spinner, update, stop)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None

    start = stop = update


@contextlib.contextmanager
def status_spinners_off() -> Iterator[None]:
    """Inside the block, DVC's own spinners (``dvc.ui.ui.status``, e.g. "Building workspace
    index" in ``repo.diff``) draw nothing: opsctl's own status line is the one on screen."""
    from dvc.ui import ui

    original = ui.__dict__.get("status")
    ui.status = lambda *a, **k: _Quiet()
    try:
        yield
    finally:
        if original is None:
            del ui.status
        else:
            ui.status = original


# -- moving objects by hash (remote executors) --------------------------------------------


def hash_info(md5: str) -> Any:
    """DVC's HashInfo of an md5 as ``dvc.lock`` records it (a directory's ends in ``.dir``)."""
    from dvc_data.hashfile.hash_info import HashInfo

    return HashInfo("md5", md5)


def in_cache(repo: Any, md5: str) -> bool:
    """Whether the local cache holds the object ``md5`` whole (a directory: its ``.dir`` list
    and every file in it). ``repo.cache.local`` and ``Tree.load`` (DVC 3.50-3.67, dvc-data 3)."""
    from dvc_data.hashfile.tree import Tree

    cache = repo.cache.local
    if not cache.exists(md5):
        return False
    if not md5.endswith(".dir"):
        return True
    try:
        tree = Tree.load(cache, hash_info(md5))
    except Exception:  # noqa: BLE001 — an unreadable .dir object: not usable from the cache
        return False
    return all(cache.exists(entry.value) for _key, (_meta, entry) in tree.iteritems() if entry and entry.value)


def _with_entries(cache: Any, md5s: list[str]) -> list[Any]:
    """The HashInfos of ``md5s`` plus, for each directory, every file in it (DataCloud moves a
    ``.dir`` object's files only when they are listed too, as ``dvc push`` lists them)."""
    from dvc_data.hashfile.tree import Tree

    infos = {hash_info(m) for m in md5s}
    for md5 in md5s:
        if md5.endswith(".dir"):
            tree = Tree.load(cache, hash_info(md5))
            infos.update(entry for _key, _meta, entry in tree if entry is not None)
    return sorted(infos, key=lambda h: str(h.value))


def push_objects(repo: Any, md5s: list[str], remote: str | None, jobs: int | None = None) -> int:
    """Upload the cache objects ``md5s`` (a directory with its files) that the remote lacks;
    the number sent. ``Repo.cloud.push`` (DataCloud, DVC 3.50-3.67): what ``dvc push`` does
    per object, without needing a ``.dvc`` file or a stage that names them."""
    result = repo.cloud.push(_with_entries(repo.cache.local, md5s), jobs=jobs, remote=remote)
    return len(result.transferred)


def fetch_objects(repo: Any, md5s: list[str], remote: str | None, jobs: int | None = None) -> list[str]:
    """Download the objects ``md5s`` (a directory with its files) into the local cache from the
    remote; the ones that could not be fetched. ``Repo.cloud.pull`` (DataCloud, DVC 3.50-3.67):
    the ``.dir`` lists first, then the files they name."""
    dirs = [m for m in md5s if m.endswith(".dir")]
    failed: set[str] = set()
    if dirs:
        result = repo.cloud.pull([hash_info(m) for m in dirs], jobs=jobs, remote=remote)
        failed.update(str(h.value) for h in result.failed)
    readable = [m for m in md5s if m not in failed]
    result = repo.cloud.pull(_with_entries(repo.cache.local, readable), jobs=jobs, remote=remote)
    failed.update(str(h.value) for h in result.failed)
    return sorted(failed)


def set_output_hash(out: Any, md5: str, size: int | None, nfiles: int | None) -> None:
    """Give a stage output the hash and meta a node computed for it, as ``Output.save`` would
    have set them here (``Output.hash_info``/``meta``/``obj``/``files``, DVC 3.50-3.67)."""
    from dvc_data.hashfile.meta import Meta

    isdir = md5.endswith(".dir")
    out.hash_info = hash_info(md5)
    out.meta = Meta(isdir=isdir, size=size, nfiles=nfiles if isdir else None)
    out.obj = None
    out.files = None


def check_out_as(out: Any, md5: str) -> None:
    """Put the cached object ``md5`` at the stage output ``out``'s path, as ``dvc checkout`` does
    for an entry of ``dvc.lock`` (``Output.hash_info``/``obj``/``files``/``use_cache``, DVC
    3.50-3.67). An output DVC does not cache (``cache: false``: metrics, plots) is copied out of
    the cache instead: checkout would skip it, and a link into the cache (cache.type hardlink or
    symlink) would let the next run's write corrupt the cached object."""
    import shutil
    from pathlib import Path

    from dvc_data.hashfile.tree import Tree

    if out.use_cache:
        out.hash_info = hash_info(md5)
        out.obj = None
        out.files = None
        out.checkout()
        return
    cache = out.repo.cache.local
    dest = Path(out.fs_path)
    if not md5.endswith(".dir"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache.oid_to_path(md5), dest)
        return
    for key, (_meta, entry) in Tree.load(cache, hash_info(md5)).iteritems():
        target = dest.joinpath(*key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache.oid_to_path(entry.value), target)


def remote_reachable(url: str, options: dict[str, str]) -> None:
    """Raise when the remote at ``url`` can't be listed from here (a worker's check in
    ``opsctl doctor``). ``dvc.fs.get_cloud_fs`` (DVC 3.50-3.67) builds the filesystem
    ``dvc push`` would use, credentials from this machine's environment and files."""
    from dvc.fs import get_cloud_fs

    cls, config, fs_path = get_cloud_fs(None, url=url, **options)
    cls(**config).exists(fs_path)


# -- plots (opsctl.adapters.dvc_plots) ----------------------------------------------------------
#
# ``dvc.render.match`` and ``dvc.repo.plots`` import ``dvc.repo`` (~0.35 s), which is most of the
# time `opsctl plots show` may take. Their small pieces are restated here, read against DVC
# 3.67.1 and checked against the originals by tests/adapters/test_dvc_plots.py; the converters
# they call (``dvc.render.converter``, ~0.1 s to import) are DVC's own.

# ``dvc.schema.PLOT_PROPS``: the keys a stage's plot output may carry.
PLOT_PROPS = ("template", "x", "y", "x_label", "y_label", "title", "header")
PLOT_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".gif", ".png", ".svg")  # dvc.render.SUPPORTED_IMAGE_EXTENSIONS


def plot_data_sources(plot_id: str, props: dict | None) -> list[str]:
    """The files a plot reads: ``dvc.repo.plots.infer_data_sources``."""
    y = props.get("y") if props else None
    sources = list(y) if isinstance(y, dict) else [plot_id]
    x = props.get("x") if props else None
    if isinstance(x, dict) and x:
        sources.append(next(iter(x)))
    return list(dict.fromkeys(sources))


def plot_matches(targets: list[str], config_file: str, plot_id: str) -> bool:
    """DVC's target matching (``dvc.repo.plots`` ``_matches``): a target is a regular
    expression matched at the start of the plot id or of ``FILE::ID``; no targets match all."""
    import re

    if not targets:
        return True
    full_id = f"{config_file}::{plot_id}" if config_file else plot_id
    return any(re.match(target, plot_id) or re.match(target, full_id) for target in targets)


def plot_parse(path: str, data: bytes, props: dict) -> dict:
    """A plot file's content as ``dvc.repo.plots.parse`` returns it: ``{"data": rows}`` (an
    image's bytes as they are), ``{"error": exc}`` for a file it cannot read, or ``{}`` for
    one with nothing in it (an empty CSV, ``null``: DVC's @error_handler keeps only data)."""
    try:
        parsed = _parse_plot(path, data, props)
    except Exception as exc:  # noqa: BLE001 — DVC's @error_handler: the error is the plot's, not the command's
        return {"error": exc}
    return {"data": parsed} if parsed else {}


def _parse_plot(path: str, data: bytes, props: dict) -> Any:
    import json

    extension = os.path.splitext(path)[1]
    if extension in PLOT_IMAGE_SUFFIXES:
        return data
    if extension not in (".json", ".toml", ".py", ".yml", ".yaml", ".csv", ".tsv"):
        raise ValueError(f"'{path}' - file type error\nOnly JSON, YAML, CSV and TSV formats are supported.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"'{path}' is not UTF-8 text") from None
    # DVC opens the file as text: universal newlines (a CSV cell "a\r\nb" reads as "a\nb").
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if extension in (".csv", ".tsv"):
        return _load_sv(text, "\t" if extension == ".tsv" else ",", props.get("header", True))
    if extension == ".json":
        try:
            return json.loads(text) or {}
        except json.JSONDecodeError:
            raise ValueError(f"unable to read: '{path}', JSON file structure is corrupted") from None
    if extension in (".toml", ".py"):  # rare for plots: DVC's own parser
        from dvc.utils.serialize import PARSERS

        return PARSERS[extension](text, path)
    from ruamel.yaml import YAML
    from ruamel.yaml import YAMLError as _YAMLError

    try:
        return YAML(typ="safe").load(text) or {}
    except _YAMLError:
        raise ValueError(f"unable to read: '{path}', YAML file structure is corrupted") from None


def _load_sv(content: str, delimiter: str, header: bool) -> list[dict]:
    """``dvc.repo.plots._load_sv``."""
    import csv

    if header:
        reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    else:
        first_row = next(csv.reader(io.StringIO(content)), [])
        reader = csv.DictReader(
            io.StringIO(content), delimiter=delimiter, fieldnames=[str(i) for i in range(len(first_row))]
        )
    return list(reader)


def plots_show(repo: Any, targets: list[str], revs: list[str]) -> dict:
    """``Repo.plots.show(targets, revs)`` (DVC 3.50-3.67): definitions resolved by DVC's index
    and data read through Git and the cache, per revision; unreadable files are ``{"error"}``."""
    return repo.plots.show(targets=targets or None, revs=revs)


def plots_match(data: dict, templates_dir: str | None) -> list[tuple[Any, dict, dict]]:
    """``dvc.render.match.match_defs_renderers(data, out=None, templates_dir)``: one renderer per
    plot id, merged across revisions, with its source and definition errors. Images stay in
    memory (``out=None``: DVC embeds them as data URIs)."""
    from dvc.render.converter.image import ImageConverter
    from dvc.render.converter.vega import VegaConverter
    from dvc.utils.plots import group_definitions_by_id
    from dvc_render import ImageRenderer, VegaRenderer
    from dvc_render.vega_templates import TEMPLATES, TemplateNotFoundError

    from opsctl.errors import ConfigError

    groups: dict[str, list] = {}
    for rev, content in data.items():
        definitions = content.get("definitions", {}).get("data", {})
        for plot_id, definition in group_definitions_by_id(definitions).items():
            groups.setdefault(plot_id, []).append((rev, *definition))

    result = []
    for plot_id, group in groups.items():
        props: dict = {}
        for config in reversed([entry[-1] for entry in group]):
            props = props | (config or {})
        if templates_dir is not None:
            props["template_dir"] = templates_dir
        datapoints: list[dict] = []
        first_props: dict = {}
        source_errors: dict[str, dict[str, Exception]] = {}
        definition_errors: dict[str, Exception] = {}
        revs: list[str] = []
        renderer_cls: Any = None
        renderer_id = plot_id
        for rev, inner_id, definition in group:
            sources = plot_data_sources(inner_id, definition)
            files = data.get(rev, {}).get("sources", {}).get("data", {})
            found = {src: files[src]["data"] for src in sources if files.get(src, {}).get("data")}
            if ImageRenderer.matches(inner_id, None):
                renderer_cls, renderer_id = ImageRenderer, inner_id
                converter: Any = ImageConverter(inner_id, found, props)
            else:
                renderer_cls, renderer_id = VegaRenderer, plot_id
                converter = VegaConverter(inner_id, found, props)
            for src in sources:
                if error := files.get(src, {}).get("error"):
                    source_errors.setdefault(rev, {})[src] = error
            try:
                points, rev_props = converter.flat_datapoints(rev)
            except Exception as exc:  # noqa: BLE001 — as DVC: the definition is wrong for this revision
                definition_errors[rev] = exc
                continue
            if points and rev not in revs:
                revs.append(rev)
            if not first_props and rev_props:
                first_props = rev_props
            datapoints.extend(points)
        if "title" not in first_props:
            first_props["title"] = renderer_id
        if revs:
            first_props["revs_with_datapoints"] = revs
        if renderer_cls is not None:
            try:
                renderer = renderer_cls(datapoints, renderer_id, **first_props)
            except TemplateNotFoundError:
                known = ", ".join(t.DEFAULT_NAME for t in TEMPLATES)
                raise ConfigError(
                    f"plot {renderer_id}: template '{props.get('template')}' not found"
                    f" (DVC's: {known}; or a .json file in .dvc/plots)"
                ) from None
            result.append((renderer, source_errors, definition_errors))
    return result


# -- params and metrics diff (`dvc params diff`, `dvc metrics diff`) ---------------------------
# `opsctl report` compares params and metrics read from Git blobs without building DVC's index
# (adapters/dvc_compare.py). These restate, against DVC 3.67.1, how DVC loads those files
# (``dvc.utils.serialize.load_path``, ``dvc.dependency.param.read_param_file``) and diffs them
# (``dvc.utils.diff.diff`` after ``format_dict``); tests/adapters/test_dvc_compare.py checks
# them against the originals and against ``Repo.params.diff`` / ``Repo.metrics.diff``.


def interpolated(value: Any) -> bool:
    """Whether ``value`` (a part of dvc.yaml) holds a ``${}`` only DVC's templating resolves."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(interpolated(k) or interpolated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(interpolated(v) for v in value)
    return False


class NotRestated(ValueError):
    """What only DVC's own code reads (a Python params file, a glob key): ask DVC."""


def load_values(path: str, data: bytes) -> Any:
    """A params or metrics file's content as DVC's ``load_path`` reads it: JSON by its suffix,
    YAML (1.2, as DVC's ruamel) otherwise; ``.py`` and ``.toml`` files are left to DVC."""
    import json

    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".py", ".toml"):
        raise NotRestated(f"{path}: {suffix} files are read by DVC itself")
    text = data.decode("utf-8")
    if suffix == ".json":
        return json.loads(text) or {}  # dvc.utils.serialize.parse_json: `0`, `[]`, `null`... read as {}
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text) or {}


def dvc_file_problem(doc: Any, *, lock: bool = False) -> str | None:
    """Why DVC's schema refuses ``doc`` as a ``dvc.yaml`` (or, ``lock``, a ``dvc.lock``): an
    unknown field, a stage without ``cmd``...; None when it passes. DVC then fails the whole
    revision (params and metrics alike), and only it says how."""
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA, COMPILED_MULTI_STAGE_SCHEMA
    from voluptuous import Invalid

    try:
        (COMPILED_LOCKFILE_SCHEMA if lock else COMPILED_MULTI_STAGE_SCHEMA)(doc)
    except Invalid as exc:
        return str(exc)
    return None


def metric_values(content: Any) -> Any:
    """``dvc.repo.metrics.show._read_metric``'s keep: numbers, strings and booleans, in dicts
    (emptied ones dropped); a list, a null or a date is no metric (a file of one reads as ``{}``)."""

    def extract(value: Any) -> Any:
        if isinstance(value, (int, float, str)):
            return value
        if not isinstance(value, dict):
            return None
        kept = {key: extract(val) for key, val in value.items()}
        return {key: val for key, val in kept.items() if val not in (None, {})}

    return extract(content) or {}


def select_params(config: Any, key_paths: list[str]) -> Any:
    """``read_param_file(fs, path, key_paths)``'s selection: the sub-trees at ``key_paths``
    (dot-separated, as DVC writes them in a stage's ``params:``), or the whole file when none.
    Raises NotRestated for what only dpath resolves here: a glob, an empty part, a path
    through a list or past a key that isn't a string (dpath matches ``1`` to ``"1"``), and overlapping paths
    (``a`` and ``a.b``: dpath's merge puts a list under both in twice)."""
    if not key_paths:
        return config
    unique = list(dict.fromkeys(key_paths))
    for key_path in unique:
        if outer := next((k for k in unique if key_path.startswith(f"{k}.")), None):
            raise NotRestated(f"param keys {outer!r} and {key_path!r} overlap")
    selected: dict = {}
    for key_path in unique:
        if any(c in key_path for c in "*?[]"):
            raise NotRestated(f"param key {key_path!r} is a glob")
        if "" in key_path.split("."):
            raise NotRestated(f"param key {key_path!r} has an empty part")  # dpath drops or refuses it
        node: Any = config
        parts = key_path.split(".")
        for part in parts:
            if isinstance(node, list):
                raise NotRestated(f"param key {key_path!r} goes through a list")
            if isinstance(node, dict) and not all(isinstance(k, str) for k in node):
                raise NotRestated(f"param key {key_path!r} goes through keys that aren't strings")
            if not isinstance(node, dict) or part not in node:
                node = KeyError
                break
            node = node[part]
        if node is KeyError:
            continue
        target = selected
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = node
    return selected


def _format_dict(d: dict) -> dict:
    """``dvc.utils.diff.format_dict``: lists become their ``str()``."""
    return {k: _format_dict(v) if isinstance(v, dict) else str(v) if isinstance(v, list) else v for k, v in d.items()}


def _flatten(d: dict, prefix: Any = None) -> dict:
    """``flatten_dict.flatten(d, reducer="dot")``: empty dicts vanish, keys join with ``.``."""
    flat: dict = {}
    for key, value in d.items():
        name = key if prefix is None else f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _diff_value(old: Any, new: Any) -> dict:
    if isinstance(new, list) and isinstance(old, list) and len(old) == len(new) == 1:
        return _diff_value(old[0], new[0])
    if old == new:
        return {}
    result = {"old": old, "new": new}
    if isinstance(new, (int, float)) and isinstance(old, (int, float)):
        result["diff"] = new - old
    return result


def _parsed(raw: Any) -> Any:
    """``dvc.utils.diff._parse``: a string holding JSON is read as JSON."""
    import json

    if raw is None or isinstance(raw, (dict, list, int, float)) or not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _as_flat(value: Any) -> tuple[dict, Any]:
    """``dvc.utils.diff._flatten``: the flat keys, and what a missing key reads as."""
    if not value:
        return {}, None
    if isinstance(value, dict):
        return _flatten(value), None
    return {}, "unable to parse"


def diff_values(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """``dvc.utils.diff.diff(format_dict(old), format_dict(new))`` for ``{file: content}``
    (a file that could not be read is ``{}``): ``{file: {key: {"old", "new"[, "diff"]}}}``,
    changed keys only; ``diff`` when both values are numbers."""
    old, new = _format_dict(old), _format_dict(new)
    result: dict[str, dict[str, dict]] = {}
    for path in {*old, *new}:
        a, b = _parsed(old.get(path, {})), _parsed(new.get(path, {}))
        changes: dict[str, dict] = {}
        if isinstance(a, dict) or isinstance(b, dict):
            (flat_a, missing_a), (flat_b, missing_b) = _as_flat(a), _as_flat(b)
            for key in {*flat_a, *flat_b}:
                if change := _diff_value(flat_a.get(key, missing_a), flat_b.get(key, missing_b)):
                    changes[key] = change
        elif change := _diff_value(a, b):
            changes[""] = change
        if changes:
            result[path] = changes
    return result


def params_and_metrics_show(repo: Any, revs: list[str]) -> tuple[dict, dict]:
    """``Repo.params.show`` and ``Repo.metrics.show`` over ``revs`` (``workspace`` included by
    name): ``{rev: {"data": {file: {"data"} | {"error"}}} | {"error"}}`` each, as `dvc params
    diff` / `dvc metrics diff` gather them before diffing."""
    params = repo.params.show(revs=revs, hide_workspace=False)
    metrics = repo.metrics.show(revs=revs, hide_workspace=False)
    return params, metrics


def flat_values(content: Any) -> dict:
    """One file's values as the diff keys them (``train.n_estimators``; lists as their str)."""
    return _as_flat(_parsed(_format_dict({"": content})[""]))[0]


@contextlib.contextmanager
def params_files_read_once() -> Iterator[None]:
    """Within the block, a workspace params file is parsed once however many stages read it.

    ``dvc status`` reads (and YAML-parses, ~40 ms for a 150-line file with ruamel's pure-Python
    parser) ``params.yaml`` again for every stage that has params: 50 stages, 2 s. DVC 3.50-3.67's
    ``ParamsDependency.read_params`` loads through ``dvc.dependency.param.load_path``; here that
    name answers from a copy of the first parse while the file's inode, size and modification
    time are unchanged (what DVC's own state trusts a file by). Only the local file system is
    memoized; a Git revision's files go to DVC as before."""
    import copy

    import dvc.dependency.param as param_module

    original = param_module.load_path
    parsed: dict[tuple, Any] = {}

    def load_path(fs_path: str, fs: Any, **kwargs: Any) -> Any:
        if getattr(fs, "protocol", None) != "local" or kwargs:
            return original(fs_path, fs, **kwargs)
        try:
            st = os.stat(fs_path)
        except OSError:
            return original(fs_path, fs, **kwargs)
        key = (fs_path, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in parsed:
            parsed[key] = original(fs_path, fs)
        return copy.deepcopy(parsed[key])

    param_module.load_path = load_path
    try:
        yield
    finally:
        param_module.load_path = original


@contextlib.contextmanager
def walk_recorded(repo: Any) -> Iterator[list[str] | None]:
    """The directories DVC walks while the block builds ``repo.index`` (``collect_files`` walks
    through ``repo.dvcignore.walk``, DVC 3.50-3.67), in the list yielded; None when the index was
    already built (nothing to learn then). A directory hashed as a dep is walked the same way and
    is listed too: a superset, which only makes the fast path more careful."""
    if "index" in vars(repo):  # dvc.utils.objects.cached_property keeps its value there
        yield None
        return
    ignore = repo.dvcignore
    original = ignore.walk
    roots: list[str] = []

    def walk(fs: Any, path: str, **kwargs: Any) -> Iterator[Any]:
        for item in original(fs, path, **kwargs):
            if getattr(fs, "protocol", None) == "local":
                roots.append(item[0])
            yield item

    ignore.walk = walk  # an instance attribute: the class's method is untouched
    try:
        yield roots
    finally:
        del ignore.walk


def cache_object_paths(out: Any) -> list[str]:
    """The cache files a cached output's status checks (``Output.changed_cache``: the object,
    and for a directory its ``.dir`` list and every file in it; DVC 3.50-3.67, dvc-data 3)."""
    from dvc_data.hashfile.tree import Tree

    cache = out.cache
    value = str(out.hash_info.value)
    paths = [cache.oid_to_path(value)]
    if out.hash_info.isdir:
        try:
            tree = Tree.load(cache, out.hash_info)
        except Exception:  # noqa: BLE001 — missing or unreadable: its path above is watched
            return paths
        paths += [cache.oid_to_path(entry.value) for _key, (_meta, entry) in tree.iteritems() if entry and entry.value]
    return paths


def config_files(repo: Any) -> list[str]:
    """DVC's config files at every level (system, global, repo, local): ``Config.files``."""
    return [str(path) for path in repo.config.files.values()]
