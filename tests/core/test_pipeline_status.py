"""opsctl.core.pipeline: how DVC's change reports and image changes become reasons,
and how staleness propagates downstream (pure planning, no DVC)."""

from __future__ import annotations

import pytest

from opsctl.adapters.dvc import PipelineStage, StageChange
from opsctl.core.pipeline import StageImageUse, _describe, plan_steps
from opsctl.core.stagelock import StageImage

NEVER_RUN = "never run (no dvc.lock entry)"


def stage(name, *changes, upstream=(), cmd=None):
    return PipelineStage(
        name=name,
        dvcfile="dvc.yaml",
        cmd=cmd or f"python {name}.py",
        deps=(),
        outs=(),
        upstream=tuple(upstream),
        changes=tuple(changes),
    )


def pipeline_status(stages, images=None, lock=None, force=False):
    return plan_steps(stages, images or {}, lock or {}, force=force)


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


def test_everything_up_to_date():
    result = pipeline_status([stage("prepare"), stage("train", upstream=["prepare"])])
    assert [(s.name, s.stale, s.reasons) for s in result] == [("prepare", False, []), ("train", False, [])]
    assert result[1].upstream == ["prepare"]
    assert result[1].cmd == "python train.py"


def test_stage_below_stale_stage_is_stale():
    stages = [
        stage("prepare", StageChange("dep", "data/raw/churn.csv", "modified")),
        stage("featurize", upstream=["prepare"]),
        stage("train", upstream=["featurize"]),
        stage("report"),  # independent, up to date
    ]
    by_name = {s.name: s for s in pipeline_status(stages)}

    assert by_name["prepare"].stale is True
    assert by_name["prepare"].reasons == ["dep data/raw/churn.csv modified"]
    assert by_name["featurize"].stale is True
    assert by_name["featurize"].reasons == ["upstream prepare is stale"]
    assert by_name["train"].stale is True  # transitively
    assert by_name["train"].reasons == ["upstream featurize is stale"]
    assert by_name["report"].stale is False
    assert by_name["report"].reasons == []


def test_own_reasons_come_before_upstream_ones():
    stages = [
        stage("a", StageChange("command", None, "changed command")),
        stage("b"),
        stage("c", StageChange("param", "params.yaml:train.n", "modified"), upstream=["a", "b"]),
    ]
    c = pipeline_status(stages)[2]
    assert c.reasons == ["param train.n modified", "upstream a is stale"]
    assert c.upstream == ["a", "b"]


def test_never_run_stage_shows_only_never_run():
    stages = [
        stage(
            "train",
            StageChange("never-run", None, "no entry in dvc.lock"),
            StageChange("dep", "data/features.csv", "modified"),
            StageChange("out", "models/model.pkl", "deleted"),
            StageChange("param", "params.yaml:train.n", "new"),
        ),
    ]
    (train,) = pipeline_status(stages)
    assert train.stale is True
    assert train.reasons == [NEVER_RUN]


def test_never_run_stage_makes_downstream_stale():
    stages = [
        stage("prepare", StageChange("never-run", None, "no entry in dvc.lock")),
        stage("train", upstream=["prepare"]),
    ]
    assert pipeline_status(stages)[1].reasons == ["upstream prepare is stale"]


def test_order_of_adapter_is_kept():
    names = ["z", "a", "m"]
    assert [s.name for s in pipeline_status([stage(n) for n in names])] == names


# -- images ------------------------------------------------------------------------------

BUILT_V1 = StageImageUse("app", "opsctl/p-app:aaaa", "inputs:aaaa", True)
BUILT_V2 = StageImageUse("app", "opsctl/p-app:bbbb", "inputs:bbbb", True)
RAN_IN_V1 = StageImage("docker", "app", "opsctl/p-app:aaaa", "inputs:aaaa")


def test_changed_image_makes_the_stage_and_its_dependants_stale():
    steps = pipeline_status(
        [stage("train"), stage("evaluate", upstream=["train"])],
        images={"train": BUILT_V2, "evaluate": BUILT_V2},
        lock={"train": RAN_IN_V1, "evaluate": RAN_IN_V1},
    )
    assert steps[0].reasons == ["image app changed (build inputs)"]
    assert steps[0].image_changed and steps[0].own_change
    assert steps[1].reasons == ["image app changed (build inputs)", "upstream train is stale"]


def test_same_image_is_not_a_change():
    (step,) = pipeline_status([stage("train")], images={"train": BUILT_V1}, lock={"train": RAN_IN_V1})
    assert step.stale is False and step.image_changed is False


def test_switching_images_and_ref_image_ids():
    tools = StageImageUse("tools", "busybox:latest", "sha256:new", False)
    (switched,) = pipeline_status([stage("s")], images={"s": tools}, lock={"s": RAN_IN_V1})
    assert switched.reasons == ["image changed from app to tools"]
    ran_in_tools = StageImage("docker", "tools", "busybox:latest", "sha256:old")
    (ref,) = pipeline_status([stage("s")], images={"s": tools}, lock={"s": ran_in_tools})
    assert ref.reasons == ["image tools changed (image id)"]


@pytest.mark.parametrize(
    "last",
    [
        None,  # never ran under opsctl (e.g. `dvc repro`)
        StageImage("local"),  # ran on the host
        StageImage("docker", "app", "opsctl/p-app:aaaa", None),  # identity unknown
    ],
)
def test_no_comparable_record_is_not_a_change(last):
    lock = {"s": last} if last else {}
    (step,) = pipeline_status([stage("s")], images={"s": BUILT_V2}, lock=lock)
    assert step.stale is False


def test_unknown_current_identity_is_not_a_change():
    engine_down = StageImageUse("tools", "busybox:latest", None, False)
    ran = StageImage("docker", "tools", "busybox:latest", "sha256:old")
    (step,) = pipeline_status([stage("s")], images={"s": engine_down}, lock={"s": ran})
    assert step.stale is False


def test_force_marks_everything_but_keeps_own_change_apart():
    steps = pipeline_status([stage("a"), stage("b", upstream=["a"])], force=True)
    assert steps[0].reasons == ["forced (--force)"]
    assert steps[0].own_change is False
    assert steps[1].reasons == ["forced (--force)", "upstream a is stale"]
