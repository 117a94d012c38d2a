"""Exit codes and one-line errors, as docs/architecture.md lists them."""

from __future__ import annotations

from tests.conftest import opsctl_inprocess


def test_status_outside_a_project_exits_3_and_says_how_to_create_one(tmp_path):
    result = opsctl_inprocess("status", cwd=tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: not an opsctl project")
    assert "opsctl init" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_usage_errors_exit_2(tmp_path):
    result = opsctl_inprocess("init", "--no-such-option", cwd=tmp_path)
    assert result.returncode == 2
    assert "no-such-option" in result.stderr and "opsctl init --help" in result.stderr
    assert opsctl_inprocess("no-such-command", cwd=tmp_path).returncode == 2
    assert opsctl_inprocess("init", "x", "--data", "novalue", cwd=tmp_path).returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_traceback_flag_and_debug_env_show_the_trace(tmp_path):
    plain = opsctl_inprocess("status", cwd=tmp_path)
    assert "Traceback" not in plain.stderr
    flagged = opsctl_inprocess("--traceback", "status", cwd=tmp_path)
    assert flagged.returncode == 3 and "Traceback (most recent call last)" in flagged.stderr
    env = opsctl_inprocess("status", cwd=tmp_path, env={"OPSCTL_DEBUG": "1"})
    assert env.returncode == 3 and "Traceback (most recent call last)" in env.stderr


def test_invalid_opsctl_yaml_names_file_key_and_expectation(ml_project):
    (ml_project / "opsctl.yaml").write_text("project: x\nexecutor: kubernetes\n")
    result = opsctl_inprocess("status", cwd=ml_project)
    assert result.returncode == 1
    assert "opsctl.yaml: executor: expected one of docker, local, dask, got str 'kubernetes'" in result.stderr


def test_version_and_help(tmp_path):
    from opsctl import __version__

    version = opsctl_inprocess("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"opsctl {__version__}"
    help_ = opsctl_inprocess("--help", cwd=tmp_path)
    assert help_.returncode == 0
    for group in ("init", "template", "doctor", "status"):
        assert f"\n  {group} " in help_.stdout
