"""Run stages on a Dask cluster: each stage is one Dask task that runs it in a node-local
workspace on some worker (executors/node.py), with nothing shared between the machines but
the DVC remote (data, by hash) and an image registry (images, by digest).

The coordinating ``opsctl run`` keeps everything else: it plans, ships each stage's inputs
(pushing its DVC-tracked ones to the remote first), and when a task returns it fetches the
outputs by the hashes the worker pushed, then records the stage exactly as a local run does
(docs/architecture.md, *Pipeline execution*). Here:

- **Where.** ``--scheduler``, ``OPSCTL_DASK_SCHEDULER`` or ``executors: {dask: {scheduler:}}``;
  without one, a local cluster in this process (one single-threaded worker per core), whose
  workers share this machine's Docker engine and files.
- **Placement.** A stage's ``gpus`` is a Dask resource request (``GPU``), so it runs only on
  a worker started with ``--resources GPU=N``; ``cpus`` and ``memory`` become requests for
  ``CPU``/``MEMORY`` only when some worker declares them (``opsctl worker`` does). A stage no
  worker can take fails at once, naming the resource.
- **Failures.** A worker that dies mid-stage: Dask runs the task again on another worker (the
  dead node's containers go with their reaper); an error raised by the task is retried
  ``retries`` times. Both are counted in the stage's attempts.
- **Ctrl-C.** Every task is cancelled and every container of the run removed on every worker.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsctl.errors import SchedulerUnavailableError, UsageError
from opsctl.executors.base import (
    ContainerSettings,
    LogSink,
    Output,
    StageInvocation,
    StageOutcome,
    memory_bytes,
)

SCHEDULER_ENV = "OPSCTL_DASK_SCHEDULER"
NODE_DIR_ENV = "OPSCTL_NODE_DIR"  # a worker's workspaces, logs and DVC cache (default: under its local directory)
DEFAULT_RETRIES = 1
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler
LOG_RETURNED = 1 << 20  # the last bytes of a stage's log a worker sends back
START_HINT = (
    "start one: `dask scheduler` on a machine the workers reach, then `opsctl worker tcp://HOST:8786` "
    "on each worker (or run without a scheduler for a local cluster)"
)
GPU, CPU, MEMORY = "GPU", "CPU", "MEMORY"


class DaskExecutor:
    name = "dask"

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        settings = dict(settings or {})
        # The front end resolves --scheduler, then $OPSCTL_DASK_SCHEDULER, then opsctl.yaml.
        self.scheduler: str | None = settings.get("scheduler") or None
        self.retries = int(settings.get("retries", DEFAULT_RETRIES))
        self._client: Any = None
        self._cluster: Any = None
        self._futures: dict[str, Any] = {}  # task key -> its running task
        self._starts: dict[str, list[str]] = {}  # task key -> the workers it started on
        self._lines: dict[str, LogSink | None] = {}  # task key -> where its live lines go
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._topic: str | None = None
        self._known_workers: dict[str, dict] | None = None  # as last asked: placement reads it per stage

    # -- the cluster --------------------------------------------------------------------

    @property
    def local(self) -> bool:
        """A cluster started for this run, in this process: its workers share this machine."""
        return self.scheduler is None

    def connect(self) -> None:
        """Reach the scheduler (SchedulerUnavailableError, exit 4, when it does not answer),
        or start the local cluster."""
        if self._client is not None:
            return
        from distributed import Client

        if self.scheduler is None:  # local: a cluster of this machine's own, for this run
            from distributed import LocalCluster

            self._cluster = LocalCluster(
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                # Processes, not threads: a node workspace's DVC works in its own directory,
                # and the working directory is a process's (adapters/dvc.py).
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # any free port: never a clash with a cluster already here
                silence_logs=50,  # logging.CRITICAL: its chatter is not the user's
            )
            self._client = Client(self._cluster)
            return
        try:
            _probe(self.scheduler)  # refused or unresolvable: said at once, not after Dask's retries
            self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnavailableError(
                f"Dask scheduler {self.scheduler} is not reachable ({_reason(exc)})", hint=START_HINT
            ) from None

    def workers(self) -> dict[str, dict]:
        """address -> {"name", "nthreads", "resources"} of every worker the scheduler knows."""
        info = self._client.scheduler_info(n_workers=-1)["workers"]
        self._known_workers = {
            address: {
                "name": str(w.get("name", address)),
                "nthreads": int(w.get("nthreads", 1)),
                "resources": dict(w.get("resources") or {}),
            }
            for address, w in info.items()
        }
        return self._known_workers

    def capacity(self) -> int:
        """How many stages the cluster runs at once (its worker threads)."""
        return sum(w["nthreads"] for w in self.workers().values()) or 1

    def on_every_worker(self, function, *args) -> dict[str, Any]:
        """address -> what ``function(*args)`` returned (or raised) on that worker."""
        return dict(self._client.run(function, *args, on_error="return"))

    def worker_engines(self) -> dict[str, str]:
        """address -> the id of the Docker engine the worker talks to (or "error: ...")."""
        from opsctl.executors.node import engine_of_node

        return {address: str(engine) for address, engine in self.on_every_worker(engine_of_node).items()}

    def shares_engine(self) -> bool:
        """Whether every worker talks to this machine's Docker engine (then images need no registry)."""
        if self.local:
            return True
        from opsctl.adapters.docker import engine_id

        mine = engine_id()
        engines = self.worker_engines()
        return bool(engines) and all(e == mine for e in engines.values())

    def place_images(self, refs: list[str], registry: str | None, project: str) -> dict[str, str]:
        """local image ref -> what the workers run: pushed to ``registry`` and named by digest;
        without a registry the same ref, allowed only when every worker shares this engine."""
        if registry:
            from opsctl.adapters.docker import image_id, push_image

            placed = {}
            for ref in refs:
                local_id = image_id(ref) or ref
                repository = f"{registry}/opsctl/{_slug(project)}"
                placed[ref] = push_image(ref, repository, local_id.removeprefix("sha256:")[:32])
            return placed
        if self.shares_engine():
            return {ref: ref for ref in refs}
        raise UsageError(
            "the Dask workers use other Docker engines than this machine's, and no image registry is set",
            hint="set `registry: HOST:PORT` in opsctl.yaml (e.g. a `docker-registry` the workers reach); "
            "the images are pushed there and pulled by digest",
        )

    # -- one stage ----------------------------------------------------------------------

    def open(self, run_id: str, image: str) -> None:
        self.connect()
        with self._lock:
            if self._topic is None:
                self._topic = f"opsctl-{run_id}"
                self._client.subscribe_topic(self._topic, self._on_event)

    def run(self, invocation: StageInvocation, on_line: LogSink | None = None) -> StageOutcome:
        from opsctl.executors.node import NodeStage

        work = invocation.remote
        if work is None or invocation.container is None:
            raise ValueError(f"stage {invocation.stage}: the dask executor needs the stage's data and image")
        self.connect()
        run_id = invocation.run_id or "adhoc"
        if self._topic is None:
            self.open(run_id, invocation.container.image)
        resources = self._resources(invocation.stage, invocation.container)
        task = NodeStage(
            invocation.stage,
            work,
            cmd=invocation.cmd,
            container=invocation.container,
            run_id=run_id,
            env_names=tuple(invocation.env),
        )
        key = f"opsctl-{run_id}-{_slug(invocation.stage)}-{os.urandom(3).hex()}"
        started = time.monotonic()
        with self._lock:
            if self._cancelled.is_set():
                raise KeyboardInterrupt
            self._lines[key] = on_line
            future = self._client.submit(
                run_on_node,
                task,
                key,
                self._topic,
                key=key,
                resources=resources or None,
                retries=self.retries,
                pure=False,
            )
            self._futures[key] = future
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 — whatever the worker raised: the stage's failure, told plainly
            if self._cancelled.is_set():
                return self._outcome(invocation, key, 130, started, "stopped: the run was interrupted\n", None, ())
            raise _plain(exc) from None
        finally:
            with self._lock:
                self._futures.pop(key, None)
        outputs = tuple(Output(**o) for o in result["outputs"])
        return self._outcome(invocation, key, result["exit_code"], started, result["log"], result["worker"], outputs)

    def _outcome(self, invocation, key, exit_code, started, log, worker, outputs) -> StageOutcome:
        invocation.log_path.parent.mkdir(parents=True, exist_ok=True)
        invocation.log_path.write_text(log, encoding="utf-8")
        with self._lock:
            attempts = max(1, len(self._starts.pop(key, [])))
            self._lines.pop(key, None)
        return StageOutcome(
            invocation.stage,
            exit_code,
            time.monotonic() - started,
            invocation.log_path,
            outputs=outputs,
            worker=worker,
            attempts=attempts,
        )

    def _resources(self, stage: str, container: ContainerSettings) -> dict[str, float]:
        """The Dask resources a stage asks for; UsageError naming the one no worker has."""
        wanted: dict[str, float] = {}
        gpus = container.gpus
        if gpus is not None and gpus != 0:
            wanted[GPU] = 1.0 if gpus in ("all", -1) else float(gpus)
        workers = self._known_workers if self._known_workers is not None else self.workers()
        declared = {name for w in workers.values() for name in w["resources"]}
        if container.cpus and CPU in declared:
            wanted[CPU] = float(container.cpus)
        if container.memory and MEMORY in declared:
            wanted[MEMORY] = memory_bytes(container.memory) or 0.0
        for name, amount in wanted.items():
            most = max((float(w["resources"].get(name, 0)) for w in workers.values()), default=0.0)
            if most < amount:  # ask again: a worker that has it may have joined since
                workers = self.workers()
                most = max((float(w["resources"].get(name, 0)) for w in workers.values()), default=0.0)
            if most < amount:
                have = f"the most any worker has is {most:g}" if most else "no worker declares it"
                raise UsageError(
                    f"stage {stage} needs {name}={amount:g} and {have}",
                    hint=f"start a worker with `--resources {name}={amount:g}` (dask worker or opsctl worker)",
                )
        return wanted

    def _on_event(self, event) -> None:
        """A worker's message (on the client's event loop): a stage started, or a log line."""
        _timestamp, msg = event
        key = msg.get("key")
        with self._lock:
            if msg.get("started"):
                self._starts.setdefault(key, []).append(str(msg["started"]))
                return
            sink = self._lines.get(key)
        if sink is not None and "line" in msg:
            sink(str(msg["stage"]), str(msg["line"]))

    def cancel(self, run_id: str) -> None:
        """Ctrl-C: cancel every task, and remove the run's containers on every worker."""
        from opsctl.executors.node import cancel_run

        self._cancelled.set()
        with self._lock:
            futures = list(self._futures.values())
        if self._client is None:
            return
        try:
            if futures:
                self._client.cancel(futures, force=True)
            self.on_every_worker(cancel_run, run_id)
        except Exception:  # noqa: BLE001 — a scheduler gone away: its workers' reapers remove the containers
            pass

    def close(self, run_id: str) -> None:
        from opsctl.executors.node import close_run

        if self._client is None:
            return
        try:
            if self._topic is not None:
                self._client.unsubscribe_topic(self._topic)
            self.on_every_worker(close_run, run_id)
        except Exception:  # noqa: BLE001
            pass
        finally:
            self._client.close()
            self._client = None
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None


def doctor_checks(
    settings: Mapping[str, Any], remote_url: str | None, remote_options: dict[str, str], registry: str | None
) -> list[tuple[str, str, str, str | None]]:
    """``opsctl doctor --executor dask``: (check, ok|warn|fail, detail, fix) for the scheduler,
    the workers (their count, each one's Docker engine and resources), and the DVC remote and
    image registry as each worker reaches them."""
    from opsctl.executors.node import node_checks

    executor = DaskExecutor(settings)
    if executor.local:
        cores = os.cpu_count() or 1
        return [
            (
                "dask scheduler",
                "ok",
                f"none set: a run starts a local cluster of {cores} workers on this machine",
                "for a real cluster: --scheduler, $OPSCTL_DASK_SCHEDULER or executors.dask.scheduler in opsctl.yaml",
            )
        ]
    try:
        executor.connect()
    except SchedulerUnavailableError as exc:
        return [("dask scheduler", "fail", exc.message, exc.hint)]
    try:
        workers = executor.workers()
        checks: list[tuple[str, str, str, str | None]] = [
            ("dask scheduler", "ok", f"{executor.scheduler}: {len(workers)} worker(s)", None)
        ]
        if not workers:
            return [*checks, ("dask workers", "fail", "no worker is connected", START_HINT)]
        answers = executor.on_every_worker(node_checks, remote_url, remote_options, registry)
    finally:
        executor.close("doctor")
    for kind, label in (
        ("engine", "worker engine"),
        ("remote", "remote from workers"),
        ("registry", "registry from workers"),
    ):
        lines, failed = [], False
        for address, worker in sorted(workers.items(), key=lambda item: item[1]["name"]):
            answer = answers.get(address)
            text = answer.get(kind) if isinstance(answer, dict) else f"error: {answer}"
            if text is None:
                continue
            failed = failed or text.startswith("error")
            resources = resources_text(worker["resources"])
            extra = f" [{resources}]" if kind == "engine" and resources else ""
            lines.append(f"{worker['name']}: {text.partition(': ')[2]}{extra}")
        if lines:
            fix = {
                "engine": "start Docker on that worker (and set DOCKER_HOST for its `dask worker` if it listens elsewhere)",
                "remote": "give the workers the remote's credentials (environment or their own DVC config) and network",
                "registry": "make the registry reachable from the workers (`registry:` in opsctl.yaml)",
            }[kind]
            checks.append((label, "fail" if failed else "ok", "; ".join(lines), fix if failed else None))
    return checks


def run_on_node(task, key: str, topic: str | None) -> dict:
    """The Dask task: run one stage on this worker (executors/node.py) and return what the
    coordinator needs. Plain data only, so any worker's Python can send it back."""
    from distributed import get_worker

    from opsctl.executors.node import run_stage

    worker = get_worker()
    address = str(worker.address)
    if topic:
        worker.log_event(topic, {"key": key, "started": address})

    def on_line(stage: str, line: str) -> None:
        if topic:
            worker.log_event(topic, {"key": key, "stage": stage, "line": line})

    node_dir = Path(os.environ.get(NODE_DIR_ENV) or Path(worker.local_directory) / "opsctl")
    result = run_stage(node_dir, key, task, on_line)
    log_path = result.outcome.log_path
    with open(log_path, "rb") as f:
        f.seek(max(0, log_path.stat().st_size - LOG_RETURNED))
        log = f.read().decode("utf-8", errors="replace")
    return {
        "exit_code": result.outcome.exit_code,
        "outputs": [o.__dict__ for o in result.outputs],
        "log": log,
        "worker": address,
    }


def _plain(exc: BaseException) -> BaseException:
    """An error raised on a worker, as the coordinator reports it: opsctl's own errors as they
    are; anything else (a Dask or network error) with the worker's message."""
    from opsctl.errors import OpsctlError

    if isinstance(exc, OpsctlError):
        return exc
    return OpsctlError(f"the stage's task failed on the cluster: {type(exc).__name__}: {_reason(exc)}")


def resources_text(resources: Mapping[str, float]) -> str:
    """``{"GPU": 1.0, "MEMORY": 4294967296.0}`` -> ``GPU=1,MEMORY=4294967296``: exact, as Dask's
    ``--resources`` reads it and as people read it (no exponent for whole numbers)."""
    return ",".join(f"{k}={int(v) if float(v).is_integer() else v}" for k, v in sorted(resources.items()))


def _probe(address: str) -> None:
    """Open and close a TCP connection to ``tcp://HOST:PORT`` (OSError when nothing listens).
    Other schemes (tls://, ucx://) are left to Dask."""
    import socket

    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise OSError(f"not an address of the form tcp://HOST:PORT: {address}")
    socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text.lower()).strip("-.") or "stage"
