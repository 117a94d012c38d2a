"""`opsctl model ...` on a real Git + DVC project, checked against the real `gto` CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from opsctl.core import registry
from opsctl.core.project import open_project
from tests.conftest import BIN, opsctl_inprocess, run

MODEL = "models/model.pkl"


def git(cwd, *args) -> str:
    return run(["git", *args], cwd=cwd).stdout


def tags(cwd) -> set[str]:
    return set(git(cwd, "tag", "--list").split())


def head(cwd) -> str:
    return git(cwd, "rev-parse", "HEAD").strip()


def gto(cwd, *args):
    return run([BIN / "gto", *args], cwd=cwd)


def opsctl_json(cwd, *args):
    result = opsctl_inprocess("model", *args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def retrain(project: Path, n_estimators: int) -> None:
    """A new model: another hyper-parameter, the train stage re-run by DVC, committed."""
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", f"n_estimators: {n_estimators}"))
    run([BIN / "dvc", "repro", "-q", "train"], cwd=project)
    git(project, "add", "-A")
    git(project, "commit", "-qm", f"train with {n_estimators} trees")


@pytest.fixture(scope="session")
def trained_template(ml_project_template, tmp_path_factory) -> Path:
    """The ml project with its pipeline run once and committed: a model to register."""
    dest = tmp_path_factory.mktemp("trained") / "ml"
    shutil.copytree(ml_project_template, dest, symlinks=True)
    run([BIN / "dvc", "repro", "-q"], cwd=dest)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "first model")
    return dest


@pytest.fixture
def project(trained_template, tmp_path) -> Path:
    dest = tmp_path / "ml"
    shutil.copytree(trained_template, dest, symlinks=True)
    return dest


def gto_stages(cwd) -> dict[str, str]:
    state = json.loads(gto(cwd, "show", "--json").stdout)
    return {stage: version for stage, version in state["churn"]["stage"].items() if version}


def test_register_promote_rollback_and_gto_reads_it_all(project):
    trained = head(project)
    first = opsctl_json(project, "register", "churn", MODEL)
    assert first["version"] == "v0.0.1" and first["tag"] == "churn@v0.0.1" and first["path"] == MODEL
    # dvc.yaml now declares the model, in a commit of its own on top of the trained one; the tag is on it.
    assert first["annotation_commit"] == first["commit"] == head(project)
    assert git(project, "rev-parse", "HEAD~1").strip() == trained
    assert git(project, "show", "--name-only", "--format=%s", "HEAD").split() == [
        "opsctl:",
        "register",
        "model",
        "churn",
        "dvc.yaml",
    ]
    assert "artifacts:\n  churn:\n    path: models/model.pkl\n    type: model\n" in (project / "dvc.yaml").read_text()
    assert "stages:\n  prepare:" in (project / "dvc.yaml").read_text()  # the rest kept as it was
    assert git(project, "cat-file", "-t", "churn@v0.0.1").strip() == "tag"  # annotated, as GTO requires
    message = git(project, "tag", "-l", "--format=%(contents)", "churn@v0.0.1")
    assert message.startswith("Registering artifact churn version v0.0.1\n")
    assert f"md5: {first['md5']}" in message and f"path: {MODEL}" in message

    # The same commit cannot hold a second version (GTO allows one per commit).
    again = opsctl_inprocess("model", "register", "churn", MODEL, cwd=project)
    assert again.returncode == 1 and "registered at this commit" in again.stderr
    assert tags(project) == {"churn@v0.0.1"}

    retrain(project, 50)
    second = opsctl_json(project, "register", "churn", MODEL)
    assert second["version"] == "v0.0.2" and second["annotation_commit"] is None and second["commit"] == head(project)
    assert second["md5"] != first["md5"]
    git(project, "commit", "-q", "--allow-empty", "-m", "release notes")
    third = opsctl_inprocess("model", "register", "churn", f"./{MODEL}", "--version", "1.0.0", cwd=project)
    assert third.returncode == 0, third.stderr
    assert "git push" in third.stderr  # tags are local: the output says how to share them

    opsctl_json(project, "promote", "churn", "0.0.1", "--to", "prod")
    promoted = opsctl_json(project, "promote", "churn", "v0.0.2", "--to", "prod")
    assert promoted == {
        "name": "churn",
        "stage": "prod",
        "version": "v0.0.2",
        "from": "v0.0.1",
        "rollback": False,
        "tag": "churn#prod#2",
        "commit": second["commit"],
    }
    opsctl_json(project, "promote", "churn", "1.0.0", "--to", "staging")

    listed = opsctl_json(project, "list")
    assert listed == [{"name": "churn", "latest": "v1.0.0", "stages": {"prod": "v0.0.2", "staging": "v1.0.0"}}]
    assert gto_stages(project) == listed[0]["stages"]

    before = tags(project)
    rolled = opsctl_json(project, "rollback", "churn", "--stage", "prod")
    assert (rolled["version"], rolled["from"], rolled["rollback"]) == ("v0.0.1", "v0.0.2", True)
    assert tags(project) == before | {rolled["tag"]}  # a new tag; none deleted
    assert rolled["tag"] == "churn#prod#4" and rolled["commit"] == first["commit"]
    assert opsctl_json(project, "list")[0]["stages"] == gto_stages(project) == {"prod": "v0.0.1", "staging": "v1.0.0"}

    history = opsctl_json(project, "history", "churn")
    assert [(e["event"], e["version"], e["stage"], e["from"], e["to"]) for e in history] == [
        ("rollback", "v0.0.1", "prod", "v0.0.2", "v0.0.1"),
        ("promotion", "v1.0.0", "staging", None, "v1.0.0"),
        ("promotion", "v0.0.2", "prod", "v0.0.1", "v0.0.2"),
        ("promotion", "v0.0.1", "prod", None, "v0.0.1"),
        ("registration", "v1.0.0", None, None, None),
        ("registration", "v0.0.2", None, None, None),
        ("registration", "v0.0.1", None, None, None),
    ]
    assert all(e["author"] == "opsctl tests" and e["at"] for e in history)
    assert registry.version_artifact(open_project(project), "churn", "v0.0.2") == (MODEL, second["md5"], None)

    shown = opsctl_json(project, "show", "churn")
    assert shown["path"] == MODEL and shown["latest"] == "v1.0.0"
    assert [(v["version"], v["commit"], v["stages"], v["md5"]) for v in shown["versions"]] == [
        ("v1.0.0", head(project), ["staging"], second["md5"]),
        ("v0.0.2", second["commit"], [], second["md5"]),
        ("v0.0.1", first["commit"], ["prod"], first["md5"]),
    ]
    # GTO reads the same versions, commits and stages, and its history takes opsctl's messages.
    theirs = json.loads(gto(project, "show", "churn", "--json").stdout)
    assert [(v["version"], v["commit_hexsha"], [s["stage"] for s in v["stages"]]) for v in theirs] == [
        (v["version"], v["commit"], v["stages"]) for v in shown["versions"]
    ]
    assert len(json.loads(gto(project, "history", "churn", "--json").stdout)) == len(history)

    # Nothing earlier left to roll back to; unknown versions and models: errors, no tag.
    before = tags(project)
    for args, code, message in [
        (["rollback", "churn", "--stage", "prod"], 1, "nothing to roll back to"),
        (["promote", "churn", "9.9.9", "--to", "prod"], 2, "churn has no version v9.9.9"),
        (["promote", "nope", "0.0.1", "--to", "prod"], 2, "no model named 'nope'"),
        (["promote", "churn", "0.0.1", "--to", "prod"], 1, "in stage prod already"),
        (["promote", "churn", "1.0", "--to", "prod"], 2, "invalid version"),
        (["rollback", "churn", "--stage", "dev"], 2, "no version in stage dev"),
        (["show", "nope"], 2, "no model named 'nope'"),
    ]:
        result = opsctl_inprocess("model", *args, cwd=project)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr.splitlines()[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert tags(project) == before


def test_refused_registrations_change_nothing(project):
    def refused(*args, code=1, message):
        before = (head(project), tags(project), (project / "dvc.yaml").read_bytes())
        result = opsctl_inprocess("model", "register", *args, cwd=project)
        assert result.returncode in (code if isinstance(code, tuple) else (code,)), result.stderr
        assert message in result.stderr.splitlines()[0], result.stderr
        assert "Traceback" not in result.stderr
        assert (head(project), tags(project), (project / "dvc.yaml").read_bytes()) == before

    refused("churn", "params.yaml", message="params.yaml is not tracked by DVC")
    refused("churn", "models/other.pkl", message="models/other.pkl is not tracked by DVC")
    refused("churn", "data/features/train.csv", message="inside data/features, which DVC tracks as a whole")
    refused("churn", MODEL, "--version", "1.2", code=2, message="invalid version '1.2'")
    refused("churn!", MODEL, code=2, message="invalid model name 'churn!'")
    refused("churn", "../elsewhere.pkl", code=2, message="outside the project")
    refused("churn", MODEL, "--run", "no-such-run", code=(1, 2), message="run")  # checked before anything changes

    # The workspace differs from what dvc.lock (and HEAD) records.
    model = project / MODEL
    original = model.read_bytes()
    model.write_bytes(original + b"tampered")
    refused("churn", MODEL, message=f"{MODEL} differs from what dvc.lock records (modified)")
    # Recorded in dvc.lock, but that is not committed.
    run([BIN / "dvc", "commit", "-fq", "train"], cwd=project)
    refused("churn", MODEL, message=f"the version of {MODEL} in dvc.lock is not committed")
    git(project, "checkout", "-q", "dvc.lock")
    model.write_bytes(original)

    # dvc.yaml has the user's own uncommitted edits: opsctl will not commit them with its annotation.
    dvcyaml = project / "dvc.yaml"
    dvcyaml.write_text(dvcyaml.read_text() + "# my note\n")
    refused("churn", MODEL, message="dvc.yaml has uncommitted changes")
    git(project, "checkout", "-q", "dvc.yaml")

    assert opsctl_inprocess("model", "register", "churn", MODEL, cwd=project).returncode == 0
    assert tags(project) == {"churn@v0.0.1"}


def test_reads_tags_that_gto_wrote_and_numbers_after_them(project):
    with (project / "dvc.yaml").open("a") as dvcyaml:  # declared by hand, as DVC's docs show
        dvcyaml.write(f"artifacts:\n  churn:\n    path: {MODEL}\n    type: model\n")
    git(project, "commit", "-qam", "declare churn")
    gto(project, "register", "churn", "HEAD")  # GTO's own default message and version
    gto(project, "assign", "churn", "--version", "v0.0.1", "--stage", "dev")
    gto(project, "register", "legacy", "HEAD~1")
    time.sleep(1.1)  # tag times count seconds: a deprecation in the same second is ambiguous for GTO too
    gto(project, "deprecate", "legacy")
    git(project, "tag", "churn#prod#7")  # lightweight: GTO ignores it, but its number counts

    assert opsctl_json(project, "list") == [{"name": "churn", "latest": "v0.0.1", "stages": {"dev": "v0.0.1"}}]
    assert list(json.loads(gto(project, "show", "--json").stdout)) == ["churn"]
    shown = opsctl_json(project, "show", "churn")
    assert [(v["version"], v["stages"], v["md5"]) for v in shown["versions"]] == [("v0.0.1", ["dev"], None)]
    assert opsctl_json(project, "show", "legacy")["deprecated"] is True
    # Lineage's start (NAME@VERSION -> path, hash, run): from dvc.yaml and dvc.lock at the version's commit.
    recorded = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]
    assert registry.version_artifact(open_project(project), "churn", "0.0.1") == (MODEL, recorded, None)

    promoted = opsctl_json(project, "promote", "churn", "0.0.1", "--to", "prod")
    assert promoted["tag"] == "churn#prod#8"
    assert gto_stages(project) == {"dev": "v0.0.1", "prod": "v0.0.1"}
    assert [e["event"] for e in opsctl_json(project, "history", "churn")] == ["promotion", "promotion", "registration"]

    human = opsctl_inprocess("model", "list", cwd=project)  # off a terminal: a tab-separated table
    assert human.stdout.splitlines() == ["name\tlatest\tdev\tprod", "churn\tv0.0.1\tv0.0.1\tv0.0.1"]


def test_outside_a_project(tmp_path):
    assert opsctl_inprocess("model", "list", cwd=tmp_path).returncode == 3
