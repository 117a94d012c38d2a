"""What a file's DVC hash is, without importing DVC: remembered by its stat.

DVC's hash of a file (``hash: md5``) is the md5 of its bytes, and DVC trusts a file whose
size, modification time and inode are unchanged to still have the hash it last computed. opsctl
keeps the same kind of record for the datasets it checks, in ``.opsctl/data-hashes.json``: the
validate path computes the md5 while it reads the file anyway (core/check_engine.py), and the
next ``opsctl data validate`` of the unchanged file finds its hash here, asks the verdict cache,
and needs neither DVC (~0.7 s to import and open) nor a read of the data. A record is written
only when the file's stat is the same before and after the read. Anything unreadable here is a
miss; a directory's hash (DVC's tree hash) always comes from DVC.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from opsctl.core.files import write_atomically
from opsctl.core.project import Project

CACHE_FILE = "data-hashes.json"
MAX_ENTRIES = 10_000  # datasets with checks, not files: more than this is not a cache worth keeping whole
MAX_CACHE_BYTES = 4 << 20


def signature(path: Path) -> list[int] | None:
    """(size, mtime in ns, inode) of a regular file; None for anything else."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load(project: Project) -> dict:
    path = project.state_dir / CACHE_FILE
    try:
        if path.stat().st_size > MAX_CACHE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def known_hash(project: Project, rel: str, stat: list[int] | None) -> str | None:
    """The md5 remembered for the file ``rel`` when its stat is still ``stat``."""
    if stat is None:
        return None
    entry = _load(project).get(rel)
    if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stat and isinstance(entry[3], str):
        return entry[3]
    return None


def remember(project: Project, hashes: dict[str, tuple[list[int], str]]) -> None:
    """Record ``{rel: (stat, md5)}``; best effort (a cache that can't be written is a miss next time)."""
    if not hashes or not project.state_dir.is_dir():
        return
    data = _load(project)
    for rel, (stat, md5) in hashes.items():
        data.pop(rel, None)
        data[rel] = [*stat, md5]
    while len(data) > MAX_ENTRIES:
        data.pop(next(iter(data)))
    with contextlib.suppress(OSError):
        write_atomically(project.state_dir / CACHE_FILE, json.dumps(data))
