"""Where a run checks its data: the data gates of a pipeline (docs/architecture.md, *Data checks*).

Pure: from the stages' deps and outs and the datasets with checks, which checks run where.

- **before** a stage: a dataset it reads that no stage of the pipeline writes (raw data
  tracked by a ``.dvc`` file, or a file in Git). A bad raw file stops the run before any
  stage that reads it computes anything.
- **after** a stage: a dataset that is one of its outputs, or inside an output directory.
  A failure fails the stage: no ``dvc.lock`` entry, its dependants don't start.

- **drift** before a stage: a dataset under ``drift:`` that the stage reads (whoever wrote it)
  is compared with its reference first; a dataset that drifted fails the stage.

A dataset and a path overlap when they are the same path or one is inside the other (checks
on ``data/raw/churn.csv``, a stage reading ``data/raw``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BEFORE, AFTER, DRIFT = "before", "after", "drift"


@dataclass(frozen=True)
class Gate:
    stage: str
    dataset: str  # a path under checks: (or drift:, for DRIFT) in opsctl.yaml
    when: str  # BEFORE | AFTER | DRIFT


def inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def overlap(a: str, b: str) -> bool:
    return inside(a, b) or inside(b, a)


def plan_gates(datasets: Iterable[str], stages: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> list[Gate]:
    """``stages``: (name, dep paths, out paths), paths relative to the project root, in
    pipeline order. Gates in the same order: each stage's before-gates, then its after-gates."""
    datasets = list(datasets)
    produced = [out for _name, _deps, outs in stages for out in outs]
    gates = []
    for name, deps, outs in stages:
        for dataset in datasets:
            if any(inside(dataset, out) for out in outs):
                continue  # its own output: checked after it
            read = any(overlap(dataset, dep) for dep in deps)
            if read and not any(overlap(dataset, out) for out in produced):
                gates.append(Gate(name, dataset, BEFORE))
        gates += [Gate(name, dataset, AFTER) for dataset in datasets if any(inside(dataset, out) for out in outs)]
    return gates


def plan_drift_gates(datasets: Iterable[str], stages: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> list[Gate]:
    """The drift gates: each stage that reads a dataset under ``drift:`` compares it first."""
    datasets = list(datasets)
    return [
        Gate(name, dataset, DRIFT)
        for name, deps, _outs in stages
        for dataset in datasets
        if any(overlap(dataset, dep) for dep in deps)
    ]
