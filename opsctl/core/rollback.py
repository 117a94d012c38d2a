"""Undo for multi-step file changes: what a step created is removed, what it
overwrote is restored, when anything (including Ctrl-C) interrupts the steps.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path


class FileTransaction:
    """Record file-system changes as they happen; ``rollback()`` reverses them.

    Use as a context manager: an exception of any kind (``KeyboardInterrupt``
    included) rolls back, then propagates.
    """

    def __init__(self, scratch_parent: Path | None = None) -> None:
        self._created: list[Path] = []
        self._backups: list[tuple[Path, Path]] = []
        self._scratch_parent = scratch_parent
        self._backup_dir: Path | None = None

    def created(self, path: Path) -> None:
        """``path`` did not exist before this transaction and is now ours to remove on rollback."""
        self._created.append(Path(path))

    def mkdirs(self, directory: Path) -> None:
        """Create ``directory`` and any missing parents, recording each one made."""
        missing = []
        for parent in (directory, *directory.parents):
            if parent.exists():
                break
            missing.append(parent)
        for path in reversed(missing):
            self.created(path)  # recorded first: an interrupt between the two is still undone
            path.mkdir()

    def preserve(self, path: Path) -> None:
        """Copy an existing file aside before it is modified or replaced."""
        path = Path(path)
        if not (path.exists() or path.is_symlink()) or any(path == p for p, _ in self._backups):
            return
        if self._backup_dir is None:
            # Name first, then create: an interrupt can then never leave an unnamed directory behind.
            parent = Path(self._scratch_parent or tempfile.gettempdir())
            self._backup_dir = parent / f".opsctl-backup-{uuid.uuid4().hex[:12]}"
            self._backup_dir.mkdir()
        copy = self._backup_dir / str(len(self._backups))
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, copy, symlinks=True)
        else:
            shutil.copy2(path, copy, follow_symlinks=False)
        self._backups.append((path, copy))

    def rollback(self) -> None:
        with ignoring_sigint():
            for path in reversed(self._created):
                _remove(path)
            for path, copy in reversed(self._backups):
                _remove(path)
                # shutil.move, not os.replace: backups may sit on another filesystem (/tmp on tmpfs).
                shutil.move(str(copy), str(path))
            self._drop_backups()

    def commit(self) -> None:
        self._created.clear()
        self._backups.clear()
        self._drop_backups()

    def _drop_backups(self) -> None:
        if self._backup_dir is not None:
            shutil.rmtree(self._backup_dir, ignore_errors=True)
            self._backup_dir = None

    def __enter__(self) -> FileTransaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    # A child the interrupted step started (git, a DVC worker thread) may still be
    # writing into the tree for a moment; keep removing until it is really gone.
    for attempt in range(40):
        if not path.is_dir():
            return
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            time.sleep(0.05 * (1 + attempt // 10))


class ignoring_sigint:
    """A second Ctrl-C must not stop a rollback halfway."""

    def __enter__(self) -> None:
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
