"""Real cluster parts for the end-to-end tests of remote executors, all on 127.0.0.1.

- ``dask_cluster``: a ``dask scheduler`` and two ``dask worker`` processes (one with ``GPU=1``).
- ``second_engine``: a second Docker engine (its own ``dockerd``, data root, exec root and socket),
  with no images, so images reach it only through a registry.
- ``image_registry``: Debian's ``docker-registry`` with its storage in a temporary directory.

Every part is started once per session and always stopped at the end, with nothing left running.
A part that cannot start here (a missing package or binary, not root) skips its tests, unless
OPSCTL_REQUIRE_DOCKER=1 (CI), where it is a failure, as for the ``docker_engine`` fixture.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tests.e2e.moto_server import HOST, free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
REGISTRY_BIN = "/usr/bin/docker-registry"


def unavailable(message: str) -> NoReturn:
    """Skip the test for a part that cannot run here; in CI (OPSCTL_REQUIRE_DOCKER=1) fail it."""
    if os.environ.get("OPSCTL_REQUIRE_DOCKER") == "1":
        pytest.fail(message + " (OPSCTL_REQUIRE_DOCKER=1)")
    pytest.skip(message)


def stop_process(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; always reaped."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def processes_mentioning(text: str) -> list[int]:
    """Pids of the live processes whose command line contains ``text`` (e.g. a part's own tmp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(
                (line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")), ""
            )
        except OSError:  # exited meanwhile
            continue
        if text in cmdline and "zombie" not in state:
            pids.append(int(entry.name))
    return pids


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    env.update(extra)
    return env


# --- Dask --------------------------------------------------------------------------------------


@dataclass
class DaskWorker:
    name: str
    directory: Path  # its --local-directory and working directory
    resources: str = ""  # e.g. "GPU=1"
    env: dict[str, str] = field(default_factory=dict)  # extra environment (e.g. DOCKER_HOST)
    unset: tuple[str, ...] = ()  # variables of this process's environment the worker must not see
    proc: subprocess.Popen | None = None


@dataclass
class DaskCluster:
    """``dask scheduler`` on a free port of 127.0.0.1 and its workers (``--nthreads 1``, no nanny,
    so a killed worker stays dead). Workers see the repository on PYTHONPATH (tasks may import
    ``opsctl`` and test modules) and an empty Dask config directory (no user settings)."""

    tmp: Path
    workers: list[DaskWorker]
    port: int = 0
    scheduler: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    @property
    def worker_names(self) -> list[str]:
        return [w.name for w in self.workers]

    def worker(self, name: str) -> DaskWorker:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        config = self.tmp / "dask-config"
        config.mkdir(exist_ok=True)
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        return _child_env(DASK_CONFIG=str(config), PYTHONPATH=path, **extra)

    def start(self, attempts: int = 3) -> DaskCluster:
        last = ""
        for attempt in range(attempts):  # another process may grab the port between bind and listen
            self.port = free_port()
            log = self.tmp / f"scheduler-{attempt}.log"
            with log.open("wb") as sink:
                self.scheduler = subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", HOST,
                     "--port", str(self.port), "--no-dashboard", "--dashboard-address", f"{HOST}:0"],
                    stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.tmp, env=self._env({}),
                )  # fmt: skip
            # Workers start at once (they wait for the scheduler): the imports overlap.
            for w in self.workers:
                self._start_worker(w, attempt)
            if self._wait_ready():
                return self
            last = _log_tail(log) + "".join(
                f"\n--- {w.name}:\n" + _log_tail(self.tmp / f"{w.name}-{attempt}.log") for w in self.workers
            )
            self.stop()
        raise RuntimeError(f"Dask cluster did not start in {attempts} attempts; last logs:\n{last}")

    def _start_worker(self, w: DaskWorker, attempt: int) -> None:
        w.directory.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--host", HOST,
               "--name", w.name, "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard",
               "--local-directory", str(w.directory), "--death-timeout", str(int(START_TIMEOUT))]  # fmt: skip
        if w.resources:
            cmd += ["--resources", w.resources]
        with (self.tmp / f"{w.name}-{attempt}.log").open("wb") as sink:
            w.proc = subprocess.Popen(
                cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=w.directory, env={k: v for k, v in self._env(w.env).items() if k not in w.unset},
            )  # fmt: skip

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if any(p is None or p.poll() is not None for p in self.processes()):
                return False
            if sorted(self.connected_workers(timeout=2)) == sorted(self.worker_names):
                return True
            time.sleep(0.1)
        return False

    def connected_workers(self, timeout: float = 5) -> list[str]:
        """Names of the workers the scheduler knows now ([] if it does not answer)."""
        from distributed import Client

        try:
            with Client(self.address, timeout=timeout) as client:
                return [w["name"] for w in client.scheduler_info()["workers"].values()]
        except OSError:  # not listening yet
            return []

    def processes(self) -> list[subprocess.Popen | None]:
        return [self.scheduler, *(w.proc for w in self.workers)]

    def kill_worker(self, name: str) -> None:
        """SIGKILL one worker process (no clean goodbye to the scheduler), as a crashed machine."""
        w = self.worker(name)
        assert w.proc is not None and w.proc.poll() is None, f"worker {name} is not running"
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait(timeout=STOP_TIMEOUT)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p is not None]

    def stop(self) -> None:
        """Workers first (so they do not wait for a scheduler gone away), then the scheduler."""
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers:
            stop_process(w.proc)
            w.proc = None
        stop_process(self.scheduler)
        self.scheduler = None


def two_worker_cluster(tmp: Path) -> DaskCluster:
    """The test cluster: worker ``w-cpu``, and ``w-gpu`` with ``--resources GPU=1``."""
    return DaskCluster(
        tmp,
        [DaskWorker("w-cpu", tmp / "w-cpu"), DaskWorker("w-gpu", tmp / "w-gpu", resources="GPU=1")],
    )


@contextmanager
def running_dask_cluster(cluster: DaskCluster) -> Iterator[DaskCluster]:
    """Start ``cluster`` (skip or fail when Dask is missing) and always stop it."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        unavailable(f"Dask distributed is not installed ({exc}); pip install -e '.[dev]'")
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory) -> Iterator[DaskCluster]:
    """A running Dask scheduler and two workers for the whole session (see ``two_worker_cluster``)."""
    with running_dask_cluster(two_worker_cluster(tmp_path_factory.mktemp("dask"))) as cluster:
        yield cluster


# --- A second Docker engine --------------------------------------------------------------------


@dataclass
class SecondEngine:
    """``dockerd`` with its own data root, exec root (so its own containerd), socket and pid file,
    its own bridge and no iptables rules (it must not touch the machine's networking), and an
    empty daemon config (not /etc/docker/daemon.json).

    Not ``--bridge=none``: a daemon without a bridge deletes the default one, ``docker0``, at
    start (moby's removeDefaultBridgeInterface), and the second engine shares the main engine's
    network namespace, so the main engine would lose the network its builds use. The second
    engine gets a bridge of its own instead, made here and deleted at teardown."""

    root: Path
    proc: subprocess.Popen | None = None
    bridge: str = field(default_factory=lambda: f"opsbr{os.getpid() % 100000}")

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def client(self, timeout: int = 30):
        import docker

        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def start(self) -> SecondEngine:
        config = self.root / "daemon.json"
        config.write_text("{}\n")
        self._make_bridge()
        cmd = ["dockerd", "--config-file", str(config), "--data-root", str(self.root / "data"),
               "--exec-root", str(self.root / "exec"), "-H", self.url, "--pidfile", str(self.root / "docker.pid"),
               f"--bridge={self.bridge}", "--iptables=false", "--ip-masq=false"]  # fmt: skip
        if "--ip6tables" in subprocess.run(["dockerd", "--help"], capture_output=True, text=True).stdout:
            cmd.append("--ip6tables=false")
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_child_env()
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.socket.exists() and self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"second dockerd did not start; log:\n{_log_tail(self.log)}")

    def _make_bridge(self) -> None:
        """A bridge for this engine alone, on an address range of its own (10.231.N.0/24)."""
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)  # left by a killed run
        subnet = int(self.bridge.removeprefix("opsbr")) % 250 + 1
        for args in (
            ["ip", "link", "add", "name", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"10.231.{subnet}.1/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(args, check=True, capture_output=True)

    def _answers(self) -> bool:
        client = self.client(timeout=2)
        try:
            return bool(client.ping())
        except Exception:  # not serving yet
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Remove its containers, stop dockerd (it stops its containerd), kill any straggler
        (a containerd shim), unmount what it left mounted; raise if anything survives."""
        if self.proc is not None and self.proc.poll() is None:
            client = self.client(timeout=10)
            try:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            except Exception:  # a broken engine: the kills below still clean up
                pass
            finally:
                client.close()
        stop_process(self.proc, timeout=20)
        self.proc = None
        for pid in processes_mentioning(str(self.root)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mount in reversed(_mounts_under(self.root)):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        left = _wait_gone(str(self.root))
        if left or _mounts_under(self.root):
            raise RuntimeError(f"second dockerd left processes {left} or mounts {_mounts_under(self.root)}")
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        shutil.rmtree(self.root / "data", ignore_errors=True)  # root-owned image layers
        shutil.rmtree(self.root / "exec", ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            mounts.append(point)
    return mounts


def _wait_gone(text: str, timeout: float = 5) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(scope="session")
def second_engine(tmp_path_factory) -> Iterator[str]:
    """The URL (``unix:///.../docker.sock``) of a second, empty Docker engine, for the whole session."""
    if shutil.which("dockerd") is None:
        unavailable("dockerd is not installed (scripts/setup-machine.sh installs docker.io)")
    if os.geteuid() != 0:
        unavailable("a second dockerd needs root")
    engine = SecondEngine(tmp_path_factory.mktemp("dockerd2"))
    try:
        engine.start()
        yield engine.url
    finally:
        engine.stop()


# --- An image registry -------------------------------------------------------------------------


@dataclass
class ImageRegistry:
    """Debian's ``docker-registry`` (distribution 2.x) on a free port of 127.0.0.1, storage in ``tmp``.
    Docker engines trust registries on 127.0.0.0/8 without TLS."""

    tmp: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, attempts: int = 3) -> ImageRegistry:
        last = ""
        for attempt in range(attempts):  # another process may grab the port between bind and listen
            self.port = free_port()
            config = self.tmp / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.tmp / 'storage'}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {self.address}\n"
            )
            log = self.tmp / f"registry-{attempt}.log"
            with log.open("wb") as sink:
                self.proc = subprocess.Popen(
                    [REGISTRY_BIN, "serve", str(config)],
                    stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp, env=_child_env(),
                )  # fmt: skip
            if self._wait_ready():
                return self
            self.stop()
            last = _log_tail(log)
        raise RuntimeError(f"docker-registry did not start in {attempts} attempts; last log:\n{last}")

    def _wait_ready(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with opener.open(f"http://{self.address}/v2/", timeout=2) as response:
                    return response.status == 200
            except OSError:  # not listening yet
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory) -> Iterator[str]:
    """``"127.0.0.1:PORT"`` of a running, empty image registry for the whole session."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        unavailable(f"{REGISTRY_BIN} is not installed (scripts/setup-machine.sh installs docker-registry)")
    registry = ImageRegistry(tmp_path_factory.mktemp("registry"))
    try:
        yield registry.start().address
    finally:
        registry.stop()
