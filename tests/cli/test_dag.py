"""`opsctl dag`: the stage graph from DVC's index, as text, JSON, Mermaid and Graphviz."""

from __future__ import annotations

import json
import re

import yaml

from tests.conftest import BIN, git_dvc_project, opsctl_inprocess, run


def _dvc_edges(root) -> set[tuple[str, str]]:
    """Stage-to-stage edges as the real `dvc dag --dot` draws them (upstream -> downstream)."""
    dot = run([BIN / "dvc", "dag", "--dot"], cwd=root).stdout
    edges = set(re.findall(r'"([^"]+)"\s*->\s*"([^"]+)"', dot))
    return {(a, b) for a, b in edges if not a.endswith(".dvc") and not b.endswith(".dvc")}


def test_dag_formats_agree_with_dvc(ml_project):
    graph = json.loads(opsctl_inprocess("dag", "--json", cwd=ml_project, check=True).stdout)
    names = [n["name"] for n in graph["nodes"]]
    assert names == ["prepare", "featurize", "train", "evaluate"]
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert edges == {("prepare", "featurize"), ("featurize", "train"), ("featurize", "evaluate"), ("train", "evaluate")}
    assert edges == _dvc_edges(ml_project)
    assert {n["name"]: n["layer"] for n in graph["nodes"]} == {"prepare": 1, "featurize": 2, "train": 3, "evaluate": 4}

    mermaid = opsctl_inprocess("dag", "--mermaid", cwd=ml_project, check=True).stdout.splitlines()
    assert mermaid[0] == "flowchart TD"
    ids = dict(re.findall(r'^\s+(s\d+)\["([^"]+)"\]$', "\n".join(mermaid), flags=re.M))
    arrows = {(ids[a], ids[b]) for a, b in re.findall(r"^\s+(s\d+) --> (s\d+)$", "\n".join(mermaid), flags=re.M)}
    assert arrows == edges

    dot = opsctl_inprocess("dag", "--dot", cwd=ml_project, check=True).stdout
    assert dot.startswith("digraph pipeline {") and dot.rstrip().endswith("}")
    assert set(re.findall(r'"([^"]+)" -> "([^"]+)"', dot)) == edges

    text = opsctl_inprocess("dag", cwd=ml_project, check=True).stdout.splitlines()
    assert text[0].split() == ["1", "prepare"]
    assert text[3].split(None, 2)[:2] == ["4", "evaluate"] and text[3].endswith("◀── featurize, train")


def test_thirty_stage_dag_in_layers(tmp_path):
    git_dvc_project(tmp_path)
    stages = {}
    # 10 sources, 10 joins of two sources each, 10 finals each after one join.
    for i in range(10):
        stages[f"src{i}"] = {"cmd": f"echo {i} > s{i}.txt", "outs": [f"s{i}.txt"]}
    for i in range(10):
        stages[f"join{i}"] = {
            "cmd": "cat s*.txt > j.txt",
            "deps": [f"s{i}.txt", f"s{(i + 1) % 10}.txt"],
            "outs": [f"j{i}.txt"],
        }
    for i in range(10):
        stages[f"final{i}"] = {"cmd": "true", "deps": [f"j{i}.txt"], "outs": [f"f{i}.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    graph = json.loads(opsctl_inprocess("dag", "--json", cwd=tmp_path, check=True).stdout)
    layers = {n["name"]: n["layer"] for n in graph["nodes"]}
    assert len(layers) == 30
    assert {layers[f"src{i}"] for i in range(10)} == {1}
    assert {layers[f"join{i}"] for i in range(10)} == {2}
    assert {layers[f"final{i}"] for i in range(10)} == {3}
    assert {(e["from"], e["to"]) for e in graph["edges"]} == _dvc_edges(tmp_path)
    text = opsctl_inprocess("dag", cwd=tmp_path, check=True)
    assert len(text.stdout.splitlines()) == 30
    assert "30 stages in 3 layers" in text.stderr


def test_dag_usage_and_empty(tmp_path):
    git_dvc_project(tmp_path)
    assert opsctl_inprocess("dag", "--json", "--dot", cwd=tmp_path).returncode == 2
    assert json.loads(opsctl_inprocess("dag", "--json", cwd=tmp_path, check=True).stdout) == {"nodes": [], "edges": []}
    assert "No pipeline stages yet" in opsctl_inprocess("dag", cwd=tmp_path, check=True).stderr
    assert opsctl_inprocess("dag", cwd=tmp_path.parent).returncode == 3
