"""A real Git + DVC project with one plot for each of DVC's templates, for the plots tests.

Its data at the Git tag ``v1`` and in the workspace differ (the losses are halved, the
scatter has three more points, the confusion matrix one more row), so an overlay of the
two shows two different series.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import yaml

from tests.conftest import git_dvc_project, run

# DVC's templates, in dvc_render's order, with the regular expression (a TARGET of
# `opsctl plots show`: matched at the start of a plot id) that selects each one's plot alone.
TARGETS = {
    "simple": "simple$",
    "linear": "plots/train.json$",
    "confusion": "confusion$",
    "confusion_normalized": "confusion_normalized$",
    "scatter": "scatter$",
    "scatter_jitter": "scatter_jitter$",
    "smooth": "smooth$",
    "bar_horizontal_sorted": "bar_horizontal_sorted$",
    "bar_horizontal": "bar_horizontal$",
}
TEMPLATES = tuple(TARGETS)
PLOT_IDS = {template: template for template in TEMPLATES} | {"linear": "plots/train.json"}
# Each plot's title: the declared one, else its id (DVC's default).
TITLES = PLOT_IDS | {
    "simple": "Accuracy",
    "linear": "Train loss",
    "confusion": "Confusion",
    "bar_horizontal_sorted": "Sorted bars",
}
FILES = ("plots/train.json", "plots/confusion.json", "plots/points.csv", "plots/bars.json")

# (actual, predicted) pairs: three classes, and (0, 2), (1, 2), (2, 1) never occur.
CONFUSION = [(0, 0)] * 5 + [(0, 1)] * 2 + [(1, 0)] + [(1, 1)] * 4 + [(2, 2)] * 3 + [(2, 0)]
BARS = [("alpha", 3), ("beta", 7), ("gamma", 1.5), ("delta", 5)]

DVC_YAML = {
    "stages": {
        "train": {
            "cmd": "true",
            "plots": [
                {
                    "plots/train.json": {
                        "cache": False,
                        "x": "step",
                        "y": "loss",
                        "title": "Train loss",
                        "x_label": "Step",
                        "y_label": "Loss",
                    }
                }
            ],
        }
    },
    "plots": [
        {"simple": {"template": "simple", "x": "step", "y": {"plots/train.json": "acc"}, "title": "Accuracy"}},
        {"smooth": {"template": "smooth", "x": "step", "y": {"plots/train.json": ["loss", "acc"]}}},
        {
            "confusion": {
                "template": "confusion",
                "x": "predicted",
                "y": {"plots/confusion.json": "actual"},
                "title": "Confusion",
            }
        },
        {
            "confusion_normalized": {
                "template": "confusion_normalized",
                "x": "predicted",
                "y": {"plots/confusion.json": "actual"},
            }
        },
        {"scatter": {"template": "scatter", "x": "x", "y": {"plots/points.csv": "y"}, "x_label": "X"}},
        {"scatter_jitter": {"template": "scatter_jitter", "x": "x", "y": {"plots/points.csv": "y"}}},
        {
            "bar_horizontal_sorted": {
                "template": "bar_horizontal_sorted",
                "x": "value",
                "y": {"plots/bars.json": "name"},
                "title": "Sorted bars",
            }
        },
        {"bar_horizontal": {"template": "bar_horizontal", "x": "value", "y": {"plots/bars.json": "name"}}},
    ],
}


def write_data(root: Path, *, version: int) -> None:
    """The plot files of ``version`` 1 (tagged v1) or 2 (the workspace)."""
    plots = root / "plots"
    plots.mkdir(exist_ok=True)
    scale = 1.0 if version == 1 else 0.5
    train = [{"step": i, "loss": round(scale * 2 / (i + 1), 4), "acc": round(1 - 1 / (i + 1), 4)} for i in range(20)]
    (plots / "train.json").write_text(json.dumps(train))
    confusion = CONFUSION + ([] if version == 1 else [(2, 2)])
    (plots / "confusion.json").write_text(json.dumps([{"actual": a, "predicted": p} for a, p in confusion]))
    count = 12 if version == 1 else 15
    (plots / "points.csv").write_text("x,y\n" + "".join(f"{i},{(i * 7) % 11}\n" for i in range(count)))
    (plots / "bars.json").write_text(json.dumps([{"name": n, "value": v * version} for n, v in BARS]))


def make_plots_project(root: Path) -> Path:
    """The project at ``root``: committed and tagged ``v1``, then its plot files changed."""
    git_dvc_project(root)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    write_data(root, version=1)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "plots"], cwd=root)
    run(["git", "tag", "v1"], cwd=root)
    write_data(root, version=2)
    return root


def file_content(root: Path, path: str):
    """A plot file as DVC parses it: JSON loaded, CSV rows as dicts of strings."""
    text = (root / path).read_text()
    if path.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    return json.loads(text)
