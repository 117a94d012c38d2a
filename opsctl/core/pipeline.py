"""The pipeline as DVC sees it: stages, their order and why each is stale."""

from __future__ import annotations

from dataclasses import dataclass

from opsctl.core.project import Project


@dataclass(frozen=True)
class StageStatus:
    name: str
    stale: bool
    reasons: list[str]
    upstream: list[str]
    cmd: str


def pipeline_status(project: Project) -> list[StageStatus]:
    """Each pipeline stage in topological order: up to date, or stale and why.

    Staleness is DVC's own change detection (deps, params, outs, command).
    """
    from opsctl.adapters import dvc as dvc_adapter

    result = []
    stale: set[str] = set()
    for stage in dvc_adapter.pipeline_status(project.root):
        never_run = [c for c in stage.changes if c.kind == "never-run"]
        # For a stage that never ran, DVC lists every dep and out as changed: noise.
        reasons = [_describe(change) for change in (never_run or stage.changes)]
        # DVC reports a stage's own changes only; a stage below a stale one
        # will run too, so say so.
        reasons += [f"upstream {name} is stale" for name in stage.upstream if name in stale]
        if reasons:
            stale.add(stage.name)
        result.append(StageStatus(stage.name, bool(reasons), reasons, list(stage.upstream), stage.cmd))
    return result


def _describe(change) -> str:
    if change.kind == "never-run":
        return "never run (no dvc.lock entry)"
    if change.kind == "param":
        return f"param {change.path.split(':', 1)[1]} {change.change}"
    if change.kind in ("dep", "out") and change.path:
        return f"{change.kind} {change.path} {change.change}"
    return change.change


@dataclass(frozen=True)
class StageNode:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    upstream: list[str]
    layer: int  # 1 for stages with no upstream stage; otherwise 1 + the deepest upstream's layer


def pipeline_graph(project: Project) -> list[StageNode]:
    """The stage DAG from DVC's own index, upstream first, each stage with its layer."""
    from opsctl.adapters import dvc as dvc_adapter

    layers: dict[str, int] = {}
    nodes = []
    for stage in dvc_adapter.pipeline_graph(project.root):
        layer = 1 + max((layers[u] for u in stage.upstream if u in layers), default=0)
        layers[stage.name] = layer
        nodes.append(StageNode(stage.name, stage.cmd, list(stage.deps), list(stage.outs), list(stage.upstream), layer))
    return nodes
