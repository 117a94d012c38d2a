"""Bad input meets a real Git + DVC project: paths out of the project, YAML built to
exhaust memory, images that are gone, values Docker would refuse. Each gives one clear
line on stderr and its documented exit code, and changes nothing."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import PYTHON, git_dvc_project, opsctl_inprocess, run, run_opsctl, tree
from tests.core.test_config import billion_laughs
from tests.e2e.test_run_docker import BUSYBOX, busybox_image  # noqa: F401  (a fixture)

TRAIN = {"train": {"cmd": "echo hi > out.txt", "outs": ["out.txt"]}}


def project(root: Path, config: str, *, stages: dict | None = None, params: str | None = None) -> Path:
    """A committed Git + DVC project with this opsctl.yaml and a one-stage dvc.yaml."""
    git_dvc_project(root)
    (root / "opsctl.yaml").write_text(config)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages or TRAIN}, sort_keys=False))
    if params is not None:
        (root / "params.yaml").write_text(params)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "pipeline"], cwd=root)
    return root


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The error line; anything else on stderr may only be its hint."""
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[:2000]
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), result.stderr[:2000]
    return errors[0]


def limited_opsctl(*args: str, cwd: Path, memory: int = 1 << 30, timeout: float = 120) -> subprocess.CompletedProcess:
    """opsctl under an address-space limit: a loader that explodes fails fast (MemoryError)
    instead of taking the machine with it."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [PYTHON, "-m", "opsctl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit,
        env={**os.environ},
    )


# -- 7. build contexts and Dockerfiles stay inside the project -------------------------------


@pytest.mark.parametrize("context", ["/usr", "/", ".."])
def test_context_outside_the_project_is_a_config_error(tmp_path, context):
    root = project(
        tmp_path / "p",
        f"project: p\nexecutor: docker\nimages:\n  app: {{context: '{context}'}}\nstages:\n  default: {{image: app}}\n",
    )
    result = run_opsctl("status", cwd=root, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "opsctl.yaml: images.app.context: expected a relative path in the project" in one_error_line(result)


def test_context_symlinked_out_of_the_project_is_refused_before_hashing(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    root = tmp_path / "p"
    root.mkdir()
    (root / "ctx").symlink_to(outside)
    project(root, "project: p\nexecutor: docker\nimages:\n  app: {context: ctx}\n")
    before = tree(root)
    result = run_opsctl("build", cwd=root, timeout=60)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert f"opsctl.yaml: images.app.context: ctx is outside the project ({outside})" in line, line
    assert tree(root) == before


def test_dockerfile_symlinked_out_of_the_project_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("FROM scratch\n")
    root = tmp_path / "p"
    root.mkdir()
    (root / "Dockerfile").symlink_to(secret)
    project(root, "project: p\nexecutor: docker\nimages:\n  app: {}\n")
    result = run_opsctl("build", cwd=root, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "opsctl.yaml: images.app.dockerfile: Dockerfile is outside the project" in one_error_line(result)


# -- 8. -S writes only inside the project ---------------------------------------------------


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_set_param_outside_the_project_is_refused_and_nothing_is_written(tmp_path, how):
    victim = tmp_path / "victim.yaml"
    victim.write_text("a: 1\n")
    root = tmp_path / "p"
    root.mkdir()
    if how == "symlink":
        (root / "conf.yaml").symlink_to(victim)
    root = project(root, "project: p\n", params="a: 1\n")
    name = {"relative": "../victim.yaml", "absolute": str(victim), "symlink": "conf.yaml"}[how]
    before = tree(root)
    result = opsctl_inprocess("run", "-S", f"{name}:a=3", cwd=root)
    assert result.returncode == 2, result.stderr
    # (a long absolute path is cut short in the message, as every quoted value is)
    assert f"-S {name[:40]}" in result.stderr and "is outside the project" in result.stderr
    assert "Setting" not in result.stderr  # refused before anything is announced
    assert victim.read_text() == "a: 1\n"
    assert tree(root) == before  # no run, no dvc.lock, params.yaml untouched


# -- 9. YAML that would exhaust memory or time ------------------------------------------------


def test_billion_laughs_in_opsctl_yaml_is_refused_quickly(tmp_path):
    config = billion_laughs(9) + "project: *i\n"
    assert len(config) < 600
    root = project(tmp_path / "p", config)
    result = limited_opsctl("run", "--dry-run", cwd=root)
    assert result.returncode == 1, result.stderr[:2000]
    line = one_error_line(result)
    assert "opsctl.yaml:" in line and "YAML aliases expand to more than 100000 values" in line, line
    assert len(result.stderr) < 400


def test_billion_laughs_in_params_file_is_refused_before_set_param_writes(tmp_path):
    params = billion_laughs(9)
    root = project(tmp_path / "p", "project: p\n", params=params)
    result = limited_opsctl("run", "-S", "z=1", cwd=root)
    assert result.returncode == 1, result.stderr[:2000]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: params.yaml:5: f[0]: YAML aliases expand to more than 100000 values (a 'billion laughs'?); "
        "refusing to load it"
    ], result.stderr[:2000]
    assert (root / "params.yaml").read_text() == params


def test_a_five_level_alias_bomb_is_not_a_megabyte_error(tmp_path):
    # The anchors inside the value itself: 5 levels, 59,049 strings when printed in full.
    nested = "".join(f"  - {line.split(': ', 1)[1]}\n" for line in billion_laughs(5).splitlines())
    root = project(tmp_path / "p", "project:\n" + nested)
    result = opsctl_inprocess("status", cwd=root)
    assert result.returncode == 1
    assert "opsctl.yaml: project: expected a non-empty string, got list [[" in one_error_line(result)
    assert len(result.stderr) < 400, len(result.stderr)


def test_an_oversized_opsctl_yaml_is_refused_without_parsing_it(tmp_path):
    root = project(tmp_path / "p", "project: p\n")
    with open(root / "opsctl.yaml", "a") as f:
        f.write("x: '" + "y" * (3 << 20) + "'\n")
    result = opsctl_inprocess("status", cwd=root)
    assert result.returncode == 1
    assert "opsctl.yaml: 3.0 MiB is too big for this file (opsctl reads at most 1.0 MiB)" in one_error_line(result)


def test_duplicate_keys_in_opsctl_yaml_are_reported_with_their_line(tmp_path):
    root = project(tmp_path / "p", "project: p\nexecutor: local\nexecutor: docker\n")
    result = opsctl_inprocess("status", cwd=root)
    assert result.returncode == 1
    assert f"{root}/opsctl.yaml:3: executor: duplicate key" in one_error_line(result)


# -- 10. ref: images that are gone or not references ------------------------------------------


@pytest.mark.docker
def test_a_ref_image_that_is_gone_is_missing_for_status_and_run(tmp_path, busybox_image):  # noqa: F811
    name = f"r{uuid.uuid4().hex[:10]}"
    root = project(
        tmp_path / "p",
        f"project: {name}\nexecutor: docker\nimages:\n  tools: {{ref: '{BUSYBOX}'}}\nstages:\n  default: {{image: tools}}\n",
    )
    first = opsctl_inprocess("run", cwd=root)
    assert first.returncode == 0, first.stderr
    config = (root / "opsctl.yaml").read_text().replace(BUSYBOX, "opsctl-test/nosuch:1")
    (root / "opsctl.yaml").write_text(config)
    before = tree(root)

    status = opsctl_inprocess("status", cwd=root)
    assert status.returncode == 0, status.stderr
    assert "image tools missing (opsctl-test/nosuch:1 is not in the Docker engine)" in status.stdout
    assert "1 of 1 stages stale" in status.stderr

    again = opsctl_inprocess("run", cwd=root)
    assert again.returncode == 4, again.stderr
    assert "image 'tools' (opsctl-test/nosuch:1) is not available locally" in again.stderr
    assert tree(root) == before  # out.txt, dvc.lock and opsctl.lock as they were


def test_status_without_an_engine_does_not_call_a_ref_image_missing(tmp_path):
    root = project(
        tmp_path / "p",
        f"project: p\nexecutor: docker\nimages:\n  tools: {{ref: '{BUSYBOX}'}}\nstages:\n  default: {{image: tools}}\n",
    )
    result = opsctl_inprocess("status", cwd=root, env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    assert "never run" in result.stdout and "missing" not in result.stdout


def test_an_invalid_ref_is_a_config_error_not_an_engine_error(tmp_path):
    root = project(
        tmp_path / "p",
        "project: p\nexecutor: docker\nimages:\n  tools: {ref: '--privileged'}\nstages:\n  default: {image: tools}\n",
    )
    for args in (["status"], ["run"]):
        result = opsctl_inprocess(*args, cwd=root)
        assert result.returncode == 1, result.stderr
        assert "opsctl.yaml: images.tools.ref: expected an image reference" in one_error_line(result)


# -- 11. values Docker or SQLite would refuse later; settings that apply to nothing ------------


def test_memory_below_dockers_minimum_is_a_config_error(tmp_path):
    root = project(tmp_path / "p", "project: p\nstages:\n  train: {memory: '1'}\n")
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 1, result.stderr
    assert "opsctl.yaml: stages.train.memory: expected at least 6m" in one_error_line(result)
    assert not (root / "dvc.lock").exists()


@pytest.mark.parametrize("fast_path", ["1", ""])
def test_a_huge_runs_list_limit_is_a_usage_error(tmp_path, fast_path):
    root = project(tmp_path / "p", "project: p\n")
    result = opsctl_inprocess(
        "runs", "list", "-n", "99999999999999999999", cwd=root, env={"OPSCTL_NO_FAST_PATH": fast_path}
    )
    assert result.returncode == 2, result.stderr
    assert "--limit 99999999999999999999: at most 9223372036854775807" in one_error_line(result)
    assert opsctl_inprocess("runs", "list", "-n", "9223372036854775807", cwd=root).returncode == 0


def test_settings_for_a_stage_dvc_yaml_lacks_are_a_warning(tmp_path):
    root = project(
        tmp_path / "p",
        "project: p\nstages:\n  default: {cpus: 1}\n  trian: {cpus: 2}\n  evaluate: {cpus: 1}\n",
        stages={**TRAIN, "training_report": {"cmd": "echo r"}},
    )
    expected = [
        "warning: opsctl.yaml: stages.trian: no such stage in dvc.yaml (did you mean train?)",
        "warning: opsctl.yaml: stages.evaluate: no such stage in dvc.yaml (stages: train, training_report)",
    ]
    for args in (["status"], ["status", "--json"], ["run", "--dry-run"]):
        result = opsctl_inprocess(*args, cwd=root)
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert warnings == expected, (args, result.stderr)
    result = opsctl_inprocess("run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert expected[0] in result.stderr.splitlines()
