"""A run's reaper: a small watcher process that removes the run's containers when
the opsctl that started them goes away without doing it itself (SIGKILL, a crash,
the OOM killer) — what testcontainers' Ryuk does, as a process instead of a
container (a container would need the Docker socket mounted, which opsctl never does).

opsctl starts it before the run's first container, in a session of its own (a
Ctrl-C at the terminal reaches opsctl, not the reaper), with a pipe from opsctl as
its standard input. Nothing else holds the pipe's write end, so the pipe reaches
end-of-file exactly when opsctl closes it or dies, however it dies:

- ``done`` before the end of the pipe: opsctl removed its containers itself; the
  reaper just exits;
- the end of the pipe without ``done`` (or SIGTERM): it force-removes every
  container labelled with the run (``LABEL=VALUE``), sweeps once more a moment
  later (a container that opsctl asked for just before it died may appear only
  then), and exits.

It imports only the standard library until it has to reap; then it removes them with
``adapters.docker.remove_containers``, the docker SDK honouring ``DOCKER_HOST`` (and its
TLS settings) as opsctl's own client does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

DONE = b"done\n"  # what opsctl writes when it has cleaned up after itself
SECOND_SWEEP = 1.0  # seconds between the two sweeps after opsctl died


class Reaper:
    """opsctl's end of a running reaper (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    def close(self) -> None:
        """The run removed its containers itself: tell the reaper so, and let it go."""
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            return
        with _open_lock:
            _open_ends.discard(stdin)
        try:
            stdin.write(DONE)
            stdin.close()
        except OSError:
            pass  # the reaper is gone already (killed by someone): nothing to tell it
        try:
            self._proc.wait(timeout=2)  # it exits at once; waiting spares a zombie
        except subprocess.TimeoutExpired:
            pass


def start_reaper(label: str, value: str) -> Reaper:
    """Start the reaper of the containers labelled ``label=value``."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsctl.adapters.reaper", f"{label}={value}"],
        env={**os.environ, "PYTHONPATH": path},  # this opsctl, wherever it was imported from
        stdin=subprocess.PIPE,
        # Never opsctl's stdout/stderr: whoever reads them (a pipe, a test) would wait
        # for the reaper too. And not opsctl's working directory (it may be removed).
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
    )
    global _fork_guarded
    with _open_lock:
        if not _fork_guarded:
            os.register_at_fork(after_in_child=_close_inherited_ends)
            _fork_guarded = True
        _open_ends.add(proc.stdin)
    return Reaper(proc)


# opsctl's ends of its reapers' pipes. A library that forks without exec (DVC's daemon
# does, to detach) would leave a copy of them open in the child, and the reaper would
# not see opsctl's death until that child ended too: children close theirs at once.
_open_ends: set = set()
_open_lock = threading.Lock()
_fork_guarded = False


def _close_inherited_ends() -> None:
    for end in list(_open_ends):
        try:
            end.close()
        except OSError:
            pass
    _open_ends.clear()


class _Terminated(Exception):
    pass


def _on_term(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: list[str]) -> int:
    if len(argv) != 1 or "=" not in argv[0]:
        sys.stderr.write("usage: python -m opsctl.adapters.reaper LABEL=VALUE (opsctl starts it; see its docstring)\n")
        return 2
    label_filter = argv[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)  # told to go: reap now, as if opsctl had died
    received = b""
    try:
        while True:
            chunk = os.read(0, 64)
            if not chunk:
                break
            received += chunk
    except (_Terminated, OSError):
        received = b""
    if received.endswith(DONE):
        return 0
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the sweeps are short: let them finish
    from opsctl.adapters.docker import remove_containers  # only now: the docker SDK is heavy

    label, _, value = label_filter.partition("=")
    for attempt in range(2):
        if attempt:
            time.sleep(SECOND_SWEEP)
        try:
            remove_containers(label, value)
        except Exception:  # noqa: BLE001 — no engine now: nothing this process can do about it
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
