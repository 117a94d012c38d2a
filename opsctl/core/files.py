"""Writing files whole: a reader (or a crash, or Ctrl-C) never sees half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes | str) -> Path:
    """``data`` into ``path`` through a temporary file in the same directory, renamed over it:
    the old content or the new, never a mixture. Parent directories are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_md5(path: Path) -> str:
    """A file's md5 (DVC's content hash, not security), read in 1 MiB blocks; OSError as it comes."""
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
