"""Who holds a project's DVC lock, asked without taking it: DVC's lock file (an ``flock``
that zc.lockfile takes, then writes the holder's pid into) and, while ``dvc repro`` runs a
stage's command without it, DVC's rwlock file. Used to refuse a second run at once with the
holder named (docs/architecture.md, "Pipeline execution"), and to name whoever a short
command waited for."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from opsctl.adapters.processes import pid_alive


@dataclass(frozen=True)
class LockHolder:
    """The process holding a project's DVC lock: DVC's lock file records its pid, and
    ``/proc`` its command line (``argv``; empty when unknown)."""

    pid: int | None
    argv: tuple[str, ...] = ()
    in_stage: bool = False  # DVC is running one of its stage commands (DVC's rwlock names it)

    @property
    def command(self) -> str | None:
        """As the user typed it: ``opsctl run -j 2``, ``dvc repro`` (no interpreter, no path)."""
        import shlex

        if not self.argv:
            return None
        text = " ".join(shlex.join(self.argv).split())  # one line, whatever the arguments hold
        return text if len(text) <= 100 else text[:99] + "…"

    @property
    def is_run(self) -> bool:
        """A pipeline run (``opsctl run``, ``dvc repro``, ``dvc exp run``): it holds the lock
        for as long as its stages take, so waiting a few seconds for it is pointless."""
        if self.in_stage:
            return True
        if not self.argv:
            return False
        tool, words = self.argv[0], [a for a in self.argv[1:] if not a.startswith("-")]
        if tool == "opsctl":
            return words[:1] == ["run"] and "--dry-run" not in self.argv
        return tool == "dvc" and (words[:1] == ["repro"] or words[:2] == ["exp", "run"])

    def describe(self) -> str:
        if self.pid is None:
            return "another process"
        return f"pid {self.pid}" + (f" ({self.command})" if self.command else "")


def lock_holder(lockfile: str) -> LockHolder | None:
    """Who holds DVC's lock file now (None: nobody). DVC's default lock is an ``flock`` on
    the file, taken by zc.lockfile, which then writes the holder's pid into it; the kernel
    drops it when the holder exits, even on SIGKILL. Asks without taking it."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: DVC's own attempt will say
        return None
    try:
        fd = os.open(lockfile, os.O_RDONLY)
    except OSError:
        return None  # no lock file yet: nobody holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        for _ in range(20):  # the holder writes its pid right after taking the lock
            content = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            if content.isdigit():
                break
            time.sleep(0.025)
    finally:
        os.close(fd)
    pid = int(content) if content.isdigit() else None
    return LockHolder(pid, _argv_of(pid) if pid else ())


def run_in_progress(root: Path) -> bool:
    """Whether a DVC or opsctl command holds the project at ``root`` now, or ``dvc repro`` is in
    one of its stage commands (a live pid in DVC's rwlock), asked without DVC. Unsure (the rwlock
    half-written, a lock that is not an ``flock``) counts as yes: the caller then asks DVC."""
    if lock_holder(str(root / ".dvc" / "tmp" / "lock")) is not None:
        return True
    return _rwlock_live(root, readers=True)


def stage_being_written(root: Path) -> bool:
    """Whether ``dvc repro`` is writing a stage's outputs now (a live writer in DVC's rwlock):
    then a read-only plan refuses to answer (adapters/dvc_run.py). Unsure counts as yes."""
    return _rwlock_live(root, readers=False)


def _rwlock_live(root: Path, *, readers: bool) -> bool:
    import json

    try:
        with open(root / ".dvc" / "tmp" / "rwlock", encoding="utf-8") as f:
            data = json.loads(f.read(1 << 20))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    if not isinstance(data, dict):
        return True
    infos = _rwlock_entries(data, readers=readers)
    return any(isinstance(info, dict) and isinstance(info.get("pid"), int) and pid_alive(info["pid"]) for info in infos)


def _rwlock_entries(data: dict, *, readers: bool) -> list:
    """The entries (pid and command) of DVC's rwlock file: its writers, and its readers too."""
    infos = list((data.get("write") or {}).values())
    for entries in (data.get("read") or {}).values() if readers else ():
        infos += entries if isinstance(entries, list) else [entries]
    return infos


def stage_running(repo) -> LockHolder | None:
    """A DVC process running a stage's command. ``dvc repro`` holds the repository lock
    except while a stage's command runs; then its stage's outs and deps are entries of
    DVC's rwlock file (``.dvc/tmp/rwlock``: pid and command line of each). Call with the
    repository lock held (DVC adds entries only while holding it)."""
    import json

    from dvc.lock import make_lock
    from dvc.rwlock import RWLOCK_FILE, RWLOCK_LOCK

    tmp_dir = repo.tmp_dir
    if not tmp_dir:
        return None
    path = os.path.join(tmp_dir, RWLOCK_FILE)
    hardlink = repo.config["core"].get("hardlink_lock", False)
    try:
        # The guard DVC takes to edit the file (held for a moment): never read half of it.
        with make_lock(os.path.join(tmp_dir, RWLOCK_LOCK), tmp_dir=tmp_dir, hardlink_lock=hardlink):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        infos = _rwlock_entries(data, readers=True)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 — unreadable or malformed: DVC itself reports that when it gets there
        return None
    for info in infos:
        pid = info.get("pid") if isinstance(info, dict) else None
        if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
            argv = _argv_of(pid) or _as_typed(str(info.get("cmd", "")).split())
            return LockHolder(pid, argv, in_stage=True)
    return None


def _argv_of(pid: int) -> tuple[str, ...]:
    """The command line of PID as typed (see :func:`_as_typed`); empty when unreadable
    (gone, not Linux)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return _as_typed([a for a in raw.decode("utf-8", "replace").split("\0") if a])


def _as_typed(argv: list[str]) -> tuple[str, ...]:
    """``python -m opsctl run`` and ``python .../bin/dvc repro`` -> ``opsctl run``, ``dvc repro``."""
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]
        while argv and argv[0].startswith("-") and argv[0] not in ("-m", "-c"):
            argv = argv[1:]  # interpreter options (-u, -B ...)
        if argv[:1] == ["-m"]:
            argv = argv[1:]
        elif argv[:1] == ["-c"]:
            argv = ["python", *argv]
    if not argv:
        return ()
    return (os.path.basename(argv[0]), *argv[1:])
