"""A stage container cannot reach the host through the workspace: the files that Git, DVC
and opsctl read (and Git's hooks) are read-only in it, opsctl's own directory is hidden,
and a pids limit stops a fork bomb. Real engine, busybox image."""

from __future__ import annotations

import os

import pytest

from opsctl.executors.base import ContainerSettings, StageInvocation
from opsctl.executors.docker import DockerExecutor
from tests.conftest import git_dvc_project, run
from tests.executors.test_docker_executor import IMAGE, busybox_image, invoke  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("busybox_image")]

PROTECTED_FILES = [".git/config", ".git/HEAD", ".dvc/config", "dvc.yaml", "dvc.lock", "opsctl.yaml", "opsctl.lock"]

# For each path: try to overwrite it, to replace it by a rename, and to delete it; say what happened.
TRY_EACH = """
for p in {paths}; do
  if (echo pwned > "$p") 2>/dev/null; then echo "WROTE $p"; else echo "refused write $p"; fi
  if (echo pwned > "$p.new" && mv -f "$p.new" "$p") 2>/dev/null; then echo "REPLACED $p"; else echo "refused mv $p"; fi
  rm -f "$p.new" 2>/dev/null
  if rm -f "$p" 2>/dev/null; then echo "DELETED $p"; else echo "refused rm $p"; fi
done
"""

PLANT_HOOK = (
    "if (echo 'touch {marker}' > .git/hooks/post-commit && chmod +x .git/hooks/post-commit) 2>/dev/null; "
    "then echo 'PLANTED hook'; else echo 'refused hook'; fi; "
    "if mkdir .git/hooks/sub 2>/dev/null; then echo 'MADE dir in .git'; else echo 'refused mkdir .git'; fi; "
    "if rm -rf .git 2>/dev/null; then echo 'DELETED .git'; else echo 'refused rm .git'; fi; "
    "if mv .dvc dvc-moved 2>/dev/null; then echo 'MOVED .dvc'; else echo 'refused mv .dvc'; fi"
)

PEEK_OPSCTL = (
    "echo listing:$(ls -A .opsctl | tr '\\n' ' '); "
    "if cat .opsctl/opsctl.db 2>/dev/null; then echo 'READ db'; else echo 'cannot read db'; fi; "
    "if touch .opsctl/new 2>/dev/null; then echo 'WROTE .opsctl'; else echo 'refused .opsctl'; fi"
)


def _project(root) -> None:
    """A Git + DVC project with every protected file present (a project after its first run)."""
    git_dvc_project(root)
    (root / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / "opsctl.yaml").write_text("project: p\nexecutor: docker\n")
    (root / "opsctl.lock").write_text("stages: {}\n")
    (root / ".opsctl" / "runs").mkdir(parents=True)
    (root / ".opsctl" / "opsctl.db").write_text("the run store\n")


def _sandbox_lines(root, cmd, *, workdir=None, **settings):
    invocation = StageInvocation(
        stage="s",
        cmd=cmd,
        workdir=workdir or root,
        root=root,
        log_path=root / ".opsctl" / "runs" / "r1" / "s.log",
        run_id="run-sandbox",
        container=ContainerSettings(image=IMAGE, **settings),
    )
    lines: list[str] = []
    executor = DockerExecutor()
    try:
        outcome = executor.run(invocation, on_line=lambda stage, line: lines.append(line))
    finally:
        executor.close("run-sandbox")
    return outcome, lines


def _everything(root) -> dict[str, bytes]:
    """tree() leaves .git out; here .git is what matters: every file, hooks included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_pipeline_files_are_read_only_and_outputs_still_land(tmp_path):
    root = tmp_path / "p"
    _project(root)
    before = _everything(root)
    cmd = TRY_EACH.format(paths=" ".join(PROTECTED_FILES)) + "echo result > out.txt; mkdir -p tmp && echo x > tmp/s"
    outcome, lines = _sandbox_lines(root, cmd)
    assert outcome.exit_code == 0, lines
    for path in PROTECTED_FILES:
        assert f"refused write {path}" in lines, lines
        assert f"refused mv {path}" in lines, lines
        assert f"refused rm {path}" in lines, lines
    after = _everything(root)
    assert after.pop("out.txt") == b"result\n"  # the stage's own output and scratch files are written
    assert after.pop("tmp/s") == b"x\n"
    after.pop(".opsctl/runs/r1/s.log")
    assert after == before  # nothing else changed on the host


def test_a_stage_cannot_plant_a_git_hook_nor_remove_the_repositories(tmp_path):
    root = tmp_path / "p"
    _project(root)
    before = _everything(root)
    marker = tmp_path / "pwned"
    outcome, lines = _sandbox_lines(root, PLANT_HOOK.format(marker=marker))
    assert outcome.exit_code == 0, lines
    assert lines == ["refused hook", "refused mkdir .git", "refused rm .git", "refused mv .dvc"]
    assert not (root / ".git" / "hooks" / "post-commit").exists()
    after = _everything(root)
    after.pop(".opsctl/runs/r1/s.log")
    assert after == before
    # The proof that matters: the next commit on the host runs no hook of the stage's.
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "after the stage"], cwd=root)
    assert not marker.exists()


def test_opsctl_state_is_not_visible(tmp_path):
    root = tmp_path / "p"
    _project(root)
    outcome, lines = _sandbox_lines(root, PEEK_OPSCTL)
    assert outcome.exit_code == 0, lines
    assert lines == ["listing:", "cannot read db", "refused .opsctl"]
    assert (root / ".opsctl" / "opsctl.db").read_text() == "the run store\n"
    assert not (root / ".opsctl" / "new").exists()


def test_a_stage_in_a_subfolder_sees_the_same_protection(tmp_path):
    root = tmp_path / "p"
    _project(root)
    (root / "src").mkdir()
    before = (root / "dvc.yaml").read_bytes()
    outcome, lines = _sandbox_lines(
        root,
        "pwd; if (echo pwned > ../dvc.yaml) 2>/dev/null; then echo WROTE; else echo refused; fi; "
        "if (echo x > ../.git/hooks/pre-commit) 2>/dev/null; then echo HOOK; else echo refused; fi; echo ok > here.txt",
        workdir=root / "src",
    )
    assert outcome.exit_code == 0, lines
    assert lines == ["/workspace/src", "refused", "refused"]
    assert (root / "dvc.yaml").read_bytes() == before
    assert (root / "src" / "here.txt").read_text() == "ok\n"


def test_a_worktrees_git_file_is_read_only_too(tmp_path):
    main = tmp_path / "main"
    _project(main)
    run(["git", "add", "-A"], cwd=main)
    run(["git", "commit", "-qm", "init"], cwd=main)
    worktree = tmp_path / "wt"
    run(["git", "worktree", "add", "-q", str(worktree)], cwd=main)
    git_file = (worktree / ".git").read_text()
    assert git_file.startswith("gitdir:")  # a file, pointing outside the workspace
    outcome, lines = _sandbox_lines(
        worktree,
        "if (echo 'gitdir: /workspace/evil' > .git) 2>/dev/null; then echo WROTE; else echo refused; fi; "
        "if rm -f .git 2>/dev/null; then echo DELETED; else echo refused; fi",
    )
    assert outcome.exit_code == 0, lines
    assert lines == ["refused", "refused"]
    assert (worktree / ".git").read_text() == git_file


def test_a_git_repository_planted_where_there_was_none_is_removed(tmp_path):
    """A DVC project in a subfolder of its Git repository has no .git of its own: a stage
    that makes one would have Git on the host use it (hooks, core.fsmonitor)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], cwd=repo)
    root = repo / "project"
    root.mkdir()
    run(["dvc", "init", "-q", "--subdir"], cwd=root)
    (root / "dvc.yaml").write_text("stages: {}\n")
    outcome, lines = _sandbox_lines(
        root,
        "mkdir -p .git/hooks .git/objects .git/refs && echo 'ref: refs/heads/main' > .git/HEAD && "
        "printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' > .git/config && echo planted",
    )
    assert "planted" in lines
    assert not outcome.succeeded
    assert lines[-1] == "opsctl: the stage created .git, which stages may not write; removed it"
    assert not (root / ".git").exists()
    top = run(["git", "rev-parse", "--show-toplevel"], cwd=root).stdout.strip()
    assert os.path.realpath(top) == os.path.realpath(repo)  # Git on the host still finds the real repository


def _pids_max() -> str:
    # cgroup v2 at the top; v1 under pids/
    return "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"


def test_a_default_pids_limit_and_a_per_stage_one(tmp_path):
    outcome, lines = invoke(tmp_path, _pids_max())
    assert outcome.exit_code == 0
    assert [line for _, line in lines] == ["4096"]
    outcome, lines = invoke(tmp_path, _pids_max(), pids=64)
    assert [line for _, line in lines] == ["64"]


def test_a_fork_bomb_stops_at_the_limit(tmp_path):
    # Up to 40 background processes under a limit of 16: a fork fails, the shell gives up,
    # the container ends. (Without a limit the loop finishes and says "all 40".)
    outcome, lines = invoke(
        tmp_path,
        "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo $i; done; echo all 40",
        pids=16,
    )
    text = [line for _, line in lines]
    assert not outcome.succeeded and "all 40" not in text, text
    assert any("can't fork" in line for line in text), text
    assert max(int(line) for line in text if line.isdigit()) < 16


def test_the_engine_refuses_a_missing_network_by_name(docker_engine):
    from opsctl.adapters.docker import network_exists

    name = f"opsctl-test-{os.getpid()}"
    docker_engine.networks.create(name)
    try:
        assert network_exists(name)
        assert not network_exists(name[:-1])  # the engine's filter matches substrings; names must match exactly
        assert not network_exists(f"{name}-x")
    finally:
        docker_engine.networks.get(name).remove()
    assert not network_exists(name)
