"""Shared fixtures: run the real CLI in a subprocess, with a private Git identity
and DVC analytics off, in temporary directories."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(sys.executable).parent  # the venv's bin: dvc, copier, lint-imports live here


# The suite's longest tests, started first: pytest-xdist hands tests out in collection order, so
# one of these collected late runs alone at the end while the other workers sit idle (the demo
# alone takes ~2.5 min). Files stay together, so module fixtures are made once.
LONG_FIRST = ("tests/e2e/test_readme_demo.py", "tests/e2e/test_dask_executor.py", "tests/e2e/")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, prefix in enumerate(LONG_FIRST) if path.startswith(prefix)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: the order within each rank is the collection order


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """No test reads the developer's ~/.gitconfig or writes to their ~/.cache; every subprocess sees the
    venv first on PATH."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = opsctl tests\n\temail = tests@opsctl.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.setenv("DVC_NO_ANALYTICS", "1")
    mp.setenv("COPIER_SETTINGS_PATH", str(home / "copier-settings.yml"))
    mp.setenv("XDG_CACHE_HOME", str(home / "cache"))  # `opsctl --help`'s recorded text (cli/help_cache.py)
    mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    mp.delenv("NO_COLOR", raising=False)
    mp.delenv("OPSCTL_DEBUG", raising=False)
    yield
    mp.undo()


def run_opsctl(
    *args: str, cwd: Path | str | None = None, env: dict | None = None, check: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``opsctl ARGS`` as a user runs it: a fresh process, stdout and stderr captured."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [PYTHON, "-m", "opsctl", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"opsctl {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def opsctl_inprocess(
    *args: str, cwd: Path | str | None = None, env: dict | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    """``opsctl ARGS`` run in this process, as ``python -m opsctl`` runs it (the fast path
    first, then typer), with the same result object as :func:`run_opsctl`: no interpreter
    or import start-up to pay. For tests whose point is not a separate process (signals,
    kills, locks between processes, start-up imports and a changed DVC keep `run_opsctl`).

    Everything the command may change process-wide is put back afterwards: working
    directory, environment, standard streams (stdin is empty, as /dev/null), signal
    handlers, the unraisable hook, the CLI's sticky --traceback and --quiet, a run's shared
    Docker client, and the streams DVC's log handlers were bound to when it was imported."""
    import io
    import logging
    import signal
    import threading

    from opsctl.cli import main as cli_main
    from opsctl.cli.fastpath import try_fast_path
    from opsctl.cli.help_cache import serve as serve_help
    from opsctl.cli.output import out

    assert threading.current_thread() is threading.main_thread(), "process-wide state: only from the main thread"
    argv = [str(a) for a in args]
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_hook = sys.unraisablehook
    saved_flags = (cli_main._show_traceback, out.quiet)
    stdout, stderr = io.StringIO(newline=None), io.StringIO(newline=None)  # newlines read as text=True reads them
    # DVC binds its handlers to sys.stdout/sys.stderr once, on import: INFO and below to
    # stdout, WARNING and above to stderr. Point them at this command's streams.
    dvc_handlers = {
        h: h.stream
        for name in ("dvc", "dvc_objects", "dvc_data")
        for h in logging.getLogger(name).handlers
        if isinstance(h, logging.StreamHandler)
    }
    try:
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), stdout, stderr
        for handler in dvc_handlers:
            handler.stream = stderr if handler.level >= logging.WARNING else stdout
        try:
            code = serve_help(argv)
            if code is None:
                code = try_fast_path(argv)
            if code is None:
                code = cli_main.main_with_exit_code(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            code = 130
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for handler, stream in dvc_handlers.items():
            handler.stream = stream
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        sys.unraisablehook = saved_hook
        cli_main._show_traceback, out.quiet = saved_flags
        docker_adapter = sys.modules.get("opsctl.adapters.docker")
        if docker_adapter is not None and docker_adapter._stage_client_instance is not None:
            # A run's shared engine client was made for this command's DOCKER_HOST: not the next one's.
            docker_adapter._stage_client_instance.close()
            docker_adapter._stage_client_instance = None
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    result = subprocess.CompletedProcess(["opsctl", *argv], code, stdout.getvalue(), stderr.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"opsctl {' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def run(cmd: list[str], cwd: Path | str | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


_INIT_NAMES = (".git", ".dvc", ".dvcignore")  # all that `git init` and `dvc init` write
_initialised: Path | None = None


def _initialised_repository() -> Path:
    """A directory after `git init` and `dvc init`, made once per test process: a copy of
    it is that repository, without paying DVC's start-up (~1 CPU-second) for every project."""
    global _initialised
    if _initialised is None:
        parent = Path(tempfile.mkdtemp(prefix="opsctl-tests-init-"))
        atexit.register(shutil.rmtree, parent, ignore_errors=True)
        run(["git", "init", "-q"], cwd=parent)
        run([sys.executable, "-m", "dvc", "init", "-q"], cwd=parent)
        assert sorted(p.name for p in parent.iterdir()) == sorted(_INIT_NAMES)
        _initialised = parent
    return _initialised


def git_dvc_project(root: Path, name: str | None = None, *, executor: str = "local") -> Path:
    """A real Git + DVC repository at ROOT (made if missing); with NAME, an opsctl.yaml too.
    What the run-store and dashboard tests write their runs into."""
    root.mkdir(parents=True, exist_ok=True)
    if any((root / n).exists() for n in _INIT_NAMES):
        run(["git", "init", "-q"], cwd=root)
        run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root)
    else:
        template = _initialised_repository()
        # Fresh times, not the template's: DVC tells a repository from an earlier one at the
        # same path by the time .dvc/tmp/btime was written (its site cache is keyed by it).
        for n in _INIT_NAMES:
            if (template / n).is_dir():
                shutil.copytree(template / n, root / n, copy_function=shutil.copy)
            else:
                shutil.copy(template / n, root / n)
    if name is not None:
        (root / "opsctl.yaml").write_text(f"project: {name}\nexecutor: {executor}\n")
    return root


def one_stage_run(run_id: str, started: float, n: int, *, params: dict, metrics: dict):
    """A succeeded run of one `train` stage, commit N, on main: for tests that only care
    about a run's params and metrics."""
    from opsctl.store import NewRun, RunRecord, StageRecord

    return RunRecord(
        NewRun(
            run_id,
            started=started,
            user="ana",
            host="box",
            git_commit=f"{n:040x}",
            branch="main",
            executor="local",
            jobs=1,
        ),
        status="succeeded",
        finished=started + 3,
        stages=[StageRecord("train", "ran", started=started, duration=2.0, cmd="python train.py", exit_code=0)],
        params=params,
        metrics=metrics,
    )


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its content: a snapshot to prove nothing changed."""

    def scratch(rel: Path) -> bool:
        # Git's internals, DVC's own scratch space (lock, caches of its indexes), and opsctl's
        # record of its last full check, which any `status` may keep or refresh (a cache, not data).
        return ".git" in rel.parts or rel.parts[:2] == (".dvc", "tmp") or rel.parts == (".opsctl", "plan-cache.json")

    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not scratch(p.relative_to(path))
    }


@pytest.fixture(scope="session")
def ml_project_template(tmp_path_factory) -> Path:
    """One rendered ml-pipeline project, made once; tests copy it instead of re-running init."""
    parent = tmp_path_factory.mktemp("template-project")
    opsctl_inprocess("init", "ml", "--defaults", cwd=parent, check=True)
    return parent / "ml"


@pytest.fixture
def ml_project(ml_project_template, tmp_path) -> Path:
    dest = tmp_path / "ml"
    shutil.copytree(ml_project_template, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def docker_engine():
    """A reachable Docker engine. Without one the test is skipped, unless
    OPSCTL_REQUIRE_DOCKER=1 (CI), where a missing engine is a failure."""
    import docker

    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no engine" here
        message = f"no Docker engine reachable: {exc}"
        if os.environ.get("OPSCTL_REQUIRE_DOCKER") == "1":
            pytest.fail(message + " (OPSCTL_REQUIRE_DOCKER=1)")
        pytest.skip(message)
    yield client
    client.close()
