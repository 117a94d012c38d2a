"""`opsctl lineage` on the ml-pipeline project run with the local executor (real Git,
real DVC): from the model back through train, featurize and prepare to the raw
data's .dvc file, by output path and by registered model version."""

from __future__ import annotations

import json
import sys
from collections import deque
from pathlib import Path

import pytest
import yaml

from tests.cli.test_runs import copy_project, ml_ran, ml_twice  # noqa: F401 — fixtures shared with test_runs
from tests.conftest import git_dvc_project, opsctl_inprocess, run

MODEL = "models/model.pkl"
RAW = "data/raw/churn.csv"


def opsctl_json(root: Path, *args: str):
    result = opsctl_inprocess(*args, "--json", cwd=root)
    assert result.returncode == 0, f"opsctl {' '.join(args)}: {result.returncode}\n{result.stderr}"
    return json.loads(result.stdout)


def lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def lock_md5(root: Path, stage: str, kind: str, path: str) -> str:
    (md5,) = [item["md5"] for item in lock(root)[stage][kind] if item["path"] == path]
    return md5


class Graph:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.nodes = {n["id"]: n for n in data["nodes"]}
        self.edges = [(e["from"], e["to"], e["relation"]) for e in data["edges"]]
        assert all(a in self.nodes and b in self.nodes for a, b, _ in self.edges), "an edge to a missing node"

    @property
    def root(self) -> dict:
        return self.nodes[self.data["root"]]

    def of(self, kind: str, **attrs) -> list[dict]:
        return [n for n in self.nodes.values() if n["kind"] == kind and all(n.get(k) == v for k, v in attrs.items())]

    def one(self, kind: str, **attrs) -> dict:
        found = self.of(kind, **attrs)
        assert len(found) == 1, (kind, attrs, found)
        return found[0]

    def out(self, node_id: str, relation: str) -> list[dict]:
        return [self.nodes[b] for a, b, r in self.edges if a == node_id and r == relation]

    def reachable(self, start: str) -> set[str]:
        seen, todo = {start}, deque([start])
        while todo:
            for a, b, _ in self.edges:
                if a == todo[0] and b not in seen:
                    seen.add(b)
                    todo.append(b)
            todo.popleft()
        return seen


def lineage_of(root: Path, target: str) -> Graph:
    return Graph(opsctl_json(root, "lineage", target))


@pytest.fixture
def ml_copy(ml_ran, tmp_path) -> Path:
    return copy_project(ml_ran["root"], tmp_path / "ml")


def test_model_lineage_walks_back_to_the_raw_data(ml_ran):
    root, run_id = ml_ran["root"], ml_ran["run"]
    g = lineage_of(root, MODEL)
    assert g.data["target"] == MODEL
    model = g.root
    assert model["kind"] == "artifact" and model["path"] == MODEL
    assert model["hash"] == lock_md5(root, "train", "outs", MODEL)
    assert model["output_of"] == "train"

    (train,) = g.out(model["id"], "produced by")
    assert train["kind"] == "stage" and train["stage"] == "train" and train["run"] == run_id
    assert train["cmd"] == "python3 src/train.py"
    (run_node,) = g.out(train["id"], "in run")
    assert run_node["kind"] == "run" and run_node["run"] == run_id
    assert run_node["git_commit"] == ml_ran["commit"] and run_node["status"] == "succeeded"
    (params,) = g.out(train["id"], "used params")
    assert params["kind"] == "params" and params["file"] == "params.yaml"
    assert params["values"] == {"train": yaml.safe_load((root / "params.yaml").read_text())["train"]}

    # train read data/features/train.csv (inside featurize's output directory) and its source
    reads = {n["path"]: n for n in g.out(train["id"], "read")}
    assert set(reads) == {"data/features/train.csv", "src/train.py"}
    assert reads["src/train.py"]["kind"] == "source"
    assert reads["src/train.py"]["hash"] == lock_md5(root, "train", "deps", "src/train.py")
    features = reads["data/features/train.csv"]
    assert features["kind"] == "artifact" and features["hash"] == lock_md5(
        root, "train", "deps", "data/features/train.csv"
    )
    (featurize,) = g.out(features["id"], "produced by")
    assert featurize["stage"] == "featurize" and featurize["run"] == run_id
    (prepared,) = [n for n in g.out(featurize["id"], "read") if n["kind"] == "artifact"]
    assert prepared["path"] == "data/prepared"
    assert prepared["hash"] == lock_md5(root, "prepare", "outs", "data/prepared")
    (prepare,) = g.out(prepared["id"], "produced by")
    assert prepare["stage"] == "prepare" and prepare["run"] == run_id

    raw = g.one("data", path=RAW)
    assert raw["dvcfile"] == f"{RAW}.dvc"
    dvcfile = yaml.safe_load((root / f"{RAW}.dvc").read_text())
    assert raw["hash"] == dvcfile["outs"][0]["md5"]
    assert raw in g.out(prepare["id"], "read")
    assert raw["id"] in g.reachable(model["id"])

    sources = {n["path"] for n in g.of("source")}
    assert sources == {"src/prepare.py", "src/featurize.py", "src/train.py"}
    assert {n["stage"] for n in g.of("stage")} == {"train", "featurize", "prepare"}  # evaluate is downstream
    assert len(g.of("run")) == 1 and not g.of("unknown")
    for stage in g.of("stage"):
        assert [n["id"] for n in g.out(stage["id"], "in run")] == [run_node["id"]]
        assert len(g.out(stage["id"], "used params")) == 1


def test_lineage_text_is_a_tree(ml_ran):
    root, run_id = ml_ran["root"], ml_ran["run"]
    result = opsctl_inprocess("lineage", MODEL, cwd=root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{MODEL}  md5 {lock_md5(root, 'train', 'outs', MODEL)[:12]}")
    assert lines[1].startswith("└── stage train")
    assert any(RAW in line and f"{RAW}.dvc" in line for line in lines), result.stdout
    assert sum(f"run {run_id[:8]}" in line for line in lines) == 3  # one per stage on the way
    assert any("n_estimators=100" in line for line in lines)
    # deeper nodes are indented under their parent
    (raw_line,) = [line for line in lines if RAW in line]
    (prepare_line,) = [line for line in lines if "stage prepare" in line]
    assert raw_line.index(RAW) > prepare_line.index("stage prepare")


def test_untracked_path_is_a_usage_error_with_the_tracked_outputs(ml_ran):
    for target in ("models/nope.pkl", "src/train.py"):
        result = opsctl_inprocess("lineage", target, cwd=ml_ran["root"])
        assert result.returncode == 2, (target, result.stdout)
        assert f"{target} is not a DVC-tracked output" in result.stderr
        assert MODEL in result.stderr and "tracked outputs" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_file_inside_a_tracked_output_directory_has_a_lineage(ml_ran):
    """data/features/train.csv is tracked (inside featurize's output directory) and appears
    as a node of the model's lineage: it is a valid target of its own."""
    root = ml_ran["root"]
    result = opsctl_inprocess("lineage", "data/features/train.csv", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    g = Graph(json.loads(result.stdout))
    assert g.root["path"] == "data/features/train.csv"
    assert g.root["hash"] == lock_md5(root, "train", "deps", "data/features/train.csv")
    (featurize,) = g.out(g.data["root"], "produced by")
    assert featurize["stage"] == "featurize" and featurize["run"] == ml_ran["run"]
    assert g.one("data", path=RAW)["id"] in g.reachable(g.data["root"])


def test_registered_version_has_the_same_lineage(ml_copy, ml_ran):
    run(["git", "add", "-A"], cwd=ml_copy)
    run(["git", "commit", "-qm", "first model"], cwd=ml_copy)
    registered = opsctl_json(ml_copy, "model", "register", "churn", MODEL)
    assert registered["run"] == ml_ran["run"]
    by_path = lineage_of(ml_copy, MODEL)
    for target in ("churn@v0.0.1", "churn@0.0.1"):
        by_version = lineage_of(ml_copy, target)
        assert by_version.data["root"] == by_path.data["root"]
        assert by_version.root["hash"] == registered["md5"] == lock_md5(ml_copy, "train", "outs", MODEL)
        (train,) = by_version.out(by_version.data["root"], "produced by")
        assert train["run"] == ml_ran["run"]
        assert by_version.one("data", path=RAW)
        assert set(by_version.nodes) == set(by_path.nodes)
    result = opsctl_inprocess("lineage", "churn@v9.9.9", cwd=ml_copy)
    assert result.returncode == 2 and "v0.0.1" in result.stderr


def test_after_a_second_run_lineage_points_at_the_newer_run(ml_ran, ml_twice, tmp_path):
    root, second = ml_twice["root"], ml_twice["run"]
    assert second != ml_ran["run"]
    g = lineage_of(root, MODEL)
    assert g.root["hash"] == lock_md5(root, "train", "outs", MODEL)
    assert g.root["hash"] != lineage_of(ml_ran["root"], MODEL).root["hash"]
    (train,) = g.out(g.data["root"], "produced by")
    assert train["run"] == second
    (params,) = g.out(train["id"], "used params")
    assert params["values"]["train"]["n_estimators"] == 10
    # featurize and prepare did not run again: their outputs come from the first run
    assert {n["stage"]: n["run"] for n in g.of("stage")} == {
        "train": second,
        "featurize": ml_ran["run"],
        "prepare": ml_ran["run"],
    }
    assert {n["run"] for n in g.of("run")} == {second, ml_ran["run"]}
    assert g.one("run", run=second)["git_commit"] == ml_twice["commit"]
    assert g.one("data", path=RAW)["id"] in g.reachable(g.data["root"])
    # and a version registered now is linked to the newer run
    copy = copy_project(root, tmp_path / "ml")
    run(["git", "add", "-A"], cwd=copy)
    run(["git", "commit", "-qm", "ten trees"], cwd=copy)
    assert opsctl_json(copy, "model", "register", "churn", MODEL)["run"] == second
    (train,) = lineage_of(copy, "churn@v0.0.1").out(g.data["root"], "produced by")
    assert train["run"] == second


def test_without_a_recorded_run_the_lineage_comes_from_dvc_lock(ml_copy):
    """A model made outside opsctl (here: the run store is gone, as after `dvc repro`):
    each stage as dvc.lock records it — command, params, the hashes it read — back to the
    raw data, and no run, commit or image claimed."""
    for name in ("opsctl.db", "opsctl.db-wal", "opsctl.db-shm"):
        (ml_copy / ".opsctl" / name).unlink(missing_ok=True)
    g = lineage_of(ml_copy, MODEL)
    assert g.root["hash"] == lock_md5(ml_copy, "train", "outs", MODEL)
    (train,) = g.out(g.data["root"], "produced by")
    assert (train["kind"], train["stage"], train["recorded_in"], train["run"]) == ("stage", "train", "dvc.lock", None)
    assert train["cmd"] == lock(ml_copy)["train"]["cmd"]
    (params,) = g.out(train["id"], "used params")
    assert params["values"] == lock(ml_copy)["train"]["params"]["params.yaml"]
    raw = g.one("data", path=RAW)
    assert raw["hash"] == lock_md5(ml_copy, "prepare", "deps", RAW) and raw["id"] in g.reachable(g.data["root"])
    assert {n["stage"] for n in g.of("stage")} == {"train", "featurize", "prepare"}
    assert not g.of("run") and not g.of("image") and not g.of("unknown")
    text = opsctl_inprocess("lineage", MODEL, cwd=ml_copy).stdout
    assert "stage train: as dvc.lock records it, no opsctl run" in text


def test_a_version_neither_a_run_nor_dvc_lock_records_has_an_unknown_producer(tmp_path):
    """Made by `dvc repro`, registered, then made again with other params: the first
    version's producer is in no run record, and dvc.lock now describes the second."""
    root = git_dvc_project(tmp_path / "repro")
    (root / "raw.csv").write_text("".join(f"{i}\n" for i in range(10)))
    (root / "params.yaml").write_text("head: 3\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  head:\n    cmd: head -n ${head} raw.csv > model.txt\n    deps: [raw.csv]\n"
        "    params: [head]\n    outs: [model.txt]\n"
    )
    run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"], cwd=root)
    first = lineage_of(root, "model.txt")
    (head,) = first.out(first.data["root"], "produced by")
    assert head["recorded_in"] == "dvc.lock" and first.one("source", path="raw.csv")
    assert opsctl_json(root, "model", "register", "m", "model.txt")["version"] == "v0.0.1"
    (root / "params.yaml").write_text("head: 5\n")
    run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "second"], cwd=root)
    old = lineage_of(root, "m@v0.0.1")
    assert old.root["hash"] == first.root["hash"] != lineage_of(root, "model.txt").root["hash"]
    (unknown,) = old.out(old.data["root"], "produced by")
    assert unknown["kind"] == "unknown" and "dvc.lock records another" in unknown["why"]


def test_from_a_subdirectory_stages_keep_their_project_names(ml_ran):
    """DVC names stages relative to the working directory (`../dvc.yaml:train` from src/);
    opsctl names them from the project root, as the run store records them."""
    root, run_id = ml_ran["root"], ml_ran["run"]
    sub = root / "src"
    dag = opsctl_json(sub, "dag")
    assert {n["name"] for n in dag["nodes"]} == {"prepare", "featurize", "train", "evaluate"}
    g = Graph(opsctl_json(sub, "lineage", MODEL))
    (train,) = g.out(g.root["id"], "produced by")
    assert train["stage"] == "train" and train["run"] == run_id
    assert not g.of("unknown")
