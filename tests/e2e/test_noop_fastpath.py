"""The no-op fast path's test matrix (issue 18): after each kind of change (tests/noop_matrix.py)
the answer `opsctl status` and `opsctl run` give equals opsctl's full check and `dvc status`,
and the fast path hits or falls back to DVC exactly as designed, so an answer from a record
that no longer holds fails here. Real Git, real DVC; the base project ran in Docker."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from opsctl.core import plan_cache
from opsctl.core.pipeline import Plan, cached_plan, make_plan
from opsctl.core.project import open_project
from tests.cli.test_runs import copy_project, shared_project
from tests.conftest import run
from tests.noop_matrix import FALL_BACK, HIT, SCENARIOS, Scenario, build, dvc

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def base(tmp_path_factory, docker_engine) -> Path:
    """The reproduced project, built once per test session (every worker copies it)."""
    info = shared_project(tmp_path_factory, "noop-matrix", lambda d: {"root": str(build(d / "p"))})
    return Path(info["root"])


def past_racy_window() -> None:
    """Let the clock pass the window in which plan_cache.save refuses a record (a change that
    recent might not have been seen by the check): the record a check makes now is kept."""
    time.sleep(plan_cache.RACY_NS / 1e9 + 0.02)


def verdict(plan: Plan) -> tuple:
    """Everything `opsctl status` and `opsctl run` read from a plan."""
    steps = [(s.name, s.reasons, s.own_change, s.upstream_stale, s.image_changed, s.upstream) for s in plan.steps]
    return steps, plan.changed_data_sources, plan.warnings, [(g.stage, g.when, g.dataset) for g in plan.gates]


def stale_in_dvcs_eyes(plan: Plan) -> set[str]:
    """The stages with changes of their own that DVC can see (not only their image)."""
    return {
        s.name
        for s in plan.steps
        if s.own_change and not (s.image_changed and len([r for r in s.reasons if not r.startswith("upstream ")]) == 1)
    }


def dvc_status(root: Path) -> dict:
    """What `dvc status --json` prints (test_dvc_status_in_process_is_the_cli_s proves it)."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:  # DVC names stages relative to the working directory
        return repo.status()


def check(project, stats: plan_cache.Stats | None = None) -> Plan | None:
    return cached_plan(project, [], executor=project.config.executor, force=False, stats=stats)


def fresh_copy(base: Path, dest: Path, scenario: Scenario | None = None):
    """A copy of the base project whose own first full plan is recorded, and checked to hit."""
    root = copy_project(base, dest)
    # The copy is a project of its own: its own cache, and outputs DVC copied there (no links to the base).
    assert not any(p.is_symlink() for p in (root / ".dvc" / "cache", root / "model.txt", root / "prepared" / "raw.csv"))
    if scenario is not None and scenario.prepare is not None:
        scenario.prepare(root)
    past_racy_window()
    project = open_project(root)
    first = make_plan(project, [], executor=None, force=False)
    assert not first.cached, "a copy answered from the record of the project it was copied from"
    assert not first.to_run and not first.changed_data_sources, verdict(first)
    stats = plan_cache.Stats()
    assert check(project, stats) is not None, f"an unchanged pipeline fell back: {stats.reason}"
    return root, project


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fast_path_answers_as_dvc_does(base, tmp_path, scenario):
    root = tmp_path / "p"
    try:
        root, project = fresh_copy(base, root, scenario)
        scenario.change(root)
        past_racy_window()
        stats = plan_cache.Stats()
        answer = check(project, stats)
        assert (HIT if stats.hit else FALL_BACK) == scenario.outcome, stats.reason
        if answer is None:  # what make_plan does on a miss: DVC's full check, recorded for the next time
            answer = make_plan(project, [], executor=None, force=False)
            assert not answer.cached
            again = plan_cache.Stats()
            kept = check(project, again)
            assert kept is not None, f"the record was not refreshed after a fall-back: {again.reason}"
            assert verdict(kept) == verdict(answer)
        else:
            full = make_plan(project, [], executor=None, force=False, fast=False)
            assert verdict(answer) == verdict(full)
        status = dvc_status(root)
        assert stale_in_dvcs_eyes(answer) == {name for name in status if not name.endswith(".dvc")}, status
        assert answer.changed_data_sources == sorted(name for name in status if name.endswith(".dvc")), status
        if scenario.docker:  # DVC can't see an image: opsctl's full check says it is stale for it
            (package,) = [s for s in answer.steps if s.name == "package"]
            assert package.image_changed and package.reasons == ["image packer changed (image id)"], package
    finally:
        if scenario.cleanup is not None:
            scenario.cleanup(root)


def test_dvc_status_in_process_is_the_cli_s(base, tmp_path):
    """One scenario through the real `dvc status --json`: the in-process status above is it."""
    root = copy_project(base, tmp_path / "p")
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("x: 1", "x: 2"))
    with open(root / "data" / "raw.csv", "a") as f:
        f.write("7,8\n")
    cli = json.loads(dvc("status", "--json", cwd=root).stdout)
    assert cli == json.loads(json.dumps(dvc_status(root)))
    assert set(cli) == {"train", "prepare", "data/raw.csv.dvc"}, cli


def test_a_copied_project_does_not_answer_from_the_original_s_record(base, tmp_path):
    """`cp -r` of a project takes its `.opsctl/` along: its record watches the original's files."""
    root, project = fresh_copy(base, tmp_path / "first")
    copy = copy_project(root, tmp_path / "second")
    with open(copy / "src" / "train.sh", "a") as f:
        f.write("echo changed >> model.txt\n")
    stats = plan_cache.Stats()
    assert check(open_project(copy), stats) is None and stats.reason == "made for a project elsewhere (copied or moved)"
    plan = make_plan(open_project(copy), [], executor=None, force=False)
    assert [s.name for s in plan.to_run] == ["train", "evaluate@a", "evaluate@b", "package"]
    assert check(project) is not None  # the original's record still holds for the original


def test_a_stage_dvc_repro_is_writing_is_not_answered_from_the_record(base, tmp_path):
    """While `dvc repro` runs a stage's command it names the outputs in DVC's rwlock: the full
    check refuses to answer then (`opsctl status` exits 1 naming it), and so must the fast path."""
    import subprocess

    from opsctl.errors import ProjectBusyError

    root, project = fresh_copy(base, tmp_path / "p")
    writer = subprocess.Popen(["sleep", "60"])
    try:
        entry = {"pid": writer.pid, "cmd": "dvc repro"}
        (root / ".dvc" / "tmp" / "rwlock").write_text(json.dumps({"write": {str(root / "package.txt"): entry}}))
        stats = plan_cache.Stats()
        assert check(project, stats) is None and stats.reason == "dvc repro is writing a stage's outputs"
        with pytest.raises(ProjectBusyError):
            make_plan(project, [], executor=None, force=False)
    finally:
        writer.kill()
        writer.wait()


def test_a_config_changed_after_dvc_read_it_is_not_kept(base, tmp_path):
    """DVC reads its config when the repo opens: a run that waited for the lock plans later.
    A config changed in between may not be in the plan, so no record is kept of that plan."""
    from opsctl.adapters.dvc_run import RunSession

    root, project = fresh_copy(base, tmp_path / "p")
    with RunSession(root, read_only=True) as session:
        past_racy_window()
        with open(root / ".dvc" / "config", "a") as f:
            f.write("[core]\n    autostage = true\n")
        past_racy_window()
        make_plan(project, [], executor=None, force=False, session=session)
    stats = plan_cache.Stats()
    assert check(project, stats) is None and stats.reason == "no cache"


def test_git_ignore_rules_above_the_project_and_those_of_a_linked_work_tree_are_watched(tmp_path):
    """DVC skips a `dvc.yaml` Git ignores: in a project in a subdirectory of its Git work tree
    (`dvc init --subdir`) the `.gitignore` files above it count too. A linked work tree
    (`git worktree add`) keeps its Git config and `info/exclude` in the main repository: watched
    there (DVC 3 does not apply that `info/exclude` itself; the answer is DVC's either way)."""
    top = tmp_path / "repo"
    top.mkdir()
    run(["git", "init", "-q"], cwd=top)
    proj = top / "proj"
    (proj / "sub").mkdir(parents=True)
    dvc("init", "-q", "--subdir", cwd=proj)
    (proj / "opsctl.yaml").write_text("project: sub\nexecutor: local\n")
    (proj / "dvc.yaml").write_text("stages:\n  top:\n    cmd: echo top > top.txt\n    outs: [top.txt]\n")
    (proj / "sub" / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > hi.txt\n    outs: [hi.txt]\n")
    run(["git", "add", "-A"], cwd=top)
    run(["git", "commit", "-qm", "a project in a subdirectory"], cwd=top)
    run(["git", "worktree", "add", "-q", str(tmp_path / "linked")], cwd=top)

    for root, ignore in [(proj, top / ".gitignore"), (tmp_path / "linked" / "proj", top / ".git" / "info" / "exclude")]:
        project = open_project(root)
        # A project's first check keeps no record: DVC makes `.dvc/tmp/` and opsctl `.opsctl/` while
        # it runs, in directories DVC walked. The next one does.
        make_plan(project, [], executor=None, force=False)
        past_racy_window()
        plan = make_plan(project, [], executor=None, force=False)
        assert [s.name for s in plan.steps] == ["top", "sub/dvc.yaml:hello"]
        stats = plan_cache.Stats()
        assert check(project, stats) is not None, stats.reason
        with open(ignore, "a") as f:
            f.write("proj/sub/\n")
        past_racy_window()
        stats = plan_cache.Stats()
        assert check(project, stats) is None, f"{ignore} is not watched"
        assert stats.reason == f"{ignore} changed"
        after = make_plan(project, [], executor=None, force=False)
        assert verdict(after) == verdict(make_plan(project, [], executor=None, force=False, fast=False))
        if root == proj:
            assert [s.name for s in after.steps] == ["top"]
