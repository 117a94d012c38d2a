"""What ``dvc.lock`` and the ``.dvc`` files record, and the files of one side of a comparison
(a Git revision or the workspace), read without DVC and bounded in size. Shared by the report's
comparison (adapters/dvc_compare.py) and the sizes of ``opsctl data diff`` (adapters/dvc.py)."""

from __future__ import annotations

import contextlib
import os
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


def load_structure_file(path: str) -> Any:
    """:func:`load_structure` of a file on disk; ``BlobTooLarge`` (an OSError) over MAX_FILE_BYTES."""
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise git_adapter.BlobTooLarge(f"{path}: {size:,} bytes, over {MAX_FILE_BYTES:,}")
    with open(path, "rb") as f:
        return load_structure(path, f.read())


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
    for path, content in raw.items():
        if isinstance(content, bytes):
            with contextlib.suppress(Exception):  # an unreadable file records nothing we could trust
                found.update(outs_of(load_structure(path, content), posixpath.dirname(path)))
    return found


def outs_of(content: Any, directory: str = "") -> dict[str, Recorded]:
    """The outputs a parsed ``dvc.lock`` (its stages' ``outs``) or ``.dvc`` file (its ``outs``)
    records, by path relative to the project (``directory``: where the file is)."""
    if not isinstance(content, dict):
        return {}
    found: dict[str, Recorded] = {}
    stages = content.get("stages")
    groups = [s.get("outs") for s in stages.values() if isinstance(s, dict)] if isinstance(stages, dict) else []
    for outs in [*groups, content.get("outs")]:
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and out.get("md5") and out.get("path"):
                size = out.get("size")
                path = posixpath.normpath(posixpath.join(directory, str(out["path"])))
                found[path] = Recorded(str(out["md5"]), size if isinstance(size, int) else None)
    return found


def lock_outputs(root: Path, commit: str | None) -> dict[str, str]:
    """Every stage output the root ``dvc.lock`` records, ``{path: md5}``, at ``commit`` (None:
    the workspace's)."""
    return {path: r.md5 for path, r in recorded_outputs(root, commit, dvc_files=False).items()}
