"""opsctl.executors.local: a stage as a host shell process, logged line by line."""

from __future__ import annotations

from opsctl.executors.base import StageInvocation
from opsctl.executors.local import LocalExecutor


def test_failing_command_output_log_and_callback(tmp_path):
    seen = []
    log_path = tmp_path / "logs" / "s.log"  # parent does not exist yet
    outcome = LocalExecutor().run(
        StageInvocation(stage="s", cmd="echo hi; echo err 1>&2; exit 3", workdir=tmp_path, log_path=log_path),
        on_line=lambda stage, line: seen.append((stage, line)),
    )
    assert outcome.exit_code == 3
    assert outcome.succeeded is False
    assert outcome.stage == "s"
    assert outcome.log_path == log_path
    assert outcome.duration >= 0
    assert log_path.read_text(encoding="utf-8").splitlines() == ["hi", "err"]
    assert seen == [("s", "hi"), ("s", "err")]


def test_succeeding_command_without_callback(tmp_path):
    log_path = tmp_path / "s.log"
    outcome = LocalExecutor().run(StageInvocation(stage="ok", cmd="echo done", workdir=tmp_path, log_path=log_path))
    assert outcome.succeeded is True
    assert outcome.exit_code == 0
    assert log_path.read_text(encoding="utf-8") == "done\n"


def test_runs_in_workdir_with_extra_env(tmp_path):
    work = tmp_path / "proj"
    work.mkdir()
    (work / "marker.txt").write_text("m")
    seen = []
    outcome = LocalExecutor().run(
        StageInvocation(
            stage="s",
            cmd='ls; echo "$OPSCTL_TEST_VAR"',
            workdir=work,
            log_path=tmp_path / "s.log",
            env={"OPSCTL_TEST_VAR": "from-invocation"},
        ),
        on_line=lambda stage, line: seen.append(line),
    )
    assert outcome.succeeded
    assert seen == ["marker.txt", "from-invocation"]


def test_log_is_rewritten_on_each_run(tmp_path):
    log_path = tmp_path / "s.log"
    log_path.write_text("old run\n")
    LocalExecutor().run(StageInvocation(stage="s", cmd="echo new", workdir=tmp_path, log_path=log_path))
    assert log_path.read_text() == "new\n"


def test_secret_values_are_masked_in_log_and_callback(tmp_path):
    from opsctl.executors.base import StageInvocation
    from opsctl.executors.local import LocalExecutor

    seen = []
    outcome = LocalExecutor().run(
        StageInvocation(
            stage="s",
            cmd='echo "token is $MY_API_TOKEN"; echo "user is $USER_NAME"',
            workdir=tmp_path,
            log_path=tmp_path / "s.log",
            env={"MY_API_TOKEN": "abcd1234", "USER_NAME": "alice"},
        ),
        on_line=lambda stage, line: seen.append(line),
    )
    assert outcome.exit_code == 0
    assert seen == ["token is ***", "user is alice"]
    assert "abcd1234" not in (tmp_path / "s.log").read_text()
