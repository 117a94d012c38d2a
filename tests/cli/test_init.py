"""`opsctl init`: a real, ready project from each kind of template, and refusals that change nothing."""

from __future__ import annotations

import json
import re
import time

import yaml

from opsctl import __version__
from tests.conftest import BIN, opsctl_inprocess, run, tree


def git(cwd, *args) -> str:
    return run(["git", *args], cwd=cwd).stdout


def test_ml_pipeline_project_is_ready(tmp_path):
    result = opsctl_inprocess("init", "demo", "--defaults", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "demo"
    for name in ("opsctl.yaml", "dvc.yaml", "params.yaml", "Dockerfile", ".copier-answers.yml", "src/train.py"):
        assert (root / name).is_file(), name
    # What to do next points at opsctl's own commands, not at running the pipeline on the host.
    next_steps = result.stderr.split("Next:", 1)[1]
    assert "opsctl run" in next_steps and "opsctl ui" in next_steps and "dvc repro" not in next_steps
    assert ".opsctl/" in (root / ".gitignore").read_text().split()
    assert ".opsctl/" in (root / ".dvcignore").read_text().split()

    # One commit, nothing left uncommitted, the data in DVC and out of Git.
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(root, "status", "--porcelain") == ""
    tracked = git(root, "ls-files").split()
    assert "data/raw/churn.csv.dvc" in tracked and "data/raw/churn.csv" not in tracked
    assert ".dvc/config" in tracked

    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    assert config["project"] == "demo" and config["executor"] == "docker"
    assert config["images"]["app"]["build_args"] == {"BASE_IMAGE": "python:3.11-slim", "INSTALL_REQUIREMENTS": "1"}

    # The embedded default remote: DVC itself can push to it and pull back the same bytes.
    dvc_config = (root / ".dvc" / "config").read_text()
    assert "remote = storage" in dvc_config and "url = ../.opsctl/remote" in dvc_config
    original = (root / "data/raw/churn.csv").read_bytes()
    run([BIN / "dvc", "push"], cwd=root)
    (root / "data/raw/churn.csv").unlink()
    run(["rm", "-rf", ".dvc/cache"], cwd=root)
    run([BIN / "dvc", "pull", "data/raw/churn.csv.dvc"], cwd=root)
    assert (root / "data/raw/churn.csv").read_bytes() == original
    assert "up to date" in run([BIN / "dvc", "status", "data/raw/churn.csv.dvc"], cwd=root).stdout


def test_json_output_and_answers(tmp_path):
    result = opsctl_inprocess(
        "init",
        "proj",
        "--name",
        "churn",
        "--data",
        "model=logistic_regression",
        "--data",
        "executor=local",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    root = tmp_path / "proj"
    assert info["project"] == "churn"
    assert info["commit"] == git(root, "rev-parse", "HEAD").strip()
    assert info["tracked"] == ["data/raw/churn.csv"]
    assert yaml.safe_load((root / "opsctl.yaml").read_text())["executor"] == "local"
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["model"] == "logistic_regression"


def test_invalid_answer_leaves_nothing(tmp_path):
    result = opsctl_inprocess("init", "proj", "--data", "project_name=Not Valid", cwd=tmp_path)
    assert result.returncode == 1
    assert "project_name" in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert list(tmp_path.iterdir()) == []


def test_non_empty_directory_is_refused_unchanged(tmp_path):
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    before = tree(target)
    result = opsctl_inprocess("init", "work", cwd=tmp_path)
    assert result.returncode == 1
    assert "not empty" in result.stderr and "--force" in result.stderr
    assert tree(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_force_renders_into_non_empty_directory(tmp_path):
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    result = opsctl_inprocess("init", "work", "--force", "--defaults", "--template", "minimal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (target / "notes.txt").read_text() == "mine\n"
    assert (target / "dvc.yaml").is_file()
    # Only what opsctl made goes into the first commit; the user's own files stay theirs to add.
    assert "notes.txt" not in git(target, "ls-files").split()
    assert git(target, "status", "--porcelain").strip() == "?? notes.txt"


def test_scaffolds_into_a_freshly_cloned_empty_repository(tmp_path):
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)])
    run(["git", "clone", "-q", str(origin), str(tmp_path / "clone")])
    result = opsctl_inprocess("init", "clone", "--template", "minimal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "clone"
    assert git(root, "remote").strip() == "origin"  # the clone's own repository, not a new one
    assert git(root, "status", "--porcelain") == ""


def test_unknown_template_lists_the_available_ones(tmp_path):
    result = opsctl_inprocess("init", "proj", "--template", "no-such-template", cwd=tmp_path)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert "no-such-template" in first
    for name in ("ml-pipeline", "data-pipeline", "minimal"):
        assert name in first
    assert list(tmp_path.iterdir()) == []


def test_unreachable_template_url(tmp_path):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    result = opsctl_inprocess("init", "proj", "--template", "https://127.0.0.1:9/templates/x.git", cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    assert "cannot fetch template" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _write_template(path, *, tasks: bool = False, version_text: str = "v1"):
    path.mkdir(parents=True, exist_ok=True)
    lines = [
        "_subdirectory: project",
        "_answers_file: .copier-answers.yml",
        "project_name:",
        "  type: str",
        "  default: x",
    ]
    if tasks:
        lines += ["_tasks:", "  - touch task-ran"]
    (path / "copier.yml").write_text("\n".join(lines) + "\n")
    project = path / "project"
    project.mkdir(exist_ok=True)
    (project / "{{ _copier_conf.answers_file }}.jinja").write_text("{{ _copier_answers|to_nice_yaml -}}\n")
    (project / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    (project / "VERSION.jinja").write_text(f"{version_text} {{{{ project_name }}}}\n")


def test_third_party_tasks_need_trust(tmp_path):
    template = tmp_path / "tpl"
    _write_template(template, tasks=True)
    refused = opsctl_inprocess("init", "a", "--template", str(template), "--defaults", cwd=tmp_path)
    assert refused.returncode == 2
    assert "--trust" in refused.stderr
    assert not (tmp_path / "a").exists()

    trusted = opsctl_inprocess("init", "b", "--template", str(template), "--defaults", "--trust", cwd=tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "b" / "task-ran").exists()
    assert (tmp_path / "b" / "VERSION").read_text() == "v1 b\n"


def test_git_template_can_be_updated_with_copier(tmp_path):
    template = tmp_path / "tpl"
    _write_template(template)
    run(["git", "init", "-q"], cwd=template)
    run(["git", "add", "-A"], cwd=template)
    run(["git", "commit", "-qm", "v1"], cwd=template)
    run(["git", "tag", "v1.0.0"], cwd=template)

    result = opsctl_inprocess("init", "proj", "--template", str(template), "--defaults", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "proj"
    assert (root / "VERSION").read_text() == "v1 proj\n"
    answers = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1.0.0"

    _write_template(template, version_text="v2")
    run(["git", "commit", "-qam", "v2"], cwd=template)
    run(["git", "tag", "v2.0.0"], cwd=template)
    run([BIN / "copier", "update", "--defaults", "--skip-answered"], cwd=root, input="", check=True)
    assert (root / "VERSION").read_text() == "v2 proj\n"


def test_adopt_existing_dvc_project(tmp_path):
    root = tmp_path / "existing"
    root.mkdir()
    run(["git", "init", "-q"], cwd=root)
    run([BIN / "dvc", "init", "-q"], cwd=root)
    (root / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    (root / ".gitignore").write_text("*.log\n")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "dvc project"], cwd=root)
    head = git(root, "rev-parse", "HEAD")

    # Without opsctl.yaml it is already a project, on defaults (host executor).
    status = opsctl_inprocess("status", "--json", cwd=root)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)[0]["stage"] == "hello"

    result = opsctl_inprocess("init", "--existing", cwd=root)
    assert result.returncode == 0, result.stderr
    changed = sorted(line[3:] for line in git(root, "status", "--porcelain").splitlines())
    assert changed == [".dvcignore", ".gitignore", "opsctl.yaml"]
    assert (root / ".gitignore").read_text() == "*.log\n.opsctl/\n"
    assert git(root, "rev-parse", "HEAD") == head  # nothing committed behind the user's back
    assert yaml.safe_load((root / "opsctl.yaml").read_text())["executor"] == "local"

    again = opsctl_inprocess("init", "--existing", cwd=root)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_adopt_refuses_template_options(tmp_path):
    run(["git", "init", "-q"], cwd=tmp_path)
    run([BIN / "dvc", "init", "-q"], cwd=tmp_path)
    result = opsctl_inprocess("init", "--existing", "--template", "minimal", cwd=tmp_path)
    assert result.returncode == 2 and "--template" in result.stderr
    assert not (tmp_path / "opsctl.yaml").exists()


def test_status_of_a_project_without_stages(tmp_path):
    run(["git", "init", "-q"], cwd=tmp_path)
    run([BIN / "dvc", "init", "-q"], cwd=tmp_path)
    assert json.loads(opsctl_inprocess("status", "--json", cwd=tmp_path, check=True).stdout) == []
    assert "No pipeline stages yet" in opsctl_inprocess("status", cwd=tmp_path, check=True).stderr


def test_adopt_requires_dvc(tmp_path):
    run(["git", "init", "-q"], cwd=tmp_path)
    result = opsctl_inprocess("init", "--existing", cwd=tmp_path)
    assert result.returncode == 3
    assert "dvc init" in result.stderr
    assert not (tmp_path / "opsctl.yaml").exists()


def test_missing_git_identity_still_commits_and_warns(tmp_path):
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    env = {"GIT_CONFIG_GLOBAL": str(empty), "EMAIL": "", "GIT_AUTHOR_NAME": "", "GIT_AUTHOR_EMAIL": ""}
    result = opsctl_inprocess("init", "proj", "--template", "minimal", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert git(tmp_path / "proj", "rev-list", "--count", "HEAD").strip() == "1"


def test_prompts_on_a_terminal_without_defaults(tmp_path):
    """Without --defaults and on a terminal, the template's questions are asked."""
    import pexpect

    child = pexpect.spawn(
        str(BIN / "python"),
        ["-m", "opsctl", "init", "proj", "--template", "minimal"],
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.expect("Project name")
    child.expect("proj")  # the offered default (the directory name) is drawn
    # prompt_toolkit drops keys typed before it finishes its terminal handshake;
    # give it a moment, then Ctrl-U clears the offered default.
    time.sleep(1.0)
    child.sendline("\x15asked-name")
    for _ in range(4):  # description, base image, install requirements, executor: accept the defaults
        child.expect(r"\?")
        child.sendline("")
    child.expect("pip requirement CI installs opsctl from")
    child.expect(re.escape(f"opsctl=={__version__}"))  # offered: the opsctl that scaffolds the project
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert "Created asked-name" in screen
    assert "Adding..." not in screen and "files/s" not in screen  # no DVC progress bars leak through
    assert yaml.safe_load((tmp_path / "proj" / "opsctl.yaml").read_text())["project"] == "asked-name"
    assert f"pip install 'opsctl=={__version__}'" in (tmp_path / "proj" / ".gitlab-ci.yml").read_text()


def test_terminal_output_is_clean(tmp_path):
    """On a terminal: a spinner, then the summary; DVC's own progress bars never leak through."""
    import pexpect

    child = pexpect.spawn(
        str(BIN / "python"),
        ["-m", "opsctl", "init", "proj", "--defaults"],
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert child.exitstatus == 0, screen
    assert "Created proj" in screen
    assert "Adding..." not in screen and "files/s" not in screen and "Checking out" not in screen
