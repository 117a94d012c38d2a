"""Pipeline commands: ``opsctl status``, ``opsctl dag``, ``opsctl build``."""

from __future__ import annotations

import contextlib
import sys
from typing import Optional

import typer

from opsctl.cli.output import out


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("dag")(dag)
    app.command("build")(build)


def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which pipeline stages are stale, and why.

    From DVC's own change detection.
    """
    from opsctl.cli.status_view import print_status

    print_status(as_json)


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
        out.json(
            {
                "nodes": [
                    {"name": n.name, "cmd": n.cmd, "deps": n.deps, "outs": n.outs, "layer": n.layer} for n in nodes
                ],
                "edges": [{"from": a, "to": b} for a, b in edges],
            }
        )
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


@contextlib.contextmanager
def showing_build_log_tail():
    """A failed image build shows the last lines of its log above the error."""
    from opsctl.errors import BuildFailedError

    try:
        yield
    except BuildFailedError as exc:
        for line in exc.log_tail[-20:]:
            out.info(f"  │ {line}", style="dim")
        raise


def build(
    images: Optional[list[str]] = typer.Argument(None, metavar="IMAGE", help="Images from opsctl.yaml (default: all)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild from scratch, ignoring Docker's layer cache."),
    as_json: bool = typer.Option(False, "--json", help="Print the images as JSON."),
) -> None:
    """Build the project's images.

    Each is tagged by a hash of its build inputs (Dockerfile, build args, the
    context files .dockerignore lets through); an unchanged image is not rebuilt.
    """
    from opsctl.core.images import build_images
    from opsctl.core.project import open_project

    project = open_project()
    tail: list[str] = []
    with out.status("Building…") as spinner:

        def on_line(name: str, line: str) -> None:
            tail.append(line)
            del tail[:-20]
            if spinner is not None:
                spinner.update(f"Building {name}: {line[:100]}")

        with showing_build_log_tail():
            records = build_images(project, images or [], no_cache=no_cache, on_line=on_line)
    if as_json:
        out.json([vars(r) for r in records])
        return
    for r in records:
        if r.inputs_hash is None:
            out.success(f"{r.name}: {r.ref} (existing image {r.image_id[:19]})")
        elif r.built:
            out.success(f"{r.name}: built {r.ref} in {r.seconds:.1f} s ({r.image_id[:19]})")
        else:
            out.success(f"{r.name}: {r.ref} is up to date")
