"""The executor registry (opsctl/executors/registry.py): the one table that config
validation, `opsctl run --executor`, planning, the run and `opsctl doctor` read; a new
executor is one class plus one entry."""

from __future__ import annotations

import sys

import pytest
import yaml

from opsctl.core.config import parse_config
from opsctl.core.project import open_project
from opsctl.core.run import RunOptions, run_pipeline
from opsctl.errors import ConfigError, UsageError
from opsctl.executors import registry
from opsctl.executors.local import LocalExecutor
from opsctl.executors.registry import ExecutorSpec, choices_text, executor_spec, names, runs_in_containers
from tests.conftest import git_dvc_project, run


class RecordingExecutor(LocalExecutor):
    """An executor a plugin could add: runs on the host, and says which stages it ran."""

    name = "recording"
    seen: list[str] = []
    settings: dict = {}

    def __init__(self, settings):  # an executor with settings is constructed with opsctl.yaml's
        super().__init__()
        RecordingExecutor.settings = settings

    def run(self, invocation, on_line=None):
        RecordingExecutor.seen.append(invocation.stage)
        return super().run(invocation, on_line)


RECORDING = ExecutorSpec(
    "recording",
    "stages on the host, remembered",
    f"{__name__}:RecordingExecutor",
    containers=False,
    docker_engine=False,
    settings=(("label", registry.STRING),),
)


def test_the_built_in_executors_and_what_they_need():
    assert names() == ("docker", "local", "dask") and choices_text() == "docker, local or dask"
    docker, local, dask = executor_spec("docker"), executor_spec("local"), executor_spec("dask")
    assert docker.containers and docker.docker_engine and not local.containers and not local.docker_engine
    assert dask.containers and dask.remote and not docker.remote and not local.remote
    assert dask.setting_names == ("scheduler", "retries")
    assert isinstance(local.create(), LocalExecutor)
    assert runs_in_containers("docker") and runs_in_containers("dask") and not runs_in_containers("local")
    assert not runs_in_containers("an-executor-of-a-newer-opsctl") and not runs_in_containers(None)
    assert registry.is_remote("dask") and not registry.is_remote("docker") and not registry.is_remote(None)
    with pytest.raises(UsageError, match=r"unknown executor 'kubernetes' \(choose from docker, local, dask\)"):
        executor_spec("kubernetes")


def test_importing_the_registry_imports_no_executor():
    code = "import sys, opsctl.executors.registry; print(sorted(m for m in sys.modules if m.startswith('opsctl.exec')))"
    out = run([sys.executable, "-c", code]).stdout
    assert out.strip() == "['opsctl.executors', 'opsctl.executors.registry']"


def test_opsctl_yaml_is_validated_against_the_registry(monkeypatch):
    with pytest.raises(ConfigError, match=r"executor.*one of docker, local, dask"):
        parse_config({"project": "p", "executor": "slurm"})
    with pytest.raises(ConfigError, match=r"executors.*one of docker, local, dask"):
        parse_config({"project": "p", "executors": {"slurm": {"queue": "x"}}})
    config = parse_config(
        {"project": "p", "executors": {"dask": {"scheduler": "tcp://x:8786", "retries": 2}}, "registry": "x:5000"}
    )
    assert config.executors == {"dask": {"scheduler": "tcp://x:8786", "retries": 2}} and config.registry == "x:5000"
    with pytest.raises(ConfigError, match=r"executors\.dask\.retries: expected a whole number, 0 or more, got int -1"):
        parse_config({"project": "p", "executors": {"dask": {"retries": -1}}})
    with pytest.raises(ConfigError, match=r"executors\.dask\.scheduler: expected a non-empty string"):
        parse_config({"project": "p", "executors": {"dask": {"scheduler": 8786}}})
    with pytest.raises(ConfigError, match=r"registry: expected a registry address HOST\[:PORT\]"):
        parse_config({"project": "p", "registry": "https://registry.example:5000"})
    with pytest.raises(ConfigError, match=r"unknown key 'executors\.local\.scheduler'"):
        parse_config({"project": "p", "executors": {"local": {"scheduler": "tcp://x:8786"}}})
    monkeypatch.setitem(registry.EXECUTORS, "recording", RECORDING)
    config = parse_config({"project": "p", "executor": "recording", "executors": {"recording": {"label": "x"}}})
    assert config.executor == "recording" and config.executors == {"recording": {"label": "x"}}


def test_a_new_executor_is_one_class_and_one_registry_entry(tmp_path, monkeypatch):
    root = git_dvc_project(tmp_path / "p")
    (root / "opsctl.yaml").write_text("project: p\nexecutor: recording\nexecutors:\n  recording: {label: demo}\n")
    stages = {"hello": {"cmd": "echo hello > hello.txt", "outs": ["hello.txt"]}}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "pipeline"], cwd=root)
    monkeypatch.setitem(registry.EXECUTORS, "recording", RECORDING)
    monkeypatch.setattr(RecordingExecutor, "seen", [])
    monkeypatch.chdir(root)

    report = run_pipeline(open_project(root), RunOptions(jobs=1))

    assert RecordingExecutor.seen == ["hello"] and RecordingExecutor.settings == {"label": "demo"}
    assert report.executor == "recording" and [s.status for s in report.stages] == ["ran"]
    assert (root / "hello.txt").read_text() == "hello\n"
    assert "hello" in yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    with pytest.raises(UsageError, match="unknown executor 'kubernetes'"):
        run_pipeline(open_project(root), RunOptions(executor="kubernetes"))
