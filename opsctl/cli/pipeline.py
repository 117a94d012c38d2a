"""Pipeline commands: ``opsctl status``."""

from __future__ import annotations

import sys

import typer

from opsctl.cli.output import Styled, out


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("dag")(dag)


def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which pipeline stages are stale, and why.

    From DVC's own change detection.
    """
    from opsctl.core.pipeline import pipeline_status
    from opsctl.core.project import open_project

    project = open_project()
    stages = pipeline_status(project)
    if as_json:
        out.json([
            {"stage": s.name, "stale": s.stale, "reasons": s.reasons, "upstream": s.upstream, "cmd": s.cmd}
            for s in stages
        ])
        return
    if not stages:
        out.info("No pipeline stages yet: add stages to dvc.yaml (or `dvc stage add`).")
        return
    out.table(
        ["stage", "status", "why"],
        [
            (s.name, Styled("stale", "yellow") if s.stale else Styled("up to date", "green"), "; ".join(s.reasons))
            for s in stages
        ],
    )
    stale = sum(s.stale for s in stages)
    out.info(f"{stale} of {len(stages)} stages stale" if stale else "Everything is up to date.")


def dag(
    as_json: bool = typer.Option(False, "--json", help="Nodes and edges as JSON."),
    mermaid: bool = typer.Option(False, "--mermaid", help="A Mermaid flowchart."),
    dot: bool = typer.Option(False, "--dot", help="A Graphviz digraph."),
) -> None:
    """The pipeline's stage graph.

    In the terminal: stages in layers, each with the stages it waits for. Or as
    JSON, Mermaid or Graphviz.
    """
    from opsctl.core.pipeline import pipeline_graph
    from opsctl.core.project import open_project
    from opsctl.errors import UsageError

    if sum((as_json, mermaid, dot)) > 1:
        raise UsageError("choose one of --json, --mermaid, --dot")
    nodes = pipeline_graph(open_project())
    edges = [(up, node.name) for node in nodes for up in node.upstream]
    if as_json:
        out.json({
            "nodes": [{"name": n.name, "cmd": n.cmd, "deps": n.deps, "outs": n.outs, "layer": n.layer} for n in nodes],
            "edges": [{"from": a, "to": b} for a, b in edges],
        })
        return
    if mermaid:
        ids = {n.name: f"s{i}" for i, n in enumerate(nodes)}
        lines = ["flowchart TD"]
        lines += [f'    {ids[n.name]}["{_mermaid_label(n.name)}"]' for n in nodes]
        lines += [f"    {ids[a]} --> {ids[b]}" for a, b in edges]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    if dot:
        lines = ["digraph pipeline {", "    rankdir=TB;", "    node [shape=box];"]
        lines += [f"    {_dot_id(n.name)};" for n in nodes]
        lines += [f"    {_dot_id(a)} -> {_dot_id(b)};" for a, b in edges]
        sys.stdout.write("\n".join(lines + ["}"]) + "\n")
        return
    if not nodes:
        out.info("No pipeline stages yet: add stages to dvc.yaml (or `dvc stage add`).")
        return
    width = max(len(n.name) for n in nodes)
    layers = max(n.layer for n in nodes)
    for layer in range(1, layers + 1):
        for node in (n for n in nodes if n.layer == layer):
            waits = f"  ◀── {', '.join(node.upstream)}" if node.upstream else ""
            sys.stdout.write(f"{layer:>2}  {node.name.ljust(width)}{waits}".rstrip() + "\n")
    out.info(f"{len(nodes)} stages in {layers} layers; stages in one layer can run in parallel")


def _mermaid_label(name: str) -> str:
    return name.replace('"', "#quot;")


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
