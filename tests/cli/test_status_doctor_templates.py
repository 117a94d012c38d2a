"""`opsctl status`, `opsctl doctor`, `opsctl template list`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BIN, opsctl_inprocess, run

# OPSCTL_REQUIRE_DOCKER (set in CI) would make the engine required everywhere; these tests set it themselves.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock", "OPSCTL_REQUIRE_DOCKER": ""}


def test_status_reports_never_run_then_up_to_date_then_changed_param(ml_project):
    before = json.loads(opsctl_inprocess("status", "--json", cwd=ml_project, check=True).stdout)
    assert [s["stage"] for s in before] == ["prepare", "featurize", "train", "evaluate"]
    assert all(s["stale"] for s in before)
    assert before[0]["reasons"] == ["never run (no dvc.lock entry)"]

    run([BIN / "dvc", "repro", "-q"], cwd=ml_project)
    after = json.loads(opsctl_inprocess("status", "--json", cwd=ml_project, check=True).stdout)
    assert not any(s["stale"] for s in after)

    params = ml_project / "params.yaml"
    params.write_text(params.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    changed = {
        s["stage"]: s for s in json.loads(opsctl_inprocess("status", "--json", cwd=ml_project, check=True).stdout)
    }
    assert changed["prepare"]["reasons"] == ["param prepare.test_size modified"]
    assert "upstream prepare is stale" in changed["featurize"]["reasons"]
    assert "upstream featurize is stale" in changed["evaluate"]["reasons"]

    table = opsctl_inprocess("status", cwd=ml_project, check=True)
    assert "prepare\tstale\tparam prepare.test_size modified" in table.stdout


def test_template_list(tmp_path):
    listed = json.loads(opsctl_inprocess("template", "list", "--json", cwd=tmp_path, check=True).stdout)
    assert [t["name"] for t in listed] == ["ml-pipeline", "data-pipeline", "minimal"]
    assert listed[0]["default"] is True
    assert all(t["description"] and t["source"] for t in listed)
    table = opsctl_inprocess("template", "list", cwd=tmp_path, check=True).stdout
    assert table.splitlines()[0] == "name\tdescription\tsource"


def _checks(result) -> dict:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_doctor_outside_a_project_without_engine_is_ok_with_warnings(tmp_path):
    result = opsctl_inprocess("doctor", "--json", cwd=tmp_path, env=NO_ENGINE)
    assert result.returncode == 0, result.stderr
    checks = _checks(result)
    assert set(checks) == {"python", "git", "dvc", "project", "docker engine", "disk"}
    assert checks["dvc"]["status"] == "ok" and checks["git"]["status"] == "ok"
    assert checks["project"]["status"] == "warn"
    assert checks["docker engine"]["status"] == "warn" and "start the engine" in checks["docker engine"]["fix"]


def test_doctor_exits_4_when_the_projects_engine_is_missing(ml_project):
    # ml-pipeline's executor is docker, so the engine is required there.
    result = opsctl_inprocess("doctor", "--json", cwd=ml_project, env=NO_ENGINE)
    assert result.returncode == 4
    assert _checks(result)["docker engine"]["status"] == "fail"
    assert "docker engine" in result.stderr and "hint: start the engine" in result.stderr

    table = opsctl_inprocess("doctor", cwd=ml_project, env=NO_ENGINE)
    assert table.returncode == 4 and "docker engine\t✗ fail" in table.stdout


@pytest.mark.docker
def test_doctor_sees_a_running_engine(ml_project, docker_engine):
    result = opsctl_inprocess("doctor", "--json", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    engine = _checks(result)["docker engine"]
    assert engine["status"] == "ok"
    assert docker_engine.version()["Version"] in engine["detail"]


def test_doctor_checks_what_the_named_executor_needs(ml_project, tmp_path):
    # the project's executor is docker; --executor local doesn't need the engine, --executor docker does
    local = opsctl_inprocess("doctor", "--executor", "local", "--json", cwd=ml_project, env=NO_ENGINE)
    assert local.returncode == 0, local.stderr
    assert _checks(local)["docker engine"]["status"] == "warn"
    docker = opsctl_inprocess("doctor", "--executor", "docker", "--json", cwd=tmp_path, env=NO_ENGINE)
    assert docker.returncode == 4 and _checks(docker)["docker engine"]["required"] is True
    unknown = opsctl_inprocess("doctor", "--executor", "kubernetes", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[0] == "error: unknown executor 'kubernetes' (choose from docker, local, dask)"


def test_doctor_requires_the_engine_when_asked_to(tmp_path):
    result = opsctl_inprocess("doctor", "--json", cwd=tmp_path, env={**NO_ENGINE, "OPSCTL_REQUIRE_DOCKER": "1"})
    assert result.returncode == 4
    assert _checks(result)["docker engine"]["required"] is True
