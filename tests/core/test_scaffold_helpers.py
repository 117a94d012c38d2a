"""opsctl.core.scaffold: the pure helpers (names, --data pairs, template lookup)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.core.scaffold import (
    DEFAULT_TEMPLATE,
    list_templates,
    parse_data_pairs,
    resolve_template,
    slugify,
)
from opsctl.errors import TemplateNotFoundError, UsageError

BUILTINS = ("ml-pipeline", "data-pipeline", "minimal")


# -- slugify ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Project!", "my-project"),
        ("churn_model", "churn_model"),
        ("  spaces  everywhere ", "spaces-everywhere"),
        ("A..B  C", "a-b-c"),
        ("", "project"),
        ("!!!", "project"),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


@pytest.mark.parametrize("name", ["123", "2024-report", "_x", "-x"])
def test_slugify_always_starts_with_a_letter(name):
    slug = slugify(name)
    assert slug[0].isalpha()
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def test_slugify_keeps_digits_after_prefix():
    assert slugify("123") == "project-123"


# -- parse_data_pairs -------------------------------------------------------------------


def test_parse_data_pairs_yaml_scalars():
    data = parse_data_pairs(["n=3", "x=true", "s=hello", "f=0.5", "d=2024-01-01"])
    assert data == {"n": 3, "x": True, "s": "hello", "f": 0.5, "d": "2024-01-01"}
    assert type(data["n"]) is int
    assert data["x"] is True
    assert isinstance(data["d"], str)  # a YAML date stays the string given


@pytest.mark.parametrize(
    ("pair", "key", "value"),
    [
        ("k=", "k", ""),
        ("url=a=b", "url", "a=b"),  # only the first '=' splits
        (" k =v", "k", "v"),
        ("l=[1, 2]", "l", "[1, 2]"),  # non-scalars are kept as text
        ("m={a: 1}", "m", "{a: 1}"),
        ("z=null", "z", "null"),
        ("q=@odd", "q", "@odd"),  # not valid YAML: the text itself
    ],
)
def test_parse_data_pairs_edge_values(pair, key, value):
    assert parse_data_pairs([pair]) == {key: value}


def test_parse_data_pairs_later_key_wins():
    assert parse_data_pairs(["n=1", "n=2"]) == {"n": 2}


def test_parse_data_pairs_empty():
    assert parse_data_pairs([]) == {}


@pytest.mark.parametrize("pair", ["bad", "=value", " =value"])
def test_parse_data_pairs_rejects_pair_without_key_or_equals(pair):
    with pytest.raises(UsageError) as info:
        parse_data_pairs(["ok=1", pair])
    assert info.value.exit_code == 2
    assert "KEY=VALUE" in str(info.value)
    assert f"'{pair}'" in str(info.value)


# -- list_templates / resolve_template ---------------------------------------------------


def test_list_templates_default_first_with_descriptions():
    templates = list_templates()
    names = [t.name for t in templates]
    assert names[0] == DEFAULT_TEMPLATE == "ml-pipeline"
    assert set(BUILTINS) <= set(names)
    for t in templates:
        assert t.description.strip(), t.name
        assert t.builtin is True
        assert (Path(t.source) / "copier.yml").is_file()


@pytest.mark.parametrize("name", BUILTINS)
def test_resolve_builtin_by_name(name):
    source = resolve_template(name)
    assert source.is_remote is False
    assert source.info is not None and source.info.name == name
    assert source.display == f"{name} (built-in)"
    assert Path(source.spec).is_dir()


def test_ml_pipeline_tracks_the_sample_dataset():
    info = resolve_template("ml-pipeline").info
    assert "data/raw/churn.csv" in info.track


def test_resolve_none_is_the_default_template():
    source = resolve_template(None)
    assert source.info.name == "ml-pipeline"
    assert source == resolve_template("ml-pipeline")


def test_resolve_unknown_name_lists_builtins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so 'no-such-template' cannot be a local directory
    with pytest.raises(TemplateNotFoundError) as info:
        resolve_template("no-such-template")
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "no-such-template" in msg
    for name in BUILTINS:
        assert name in msg


def test_resolve_directory_without_copier_yml(tmp_path):
    (tmp_path / "README.md").write_text("not a template")
    with pytest.raises(TemplateNotFoundError, match="copier.yml") as info:
        resolve_template(str(tmp_path))
    assert info.value.exit_code == 2


@pytest.mark.parametrize("filename", ["copier.yml", "copier.yaml"])
def test_resolve_local_template_directory(tmp_path, filename):
    template = tmp_path / "my-template"
    template.mkdir()
    (template / filename).write_text("project_name: {type: str}\n")
    (template / "template.yml").write_text("description: Mine\ntrack: [data/x.csv]\n")

    source = resolve_template(str(template))

    assert source.is_remote is False
    assert Path(source.spec) == template.resolve()
    assert source.info.builtin is False
    assert source.info.description == "Mine"
    assert source.info.track == ("data/x.csv",)


def test_resolve_local_directory_ending_in_dot_git_is_not_remote(tmp_path):
    template = tmp_path / "tpl.git"
    template.mkdir()
    (template / "copier.yml").write_text("{}\n")
    assert resolve_template(str(template)).is_remote is False


@pytest.mark.parametrize(
    "spec",
    [
        "https://example.invalid/x.git",
        "gh:org/repo",
        "gl:org/repo",
        "git@host:org/repo.git",
        "ssh://git@host/org/repo",
        "file:///srv/templates/x",
        "somewhere/repo.git",
    ],
)
def test_resolve_remote_specs(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = resolve_template(spec)
    assert source.is_remote is True
    assert source.spec == spec
    assert source.info is None
