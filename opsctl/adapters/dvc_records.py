"""What ``dvc.lock`` and the ``.dvc`` files record, and the files of one side of a comparison
(a Git revision or the workspace), read without DVC and bounded in size. Shared by the report's
comparison (adapters/dvc_compare.py) and the sizes of ``opsctl data diff`` (adapters/dvc.py)."""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.adapters import git as git_adapter


def load_structure(path: str, data: bytes) -> Any:
    """``dvc.yaml``, ``dvc.lock`` or a ``.dvc`` file, parsed by libyaml's C parser when PyYAML has
    it (~10x ruamel's pure-Python one, which DVC uses: a 50-stage lock, 0.15 s): these files name
    paths, keys and hashes, which YAML 1.1 and 1.2 read alike. Values of params and metrics files
    are read as DVC reads them (dvc_compat.load_values, YAML 1.2)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data.decode("utf-8"), Loader=loader) or {}  # noqa: S506 — a safe loader


MAX_FILE_BYTES = 16 << 20  # a params, metrics, dvc.yaml, dvc.lock or .dvc file; larger is an error, never read whole


class FileReader:
    """Files of one side: the workspace (``commit`` None) or a commit, bounded in size."""

    def __init__(self, root: Path, commit: str | None) -> None:
        self.root = root
        self.commit = commit

    def read(self, paths: list[str]) -> dict[str, bytes | OSError]:
        if self.commit is not None:
            return git_adapter.blobs(self.root, self.commit, paths, max_bytes=MAX_FILE_BYTES)
        found: dict[str, bytes | OSError] = {}
        for path in paths:
            full = self.root / path
            try:
                if full.is_dir():
                    raise IsADirectoryError(path)
                size = full.stat().st_size
                if size > MAX_FILE_BYTES:
                    raise git_adapter.BlobTooLarge(f"{path}: {size:,} bytes, over {MAX_FILE_BYTES:,}")
                found[path] = full.read_bytes()
            except OSError as exc:
                found[path] = exc
        return found

    def dvc_yaml_files(self) -> list[str] | None:
        if self.commit is not None:
            return git_adapter.files_at(self.root, self.commit, ("dvc.yaml",))
        return git_adapter.files_named(self.root, "dvc.yaml")


@dataclass(frozen=True)
class Recorded:
    """An output as ``dvc.lock`` or a ``.dvc`` file records it."""

    md5: str  # a directory's ends in .dir
    size: int | None


def recorded_outputs(root: Path, commit: str | None, *, dvc_files: bool = True) -> dict[str, Recorded]:
    """Every output the root ``dvc.lock`` (and, with ``dvc_files``, every ``.dvc`` file) records
    at ``commit`` (None: the workspace's files), by path; unreadable files record nothing."""
    reader = FileReader(root, commit)
    tracked: list[str] = []
    if dvc_files:
        listed = git_adapter.files_at(root, commit, ("*.dvc",)) if commit else git_adapter.files_named(root, "*.dvc")
        tracked = listed or []
    raw = reader.read(["dvc.lock", *tracked])
    found: dict[str, Recorded] = {}
    lock = raw.pop("dvc.lock")
    if isinstance(lock, bytes):
        with contextlib.suppress(Exception):  # an unreadable lock records nothing we could trust
            for stage in (load_structure("dvc.lock", lock).get("stages") or {}).values():
                _add_outs(found, "", (stage or {}).get("outs"))
    for path, content in raw.items():
        if isinstance(content, bytes):
            with contextlib.suppress(Exception):
                _add_outs(found, posixpath.dirname(path), load_structure(path, content).get("outs"))
    return found


def _add_outs(found: dict[str, Recorded], directory: str, outs: Any) -> None:
    for out in outs or []:
        if isinstance(out, dict) and out.get("md5") and out.get("path"):
            size = out.get("size")
            path = posixpath.normpath(posixpath.join(directory, str(out["path"])))
            found[path] = Recorded(str(out["md5"]), size if isinstance(size, int) else None)


def lock_outputs(root: Path, commit: str | None) -> dict[str, str]:
    """Every stage output the root ``dvc.lock`` records, ``{path: md5}``, at ``commit`` (None:
    the workspace's)."""
    return {path: r.md5 for path, r in recorded_outputs(root, commit, dvc_files=False).items()}
