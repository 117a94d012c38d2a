"""`opsctl run` end to end against the real Docker engine, with real Git and DVC:
the ml-pipeline template in its image, parallel stages, the run cache, failures,
Ctrl-C, the containers' safe defaults, an unreachable engine and a stage without
an image."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, PYTHON, REPO, run, run_opsctl, tree

pytestmark = pytest.mark.docker

BUSYBOX = "opsctl-test/busybox:latest"
PYTHON_IMAGE = "opsctl-test/python:3"
RUN_LABEL = "org.opsctl.run"
STAGE_LABEL = "org.opsctl.stage"
PROJECT_LABEL = "org.opsctl.project"
ML_STAGES = ["prepare", "featurize", "train", "evaluate"]


def _ensure_image(which: str) -> None:
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-test-images.sh"), "--only", which], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr


@pytest.fixture(scope="session")
def busybox_image(docker_engine):
    _ensure_image("busybox")
    return BUSYBOX


@pytest.fixture(scope="session")
def python_image(docker_engine):
    _ensure_image("python")
    return PYTHON_IMAGE


def _remove_project_images(client, name: str) -> None:
    for image in client.images.list(all=True, filters={"label": f"{PROJECT_LABEL}={name}"}):
        try:
            client.images.remove(image.id, force=True)
        except Exception:  # already gone with another tag of the same image
            pass


def _containers_of_run(run_id: str) -> list[str]:
    """`docker ps -a` of a run's containers, as a user would check."""
    listed = run(["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}"])
    return listed.stdout.split()


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd=root)


def _lock_stages(root: Path, name: str = "dvc.lock") -> dict:
    path = root / name
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text())
    return (doc.get("stages") or {}) if isinstance(doc, dict) else {}


@pytest.fixture
def busybox_project(tmp_path, busybox_image, docker_engine):
    """make(stages, config_stages=..., params=...): a Git + DVC project whose stages run in
    the busybox image under the docker executor, with its own project name."""
    name = f"r{uuid.uuid4().hex[:10]}"
    roots = []

    def make(stages: dict, *, config_stages: dict | None = None, params: dict | None = None) -> Path:
        root = tmp_path / f"p{len(roots)}"
        root.mkdir()
        roots.append(root)
        run(["git", "init", "-q"], cwd=root)
        _dvc(root, "init", "-q")
        config = {
            "project": name,
            "executor": "docker",
            "images": {"tools": {"ref": BUSYBOX}},
            "stages": {"default": {"image": "tools"}} if config_stages is None else config_stages,
        }
        (root / "opsctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
        if params is not None:
            (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["git", "add", "-A"], cwd=root)
        run(["git", "commit", "-qm", "pipeline"], cwd=root)
        return root

    yield make
    # Safety net: no container of any of these runs outlives the test, whatever it asserted.
    for root in roots:
        runs = root / ".opsctl" / "runs"
        for run_dir in runs.iterdir() if runs.is_dir() else []:
            for container in docker_engine.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_dir.name}"}):
                try:
                    docker_engine.api.remove_container(container["Id"], force=True)
                except Exception:  # removed meanwhile
                    pass
    _remove_project_images(docker_engine, name)


def _run_json(root: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    result = run_opsctl("run", "--json", *args, cwd=root, env=env)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"opsctl run exited {result.returncode} without JSON\n{result.stdout}\n{result.stderr}")
    return result, report


# -- 1. the built-in template ----------------------------------------------------------


def test_ml_pipeline_template_runs_in_docker_and_dvc_agrees(tmp_path, python_image, docker_engine):
    name = f"ml{uuid.uuid4().hex[:10]}"
    try:
        run_opsctl(
            "init",
            "p",
            "--defaults",
            "--name",
            name,
            "--data",
            f"base_image={PYTHON_IMAGE}",
            "--data",
            "install_requirements=false",
            cwd=tmp_path,
            check=True,
        )
        root = tmp_path / "p"

        result, report = _run_json(root)
        assert result.returncode == 0, result.stderr
        assert report["status"] == "succeeded" and report["executor"] == "docker"
        assert [(s["stage"], s["status"]) for s in report["stages"]] == [(s, "ran") for s in ML_STAGES]
        refs = {s["image"] for s in report["stages"]}
        assert len(refs) == 1, refs
        ref = refs.pop()
        assert ref.startswith(f"opsctl/{name}-app:")
        image = docker_engine.images.get(ref)
        assert {s["image_id"] for s in report["stages"]} == {image.id}
        assert image.labels[PROJECT_LABEL] == name

        # DVC itself agrees that the pipeline is done: nothing to reproduce, dvc.lock untouched.
        assert "Data and pipelines are up to date." in _dvc(root, "status").stdout
        lock_before = (root / "dvc.lock").read_bytes()
        repro = _dvc(root, "repro").stdout
        for stage in ML_STAGES:
            assert f"Stage '{stage}' didn't change, skipping" in repro, repro
        assert "Running stage" not in repro
        assert (root / "dvc.lock").read_bytes() == lock_before

        for output in ("models/model.pkl", "metrics.json"):
            assert (root / output).is_file(), output
            assert (root / output).stat().st_uid == os.getuid(), f"{output} not owned by the invoking user"
        assert 0.5 < json.loads((root / "metrics.json").read_text())["accuracy"] <= 1.0

        images = _lock_stages(root, "opsctl.lock")
        assert sorted(images) == sorted(ML_STAGES)
        for stage, entry in images.items():
            assert entry["executor"] == "docker" and entry["image"] == "app" and entry["ref"] == ref, (stage, entry)
            assert entry["identity"] == f"inputs:{image.labels['org.opsctl.inputs']}", (stage, entry)

        again = run_opsctl("run", cwd=root)
        assert again.returncode == 0, again.stderr
        assert "nothing to run" in again.stdout + again.stderr
        assert (root / "dvc.lock").read_bytes() == lock_before

        # A new image (its build context changed) makes every stage that ran in it stale.
        with open(root / "requirements.txt", "a") as f:
            f.write("# pinned later\n")
        status = run_opsctl("status", "--json", cwd=root)
        assert status.returncode == 0, status.stderr
        stages = {s["stage"]: s for s in json.loads(status.stdout)}
        assert sorted(stages) == sorted(ML_STAGES)
        for stage in ML_STAGES:
            assert stages[stage]["stale"], stages[stage]
            assert any("image app changed" in r for r in stages[stage]["reasons"]), stages[stage]
    finally:
        _remove_project_images(docker_engine, name)


# -- 2. parallelism ----------------------------------------------------------------------


def test_independent_stages_run_at_the_same_time(busybox_project):
    # Each stage writes when it started and when it finished (after 3 s of sleep). Run one
    # after another, a stage could only start once the previous one had finished.
    stages = {
        f"s{i}": {
            "cmd": f"mkdir -p out && date +%s > out/s{i}.txt && sleep 3 && date +%s >> out/s{i}.txt",
            "outs": [f"out/s{i}.txt"],
        }
        for i in range(1, 5)
    }
    root = busybox_project(stages)
    result, report = _run_json(root, "-j", "4")
    assert result.returncode == 0, result.stderr
    assert report["jobs"] == 4
    assert sorted((s["stage"], s["status"]) for s in report["stages"]) == [(f"s{i}", "ran") for i in range(1, 5)]

    spans = {}
    for i in range(1, 5):
        start, end = map(int, (root / "out" / f"s{i}.txt").read_text().split())
        spans[f"s{i}"] = (start, end)
    starts = [s for s, _ in spans.values()]
    ends = [e for _, e in spans.values()]
    assert max(starts) < min(ends), f"the four stages were never all running at once: {spans}"
    assert max(starts) - min(starts) < 3, spans  # sequential starts would be >= 3 s apart

    assert sorted(_lock_stages(root)) == sorted(stages)  # four concurrent writers, one whole dvc.lock
    assert "Data and pipelines are up to date." in _dvc(root, "status").stdout


# -- 3. the run cache -----------------------------------------------------------------------


def test_same_params_again_restore_from_the_run_cache(busybox_project):
    # The output carries a fresh random id each time the command really runs.
    root = busybox_project(
        {
            "echo": {
                "cmd": "(cat params.yaml; cat /proc/sys/kernel/random/uuid) > out.txt",
                "params": ["x"],
                "outs": ["out.txt"],
            }
        },
        params={"x": 0},
    )
    outputs = []
    reports = []
    for value in ("1", "2", "1"):
        result, report = _run_json(root, "-S", f"x={value}")
        assert result.returncode == 0, result.stderr
        assert yaml.safe_load((root / "params.yaml").read_text()) == {"x": int(value)}
        outputs.append((root / "out.txt").read_text())
        reports.append(report)

    assert [s["status"] for s in reports[0]["stages"]] == ["ran"]
    assert [s["status"] for s in reports[1]["stages"]] == ["ran"]
    assert outputs[0].startswith("x: 1\n") and outputs[1].startswith("x: 2\n") and outputs[0] != outputs[1]
    third = reports[2]["stages"]
    assert [(s["stage"], s["status"]) for s in third] == [("echo", "cached")], third
    assert "run cache" in third[0]["detail"]
    assert third[0]["exit_code"] is None  # no container ran
    assert outputs[2] == outputs[0]  # the first run's very output, restored
    assert "Data and pipelines are up to date." in _dvc(root, "status").stdout
    assert _lock_stages(root)["echo"]["params"]["params.yaml"] == {"x": 1}


# -- 4. a failing stage --------------------------------------------------------------------


def test_failed_stage_stops_its_dependants_and_leaves_no_container(busybox_project):
    root = busybox_project(
        {
            "a": {"cmd": "echo ok > a.txt", "outs": ["a.txt"]},
            "b": {"cmd": "echo b-first-line; echo b-last-words; exit 3", "outs": ["b.txt"]},
            "c": {"cmd": "cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
        }
    )
    result, report = _run_json(root, "-j", "2")
    assert result.returncode == 5, result.stderr
    assert report["status"] == "failed"
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert by_stage["a"]["status"] == "ran"
    assert by_stage["b"]["status"] == "failed" and by_stage["b"]["exit_code"] == 3
    assert by_stage["c"]["status"] == "skipped"
    assert "stage b failed" in result.stderr
    assert "│ b-last-words" in result.stderr  # the failed stage's log tail, after the run
    assert "│ b-first-line" in result.stderr

    assert sorted(_lock_stages(root)) == ["a"]
    assert sorted(_lock_stages(root, "opsctl.lock")) == ["a"]
    assert not (root / "c.txt").exists()
    assert _containers_of_run(report["run_id"]) == []


def test_a_data_check_fails_a_container_stage_like_its_command_would(busybox_project):
    """The gate after a stage that ran in a container: its output breaks a check, so the stage
    fails — no dvc.lock entry, its dependant never starts, no container left — and the
    failing rows are in the stage's log after the container's own lines."""
    root = busybox_project(
        {
            "rows": {"cmd": "printf 'id,n\\n1,5\\n2,-7\\n2,9\\n' > rows.csv && echo wrote rows", "outs": ["rows.csv"]},
            "sum": {"cmd": "cat rows.csv > sum.txt", "deps": ["rows.csv"], "outs": ["sum.txt"]},
        }
    )
    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    config["checks"] = {"rows.csv": {"unique": [["id"]], "columns": {"n": {"type": "int", "min": 0}}}}
    (root / "opsctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result, report = _run_json(root)
    assert result.returncode == 5, result.stderr
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert by_stage["rows"]["status"] == "failed" and by_stage["rows"]["exit_code"] == 0
    assert "data check failed: rows.csv: 2 checks failed" in by_stage["rows"]["detail"]
    assert by_stage["sum"]["status"] == "skipped"
    assert _lock_stages(root) == {}
    assert _containers_of_run(report["run_id"]) == []
    log = Path(by_stage["rows"]["log"]).read_text().splitlines()
    assert log[0] == "wrote rows"
    assert "opsctl:   min(n): 1 failing: row 2: -7" in log
    assert any(line.startswith("opsctl:   unique: 1 failing") and "row 3: 2" in line for line in log)


# -- 5. a stage that writes nothing ------------------------------------------------------------


def test_stage_that_exits_0_without_its_output_fails(busybox_project):
    root = busybox_project({"lazy": {"cmd": "echo did nothing", "outs": ["out/result.txt"]}})
    result, report = _run_json(root)
    assert result.returncode == 5, result.stderr
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("lazy", "failed")]
    assert "out/result.txt" in report["stages"][0]["detail"]
    assert "out/result.txt" in result.stderr
    assert not (root / "dvc.lock").exists()
    assert _lock_stages(root, "opsctl.lock") == {}
    status = json.loads(run_opsctl("status", "--json", cwd=root, check=True).stdout)
    assert [(s["stage"], s["stale"]) for s in status] == [("lazy", True)]


# -- 6. Ctrl-C -------------------------------------------------------------------------------


class _LiveRun:
    """`opsctl run ARGS` started as a user starts it (its own process, no shell), its stderr
    read as it comes, so a test can act on what it has printed so far. ``new_session``: in a
    process group of its own, as a terminal's foreground job is."""

    def __init__(self, root: Path, *args: str, new_session: bool = False) -> None:
        import docker

        self.root = root
        self._engine = docker.from_env()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "opsctl", "run", *args],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    @property
    def stderr(self) -> str:
        if self.proc.poll() is not None:  # ended: all of it
            for pump in self._pumps:
                pump.join(timeout=30)
        return "".join(self._err)

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    def run_id(self) -> str | None:
        runs = self.root / ".opsctl" / "runs"
        found = sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
        return found[0] if len(found) == 1 else None

    def containers(self, stage: str, *, running: bool = False) -> list[dict]:
        """This run's containers of ``stage`` (one engine call: no list-then-inspect race)."""
        run_id = self.run_id()
        if run_id is None:
            return []
        filters = {"label": [f"{RUN_LABEL}={run_id}", f"{STAGE_LABEL}={stage}"]}
        if running:
            filters["status"] = "running"
        return self._engine.api.containers(all=not running, filters=filters)

    def stage_running(self, stage: str) -> bool:
        return bool(self.containers(stage, running=True))

    def interrupt_when(self, ready, *, poll: float = 0.1) -> None:
        """SIGINT (Ctrl-C) as soon as ``ready()``; then wait for the process to end."""
        deadline = time.monotonic() + 120
        while self.proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(poll)
        assert self.proc.poll() is None, f"opsctl run ended before the moment to interrupt it\n{self.stderr}"
        assert ready(), f"the moment to interrupt never came\n{self.stderr}"
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)  # the slow stage sleeps 300 s: waiting it out would time out here
        for pump in self._pumps:
            pump.join(timeout=30)

    def kill(self) -> None:
        """The test's own clean-up (its assertions come after): never leave the process behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._engine.close()


def test_ctrl_c_removes_containers_and_keeps_finished_stages(busybox_project):
    root = busybox_project(
        {
            "quick": {"cmd": "echo quick > q.txt", "outs": ["q.txt"]},
            "slow": {"cmd": "sleep 300 && echo > o.txt", "outs": ["o.txt"]},
        }
    )
    live = _LiveRun(root, "-j", "2", "--json")
    try:
        # Ctrl-C once the quick stage has finished and the slow one's container is running.
        live.interrupt_when(lambda: "✓ quick ran" in live.stderr and live.containers("slow", running=True))
    finally:
        live.kill()
    err = live.stderr
    assert live.proc.returncode == 130, err
    report = json.loads(live.stdout)
    run_id = report["run_id"]
    assert report["status"] == "interrupted" and run_id == live.run_id()
    assert {s["stage"]: s["status"] for s in report["stages"]} == {"quick": "ran", "slow": "interrupted"}
    assert f"run {run_id} interrupted; stopped: slow;" in err
    assert _containers_of_run(run_id) == []
    assert sorted(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == ["quick"]
    assert sorted(_lock_stages(root, "opsctl.lock")) == ["quick"]
    assert not (root / "o.txt").exists()
    status = {s["stage"]: s["stale"] for s in json.loads(run_opsctl("status", "--json", cwd=root, check=True).stdout)}
    assert status == {"quick": False, "slow": True}


def test_ctrl_c_while_a_finished_stage_is_recorded_reports_what_dvc_lock_says(busybox_project):
    """Ctrl-C in the moment after a stage's container exited 0, while its output is hashed and
    committed (64 MB make that moment last): whatever opsctl decides, its report and dvc.lock
    must agree — a stage reported "interrupted" has no dvc.lock entry, one with an entry "ran"."""
    root = busybox_project(
        {
            "quick": {"cmd": "dd if=/dev/zero of=big.bin bs=1M count=64 2>/dev/null", "outs": ["big.bin"]},
            "slow": {"cmd": "sleep 300 && echo > o.txt", "outs": ["o.txt"]},
        }
    )
    live = _LiveRun(root, "-j", "2", "--json")
    seen = []

    def quick_container_gone() -> bool:
        if live.containers("quick"):
            seen.append(True)
            return False
        return bool(seen) and (root / "big.bin").is_file()

    try:
        live.interrupt_when(quick_container_gone, poll=0.01)
    finally:
        live.kill()
    err = live.stderr
    assert live.proc.returncode == 130, err
    report = json.loads(live.stdout)
    statuses = {s["stage"]: s["status"] for s in report["stages"]}
    assert statuses["slow"] == "interrupted"
    assert _containers_of_run(report["run_id"]) == []
    recorded = sorted(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) if (root / "dvc.lock").exists() else []
    assert ("quick" in recorded) == (statuses["quick"] == "ran"), (
        f"opsctl reports quick {statuses['quick']!r} but dvc.lock records {recorded}\n{err}"
    )


# -- 7. what a container may do ---------------------------------------------------------------


IFACES = "grep -o '^ *[a-z0-9]*:' /proc/net/dev | tr -d ' :'"


def test_containers_run_as_the_user_without_network_or_capabilities(busybox_project):
    root = busybox_project(
        {
            "ids": {
                "cmd": "id -u > ids.txt; id -g >> ids.txt; "
                "(wget -q -T 2 -O- http://127.0.0.1:1/ >/dev/null 2>&1 && echo net || echo nonet) >> ids.txt; "
                f"cat /proc/self/status | grep CapEff >> ids.txt; {IFACES} >> ids.txt",
                "outs": ["ids.txt"],
            },
            # the control: a stage that asks for a network gets one (so the probe above can tell)
            "netctl": {"cmd": f"{IFACES} > net.txt", "outs": ["net.txt"]},
            "secret": {
                "cmd": 'echo "token=$OPSCTL_TEST_TOKEN"; echo "other=[$OPSCTL_TEST_OTHER]"; '
                'echo "$OPSCTL_TEST_TOKEN" > env.txt; echo "[$OPSCTL_TEST_OTHER]" >> env.txt',
                "outs": ["env.txt"],
            },
        },
        config_stages={
            "default": {"image": "tools"},
            "secret": {"env": ["OPSCTL_TEST_TOKEN"]},
            "netctl": {"network": "bridge"},
        },
    )
    token = f"tok-{uuid.uuid4().hex}"
    result, report = _run_json(root, env={"OPSCTL_TEST_TOKEN": token, "OPSCTL_TEST_OTHER": "should-not-pass"})
    assert result.returncode == 0, result.stderr
    assert sorted(s["status"] for s in report["stages"]) == ["ran"] * 3

    ids = (root / "ids.txt").read_text().splitlines()
    assert ids == [str(os.getuid()), str(os.getgid()), "nonet", "CapEff:\t0000000000000000", "lo"]
    assert (root / "ids.txt").stat().st_uid == os.getuid()
    assert "eth0" in (root / "net.txt").read_text().split()

    # The listed variable reaches the container; the log shows it masked; others stay out.
    assert (root / "env.txt").read_text().splitlines() == [token, "[]"]
    log = (root / ".opsctl" / "runs" / report["run_id"] / "secret.log").read_text()
    assert log.splitlines() == ["token=***", "other=[]"]
    assert token not in result.stdout + result.stderr


# -- 8. no engine --------------------------------------------------------------------------


def test_unreachable_engine_exits_4_and_writes_nothing(busybox_project):
    root = busybox_project({"one": {"cmd": "echo one > one.txt", "outs": ["one.txt"]}})
    before = tree(root)
    result = run_opsctl("run", cwd=root, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 4, result.stderr
    assert "Docker engine not reachable at unix:///nonexistent.sock" in result.stderr
    assert "start the engine" in result.stderr
    assert not (root / "dvc.lock").exists()
    assert tree(root) == before


# -- 9. a stage without an image ----------------------------------------------------------------


def test_stage_without_an_image_needs_the_local_executor(busybox_project):
    root = busybox_project(
        {
            "boxed": {"cmd": "echo boxed > boxed.txt", "outs": ["boxed.txt"]},
            "hostonly": {"cmd": "pwd > where.txt", "outs": ["where.txt"]},
        },
        config_stages={"boxed": {"image": "tools"}},
    )
    refused = run_opsctl("run", cwd=root)
    assert refused.returncode == 1, refused.stderr
    assert "stage 'hostonly' has no image for the docker executor" in refused.stderr
    assert "--executor local" in refused.stderr
    assert not (root / "dvc.lock").exists() and not (root / "boxed.txt").exists()

    local = run_opsctl("run", "hostonly", "--executor", "local", cwd=root)
    assert local.returncode == 0, local.stderr
    assert Path((root / "where.txt").read_text().strip()).resolve() == root.resolve()  # the host, not /workspace
    assert sorted(_lock_stages(root)) == ["hostonly"]
    assert _lock_stages(root, "opsctl.lock") == {"hostonly": {"executor": "local"}}
