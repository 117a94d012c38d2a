"""opsctl.core.pipeline: how DVC's change reports become reasons, and stale propagation."""

from __future__ import annotations

import pytest

from opsctl.adapters import dvc as dvc_adapter
from opsctl.adapters.dvc import PipelineStage, StageChange
from opsctl.core.config import default_config
from opsctl.core.pipeline import _describe, pipeline_status
from opsctl.core.project import Project

NEVER_RUN = "never run (no dvc.lock entry)"


def stage(name, *changes, upstream=(), cmd=None):
    return PipelineStage(
        name=name, dvcfile="dvc.yaml", cmd=cmd or f"python {name}.py", deps=(), outs=(),
        upstream=tuple(upstream), changes=tuple(changes),
    )


@pytest.fixture
def project(tmp_path):
    return Project(root=tmp_path, config=default_config(tmp_path), has_config_file=False)


@pytest.fixture
def fake_dvc(monkeypatch):
    """Set what the DVC adapter reports; records the root it was asked about."""
    calls = []

    def install(stages):
        def fake(root):
            calls.append(root)
            return list(stages)

        monkeypatch.setattr(dvc_adapter, "pipeline_status", fake)
        return calls

    return install


# -- _describe ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (StageChange("never-run", None, "no entry in dvc.lock"), NEVER_RUN),
        (StageChange("param", "params.yaml:train.n", "modified"), "param train.n modified"),
        (StageChange("param", "conf/p.yaml:a:b", "new"), "param a:b new"),
        (StageChange("dep", "data/raw/churn.csv", "modified"), "dep data/raw/churn.csv modified"),
        (StageChange("out", "models/model.pkl", "deleted"), "out models/model.pkl deleted"),
        (StageChange("command", None, "changed command"), "changed command"),
        (StageChange("always", None, "always changed"), "always changed"),
        (StageChange("dep", None, "changed deps"), "changed deps"),
    ],
)
def test_describe(change, text):
    assert _describe(change) == text


# -- pipeline_status --------------------------------------------------------------------


def test_everything_up_to_date(project, fake_dvc):
    calls = fake_dvc([stage("prepare"), stage("train", upstream=["prepare"])])
    result = pipeline_status(project)
    assert calls == [project.root]
    assert [(s.name, s.stale, s.reasons) for s in result] == [("prepare", False, []), ("train", False, [])]
    assert result[1].upstream == ["prepare"]
    assert result[1].cmd == "python train.py"


def test_stage_below_stale_stage_is_stale(project, fake_dvc):
    fake_dvc([
        stage("prepare", StageChange("dep", "data/raw/churn.csv", "modified")),
        stage("featurize", upstream=["prepare"]),
        stage("train", upstream=["featurize"]),
        stage("report"),  # independent, up to date
    ])
    by_name = {s.name: s for s in pipeline_status(project)}

    assert by_name["prepare"].stale is True
    assert by_name["prepare"].reasons == ["dep data/raw/churn.csv modified"]
    assert by_name["featurize"].stale is True
    assert by_name["featurize"].reasons == ["upstream prepare is stale"]
    assert by_name["train"].stale is True  # transitively
    assert by_name["train"].reasons == ["upstream featurize is stale"]
    assert by_name["report"].stale is False
    assert by_name["report"].reasons == []


def test_own_reasons_come_before_upstream_ones(project, fake_dvc):
    fake_dvc([
        stage("a", StageChange("command", None, "changed command")),
        stage("b"),
        stage("c", StageChange("param", "params.yaml:train.n", "modified"), upstream=["a", "b"]),
    ])
    c = pipeline_status(project)[2]
    assert c.reasons == ["param train.n modified", "upstream a is stale"]
    assert c.upstream == ["a", "b"]


def test_never_run_stage_shows_only_never_run(project, fake_dvc):
    fake_dvc([
        stage(
            "train",
            StageChange("never-run", None, "no entry in dvc.lock"),
            StageChange("dep", "data/features.csv", "modified"),
            StageChange("out", "models/model.pkl", "deleted"),
            StageChange("param", "params.yaml:train.n", "new"),
        ),
    ])
    (train,) = pipeline_status(project)
    assert train.stale is True
    assert train.reasons == [NEVER_RUN]


def test_never_run_stage_makes_downstream_stale(project, fake_dvc):
    fake_dvc([
        stage("prepare", StageChange("never-run", None, "no entry in dvc.lock")),
        stage("train", upstream=["prepare"]),
    ])
    assert pipeline_status(project)[1].reasons == ["upstream prepare is stale"]


def test_order_of_adapter_is_kept(project, fake_dvc):
    names = ["z", "a", "m"]
    fake_dvc([stage(n) for n in names])
    assert [s.name for s in pipeline_status(project)] == names
