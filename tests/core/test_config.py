"""opsctl.core.config: parsing, validation messages and defaults of opsctl.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from opsctl.core.config import (
    CONFIG_FILE,
    ImageSpec,
    ProjectConfig,
    StageSettings,
    default_config,
    load_config,
    parse_config,
)
from opsctl.errors import ConfigError

VALID_YAML = """\
project: churn
executor: docker
images:
  app: {dockerfile: Dockerfile, context: ., build_args: {BASE_IMAGE: "python:3.11-slim"}}
  tools: {ref: "busybox:latest"}
stages:
  default: {image: app}
  train: {image: app, cpus: 2, memory: 4g, gpus: 0, network: none, env: [WANDB_API_KEY]}
"""

SOURCE = "conf/opsctl.yaml"


def valid_doc() -> dict:
    return yaml.safe_load(VALID_YAML)


def config_error(doc, *, source: str = SOURCE) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source=source)
    assert info.value.exit_code == 1
    return str(info.value)


# -- a valid document ---------------------------------------------------------


def test_full_document_parses_into_dataclasses():
    config = parse_config(valid_doc(), source=SOURCE)

    assert isinstance(config, ProjectConfig)
    assert config.project == "churn"
    assert config.executor == "docker"
    assert config.images == {
        "app": ImageSpec(
            name="app", dockerfile="Dockerfile", context=".", build_args={"BASE_IMAGE": "python:3.11-slim"}
        ),
        "tools": ImageSpec(name="tools", ref="busybox:latest"),
    }
    assert config.images["app"].is_built is True
    assert config.images["tools"].is_built is False
    assert config.stages["default"] == StageSettings(image="app")
    assert config.stages["train"] == StageSettings(
        image="app", cpus=2.0, memory="4g", gpus=0, network="none", env=("WANDB_API_KEY",)
    )
    assert config.remotes == {}


def test_build_args_numbers_become_strings_and_image_defaults_apply():
    doc = {"project": "p", "images": {"app": {"build_args": {"PY": 3.11, "N": 2}, "target": "runtime"}}}
    image = parse_config(doc).images["app"]
    assert image.build_args == {"PY": "3.11", "N": "2"}
    assert image.dockerfile == "Dockerfile"
    assert image.context == "."
    assert image.target == "runtime"


def test_remotes_short_and_long_form():
    doc = {"project": "p", "remotes": {"a": "s3://bucket/x", "b": {"url": "/srv/dvc", "default": True}}}
    remotes = parse_config(doc).remotes
    assert remotes["a"].url == "s3://bucket/x" and remotes["a"].default is False
    assert remotes["b"].url == "/srv/dvc" and remotes["b"].default is True


def test_executor_defaults_to_local_and_project_to_root_name(tmp_path):
    config = parse_config({}, root=tmp_path / "my-proj")
    assert config.project == "my-proj"
    assert config.executor == "local"
    assert config.images == {} and config.stages == {}


# -- settings_for ---------------------------------------------------------------


def test_settings_for_merges_stage_over_default():
    doc = {
        "project": "p",
        "images": {"app": {}, "gpu": {}},
        "stages": {
            "default": {"image": "app", "cpus": 1, "memory": "2g", "env": ["HOME"]},
            "train": {"image": "gpu", "cpus": 4, "gpus": "all"},
        },
    }
    config = parse_config(doc)
    train = config.settings_for("train")
    assert train.image == "gpu"  # own value wins
    assert train.cpus == 4.0
    assert train.gpus == "all"
    assert train.memory == "2g"  # inherited from default
    assert train.env == ("HOME",)


def test_settings_for_keeps_an_explicit_zero():
    doc = {"project": "p", "stages": {"default": {"gpus": 1}, "eval": {"gpus": 0}}}
    assert parse_config(doc).settings_for("eval").gpus == 0


def test_settings_for_unknown_stage_gets_default():
    config = parse_config(valid_doc())
    assert config.settings_for("evaluate") == StageSettings(image="app")


def test_settings_for_without_any_stages_is_empty():
    assert parse_config({"project": "p"}).settings_for("x") == StageSettings()


# -- bad input -----------------------------------------------------------------


def test_unknown_top_level_key():
    doc = valid_doc()
    doc["stagez"] = {}
    msg = config_error(doc)
    assert SOURCE in msg
    assert "'stagez'" in msg
    assert "stages" in msg and "executor" in msg  # lists what is allowed


def test_unknown_nested_stage_key():
    doc = valid_doc()
    doc["stages"]["train"]["cpu"] = 2
    msg = config_error(doc)
    assert SOURCE in msg
    assert "stages.train.cpu" in msg
    assert "cpus" in msg


def test_unknown_nested_image_key():
    doc = valid_doc()
    doc["images"]["app"]["buildargs"] = {}
    msg = config_error(doc)
    assert SOURCE in msg and "images.app.buildargs" in msg and "build_args" in msg


def test_top_level_not_a_mapping():
    msg = config_error(["project", "x"])
    assert SOURCE in msg and "(top level)" in msg and "mapping" in msg


@pytest.mark.parametrize(
    ("mutate", "key_path", "expected"),
    [
        (lambda d: d.__setitem__("executor", "kubernetes"), "executor", "docker, local"),
        (lambda d: d["stages"]["train"].__setitem__("cpus", -1), "stages.train.cpus", "positive number"),
        (lambda d: d["stages"]["train"].__setitem__("cpus", 0), "stages.train.cpus", "positive number"),
        (lambda d: d["stages"]["train"].__setitem__("cpus", "2"), "stages.train.cpus", "positive number"),
        (lambda d: d["stages"]["train"].__setitem__("cpus", True), "stages.train.cpus", "positive number"),
        (lambda d: d["stages"]["train"].__setitem__("memory", "4 gigs"), "stages.train.memory", "512m or 4g"),
        (lambda d: d["stages"]["train"].__setitem__("gpus", -1), "stages.train.gpus", "number of GPUs"),
        (lambda d: d["stages"]["train"].__setitem__("gpus", "some"), "stages.train.gpus", "number of GPUs"),
        (lambda d: d["stages"]["train"].__setitem__("env", "WANDB_API_KEY"), "stages.train.env", "list of"),
        (lambda d: d["stages"]["train"].__setitem__("env", ["OK", 3]), "stages.train.env", "list of"),
        (lambda d: d["stages"]["train"].__setitem__("env", [""]), "stages.train.env", "list of"),
        (
            lambda d: d["stages"]["train"].__setitem__("network", 5),
            "stages.train.network",
            "none, bridge, host or the name",
        ),
        (lambda d: d["stages"].__setitem__("train", "app"), "stages.train", "mapping"),
        (lambda d: d.__setitem__("project", ""), "project", "non-empty string"),
        (lambda d: d.__setitem__("images", ["app"]), "images", "mapping"),
        (
            lambda d: d["images"]["app"]["build_args"].__setitem__("X", ["a"]),
            "images.app.build_args.X",
            "string or number",
        ),
        (
            lambda d: d["images"]["app"]["build_args"].__setitem__("X", True),
            "images.app.build_args.X",
            "string or number",
        ),
        (lambda d: d["images"]["app"].__setitem__("dockerfile", 1), "images.app.dockerfile", "non-empty string"),
        (lambda d: d["images"].__setitem__("bad name", {}), "images.bad name", "image name"),
    ],
)
def test_wrong_types_name_file_key_path_and_expectation(mutate, key_path, expected):
    doc = copy.deepcopy(valid_doc())
    mutate(doc)
    msg = config_error(doc)
    assert msg.startswith(f"{SOURCE}: {key_path}: expected"), msg
    assert expected in msg
    assert "got " in msg  # says what it found


def test_stage_with_undeclared_image_lists_declared_images():
    doc = valid_doc()
    doc["stages"]["train"]["image"] = "gpu"
    msg = config_error(doc)
    assert SOURCE in msg
    assert "stages.train.image" in msg
    assert "'gpu'" in msg
    assert "app, tools" in msg


def test_stage_image_without_any_images_says_none_declared():
    msg = config_error({"project": "p", "stages": {"train": {"image": "app"}}})
    assert "stages.train.image" in msg and "none declared" in msg


def test_ref_cannot_be_combined_with_dockerfile():
    doc = valid_doc()
    doc["images"]["tools"]["dockerfile"] = "Dockerfile"
    msg = config_error(doc)
    assert SOURCE in msg
    assert "images.tools" in msg
    assert "'ref'" in msg and "dockerfile" in msg


def test_remote_default_must_be_boolean():
    msg = config_error({"project": "p", "remotes": {"r": {"url": "/x", "default": "yes"}}})
    assert "remotes.r.default" in msg and "true or false" in msg


# -- load_config ----------------------------------------------------------------


def test_load_config_reads_the_file(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(VALID_YAML, encoding="utf-8")
    assert load_config(tmp_path) == parse_config(valid_doc())


def test_load_config_missing_file_is_none(tmp_path):
    assert load_config(tmp_path) is None


@pytest.mark.parametrize("content", ["", "# only a comment\n"])
def test_load_config_empty_file_gives_defaults(tmp_path, content):
    root = tmp_path / "weather-model"
    root.mkdir()
    (root / CONFIG_FILE).write_text(content, encoding="utf-8")
    config = load_config(root)
    assert config == ProjectConfig(project="weather-model", executor="local")
    assert config == default_config(root)


def test_load_config_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("project: churn\nexecutor: docker\n  bad: indent\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value).startswith(f"{path}:3: not valid YAML")
    assert info.value.exit_code == 1


def test_load_config_validation_error_names_the_file(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("project: churn\nstages:\n  train: {cpus: -2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="stages.train.cpus") as info:
        load_config(tmp_path)
    assert str(path) in str(info.value)


def test_default_config_is_local_named_after_directory(tmp_path):
    config = default_config(Path(tmp_path) / "abc")
    assert config.project == "abc"
    assert config.executor == "local"
