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


# -- paths stay inside the project ------------------------------------------------


@pytest.mark.parametrize("context", ["/usr", "/", "..", "../other", "sub/../../other", "./.."])
def test_image_context_outside_the_project_is_refused(context):
    doc = {"project": "p", "images": {"app": {"context": context}}}
    msg = config_error(doc)
    assert msg.startswith(f"{SOURCE}: images.app.context: expected a relative path in the project"), msg
    assert repr(context) in msg


@pytest.mark.parametrize(
    ("context", "dockerfile"),
    [(".", "/etc/passwd"), (".", "../Dockerfile"), ("docker", "../../Dockerfile"), ("docker", "/x/Dockerfile")],
)
def test_dockerfile_outside_the_project_is_refused(context, dockerfile):
    doc = {"project": "p", "images": {"app": {"context": context, "dockerfile": dockerfile}}}
    msg = config_error(doc)
    assert msg.startswith(f"{SOURCE}: images.app.dockerfile: expected a relative path in the project"), msg


@pytest.mark.parametrize(
    ("context", "dockerfile"),
    [(".", "Dockerfile"), ("docker", "Dockerfile"), ("docker", "../Dockerfile.app"), ("./a/../b", "x/Dockerfile")],
)
def test_paths_inside_the_project_are_fine(context, dockerfile):
    doc = {"project": "p", "images": {"app": {"context": context, "dockerfile": dockerfile}}}
    image = parse_config(doc).images["app"]
    assert (image.context, image.dockerfile) == (context, dockerfile)


# -- image references ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "busybox",
        "busybox:1.36",
        "opsctl-test/busybox:latest",
        "registry.example.com:5000/team/app:2.1-rc_1",
        "localhost/app",
        "[::1]:5000/app:1",
        "my_org/app__x/y-z.w:tag",
        "app@sha256:" + "a" * 64,
        "ghcr.io/org/app:1@sha256:" + "0f" * 32,
        "sha256:" + "b" * 64,
        "0123456789ab",
    ],
)
def test_valid_image_references(ref):
    assert parse_config({"project": "p", "images": {"tools": {"ref": ref}}}).images["tools"].ref == ref


@pytest.mark.parametrize(
    "ref",
    ["--privileged", "-it", "busy box", "Busybox", "app:", ":tag", "app@sha256:abc", "a/", "/a", "app:-x", "a\n"],
)
def test_invalid_image_reference_is_a_config_error_with_the_key_path(ref):
    msg = config_error({"project": "p", "images": {"tools": {"ref": ref}}})
    assert msg.startswith(f"{SOURCE}: images.tools.ref: expected an image reference"), msg


def test_very_long_image_reference_is_refused_quickly():
    msg = config_error({"project": "p", "images": {"tools": {"ref": "a" + "-" * 100_000 + "!"}}})
    assert "images.tools.ref" in msg and len(msg) < 300


# -- memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("memory", ["6m", "6M", "512m", "512mb", "4g", "4GB", "0.5g", "6291456", 6291456, "6144k"])
def test_memory_in_docker_units_of_at_least_6m(memory):
    assert parse_config({"project": "p", "stages": {"s": {"memory": memory}}}).stages["s"].memory == str(memory)


@pytest.mark.parametrize("memory", ["1", 1, "5m", "6291455", "0g", "100k"])
def test_memory_below_dockers_minimum_is_refused(memory):
    msg = config_error({"project": "p", "stages": {"s": {"memory": memory}}})
    assert msg.startswith(f"{SOURCE}: stages.s.memory: expected at least 6m"), msg


@pytest.mark.parametrize("memory", ["4 gigs", "4t", "1e9", "-4g", True, "99999999999g"])
def test_memory_not_a_size_docker_takes_is_refused(memory):
    msg = config_error({"project": "p", "stages": {"s": {"memory": memory}}})
    assert msg.startswith(f"{SOURCE}: stages.s.memory: expected "), msg


# -- values quoted in errors -----------------------------------------------------------


def test_a_huge_value_is_quoted_to_about_80_characters():
    msg = config_error({"project": "p", "stages": {"s": {"cpus": "x" * 100_000}}})
    assert msg.startswith(f"{SOURCE}: stages.s.cpus: expected a positive number"), msg
    assert len(msg) < 200 and "xxx...xxx" in msg, msg
    msg = config_error({"project": ["x" * 1000] * 1000})
    assert msg.startswith(f"{SOURCE}: project: expected a non-empty string, got list ['xxx"), msg
    assert len(msg) < 200, len(msg)


def test_a_huge_key_is_cut_in_the_message():
    msg = config_error({"project": "p", "stages": {"k" * 10_000: {"cpus": -1}}})
    assert len(msg) < 300 and "(10012 characters)" in msg, msg
    msg = config_error({"project": "p", "k" * 10_000: 1})
    assert len(msg) < 300 and "unknown key" in msg, msg


def test_a_deeply_shared_value_is_quoted_without_expanding_it():
    value: list = ["lol"] * 10
    for _ in range(5):  # a million strings if printed in full (7 MB: harmless, but not a message)
        value = [value] * 10
    msg = config_error({"project": value})
    assert len(msg) < 200, len(msg)


# -- loading opsctl.yaml with bounds ------------------------------------------------------


def billion_laughs(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_load_config_refuses_alias_expansion_past_the_limit(tmp_path):
    path = tmp_path / CONFIG_FILE
    # 5 levels: 9**5 values once expanded; the old loader printed them all in one 5.8 MB error.
    path.write_text(billion_laughs(5) + "project: *e\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:"), msg
    assert "YAML aliases expand to more than 100000 values" in msg
    assert len(msg) < 300


def test_load_config_allows_ordinary_anchors_and_merge_keys(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(
        "project: p\nimages: {app: {}}\nstages:\n"
        "  default: &base {image: app, cpus: 2}\n"
        "  train:\n    <<: *base\n    cpus: 4\n"
        "  evaluate: *base\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path)
    assert config.stages["train"] == StageSettings(image="app", cpus=4.0)
    assert config.stages["evaluate"] == StageSettings(image="app", cpus=2.0)


def test_load_config_reports_duplicate_keys_with_line_and_key_path(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("project: p\nstages:\n  train:\n    cpus: 1\n    memory: 1g\n    cpus: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value).startswith(f"{path}:6: stages.train.cpus: duplicate key"), str(info.value)


def test_load_config_refuses_a_file_over_1_mib_before_reading_it(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("project: p\n" + "# padding\n" * 110_000, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value).startswith(f"{path}: 1.0 MiB is too big for this file (opsctl reads at most 1.0 MiB)")


def test_load_config_refuses_an_alias_inside_its_own_anchor(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("project: p\nimages: &x {a: *x}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alias refers to a node holding it"):
        load_config(tmp_path)


# -- the same bounds for the other YAML files opsctl reads ----------------------------------


def test_opsctl_lock_with_exploding_aliases_counts_as_unreadable(tmp_path):
    from opsctl.core.stagelock import LOCK_FILE, read_lock

    lol = billion_laughs(5).replace("\n", "\n  ")
    (tmp_path / LOCK_FILE).write_text(f"x:\n  {lol}\nstages:\n  train: {{executor: docker, image: *e}}\n")
    assert list(read_lock(tmp_path)) == []  # unknown, never "changed": nothing quotes the values


def test_opsctl_lock_keeps_only_text_fields(tmp_path):
    from opsctl.core.stagelock import LOCK_FILE, StageImage, read_lock

    (tmp_path / LOCK_FILE).write_text("stages:\n  train: {executor: docker, image: [a, b], identity: 3}\n")
    assert read_lock(tmp_path) == {"train": StageImage("docker")}


def test_params_file_for_set_param_is_read_with_the_same_bounds(tmp_path):
    from opsctl.core.run import parse_overrides

    (tmp_path / "params.yaml").write_text(billion_laughs(6))
    with pytest.raises(ConfigError, match=r"^params.yaml:\d+: .*YAML aliases expand"):
        parse_overrides(["a=1"], tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  lr: 1\n  lr: 2\n")
    with pytest.raises(ConfigError, match=r"^params.yaml:3: train.lr: duplicate key"):
        parse_overrides(["train.lr=3"], tmp_path)
