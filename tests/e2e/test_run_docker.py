"""`opsctl run` end to end against the real Docker engine, with real Git and DVC:
the ml-pipeline template in its image, parallel stages, the run cache, failures,
Ctrl-C, the containers' safe defaults, an unreachable engine and a stage without
an image."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-test-images.sh"), "--only", which],
                           capture_output=True, text=True)
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
            for container in docker_engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_dir.name}"}):
                container.remove(force=True)
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
        run_opsctl("init", "p", "--defaults", "--name", name, "--data", f"base_image={PYTHON_IMAGE}",
                   "--data", "install_requirements=false", cwd=tmp_path, check=True)
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
        f"s{i}": {"cmd": f"mkdir -p out && date +%s > out/s{i}.txt && sleep 3 && date +%s >> out/s{i}.txt",
                  "outs": [f"out/s{i}.txt"]}
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
        {"echo": {"cmd": "(cat params.yaml; cat /proc/sys/kernel/random/uuid) > out.txt",
                  "params": ["x"], "outs": ["out.txt"]}},
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
    root = busybox_project({
        "a": {"cmd": "echo ok > a.txt", "outs": ["a.txt"]},
        "b": {"cmd": "echo b-first-line; echo b-last-words; exit 3", "outs": ["b.txt"]},
        "c": {"cmd": "cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    })
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


def test_ctrl_c_removes_containers_and_keeps_finished_stages(busybox_project, docker_engine):
    root = busybox_project({
        "quick": {"cmd": "echo quick > q.txt", "outs": ["q.txt"]},
        "slow": {"cmd": "sleep 300 && echo > o.txt", "outs": ["o.txt"]},
    })
    proc = subprocess.Popen([PYTHON, "-m", "opsctl", "run", "-j", "2", "--json"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    run_id = None
    try:
        # Wait for the slow stage's container to run and the quick stage to be recorded.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            running = docker_engine.containers.list(
                filters={"label": f"{STAGE_LABEL}=slow", "status": "running"})
            ours = [c for c in running if (root / ".opsctl" / "runs" / c.labels.get(RUN_LABEL, "-")).is_dir()]
            if ours and "quick" in _lock_stages_quietly(root):
                run_id = ours[0].labels[RUN_LABEL]
                break
            time.sleep(0.1)
        assert run_id is not None, f"the slow stage never started (opsctl exited {proc.poll()})"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # the sleep is 300 s: waiting it out would time out here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["status"] == "interrupted" and report["run_id"] == run_id
    assert {s["stage"]: s["status"] for s in report["stages"]} == {"quick": "ran", "slow": "interrupted"}
    assert "interrupted" in err
    assert _containers_of_run(run_id) == []
    assert sorted(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == ["quick"]
    assert not (root / "o.txt").exists()
    status = {s["stage"]: s["stale"] for s in json.loads(run_opsctl("status", "--json", cwd=root, check=True).stdout)}
    assert status == {"quick": False, "slow": True}


def _lock_stages_quietly(root: Path) -> dict:
    try:
        return _lock_stages(root)
    except yaml.YAMLError:  # caught mid-write: not yet
        return {}


# -- 7. what a container may do ---------------------------------------------------------------


IFACES = "grep -o '^ *[a-z0-9]*:' /proc/net/dev | tr -d ' :'"


def test_containers_run_as_the_user_without_network_or_capabilities(busybox_project):
    root = busybox_project(
        {
            "ids": {"cmd": "id -u > ids.txt; id -g >> ids.txt; "
                           "(wget -q -T 2 -O- http://127.0.0.1:1/ >/dev/null 2>&1 && echo net || echo nonet) >> ids.txt; "
                           f"cat /proc/self/status | grep CapEff >> ids.txt; {IFACES} >> ids.txt",
                    "outs": ["ids.txt"]},
            # the control: a stage that asks for a network gets one (so the probe above can tell)
            "netctl": {"cmd": f"{IFACES} > net.txt", "outs": ["net.txt"]},
            "secret": {"cmd": 'echo "token=$OPSCTL_TEST_TOKEN"; echo "other=[$OPSCTL_TEST_OTHER]"; '
                              'echo "$OPSCTL_TEST_TOKEN" > env.txt; echo "[$OPSCTL_TEST_OTHER]" >> env.txt',
                       "outs": ["env.txt"]},
        },
        config_stages={"default": {"image": "tools"}, "secret": {"env": ["OPSCTL_TEST_TOKEN"]},
                       "netctl": {"network": "bridge"}},
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
        {"boxed": {"cmd": "echo boxed > boxed.txt", "outs": ["boxed.txt"]},
         "hostonly": {"cmd": "pwd > where.txt", "outs": ["where.txt"]}},
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
