"""The no-op fast path: the last full plan, answered again while nothing it depends on changed
(docs/architecture.md, "The no-op fast path").

A full plan asks DVC (its index, its status: ~0.5-1 s for 50 stages, nearly all of it building
repository objects). When it is made, :func:`save` keeps its verdict in
``.opsctl/plan-cache.json`` with a fingerprint of everything that verdict depends on — listed
by DVC's side (adapters/dvc_watch.py) plus the images' build inputs and ``ref:`` identities:

- ``content``: files whose bytes matter (``dvc.yaml``, ``dvc.lock``, ``.dvc``, params, config,
  ignore files, ``opsctl.yaml``, ``opsctl.lock``, Dockerfiles): stat, and a digest of the bytes;
- ``data``: deps, outs and their cache objects: stat only, as DVC trusts them (plus the md5 of
  files of up-to-date stages, so a file that was only touched is re-hashed and still matches);
- ``listings``: the directories walked, with the names in them that matter;
- ``refs``: each ``ref:`` image's id in the engine (a re-tagged image changes it).

:func:`load` stats all of that. Equal everywhere: the verdict is DVC's answer now, and no DVC
is imported. Anything else — a changed or new file, an unknown path, a different DVC or opsctl,
an unreadable cache, a record made for the project at another path (copied or moved with its
``.opsctl/``: the paths it stats are the original's) — is a miss, and the caller asks DVC and
saves again. A stat is (inode, size, mtime, ctime, type); DVC's own state trusts (inode, size,
mtime), so ours is stricter, and ctime catches a file rewritten with its old mtime put back.

A record is saved only when every path it stats last changed before the full check began
(by ctime, which no one can set back), so nothing that changed while DVC looked can hide
behind the record; each stat is taken after the bytes or names kept with it were read, so a
change in between shows in the stat.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat as stat_module
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.core.files import write_atomically
from opsctl.core.project import Project

CACHE_FILE = "plan-cache.json"
FORMAT = 2  # 2: the project's root is recorded (a copied or moved project has a record of another's files)
MAX_CACHE_BYTES = 64 << 20  # a project with ~300,000 watched files; larger is not recorded
MAX_CONTENT_BYTES = 16 << 20  # a pipeline file larger than this is not one DVC reads whole either
# A change made after the check began has a ctime no more than one clock tick (<= 10 ms) before
# that moment on Linux; 100 ms leaves room for coarser clocks.
RACY_NS = 100_000_000
DISABLE_ENV = "OPSCTL_NO_PLAN_CACHE"  # set to 1 to always ask DVC (and keep nothing)
ENV_PREFIXES = ("DVC_", "GIT_", "DOCKER_")  # environment that changes what DVC or the engine answers
ENV_NAMES = ("HOME", "XDG_CONFIG_HOME")

# What a garbage record (bad JSON, a wrong shape, nesting too deep) raises on the way: a miss.
UNREADABLE = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)

Signature = list  # [inode, size, mtime_ns, ctime_ns, type]; None for a missing path


@dataclass
class Watched:
    """Absolute paths a verdict depends on, by how a change shows (see the module docstring)."""

    content: set[str] = field(default_factory=set)
    data: set[str] = field(default_factory=set)
    collected: set[str] = field(default_factory=set)  # directories DVC walked: their DVC-relevant names
    listed: set[str] = field(default_factory=set)  # directories whose every name matters (a data directory)
    md5: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str | None] = field(default_factory=dict)  # ref: image -> its id when the plan was made


@dataclass
class Stats:
    """What :func:`load` found: whether the record held, why not, and how long the check took."""

    hit: bool = False
    reason: str = ""  # why it missed (for the tests and the benches)
    seconds: float = 0.0


def signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    kind = "d" if stat_module.S_ISDIR(st.st_mode) else "f" if stat_module.S_ISREG(st.st_mode) else "o"
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, kind]


def _digest(path: str) -> str | None:
    try:
        if os.path.getsize(path) > MAX_CONTENT_BYTES:
            return None
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _md5(path: str) -> str | None:
    from opsctl.core.files import file_md5

    try:
        return file_md5(Path(path))
    except OSError:
        return None


def _listing(path: str, collected_only: bool) -> list[str] | None:
    from opsctl.adapters.dvc_watch import collected

    try:
        with os.scandir(path) as entries:
            names = [
                e.name + ("/" if e.is_dir(follow_symlinks=False) else "")
                for e in entries
                if not collected_only or collected(e.name, e.is_dir(follow_symlinks=False))
            ]
    except OSError:
        return None
    return sorted(names)


def environment_key() -> str:
    items = sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


# What decides a status besides the project: DVC and the libraries it hashes and ignores with.
STATUS_PACKAGES = ("dvc", "dvc_data", "dvc_objects", "scmrepo", "dulwich", "pathspec")


def install_key() -> list:
    """The installed opsctl and DVC (with the libraries DVC's status rests on), without importing
    them: opsctl's version and the stat of the modules that decide what a record means, and of
    each package's ``__init__.py`` (an upgrade or reinstall writes it anew)."""
    import importlib.util

    from opsctl import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    adapters = os.path.join(os.path.dirname(here), "adapters")
    key: list = [__version__, signature(__file__), signature(os.path.join(here, "pipeline.py"))]
    key += [signature(os.path.join(adapters, name)) for name in ("dvc_watch.py", "dvc_compat.py")]
    for package in STATUS_PACKAGES:
        spec = importlib.util.find_spec(package)
        key.append([package, signature(spec.origin) if spec and spec.origin else None])
    return key


def _data_paths(watched: Watched) -> dict[str, Signature | None]:
    """Every data path, and for a directory every file and directory below it (their listings
    are added to ``watched.listed``): DVC hashes a directory by its files."""
    found: dict[str, Signature | None] = {}
    for path in sorted(watched.data):
        sig = signature(path)
        found[path] = sig
        if sig is None or sig[4] != "d":
            continue
        watched.listed.add(path)
        for top, dirs, files in os.walk(path):
            for name in dirs:
                sub = os.path.join(top, name)
                watched.listed.add(sub)
                found[sub] = signature(sub)
            for name in files:
                sub = os.path.join(top, name)
                found[sub] = signature(sub)
    return found


def save(project: Project, key: dict, verdict: dict, watched: Watched, started_ns: int) -> bool | None:
    """Keep ``verdict`` (JSON) under ``key`` (what else it was made for: executor, ...) with the
    fingerprint of ``watched``: True. False: not now, a path changed after ``started_ns`` (the
    check may not have seen it; a check a moment later can be kept). None: not at all (too
    large, not writable, turned off). Never raises for I/O."""
    if os.environ.get(DISABLE_ENV) == "1":
        return None
    try:
        project.state_dir.mkdir(exist_ok=True)  # before the listings: the directory is here from now on
        data = _data_paths(watched)
        # Bytes and names first, their stat after: a change in between then shows in the stat
        # (a ctime too recent to keep), never as a new stat beside the old bytes.
        content = {path: _after(_digest(path), path) for path in sorted(watched.content)}
        listings = {
            **{path: _after(_listing(path, True), path) for path in sorted(watched.collected)},
            **{path: _after(_listing(path, False), path) for path in sorted(watched.listed)},
        }
        collected_dirs = sorted(watched.collected - watched.listed)
        if _changed_since(started_ns - RACY_NS, data, content, listings):
            return False  # something changed while the check ran (or just before): ask DVC next time
        record = {
            "format": FORMAT,
            "root": str(project.root),
            "install": install_key(),
            "environment": environment_key(),
            "key": key,
            "content": content,
            "data": data,
            "md5": {p: m for p, m in watched.md5.items() if p in data},
            "listings": listings,
            "collected": collected_dirs,
            "refs": watched.refs,
            "verdict": verdict,
        }
        text = json.dumps(record, separators=(",", ":"))
        if len(text) > MAX_CACHE_BYTES:
            return None
        write_atomically(project.state_dir / CACHE_FILE, text)
        return True
    except OSError:
        return None


def _changed_since(moment_ns: int, data: dict, content: dict, listings: dict) -> bool:
    """Whether any path of a record (``data``: path -> stat; ``content`` and ``listings``:
    path -> [stat, what was read]) changed at or after ``moment_ns``, by its ctime."""
    stats = [*data.values(), *(entry[0] for entry in (*content.values(), *listings.values()))]
    return any(sig is not None and int(sig[3]) >= moment_ns for sig in stats)


def _after(read: object, path: str) -> list:
    """[the stat of ``path``, what was read of it just before]."""
    return [signature(path), read]


def forget(project: Project) -> None:
    with contextlib.suppress(OSError):
        (project.state_dir / CACHE_FILE).unlink()


def load(
    project: Project, key: dict, *, engine_id: Callable[[str], str | None] | None = None, stats: Stats | None = None
) -> dict | None:
    """The saved verdict when everything it depends on is as it was, else None. ``engine_id``:
    a ``ref:`` image's id now (default: asked of the Docker engine)."""
    started = time.perf_counter()
    stats = stats if stats is not None else Stats()
    if os.environ.get(DISABLE_ENV) == "1":
        stats.hit, stats.reason = False, f"{DISABLE_ENV}=1"
        return None
    try:
        record, reason = _read(project, key)
        if record is not None:
            reason = _changed(record, engine_id or _engine_image_id, str(project.state_dir))
    except UNREADABLE as exc:
        record, reason = None, f"unreadable cache ({type(exc).__name__})"
    stats.seconds = time.perf_counter() - started
    stats.hit, stats.reason = reason is None, reason or ""
    if record is None or reason is not None:
        return None
    if record.pop("_dirty", False):
        _save_refreshed(project, record)
    return record["verdict"]


def _read(project: Project, key: dict) -> tuple[dict | None, str | None]:
    path = project.state_dir / CACHE_FILE
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CACHE_BYTES + 1)
    except OSError:
        return None, "no cache"
    if len(raw) > MAX_CACHE_BYTES:
        return None, "cache too large"
    record = json.loads(raw)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None, "another cache format"
    if record["root"] != str(project.root):
        return None, "made for a project elsewhere (copied or moved)"  # its paths are the other copy's
    if record["key"] != key:
        return None, "made for another plan"
    if record["install"] != json.loads(json.dumps(install_key())):
        return None, "opsctl or DVC changed"
    if record["environment"] != environment_key():
        return None, "environment changed"
    return record, None


def _changed(record: dict, engine_id: Callable[[str], str | None], state_dir: str) -> str | None:
    """Why the record no longer holds (None: it holds). Refreshes the stats of paths found
    equal by content, marking the record ``_dirty``."""
    found = next(_differences(record, engine_id, state_dir, refresh=True), None)
    return f"{found} changed" if found is not None else None


def _differences(
    record: dict,
    engine_id: Callable[[str], str | None],
    state_dir: str,
    *,
    refresh: bool,
    memo: dict | None = None,
) -> Iterator[str]:
    """Each path (or ``image REF``) that is not as the record has it. ``refresh``: keep the new
    stats of paths found equal by content in the record, marking it ``_dirty``. ``state_dir``
    (``.opsctl/``, walked by DVC in a project that doesn't git-ignore it) changes with every save
    of this record: its listing is compared, but a new stat there is no reason to save again.
    ``memo``: hashes already computed, by path and stat (a poller asks about the same file often)."""
    memo = memo if memo is not None else {}

    def hashed(how: Callable[[str], str | None], path: str, now: Signature) -> str | None:
        key = (how.__name__, path, tuple(now))
        if key not in memo:
            memo[key] = how(path)
        return memo[key]

    for path, (sig, digest) in record["content"].items():
        now = signature(path)
        if now == sig:
            continue
        if now is None or sig is None or digest is None or hashed(_digest, path, now) != digest:
            yield path
        elif refresh:
            record["content"][path][0] = now
            record["_dirty"] = True
    md5 = record["md5"]
    for path, sig in record["data"].items():
        now = signature(path)
        if now == sig:
            continue
        if now is None or sig is None or now[4] != "f" or path not in md5 or hashed(_md5, path, now) != md5[path]:
            yield path
        elif refresh:
            record["data"][path] = now
            record["_dirty"] = True
    collected = set(record["collected"])
    for path, (sig, names) in record["listings"].items():
        now = signature(path)
        if now == sig:
            continue
        if now is None or _listing(path, path in collected) != names:
            yield path
        elif refresh and path != state_dir:
            record["listings"][path][0] = now
            record["_dirty"] = True
    for ref, identity in record["refs"].items():
        if engine_id(ref) != identity:
            yield f"image {ref}"


class Watcher:
    """What changed since the kept plan, asked again and again (the dashboard polls it): the
    record is parsed once and again only when the cache file itself changes. Nothing is
    written, and the engine is not asked (a ``ref:`` image is checked by the next full plan)."""

    def __init__(self, project: Project, key: dict) -> None:
        self.project = project
        self.key = key
        self._record: dict | None = None
        self._seen: Signature | None = None
        self._memo: dict = {}

    def is_content(self, path: str) -> bool:
        """Whether ``path`` (absolute) is watched for its bytes (a pipeline, params or config file)
        rather than as data (a dep, an out, a cache object)."""
        return self._record is not None and path in self._record["content"]

    def verdict(self) -> dict | None:
        """The kept verdict, as of the last :meth:`changes` (None: no usable record)."""
        return self._record["verdict"] if self._record is not None else None

    def changes(self) -> tuple[str, ...] | None:
        """The changed paths (absolute), sorted; ``()``: nothing changed; None: no usable record."""
        path = self.project.state_dir / CACHE_FILE
        sig = signature(str(path))
        if sig is None:
            self._record = self._seen = None
            return None
        try:
            if sig != self._seen:
                self._record, _ = _read(self.project, self.key)
                self._seen = sig
            if self._record is None:
                return None
            refs = self._record["refs"]
            if len(self._memo) > 10_000:
                self._memo.clear()
            found = _differences(self._record, refs.get, "", refresh=False, memo=self._memo)
            return tuple(sorted(set(found)))
        except UNREADABLE:
            self._record = None
            return None


def _save_refreshed(project: Project, record: dict) -> None:
    """Keep the new stats of files that were touched but found equal, unless one of them is so
    recent that a change in the same clock tick could still follow unseen."""
    if _changed_since(time.time_ns() - RACY_NS, record["data"], record["content"], record["listings"]):
        return
    with contextlib.suppress(OSError):
        write_atomically(project.state_dir / CACHE_FILE, json.dumps(record, separators=(",", ":")))


def _engine_image_id(ref: str) -> str | None:
    from opsctl.adapters.engine_api import image_id_quickly

    try:
        return image_id_quickly(ref)
    except Exception:  # noqa: BLE001 — the engine unreachable: unknown, which never matches a saved id
        return "unknown"
