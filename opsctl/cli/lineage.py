"""``opsctl lineage``: where an output or a model version came from."""

from __future__ import annotations

import sys

import typer

from opsctl.cli.output import out


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)


def lineage(
    target: str = typer.Argument(
        ..., metavar="TARGET", help="An output path (models/model.pkl) or a model version NAME@VERSION."
    ),
    as_json: bool = typer.Option(False, "--json", help="The graph as nodes and edges."),
) -> None:
    """Where TARGET came from: the stage and run that produced it, each input's hash back
    to the raw data's .dvc file, the code commit, the params and the image digest."""
    from opsctl.core.lineage import lineage as build
    from opsctl.core.project import open_project
    from opsctl.core.registry_link import model_version_lookup

    project = open_project()
    graph = build(project, target, model_version=model_version_lookup(project))
    if as_json:
        out.json(
            {
                "target": target,
                "root": graph.root,
                "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, **n.attrs} for n in graph.nodes.values()],
                "edges": [{"from": a, "to": b, "relation": r} for a, b, r in graph.edges],
            }
        )
        return
    lines: list[str] = []
    _render(graph, graph.root, "", "", lines, set())
    sys.stdout.write("\n".join(lines) + "\n")


def _render(graph, node_id: str, lead: str, child_lead: str, lines: list[str], seen: set) -> None:
    from opsctl.core.lineage import describe

    node = graph.nodes[node_id]
    repeat = node_id in seen and node.kind in ("artifact", "stage")
    lines.append(lead + describe(node) + ("  (see above)" if repeat else ""))
    if repeat:
        return
    seen.add(node_id)
    children = graph.ordered_children(node_id)
    for i, (child, _relation) in enumerate(children):
        last = i == len(children) - 1
        _render(
            graph,
            child,
            child_lead + ("└── " if last else "├── "),
            child_lead + ("    " if last else "│   "),
            lines,
            seen,
        )
