"""``opsctl lineage``: where an output or a model version came from."""

from __future__ import annotations

import sys
import time

import typer

from opsctl.cli.output import out


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)


def lineage(
    target: str = typer.Argument(..., metavar="TARGET", help="An output path (models/model.pkl) or a model version NAME@VERSION."),
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
        out.json({
            "target": target, "root": graph.root,
            "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, **n.attrs} for n in graph.nodes.values()],
            "edges": [{"from": a, "to": b, "relation": r} for a, b, r in graph.edges],
        })
        return
    lines: list[str] = []
    _render(graph, graph.root, "", "", lines, set())
    sys.stdout.write("\n".join(lines) + "\n")


def _describe(node) -> str:
    a = node.attrs
    short = (a.get("hash") or "?")[:12]
    if node.kind == "artifact":
        return f"{node.label}  md5 {short}  (output of {a['output_of']})"
    if node.kind == "data":
        return f"{node.label}  md5 {short}  (data, {a['dvcfile']})"
    if node.kind == "source":
        return f"{node.label}  md5 {short}  (source, in Git)"
    if node.kind == "stage":
        return f"stage {node.label}: {a['outcome']}  `{a['cmd']}`"
    if node.kind == "run":
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(a["started"])) if a.get("started") else "?"
        commit = (a.get("git_commit") or "(no commit)")[:8] + ("*" if a.get("dirty") else "")
        diff = f", uncommitted diff {a['diff_hash'][:12]}" if a.get("diff_hash") else ""
        return f"run {a['run'][:8]} ({a['status']}, {when}) code {commit} on {a.get('branch') or '(detached)'}{diff}"
    if node.kind == "image":
        digest = (a.get("digest") or "").removeprefix("sha256:")[:12]
        return f"image {a['ref']}" + (f" (id {digest})" if digest else "")
    if node.kind == "params":
        values = a.get("values")
        flat = ", ".join(f"{k}={v}" for k, v in _flat(values)) if isinstance(values, dict) else str(values)
        return f"params {a['file']}: {flat}"
    if node.kind == "unknown":
        return f"stage {node.label}: {a['why']}"
    return node.label


def _flat(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _render(graph, node_id: str, lead: str, child_lead: str, lines: list[str], seen: set) -> None:
    node = graph.nodes[node_id]
    repeat = node_id in seen and node.kind in ("artifact", "stage")
    lines.append(lead + _describe(node) + ("  (see above)" if repeat else ""))
    if repeat:
        return
    seen.add(node_id)
    # Order: how it was made (run, image, params) before what it read.
    order = {"in run": 0, "ran in": 1, "used params": 2, "produced by": 3, "read": 4}
    children = sorted(graph.children(node_id), key=lambda c: order.get(c[1], 9))
    for i, (child, _relation) in enumerate(children):
        last = i == len(children) - 1
        _render(graph, child, child_lead + ("└── " if last else "├── "), child_lead + ("    " if last else "│   "),
                lines, seen)
