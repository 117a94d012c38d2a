"""The report's params and metrics equal `dvc params diff` / `dvc metrics diff`: on real Git +
DVC projects, ``diff_values`` of what :func:`read_side` reads at two revisions (and in a dirty
workspace), and of what :func:`dvc_sides` reads through DVC, equal ``Repo.params.diff`` and
``Repo.metrics.diff``; what only DVC's index resolves is left to it (NeedsDvc). Also the Git
helpers the report stands on (``blobs``, ``merge_base``, ``default_branch``) and the diff and
key selection restated from DVC, against DVC's own functions over generated values."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from opsctl.adapters import dvc_compat, dvc_records
from opsctl.adapters import git as git_adapter
from opsctl.adapters.dvc_compare import NeedsDvc, dvc_sides, output_hashes, read_side
from tests.conftest import git_dvc_project, run

DVC = [sys.executable, "-m", "dvc"]


class Project:
    """A Git + DVC repository whose files a test writes and commits."""

    def __init__(self, root: Path) -> None:
        self.root = git_dvc_project(root)

    def write(self, files: dict[str, object | None]) -> None:
        """Each file's content (a dict: YAML, or JSON by suffix; a str: as is); None deletes it."""
        for name, content in files.items():
            path = self.root / name
            if content is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                path.write_text(content)
            elif name.endswith(".json"):
                path.write_text(json.dumps(content))
            else:
                path.write_text(yaml.safe_dump(content, sort_keys=False))

    def commit(self, files: dict[str, object | None] | None = None, message: str = "change") -> str:
        self.write(files or {})
        run(["git", "add", "-A"], cwd=self.root)
        run(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=self.root)
        return run(["git", "rev-parse", "HEAD"], cwd=self.root).stdout.strip()

    def dvc(self, *args: str) -> None:
        run([*DVC, *args], cwd=self.root)


def dvc_diffs(root: Path, a_rev: str, b_rev: str, monkeypatch) -> tuple[dict, dict]:
    """DVC's own answer: ``Repo.params.diff`` and ``Repo.metrics.diff`` ``["diff"]`` (a diff
    without changes has no "diff" key, or is ``{}`` altogether)."""
    from dvc.repo import Repo

    monkeypatch.chdir(root)  # DVC names files relative to the working directory
    with Repo(str(root)) as repo:
        params = repo.params.diff(a_rev=a_rev, b_rev=b_rev)
        metrics = repo.metrics.diff(a_rev=a_rev, b_rev=b_rev)
    return params.get("diff", {}), metrics.get("diff", {})


def assert_same_as_dvc(root: Path, base: str, head: str | None, monkeypatch) -> tuple[dict, dict]:
    """The fast read gives DVC's diff between ``base`` and ``head`` (None: the workspace).
    (:func:`dvc_sides`, DVC's own show, is held to it where the fast read steps aside:
    :func:`assert_dvc_sides_only`; checking it here too doubled this file's time.)"""
    want_params, want_metrics = dvc_diffs(root, base, head or "workspace", monkeypatch)
    old, new = read_side(root, base), read_side(root, head)
    assert dvc_compat.diff_values(old.params, new.params) == want_params
    assert dvc_compat.diff_values(old.metrics, new.metrics) == want_metrics
    return want_params, want_metrics


def assert_dvc_sides_only(root: Path, base: str, monkeypatch, head: str | None = None) -> tuple[dict, dict]:
    """:func:`dvc_sides` alone gives DVC's diff between ``base`` and ``head`` (None: the workspace)."""
    want_params, want_metrics = dvc_diffs(root, base, head or "workspace", monkeypatch)
    old, new = dvc_sides(root, base, head)
    assert dvc_compat.diff_values(old.params, new.params) == want_params
    assert dvc_compat.diff_values(old.metrics, new.metrics) == want_metrics
    return want_params, want_metrics


def assert_as_report_reads_it(root: Path, base: str, monkeypatch) -> None:
    """What the report does (the fast read, or DVC when the fast read steps aside) gives DVC's
    diff between ``base`` and the workspace."""
    want_params, want_metrics = dvc_diffs(root, base, "workspace", monkeypatch)
    try:
        old = read_side(root, base)
    except NeedsDvc:
        old, new = dvc_sides(root, base, None)
    else:
        new = read_side(root, None)
    assert dvc_compat.diff_values(old.params, new.params) == want_params
    assert dvc_compat.diff_values(old.metrics, new.metrics) == want_metrics


def stage(**fields) -> dict:
    return {"cmd": "true", **fields}


# --- the fast read equals DVC's diff ---------------------------------------------------------


def test_params_yaml_is_compared_whole_even_when_stages_name_keys(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {"stages": {"train": stage(params=["lr", "train.epochs"])}}
    params = {"lr": 0.1, "train": {"epochs": 10, "batch": 32}, "unused": "a"}
    base = p.commit({"dvc.yaml": dvc_yaml, "params.yaml": params})
    head = p.commit({"params.yaml": {"lr": 0.2, "train": {"epochs": 10, "batch": 64}, "unused": "b"}})
    want, _ = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want["params.yaml"]["lr"] == {"old": 0.1, "new": 0.2, "diff": 0.1}
    assert set(want["params.yaml"]) == {"lr", "train.batch", "unused"}  # DVC adds params.yaml as a whole file
    # the workspace, dirty: a key changed and one added
    p.write({"params.yaml": {"lr": 0.3, "train": {"epochs": 12, "batch": 64}, "unused": "b", "new": 1}})
    want, _ = assert_same_as_dvc(p.root, base, None, monkeypatch)
    assert "train.epochs" in want["params.yaml"]
    # nothing changed: DVC's diff is {} and so is ours
    assert assert_same_as_dvc(p.root, head, head, monkeypatch) == ({}, {})


def test_a_second_params_file_with_selected_keys_and_a_whole_file(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {
        "stages": {
            "prep": stage(params=[{"other.yaml": ["a.b", "d"]}, {"other.json": None}]),
            "train": stage(params=[{"other.yaml": ["a.missing"]}]),
        }
    }
    other = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "not selected"}
    base = p.commit({"dvc.yaml": dvc_yaml, "other.yaml": other, "other.json": {"x": 1, "y": {"z": [1]}}})
    head = p.commit(
        {
            "other.yaml": {"a": {"b": 5, "c": 3}, "d": [1, 2, 3], "e": "changed"},
            "other.json": {"x": 2, "y": {"z": [2]}, "w": True},
        }
    )
    want, _ = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert set(want) == {"other.yaml", "other.json"}
    assert set(want["other.yaml"]) == {"a.b", "d"}  # a.c and e aren't named by any stage
    assert want["other.json"]["y.z"] == {"old": "[1]", "new": "[2]"}  # lists compare as their str()
    p.write({"other.json": None})  # deleted in the workspace
    assert_same_as_dvc(p.root, base, None, monkeypatch)


def test_top_level_params_and_metrics_in_dvc_yaml(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {"params": ["config/hp.yaml", "extra.json"], "metrics": ["eval/scores.json", "summary.yaml"]}
    base = p.commit(
        {
            "dvc.yaml": dvc_yaml,
            "config/hp.yaml": {"depth": 3, "name": "rf"},
            "extra.json": {"seed": 1},
            "eval/scores.json": {"acc": 0.8, "per_class": {"a": 0.7, "b": 0.9}},
            "summary.yaml": {"rows": 100},
            "params.yaml": {"global": 1},
        }
    )
    head = p.commit(
        {
            "config/hp.yaml": {"depth": 4, "name": "rf"},
            "eval/scores.json": {"acc": 0.85, "per_class": {"a": 0.7, "b": 0.95}},
            "summary.yaml": {"rows": 120},
            "params.yaml": {"global": 2},
        }
    )
    want_params, want_metrics = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert set(want_params) == {"config/hp.yaml", "params.yaml"}
    assert set(want_metrics) == {"eval/scores.json", "summary.yaml"}
    assert want_metrics["eval/scores.json"]["per_class.b"]["new"] == 0.95


def test_a_cached_metric_read_from_the_dvc_cache_at_the_base(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {
        "stages": {
            "evaluate": {
                "cmd": "cp src.json metrics.json",
                "deps": ["src.json"],
                "metrics": ["metrics.json"],  # cached: in Git only as dvc.lock's md5
            }
        }
    }
    p.write({"dvc.yaml": dvc_yaml, "src.json": {"acc": 0.5, "loss": {"train": 1.0, "test": 1.5}}})
    p.dvc("repro", "-q")
    base = p.commit()
    assert isinstance(
        git_adapter.blobs(p.root, base, ["metrics.json"], max_bytes=1000)["metrics.json"], FileNotFoundError
    )
    p.write({"src.json": {"acc": 0.75, "loss": {"train": 0.5, "test": 1.5}}})
    p.dvc("repro", "-q")
    head = p.commit()
    _, want = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want == {
        "metrics.json": {
            "acc": {"old": 0.5, "new": 0.75, "diff": 0.25},
            "loss.train": {"old": 1.0, "new": 0.5, "diff": -0.5},
        }
    }
    assert read_side(p.root, base).metrics["metrics.json"]["acc"] == 0.5
    # the workspace after another run, not committed
    p.write({"src.json": {"acc": 0.875, "loss": {"train": 0.5, "test": 1.5}}})
    p.dvc("repro", "-q")
    assert_same_as_dvc(p.root, base, None, monkeypatch)
    # the output deleted from the workspace: DVC reads it from the cache by dvc.lock's md5, and so do we
    (p.root / "metrics.json").unlink()
    assert read_side(p.root, None).metrics["metrics.json"]["acc"] == 0.875
    assert_same_as_dvc(p.root, base, None, monkeypatch)
    # gone from the cache too (a fresh clone without `dvc pull`): no value, on both paths
    shutil.rmtree(p.root / ".dvc" / "cache")
    assert "metrics.json" in read_side(p.root, base).errors
    assert_same_as_dvc(p.root, base, None, monkeypatch)


def test_a_metric_file_missing_on_one_side(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {"stages": {"eval": stage(metrics=[{"scores.json": {"cache": False}}, {"new.json": {"cache": False}}])}}
    base = p.commit({"dvc.yaml": dvc_yaml, "scores.json": {"acc": 0.9}})
    head = p.commit({"scores.json": None, "new.json": {"f1": 0.5}})
    _, want = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want["scores.json"]["acc"] == {"old": 0.9, "new": None}
    assert want["new.json"]["f1"] == {"old": None, "new": 0.5}
    side = read_side(p.root, base)
    assert side.errors == {"new.json": "not found"} and side.metrics["new.json"] == {}


def test_nested_dicts_and_list_values(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {
        "stages": {"train": stage(params=[{"params.yaml": None}], metrics=[{"m.yaml": {"cache": False}}])},
    }
    base = p.commit(
        {
            "dvc.yaml": dvc_yaml,
            "params.yaml": {"model": {"layers": [64, 32], "opt": {"name": "adam", "betas": [0.9]}}, "tags": []},
            "m.yaml": {"acc": 0.5, "curve": [0.1, 0.2], "by": {"x": {"y": 1}}, "one": [3], "none": None},
        }
    )
    head = p.commit(
        {
            "params.yaml": {"model": {"layers": [64, 16], "opt": {"name": "sgd", "betas": [0.99]}}, "tags": ["a"]},
            "m.yaml": {"acc": 0.6, "curve": [0.1, 0.3], "by": {"x": {"y": 2}, "z": {}}, "one": [4], "none": 1},
        }
    )
    want_params, want_metrics = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want_params["params.yaml"]["model.layers"] == {"old": "[64, 32]", "new": "[64, 16]"}
    p.write({"m.yaml": {"acc": [0.7], "curve": "flat", "by": {"x": 3}}})
    assert_same_as_dvc(p.root, base, None, monkeypatch)


def test_yaml_1_2_values_read_as_dvcs_ruamel_reads_them(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {"stages": {"train": stage(params=["flag", "n", "off"], metrics=[{"m.yaml": {"cache": False}}])}}
    # YAML 1.1 (PyYAML) reads `yes` as True and `1e3` as a string; YAML 1.2 (ruamel, DVC) the other way round
    base = p.commit({"dvc.yaml": dvc_yaml, "params.yaml": "flag: yes\nn: 1e3\noff: 0o10\n", "m.yaml": "acc: 1e-1\n"})
    head = p.commit(
        {"params.yaml": "flag: true\nn: 1000\noff: 010\n", "m.yaml": "acc: .inf\nmore: ~\nwhen: 2024-01-02\n"}
    )
    want, _ = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want["params.yaml"]["flag"] == {"old": "yes", "new": True}
    assert "n" not in want["params.yaml"]  # 1e3 is the float 1000.0, equal to 1000
    assert read_side(p.root, base).params["params.yaml"] == {"flag": "yes", "n": 1000.0, "off": 8}


def test_a_corrupt_metrics_file(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {"metrics": ["m.json", "m.yaml"]}
    base = p.commit({"dvc.yaml": dvc_yaml, "m.json": {"acc": 0.5}, "m.yaml": {"loss": 1}})
    head = p.commit({"m.json": '{"acc": 0.6,', "m.yaml": "loss: [1\n"})
    _, want = assert_same_as_dvc(p.root, base, head, monkeypatch)
    side = read_side(p.root, head)
    assert set(side.errors) == {"m.json", "m.yaml"} and side.metrics == {"m.json": {}, "m.yaml": {}}
    p.write({"m.yaml": "- a list\n- of items\n"})  # YAML, but no metrics in it
    (p.root / "m.json").write_bytes(b'{"acc": "\xff"}')  # not UTF-8
    assert_same_as_dvc(p.root, base, None, monkeypatch)


@pytest.mark.parametrize(
    "content",
    ["0", "[]", '""', "false", "null", "[1, 2]", '"text"', "3.5", '{"a": []}', '{"a": null, "b": {}}'],
)
def test_a_json_metrics_file_of_any_shape(tmp_path, monkeypatch, content):
    p = Project(tmp_path / "p")
    base = p.commit({"dvc.yaml": {"metrics": ["m.json"]}, "m.json": content})
    head = p.commit({"m.json": '{"a": 0.5}'})
    assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert_same_as_dvc(p.root, head, base, monkeypatch)
    p.write({"m.json": "0.5"})
    assert_same_as_dvc(p.root, base, None, monkeypatch)


# --- what only DVC resolves ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({"dvc.yaml": {"stages": {"s": {"foreach": [1, 2], "do": {"cmd": "echo ${item}"}}}}}, "foreach|vars"),
        ({"dvc.yaml": {"stages": {"s": stage(wdir="sub", params=["lr"])}}, "sub/params.yaml": {"lr": 1}}, "wdir"),
        ({"dvc.yaml": {"stages": {"s": stage()}}, "sub/dvc.yaml": {"stages": {"t": stage()}}}, "more than one"),
        ({"dvc.yaml": {"stages": {"s": stage(params=[{"hp.toml": ["lr"]}])}}, "hp.toml": "lr = 1\n"}, ".toml"),
        ({"dvc.yaml": {"stages": {"s": stage(params=[{"o.yaml": ["t.*"]}])}}, "o.yaml": {"t": {"a": 1}}}, "glob"),
        ({"dvc.yaml": {"vars": [{"x": 1}], "stages": {"s": stage(cmd="echo ${x}")}}}, "vars"),
        ({"dvc.yaml": {"metrics": ["mdir"]}, "mdir/a.json": {"acc": 1}}, "directory"),
    ],
    ids=["foreach", "wdir", "nested-dvc-yaml", "toml", "glob", "vars", "metrics-dir"],
)
def test_what_only_dvc_resolves_raises_needs_dvc_and_dvc_sides_still_agree(tmp_path, monkeypatch, files, why):
    p = Project(tmp_path / "p")
    base = p.commit(files)
    with pytest.raises(NeedsDvc, match=why):
        read_side(p.root, base)
    with pytest.raises(NeedsDvc, match=why):
        read_side(p.root, None)
    assert_dvc_sides_only(p.root, base, monkeypatch)  # DVC's answer is still reached, through dvc_sides


def test_dvc_sides_agrees_on_a_changed_foreach_project(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {
        "stages": {
            "train": {
                "foreach": ["a", "b"],
                "do": {"cmd": "true", "params": ["${item}.lr"], "metrics": [{"m_${item}.json": {"cache": False}}]},
            }
        }
    }
    base = p.commit({"dvc.yaml": dvc_yaml, "params.yaml": {"a": {"lr": 1}, "b": {"lr": 2}}, "m_a.json": {"x": 1}})
    p.write({"params.yaml": {"a": {"lr": 3}, "b": {"lr": 2}}, "m_a.json": {"x": 2}, "m_b.json": {"x": 5}})
    want_params, want_metrics = assert_dvc_sides_only(p.root, base, monkeypatch)
    assert want_params["params.yaml"]["a.lr"]["new"] == 3
    assert set(want_metrics) == {"m_a.json", "m_b.json"}


# --- output hashes ---------------------------------------------------------------------------


def test_output_hashes_of_a_dvc_tracked_file_and_a_stage_output(tmp_path):
    p = Project(tmp_path / "p")
    p.write({"data/raw.csv": "a,b\n1,2\n"})
    p.dvc("add", "-q", "data/raw.csv")
    p.write(
        {
            "dvc.yaml": {
                "stages": {
                    "prep": {
                        "cmd": "cp data/raw.csv data/clean.csv",
                        "deps": ["data/raw.csv"],
                        "outs": ["data/clean.csv"],
                    }
                }
            }
        }
    )
    p.dvc("repro", "-q")
    commit = p.commit()
    raw_md5 = yaml.safe_load((p.root / "data/raw.csv.dvc").read_text())["outs"][0]["md5"]
    lock = yaml.safe_load((p.root / "dvc.lock").read_text())
    clean_md5 = lock["stages"]["prep"]["outs"][0]["md5"]
    assert raw_md5 == clean_md5  # the same bytes
    found = output_hashes(p.root, commit, ["data/raw.csv", "data/clean.csv", "data/untracked.csv"])
    assert found == {"data/raw.csv": raw_md5, "data/clean.csv": clean_md5}
    # a later change: the earlier commit still answers with its own hashes
    p.write({"data/raw.csv": "a,b\n3,4\n"})
    p.dvc("add", "-q", "data/raw.csv")
    p.dvc("repro", "-q")
    later = p.commit()
    assert output_hashes(p.root, commit, ["data/raw.csv"]) == {"data/raw.csv": raw_md5}
    assert output_hashes(p.root, later, ["data/raw.csv"])["data/raw.csv"] != raw_md5


# --- the Git helpers -------------------------------------------------------------------------


def test_blobs_skip_a_large_file_and_still_read_the_next(tmp_path):
    p = Project(tmp_path / "p")
    big = "x" * 5000 + "\n"
    commit = p.commit({"big.txt": big, "small.txt": "hello\n", "dir/inner.txt": "in\n", "empty.txt": ""})
    paths = ["big.txt", "small.txt", "dir", "missing.txt", "empty.txt", "dir/inner.txt", "big.txt"]
    found = git_adapter.blobs(p.root, commit, paths, max_bytes=4096)
    assert isinstance(found["big.txt"], git_adapter.BlobTooLarge) and "5,001 bytes" in str(found["big.txt"])
    assert found["small.txt"] == b"hello\n"
    assert isinstance(found["dir"], IsADirectoryError)
    assert isinstance(found["missing.txt"], FileNotFoundError)
    assert found["empty.txt"] == b""
    assert found["dir/inner.txt"] == b"in\n"
    assert git_adapter.blobs(p.root, commit, ["big.txt"], max_bytes=5001) == {"big.txt": big.encode()}
    assert git_adapter.blobs(p.root, commit, [], max_bytes=1) == {}
    # a path with a line break (from a dvc.yaml) is no file, and doesn't shift the answers after it
    found = git_adapter.blobs(
        p.root, commit, ["small.txt\nempty.txt", "small.txt", "a\rb", "dir/inner.txt"], max_bytes=99
    )
    assert isinstance(found["small.txt\nempty.txt"], FileNotFoundError) and isinstance(found["a\rb"], FileNotFoundError)
    assert (found["small.txt"], found["dir/inner.txt"]) == (b"hello\n", b"in\n")
    # names with spaces, missing or not: "<name> missing" is told from "<sha> blob <size>"
    spaced = p.commit({"my metrics.json": "{}", "a b c.txt": "abc"})
    found = git_adapter.blobs(p.root, spaced, ["no such.json", "my metrics.json", "x 5", "a b c.txt"], max_bytes=99)
    assert isinstance(found["no such.json"], FileNotFoundError) and isinstance(found["x 5"], FileNotFoundError)
    assert (found["my metrics.json"], found["a b c.txt"]) == (b"{}", b"abc")


def test_the_workspace_reader_bounds_a_file_too(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    base = p.commit({"dvc.yaml": {"metrics": ["m.json"]}, "m.json": {"acc": 1, "pad": "x" * 40}})
    monkeypatch.setattr(dvc_records, "MAX_FILE_BYTES", 30)  # dvc.yaml (18 bytes) is read, m.json isn't
    side = read_side(p.root, None)
    assert side.metrics == {"m.json": {}} and "over" in side.errors["m.json"]
    assert read_side(p.root, base).errors["m.json"].startswith("m.json: 61 bytes")


def test_merge_base_and_default_branch_with_a_feature_branch(tmp_path):
    p = Project(tmp_path / "p")
    first = p.commit({"a.txt": "1"})
    assert git_adapter.default_branch(p.root) == "main"
    run(["git", "switch", "-q", "-c", "feature"], cwd=p.root)
    feature = p.commit({"b.txt": "2"})
    run(["git", "switch", "-q", "main"], cwd=p.root)
    main_later = p.commit({"c.txt": "3"})
    assert git_adapter.merge_base(p.root, "main", "feature") == first
    assert git_adapter.merge_base(p.root, main_later, feature) == first
    assert git_adapter.resolve_commit(p.root, "feature") == feature
    assert git_adapter.resolve_commit(p.root, "feature~1") == first
    assert git_adapter.resolve_commit(p.root, "nope") is None
    assert git_adapter.resolve_commit(p.root, "--all") is None
    run(["git", "switch", "-q", "--orphan", "other"], cwd=p.root)
    lonely = p.commit({"d.txt": "4"})
    assert git_adapter.merge_base(p.root, lonely, "main") is None  # unrelated histories
    run(["git", "branch", "-q", "-m", "main", "trunk"], cwd=p.root)
    assert git_adapter.default_branch(p.root) is None
    run(["git", "branch", "-q", "master", "trunk"], cwd=p.root)
    assert git_adapter.default_branch(p.root) == "master"
    clone = tmp_path / "clone"
    run(["git", "switch", "-q", "trunk"], cwd=p.root)
    run(["git", "clone", "-q", str(p.root), str(clone)])
    assert git_adapter.default_branch(clone) == "origin/trunk"  # the remote's HEAD wins
    run(["git", "remote", "set-head", "origin", "-d"], cwd=clone)
    assert git_adapter.default_branch(clone) == "origin/master"  # no local main/master, no remote HEAD
    when = run(["git", "show", "-s", "--format=%ct", first], cwd=p.root).stdout.strip()
    assert git_adapter.commit_time(p.root, first) == float(when)
    assert git_adapter.commit_time(p.root, "0" * 40) is None


def test_params_yaml_named_by_a_stage_but_missing_at_the_base(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    base = p.commit({"dvc.yaml": {"stages": {"train": stage(params=["lr"])}}})
    assert read_side(p.root, base).errors == {"params.yaml": "not found"}
    head = p.commit({"params.yaml": {"lr": 0.1, "other": 2}})
    want, _ = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want == {"params.yaml": {"lr": {"old": None, "new": 0.1}, "other": {"old": None, "new": 2}}}


# --- the restated diff and selection against DVC's own functions -----------------------------

KEYS = ["a", "b", "c", "d", 1, "p.q"]  # "p.q": a dotted key (no plain "p" key, so no flattened name collides)
STRINGS = ["", "x", "1", "1.5", "[1]", "[1, 2]", '{"a": 1}', '{"a": {"b": [2]}}', "true", "null", "nan", "[]", "{}"]


def gen_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return {rng.choice(KEYS): gen_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 3 and roll < 0.42:
        return [gen_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    return rng.choice(
        [
            rng.randint(-3, 3),
            rng.choice([0.5, -1.25, 2.0, 0.0, 1e-9, 3.0]),
            rng.choice([True, False]),
            None,
            rng.choice(STRINGS),
        ]
    )


def mutate(rng: random.Random, value):
    """A near copy of ``value``: a few leaves changed, added or removed."""
    if isinstance(value, dict):
        out = {k: (mutate(rng, v) if rng.random() < 0.5 else v) for k, v in value.items() if rng.random() > 0.1}
        if rng.random() < 0.2:
            out[rng.choice(KEYS)] = gen_value(rng, 2)
        return out
    if isinstance(value, list) and value and rng.random() < 0.5:
        return [mutate(rng, v) for v in value]
    return gen_value(rng, 2) if rng.random() < 0.5 else value


def gen_files(rng: random.Random) -> tuple[dict, dict]:
    old, new = {}, {}
    for name in rng.sample(["m.json", "n.yaml", "o.json"], rng.randint(1, 3)):
        content = gen_value(rng) if rng.random() < 0.2 else {k: gen_value(rng, 1) for k in rng.sample(KEYS, 3)}
        later = mutate(rng, content) if rng.random() < 0.8 else gen_value(rng)
        if rng.random() < 0.05:  # a file of a one-element list: DVC compares what is inside
            content, later = [gen_value(rng, 3)], [gen_value(rng, 3)]
        if rng.random() < 0.9:
            old[name] = content
        if rng.random() < 0.9:
            new[name] = later
    return old, new


def test_diff_values_equals_dvcs_diff_over_generated_values():
    from dvc.utils.diff import diff, format_dict

    rng = random.Random(17)
    changed = 0
    for _ in range(3000):
        old, new = gen_files(rng)
        want = diff(
            format_dict({f: {"data": c} for f, c in old.items()}), format_dict({f: {"data": c} for f, c in new.items()})
        )
        assert dvc_compat.diff_values(old, new) == want, (old, new)
        changed += bool(want)
    assert changed > 1500  # the generated pairs mostly differ: the comparison is not of empty diffs


def test_flat_values_and_metric_values_equal_dvcs_over_generated_values():
    from dvc.repo.metrics.show import _extract_metrics
    from dvc.utils.diff import _flatten, _parse, format_dict

    rng = random.Random(18)
    for _ in range(3000):
        content = gen_value(rng)
        shown = _flatten(_parse(format_dict({"data": content})["data"]))
        expected = dict(shown) if shown.default_factory() is None else {}
        assert dvc_compat.flat_values(content) == expected, content
        assert dvc_compat.metric_values(content) == (_extract_metrics(content, "m.json") or {}), content


@pytest.mark.parametrize(
    ("config", "keys"),
    [
        ({"a": {"b": 1, "c": [1, 2]}, "d": 3}, ["a.b", "d"]),
        ({"a": {"b": 1, "c": [1, 2]}, "d": 3}, ["a.c", "a.missing", "x", "d.e"]),
        ({"a": {"b": {"c": {"d": 4}}, "e": 5}}, ["a.b.c", "a.e", "a.b.c"]),
        ({"a": {"b": 1, "c": 2}, "ab": 3}, ["a", "ab"]),  # a prefix that is no parent
        ({"a": None, "b": [], "c": {}, "d": ""}, ["a", "b", "c", "d"]),
        ({"train": {"lr": 0.1, "epochs": 10}, "model": {"name": "rf"}}, []),
    ],
)
def test_select_params_equals_read_param_file(tmp_path, config, keys):
    from dvc.dependency.param import read_param_file
    from dvc.fs import LocalFileSystem

    path = tmp_path / "p.json"
    path.write_text(json.dumps(config))
    want = read_param_file(LocalFileSystem(), str(path), keys)
    assert dvc_compat.select_params(dvc_compat.load_values("p.json", path.read_bytes()), keys) == want
    # and through YAML, with ruamel's types
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config))
    want = read_param_file(LocalFileSystem(), str(path), keys)
    assert dvc_compat.select_params(dvc_compat.load_values("p.yaml", path.read_bytes()), keys) == want


# (a params file, the keys a stage names, what DVC's read_param_file answers: a plain walk of
# the keys can't give it)
DPATH_ONLY = [
    ("a:\n  b: 1\n", ["a.*"], {"a": {"b": 1}}),
    ("a:\n  b: 1\n", ["a.?"], {"a": {"b": 1}}),
    ("a:\n  b: [1]\n", ["a.b[0]"], {}),
    ("l: [1, 2]\n", ["l.0"], {"l": [1]}),
    ("a:\n  b: 1\n  c: [1, 2]\n", ["a", "a.c"], {"a": {"b": 1, "c": [1, 2, 1, 2]}}),  # dpath's merge
    ("a:\n  b: {c: [1]}\n", ["a.b.c", "a.b"], {"a": {"b": {"c": [1, 1]}}}),
    ("a:\n  1: x\n", ["a.1"], {"a": {1: "x"}}),  # the int key 1 found by "1"
    ("1:\n  2: x\n", ["1.2"], Exception),  # DVC's read fails: an error entry
    ("a: 1\n", [".a"], {"a": 1}),  # an empty part: dpath drops a leading one...
    # ...and refuses a trailing one, unless DVC's plots code was imported (it allows empty keys)
    ("a:\n  '': 1\n", ["a."], ...),
]


@pytest.mark.parametrize(("text", "keys", "dvc_answer"), DPATH_ONLY)
def test_select_params_leaves_what_only_dpath_resolves_to_dvc(tmp_path, text, keys, dvc_answer):
    from dvc.dependency.param import read_param_file
    from dvc.fs import LocalFileSystem

    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(dvc_compat.NotRestated):
        dvc_compat.select_params(dvc_compat.load_values("p.yaml", text.encode()), keys)
    if dvc_answer is ...:
        return
    if dvc_answer is Exception:
        with pytest.raises(Exception):  # whichever DVC raises, the file is an error entry
            read_param_file(LocalFileSystem(), str(path), keys)
    else:
        assert read_param_file(LocalFileSystem(), str(path), keys) == dvc_answer


def test_a_stage_naming_overlapping_keys_is_left_to_dvc(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    dvc_yaml = {"stages": {"a": stage(params=[{"hp.yaml": ["m"]}]), "b": stage(params=[{"hp.yaml": ["m.layers"]}])}}
    base = p.commit({"dvc.yaml": dvc_yaml, "hp.yaml": {"m": {"layers": [1, 2], "x": 1}}})
    p.write({"hp.yaml": {"m": {"layers": [1, 3], "x": 1}}})
    with pytest.raises(NeedsDvc, match="overlap"):
        read_side(p.root, base)
    want, _ = assert_dvc_sides_only(p.root, base, monkeypatch)
    assert want == {"hp.yaml": {"m.layers": {"old": "[1, 2, 1, 2]", "new": "[1, 3, 1, 3]"}}}  # DVC's merge


# --- more layouts ----------------------------------------------------------------------------

LAYOUTS = {
    "no-dvc-yaml": (
        {"params.yaml": {"lr": 1, "n": {"a": 1}}},
        {"params.yaml": {"lr": 2, "n": {"a": 1, "b": 2}}},
    ),
    "empty-files": (
        {"dvc.yaml": "", "params.yaml": ""},
        {"dvc.yaml": {"metrics": ["m.yaml"]}, "params.yaml": "lr: 1\n", "m.yaml": ""},
    ),
    "a-file-named-twice": (
        {
            "dvc.yaml": {
                "params": ["conf/p.yml"],
                "metrics": ["./m.JSON", "m.JSON"],
                "stages": {
                    "s": stage(params=[{"conf/p.yml": ["a"]}, {"params.yaml": ["lr"]}], metrics=["m.JSON"]),
                    "t": stage(metrics=[{"./m.JSON": {"cache": False}}]),
                },
            },
            "conf/p.yml": {"a": 1, "b": 2},
            "params.yaml": {"lr": 0.1, "x": 1},
            "m.JSON": {"acc": 0.5},
        },
        {"conf/p.yml": {"a": 1, "b": 3}, "params.yaml": {"lr": 0.1, "x": 2}, "m.JSON": {"acc": 0.25}},
    ),
    "a-stage-added": (
        {"dvc.yaml": {"stages": {"s": stage(params=[{"hp.yaml": ["a"]}])}}, "hp.yaml": {"a": 1, "b": 1}},
        {
            "dvc.yaml": {
                "stages": {
                    "s": stage(params=[{"hp.yaml": ["a"]}]),
                    "t": stage(params=[{"hp.yaml": ["b"]}], metrics=[{"t.json": {"cache": False}}]),
                }
            },
            "hp.yaml": {"a": 2, "b": 3},
            "t.json": {"rows": 10},
        },
    ),
    "spaces-in-names": (
        {"dvc.yaml": {"metrics": ["my metrics.json"], "params": ["my params.yaml"]}, "my params.yaml": {"a": 1}},
        {"my metrics.json": {"acc": 1}, "my params.yaml": {"a": 2}},
    ),
    "lists-and-types": (
        {"dvc.yaml": {"metrics": ["m.yaml"]}, "m.yaml": "a: [1]\nb: true\nc: 2024-01-02\nd: {e: null, f: []}\ng: 1\n"},
        {"m.yaml": "a: 1\nb: false\nc: 2024-01-03\nd: {e: 1, f: [2]}\ng: '1'\n"},
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_more_layouts_equal_dvcs_diff(tmp_path, monkeypatch, layout):
    before, after = LAYOUTS[layout]
    p = Project(tmp_path / "p")
    base = p.commit(before)
    head = p.commit(after)
    assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert_same_as_dvc(p.root, head, base, monkeypatch)
    run(["git", "checkout", "-q", base, "--", "."], cwd=p.root)  # the workspace back at the base, dirty
    for name in set(after) - set(before):
        (p.root / name).unlink()
    assert_same_as_dvc(p.root, head, None, monkeypatch)


def test_a_dvc_project_in_a_subdirectory_of_the_repository(tmp_path, monkeypatch):
    top = tmp_path / "repo"
    top.mkdir()
    run(["git", "init", "-q"], cwd=top)
    (top / "params.yaml").write_text("outside: 1\n")  # the repository's, not the DVC project's
    root = top / "ml"
    root.mkdir()
    run([*DVC, "init", "-q", "--subdir"], cwd=root)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"metrics": ["m.json"], "stages": {"s": stage(params=["lr"])}}))
    (root / "params.yaml").write_text("lr: 0.1\n")
    (root / "m.json").write_text('{"acc": 0.5}')
    run(["git", "add", "-A"], cwd=top)
    run(["git", "commit", "-q", "-m", "base"], cwd=top)
    base = run(["git", "rev-parse", "HEAD"], cwd=top).stdout.strip()
    (root / "params.yaml").write_text("lr: 0.2\n")
    (root / "m.json").write_text('{"acc": 0.75}')
    (top / "params.yaml").write_text("outside: 2\n")
    assert git_adapter.repository_prefix(root) == "ml"
    assert read_side(root, base).params == {"params.yaml": {"lr": 0.1}}
    want_params, want_metrics = assert_same_as_dvc(root, base, None, monkeypatch)
    assert want_params == {"params.yaml": {"lr": {"old": 0.1, "new": 0.2, "diff": 0.1}}}
    assert want_metrics == {"m.json": {"acc": {"old": 0.5, "new": 0.75, "diff": 0.25}}}


@pytest.mark.parametrize(
    "dvc_yaml",
    [
        "stages: [\n",  # not YAML
        yaml.safe_dump({"stages": {"s": {"cmd": "true", "params": ["lr"], "bogus": 1}}}),  # not DVC's schema
        yaml.safe_dump({"stages": {"s": {"params": ["lr"]}}}),  # a stage without cmd
        yaml.safe_dump({"metrics": "m.json"}),  # not a list
    ],
    ids=["not-yaml", "unknown-field", "no-cmd", "metrics-not-a-list"],
)
def test_a_broken_dvc_yaml_at_the_base(tmp_path, monkeypatch, dvc_yaml):
    p = Project(tmp_path / "p")
    base = p.commit({"dvc.yaml": dvc_yaml, "params.yaml": {"lr": 1}, "m.json": {"acc": 1}})
    p.write({"dvc.yaml": {"metrics": ["m.json"], "stages": {"s": stage(params=["lr"])}}, "params.yaml": {"lr": 2}})
    assert_as_report_reads_it(p.root, base, monkeypatch)


@pytest.mark.parametrize(
    "breaking",
    [lambda lock: "stages: [\n", lambda lock: lock.replace("    cmd:", "    bogus: 1\n    cmd:")],
    ids=["not-yaml", "unknown-field"],
)
def test_a_broken_dvc_lock_beside_a_cached_metric_at_the_base(tmp_path, monkeypatch, breaking):
    p = Project(tmp_path / "p")
    dvc_yaml = {
        "stages": {"evaluate": {"cmd": "cp src.json metrics.json", "deps": ["src.json"], "metrics": ["metrics.json"]}}
    }
    p.write({"dvc.yaml": dvc_yaml, "src.json": {"acc": 0.5}})
    p.dvc("repro", "-q")
    good_lock = (p.root / "dvc.lock").read_text()
    assert "    cmd:" in good_lock and "md5" in good_lock
    base = p.commit({"dvc.lock": breaking(good_lock)})
    p.write({"src.json": {"acc": 0.75}, "dvc.lock": good_lock})
    p.dvc("repro", "-q")
    assert_as_report_reads_it(p.root, base, monkeypatch)


# --- generated projects ----------------------------------------------------------------------

PARAM_FILES = ["params.yaml", "conf/a.yaml", "b.json"]
METRIC_FILES = ["m1.json", "eval/m2.yaml", "m3.json"]


def gen_config(rng: random.Random) -> dict:
    return {k: gen_value(rng, 1) for k in rng.sample(["a", "b", "c", "d"], rng.randint(1, 4))}


def key_paths(config, prefix: str = "") -> list[str]:
    paths = []
    for key, value in config.items():
        if isinstance(key, str) and "." not in key:
            paths.append(prefix + key)
            if isinstance(value, dict):
                paths.extend(key_paths(value, f"{prefix}{key}."))
    return paths


def gen_dvc_yaml(rng: random.Random, configs: dict) -> dict:
    doc: dict = {"stages": {}}
    for n in range(rng.randint(1, 3)):
        entries: list = []
        for file in rng.sample(PARAM_FILES, rng.randint(0, 2)):
            if rng.random() < 0.3:
                entries.append({file: None})
            else:
                known = key_paths(configs.get(file, {})) + ["missing"]
                entries.append({file: rng.sample(known, min(len(known), rng.randint(1, 2)))})
        metrics = [{m: {"cache": False}} for m in rng.sample(METRIC_FILES, rng.randint(0, 2))]
        doc["stages"][f"s{n}"] = stage(params=entries, metrics=metrics)
    if rng.random() < 0.3:
        doc["params"] = rng.sample(PARAM_FILES[1:], 1)
    if rng.random() < 0.3:
        doc["metrics"] = rng.sample(METRIC_FILES, 1)
    return doc


def gen_revision(rng: random.Random, before: dict | None) -> dict:
    files: dict = {}
    for name in PARAM_FILES + METRIC_FILES:
        if before is not None and name in before and rng.random() < 0.7:
            files[name] = mutate(rng, before[name])
        elif rng.random() < 0.8:
            files[name] = gen_config(rng)
    if before is not None and rng.random() < 0.7:
        files["dvc.yaml"] = before["dvc.yaml"]
    else:
        files["dvc.yaml"] = gen_dvc_yaml(rng, files)
    return files


@pytest.mark.parametrize("seed", range(8))  # each costs DVC Repos: 8 seeds cover the shapes (16 were run once)
def test_generated_projects_equal_dvcs_diff(tmp_path, monkeypatch, seed):
    """Random params files, stages naming keys or whole files, top-level entries and metrics
    (seeded): the fast read and dvc_sides equal DVC's diff, between two commits both ways and
    against a dirty workspace."""
    rng = random.Random(seed)
    p = Project(tmp_path / "p")
    before = gen_revision(rng, None)
    base = p.commit(before)
    after = gen_revision(rng, before)
    head = p.commit({name: after.get(name) for name in {*before, *after}})
    dirty = gen_revision(rng, after)
    p.write({name: dirty.get(name) for name in {*after, *dirty}})
    for a, b in ((base, head), (head, base), (base, None)):
        assert_same_as_dvc(p.root, a, b, monkeypatch)
    assert_dvc_sides_only(p.root, base, monkeypatch)  # the fallback on the same shapes, against the workspace


def test_number_keys_reach_the_report_as_text(tmp_path):
    """A YAML key may be a number (`1: a`); the report sorts and names keys as text (a gate names them so)."""
    from opsctl.core import report as core_report
    from opsctl.core import report_gates
    from opsctl.core.project import open_project

    p = Project(tmp_path / "p")
    (p.root / "opsctl.yaml").write_text("project: p\nexecutor: local\n")
    p.commit({"dvc.yaml": {"metrics": ["m.yaml"]}, "params.yaml": "1: a\nlr: 1\n", "m.yaml": "2: 0.5\nacc: 1\n"})
    p.write({"params.yaml": "1: b\nlr: 3\n", "m.yaml": "2: 0.75\nacc: 1\n"})
    project = open_project(p.root)
    sides = core_report.resolve_sides(project, "HEAD", None)
    report = core_report.build_report(project, *sides, with_plots=False)
    assert [(c.key, c.old, c.new) for c in report.params] == [("1", "a", "b"), ("lr", 1, 3)]
    assert [(m.name, m.old, m.new) for m in report.metrics] == [("2", 0.5, 0.75), ("acc", 1, 1)]
    (result,) = report_gates.evaluate([report_gates.parse_gate("metrics.2.delta>0.2")], report)
    assert result.failed and result.detail == "2 Δ 0.25 > 0.2"


def test_a_params_file_that_is_a_cached_stage_output(tmp_path, monkeypatch):
    """A stage's output used as another's params (a tuning stage's best.yaml): in Git only as
    dvc.lock's md5, read from the cache as DVC reads it."""
    p = Project(tmp_path / "p")
    dvc_yaml = {
        "stages": {
            "tune": {"cmd": "cp space.yaml best.yaml", "deps": ["space.yaml"], "outs": ["best.yaml"]},
            "train": stage(params=[{"best.yaml": ["lr"]}]),
        }
    }
    p.write({"dvc.yaml": dvc_yaml, "space.yaml": {"lr": 0.1, "depth": 3}})
    p.dvc("repro", "-q", "tune")
    base = p.commit()
    p.write({"space.yaml": {"lr": 0.2, "depth": 4}})
    p.dvc("repro", "-q", "tune")
    head = p.commit()
    want, _ = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want == {"best.yaml": {"lr": {"old": 0.1, "new": 0.2, "diff": 0.1}}}


def test_a_params_file_tracked_by_a_dvc_file(tmp_path, monkeypatch):
    p = Project(tmp_path / "p")
    p.write({"dvc.yaml": {"stages": {"train": stage(params=[{"hp.yaml": ["lr"]}])}}, "hp.yaml": {"lr": 1, "x": 0}})
    p.dvc("add", "-q", "hp.yaml")
    base = p.commit()
    p.write({"hp.yaml": {"lr": 2, "x": 1}})
    p.dvc("add", "-q", "hp.yaml")
    head = p.commit()
    want, _ = assert_same_as_dvc(p.root, base, head, monkeypatch)
    assert want == {"hp.yaml": {"lr": {"old": 1, "new": 2, "diff": 1}}}
    (p.root / "hp.yaml").unlink()  # gone from the workspace: read from the cache, as DVC does
    assert_same_as_dvc(p.root, base, None, monkeypatch)


@pytest.mark.parametrize("tracked_by", ["stage", "dvc-add"])
def test_a_metric_inside_a_tracked_directory_is_left_to_dvc(tmp_path, monkeypatch, tracked_by):
    p = Project(tmp_path / "p")
    p.write({"src/m.json": {"acc": 0.5}})
    if tracked_by == "stage":
        p.write(
            {
                "dvc.yaml": {
                    "metrics": ["eval/m.json"],
                    "stages": {"e": {"cmd": "cp -r src eval", "deps": ["src"], "outs": ["eval"]}},
                }
            }
        )
        p.dvc("repro", "-q")
    else:
        p.write({"dvc.yaml": {"metrics": ["eval/m.json"]}, "eval/m.json": {"acc": 0.5}})
        p.dvc("add", "-q", "eval")
    base = p.commit()
    with pytest.raises(NeedsDvc, match="eval"):
        read_side(p.root, base)
    (p.root / "eval" / "m.json").write_text('{"acc": 0.75}')
    assert_dvc_sides_only(p.root, base, monkeypatch)
