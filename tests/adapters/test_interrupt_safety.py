"""Ctrl-C at an unlucky moment: DVC's lock file stays readable, and the process ends
with opsctl's exit code (130), not killed by the signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsctl.adapters.dvc import _prepare_dvc


def edit_rwlock(lock_dir: Path, interrupt_midway: bool) -> None:
    """One edit of DVC's rwlock, as DVC's stage locking does it, with a Ctrl-C
    arriving after the file was truncated and before it was written again."""
    import dvc.rwlock as rwlock
    from dvc.fs import localfs

    real_dump = json.dump

    def dump_after_ctrl_c(obj, fobj, **kwargs):
        if interrupt_midway:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(100_000))  # Python code runs: a pending handler would fire here
        real_dump(obj, fobj, **kwargs)

    json.dump = dump_after_ctrl_c
    try:
        with rwlock._edit_rwlock(os.fspath(lock_dir), localfs, False) as lock:
            lock["write"]["data/big"] = {"pid": os.getpid(), "cmd": "opsctl data add"}
    finally:
        json.dump = real_dump


def test_ctrl_c_while_dvc_writes_its_rwlock_waits_for_the_write(tmp_path):
    _prepare_dvc()
    with pytest.raises(KeyboardInterrupt):
        edit_rwlock(tmp_path, interrupt_midway=True)
    # The interrupt came, but only once the file was whole again.
    written = json.loads((tmp_path / "rwlock").read_text())
    assert written["write"]["data/big"]["cmd"] == "opsctl data add"


def test_an_ignored_ctrl_c_stays_ignored_inside_the_guard(tmp_path):
    _prepare_dvc()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        edit_rwlock(tmp_path, interrupt_midway=True)  # no KeyboardInterrupt
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert json.loads((tmp_path / "rwlock").read_text())["write"]


def test_the_guard_is_installed_once_and_leaves_the_handler_as_it_was(tmp_path):
    import dvc.rwlock as rwlock

    _prepare_dvc()
    guarded = rwlock._edit_rwlock
    _prepare_dvc()
    assert rwlock._edit_rwlock is guarded and guarded.opsctl_guarded
    before = signal.getsignal(signal.SIGINT)
    edit_rwlock(tmp_path, interrupt_midway=False)
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_inside_an_exec_still_exits_130_under_python_m(tmp_path):
    """CPython marks a KeyboardInterrupt raised inside exec() (dataclasses build their
    methods that way, so any import can hit one) as unhandled even once caught, and
    `python -m` then kills itself with SIGINT on exit: status -2 instead of 130."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "__main__.py").write_text(
        textwrap.dedent("""
        import os, signal, sys
        import opsctl.__main__ as entry
        import opsctl.cli.fastpath as fastpath

        def interrupted_in_exec(args):
            exec("import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nsum(range(100_000))")

        fastpath.try_fast_path = interrupted_in_exec
        sys.argv = ["opsctl", "status"]  # a command: not the recorded help (cli/help_cache.py)
        entry.run()
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[2])])}
    result = subprocess.run([sys.executable, "-m", "probe"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_while_the_cli_is_still_importing_exits_130(tmp_path):
    """Before any command runs (the fast path declined, the full CLI is loading)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "__main__.py").write_text(
        textwrap.dedent("""
        import os, signal, sys
        import opsctl.__main__ as entry
        import opsctl.cli.fastpath as fastpath

        class InterruptedImport:
            def __getattr__(self, name):
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(100_000))

        fastpath.try_fast_path = lambda args: None
        sys.modules["opsctl.cli.main"] = InterruptedImport()
        sys.argv = ["opsctl", "status"]  # a command: not the recorded help (cli/help_cache.py)
        entry.run()
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[2])])}
    result = subprocess.run([sys.executable, "-m", "probe"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 130, result.stderr
