"""Stages shared between the experiments of a sweep, and the sweep's slots.

Each experiment runs in its own work tree and its own process, but all of them use the
project's DVC cache and run cache (docs/architecture.md, *Experiments*). A stage whose
command, deps and params are the same in several experiments (``prepare`` before the
swept ``train``) must run once: the first experiment to reach it takes its *flight* — an
``flock`` on a file named after the stage's run-cache key and image — and runs it; the
others wait on that lock, then find the stage in the run cache and restore it. Flights are
files, so two sweeps at once (two processes each) share them too.

Slots bound how many stages of a sweep run at once (its ``-j``) across its processes: a
stage takes one of ``jobs`` lock files before it runs, and a stage waiting for a flight
holds none (the flight's holder is always running, never waiting on a slot it blocks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from opsctl.errors import OpsctlError

FLIGHTS_DIR = "flights"
POLL = 0.05  # seconds between tries of a busy lock: well below a stage's own cost


class Stopped(OpsctlError):
    """The run was interrupted while this stage waited for a flight or a slot."""


class SharedStages:
    """One experiment process's view: the flights under ``state_dir`` and its sweep's slots."""

    def __init__(self, state_dir: Path, slots_dir: Path, jobs: int) -> None:
        self.flights = state_dir / FLIGHTS_DIR
        self.slots_dir = slots_dir
        self.jobs = max(1, jobs)
        self.stopped = threading.Event()  # set on Ctrl-C: waiters give up at once
        self.flights.mkdir(parents=True, exist_ok=True)
        self.slots_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(run_cache_key: str | None, image: str | None) -> str | None:
        if run_cache_key is None:
            return None
        return hashlib.sha256(f"{run_cache_key}\0{image or ''}".encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def flight(self, key: str | None) -> Iterator[bool]:
        """Hold the stage ``key`` while it runs here; yields True when another experiment
        already ran it with success (its outputs are in the run cache: restore, don't run,
        even where this work tree's image record says the image changed)."""
        if key is None:
            yield False
            return
        with self._locked(self.flights / f"{key}.lock"):
            done = self.flights / f"{key}.done"
            ran = done.exists()
            yield ran

    def mark_done(self, key: str | None) -> None:
        """The stage ``key`` ran and was recorded (its run-cache entry saved)."""
        if key is not None:
            (self.flights / f"{key}.done").touch()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """One of the sweep's ``jobs`` places to run a stage, held while it runs."""
        while True:
            for i in range(self.jobs):
                fd = _try_lock(self.slots_dir / f"slot-{i}.lock")
                if fd is not None:
                    try:
                        yield
                    finally:
                        os.close(fd)  # closing the descriptor releases the flock
                    return
            self._wait()

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        while True:
            fd = _try_lock(path)
            if fd is not None:
                break
            self._wait()
        try:
            yield
        finally:
            os.close(fd)

    def _wait(self) -> None:
        if self.stopped.wait(POLL):
            raise Stopped("stopped: the run was interrupted (Ctrl-C or SIGTERM)")


def _try_lock(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` through a new descriptor (so threads of one process
    exclude each other too), or None when someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd
