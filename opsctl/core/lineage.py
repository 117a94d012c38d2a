"""Lineage: where an output or a model version came from.

From the artifact (its DVC hash) to the stage and run that produced it, then
each of that stage's inputs the same way, back to data tracked by ``.dvc``
files and to source files in Git; with the code commit, the params and the
image digest of every stage on the way. Built from the run store's records
(what ran, with which hashes) and DVC's index (what is tracked, and how). A stage
version no run recorded (``dvc repro``) comes from its ``dvc.lock`` entry instead:
command, params and input hashes, without a run, commit or image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from opsctl.core.files import file_md5
from opsctl.core.formatting import verdict_text
from opsctl.core.project import Project
from opsctl.errors import UsageError


@dataclass
class Node:
    id: str
    kind: str  # artifact | data | source | stage | run | params | image | unknown
    label: str
    attrs: dict = field(default_factory=dict)


@dataclass
class Lineage:
    root: str  # the target's node id
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, relation)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, src: str, dst: str, relation: str) -> None:
        if (src, dst, relation) not in self.edges:
            self.edges.append((src, dst, relation))

    def children(self, node_id: str) -> list[tuple[str, str]]:
        return [(dst, rel) for src, dst, rel in self.edges if src == node_id]

    def ordered_children(self, node_id: str) -> list[tuple[str, str]]:
        """Children as both front ends show them: how it was made (run, image, params)
        before what it read."""
        return sorted(self.children(node_id), key=lambda c: RELATION_ORDER.get(c[1], 9))


RELATION_ORDER = {"in run": 0, "ran in": 1, "used params": 2, "produced by": 3, "read": 4}


def describe(node: Node) -> str:
    """One node in one line, as `opsctl lineage` prints it and the dashboard shows it."""
    import time

    a = node.attrs
    short = (a.get("hash") or "?")[:12]
    checks = a.get("checks")
    verdict = f"  {verdict_text(checks['passed'], checks['failed'])}" if checks else ""
    if node.kind == "artifact":
        return f"{node.label}  md5 {short}  (output of {a.get('output_of')}){verdict}"
    if node.kind == "data":
        return f"{node.label}  md5 {short}  (data, {a.get('dvcfile')}){verdict}"
    if node.kind == "source":
        return f"{node.label}  md5 {short}  (source, in Git)"
    if node.kind == "stage" and a.get("recorded_in") == "dvc.lock":
        return f"stage {node.label}: as dvc.lock records it, no opsctl run  `{a.get('cmd')}`"
    if node.kind == "stage":
        return f"stage {node.label}: {a.get('outcome') or '?'}  `{a.get('cmd')}`"
    if node.kind == "run":
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(a["started"])) if a.get("started") else "?"
        commit = (a.get("git_commit") or "(no commit)")[:8] + ("*" if a.get("dirty") else "")
        diff = f", uncommitted diff {a['diff_hash'][:12]}" if a.get("diff_hash") else ""
        return (
            f"run {(a.get('run') or node.label)[:8]} ({a.get('status') or '?'}, {when}) "
            f"code {commit} on {a.get('branch') or '(detached)'}{diff}"
        )
    if node.kind == "image":
        digest = (a.get("digest") or "").removeprefix("sha256:")[:12]
        return f"image {a.get('ref')}" + (f" (id {digest})" if digest else "")
    if node.kind == "params":
        values = a.get("values")
        flat = ", ".join(f"{k}={v}" for k, v in flat_params(values)) if isinstance(values, dict) else str(values)
        return f"params {a.get('file')}: {flat}"
    if node.kind == "unknown":
        return f"stage {node.label}: {a.get('why')}"
    return node.label


def flat_params(values: dict, prefix: str = ""):
    """``{"train": {"lr": 0.1}}`` -> ``("train.lr", 0.1)``, ..."""
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from flat_params(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def lineage(project: Project, target: str, *, model_version=None) -> Lineage:
    """``target``: an output path, or NAME@VERSION resolved by ``model_version(name, version)``
    -> (path, hash, run id or None) (the registry's lookup, passed in by the caller)."""
    from opsctl.adapters import dvc as dvc_adapter
    from opsctl.core.runs import open_store, store_path

    outputs = {o.path: o for o in dvc_adapter.outputs(project.root)}
    run_hint = None
    if "@" in target and target.split("@", 1)[0] not in outputs and model_version is not None:
        name, version = target.split("@", 1)
        path, digest, run_hint = model_version(name, version)
    else:
        path = target.rstrip("/")
        if path in outputs:
            digest = outputs[path].hash
        elif _inside_tracked_dir(path, outputs) and (project.root / path).is_file():
            digest = file_md5(project.root / path)  # a file of a tracked directory: DVC's md5 is the content's
        else:
            close = [p for p in outputs if p.startswith(path)] or sorted(outputs)[:5]
            raise UsageError(
                f"{target} is not a DVC-tracked output",
                hint=f"tracked outputs: {', '.join(close)}"
                if close
                else "track it with `opsctl data add` or a stage's outs",
            )
    if not store_path(project).exists():
        store = None
    else:
        store = open_store(project)
    try:
        graph = Lineage(root="")
        graph.root = _Builder(project, outputs, store, graph).artifact(path, digest, run_hint=run_hint)
        return graph
    finally:
        if store is not None:
            store.close()


class _Builder:
    def __init__(self, project, outputs, store, graph: Lineage) -> None:
        self.project, self.outputs, self.store, self.graph = project, outputs, store, graph
        self.runs: dict[str, object] = {}
        self.visited: set[str] = set()
        self.locks: dict | None = None  # dvc.lock's stages, read when a run record is missing

    def _run(self, run_id: str):
        if run_id not in self.runs:
            self.runs[run_id] = self.store.get_run(run_id)
        return self.runs[run_id]

    def artifact(
        self, path: str, digest: str | None, *, run_hint: str | None = None, before: float | None = None
    ) -> str:
        out = self._owning_output(path)
        node_id = f"artifact:{path}@{digest or '?'}"
        if node_id in self.visited:
            return node_id
        self.visited.add(node_id)
        if out is None:  # not tracked by DVC: a source file, versioned by Git
            self.graph.add(Node(node_id, "source", path, {"path": path, "hash": digest, "versioned_by": "git"}))
            return node_id
        if out.stage is None:  # `dvc add`ed data: the end of the line
            self.graph.add(
                Node(
                    node_id,
                    "data",
                    path,
                    {"path": path, "hash": digest, "dvcfile": out.dvcfile, "checks": self._checks(path, digest)},
                )
            )
            return node_id
        self.graph.add(
            Node(
                node_id,
                "artifact",
                path,
                {"path": path, "hash": digest, "output_of": out.stage, "checks": self._checks(path, digest)},
            )
        )
        producer = self._producer(out, path, digest, run_hint, before)
        if producer is None:
            locked = self._locked_producer(out, path, digest)
            if locked is not None:  # made by `dvc repro` (or before opsctl recorded runs)
                self.graph.link(node_id, self.locked_stage(locked), "produced by")
                return node_id
            unknown = self.graph.add(
                Node(
                    f"unknown:{out.stage}:{path}",
                    "unknown",
                    out.stage,
                    {
                        "stage": out.stage,
                        "why": "no recorded run produced this version, and dvc.lock records "
                        "another (made before the last `dvc repro`?)",
                    },
                )
            )
            self.graph.link(node_id, unknown, "produced by")
            return node_id
        run, stage = producer
        stage_id = self.stage(run, stage)
        self.graph.link(node_id, stage_id, "produced by")
        return node_id

    def _checks(self, path: str, digest: str | None) -> dict | None:
        """The data checks this very version (path and hash) passed or failed, if recorded."""
        if self.store is None:
            return None
        from opsctl.core.check_records import verdict_of, verdict_summary

        return verdict_summary(verdict_of(self.store, path, digest))

    def _owning_output(self, path: str):
        if path in self.outputs:
            return self.outputs[path]
        for out_path, out in self.outputs.items():  # a file inside a tracked directory
            if out.isdir and path.startswith(out_path.rstrip("/") + "/"):
                return out
        return None

    def _producer(self, out, path, digest, run_hint, before):
        if self.store is None:
            return None
        candidates = []
        if run_hint:
            candidates.append(run_hint)
        exact = path == out.path
        # Newest first, and only runs that started no later than the run that read it.
        for run_id, _stage, _started in self.store.producers(
            out.path, digest if exact else None, before=before, limit=20
        ):
            candidates.append(run_id)
        for run_id in candidates:
            run = self._run(run_id)
            for stage in run.stages:
                if stage.name == out.stage and stage.outcome in ("ran", "cached"):
                    return run, stage
        return None

    def _locked_producer(self, out, path, digest):
        """The stage's dvc.lock entry, if it records this very version of the output. For
        a file inside a tracked directory, the directory as it is tracked now."""
        if self.locks is None:
            from opsctl.adapters import dvc as dvc_adapter

            self.locks = dvc_adapter.locked_stages(self.project.root)
        locked = self.locks.get(out.stage)
        if locked is None:
            return None
        wanted = digest if path == out.path else out.hash
        return locked if wanted is not None and (out.path, wanted) in locked.outs else None

    def locked_stage(self, locked) -> str:
        """A stage known only from dvc.lock: its command, params and inputs' hashes; no
        run, so no commit, image or log."""
        stage_id = f"stage:dvc.lock:{locked.name}"
        if stage_id in self.graph.nodes:
            return stage_id
        self.graph.add(
            Node(
                stage_id,
                "stage",
                locked.name,
                {"stage": locked.name, "run": None, "outcome": None, "cmd": locked.cmd, "recorded_in": "dvc.lock"},
            )
        )
        for file, values in locked.params.items():
            params_id = self.graph.add(
                Node(f"params:dvc.lock:{locked.name}:{file}", "params", file, {"file": file, "values": values})
            )
            self.graph.link(stage_id, params_id, "used params")
        for dep_path, dep_hash in locked.deps:
            self.graph.link(stage_id, self.artifact(dep_path, dep_hash), "read")
        return stage_id

    def stage(self, run, stage) -> str:
        stage_id = f"stage:{run.id}:{stage.name}"
        if stage_id in self.graph.nodes:
            return stage_id
        self.graph.add(
            Node(
                stage_id,
                "stage",
                stage.name,
                {
                    "stage": stage.name,
                    "run": run.id,
                    "outcome": stage.outcome,
                    "cmd": stage.cmd,
                    "started": stage.started,
                    "duration": stage.duration,
                    "log": stage.log_path,
                },
            )
        )
        run_id = self.graph.add(
            Node(
                f"run:{run.id}",
                "run",
                run.id[:8],
                {
                    "run": run.id,
                    "status": run.status,
                    "started": run.started,
                    "git_commit": run.git_commit,
                    "branch": run.branch,
                    "dirty": run.dirty,
                    "diff_hash": run.diff_hash,
                    "user": run.user,
                },
            )
        )
        self.graph.link(stage_id, run_id, "in run")
        if stage.image_ref:
            image_id = self.graph.add(
                Node(
                    f"image:{stage.image_id or stage.image_ref}",
                    "image",
                    stage.image_ref,
                    {"ref": stage.image_ref, "digest": stage.image_id},
                )
            )
            self.graph.link(stage_id, image_id, "ran in")
        for artifact in stage.artifacts:
            if artifact.kind == "param":
                params_id = self.graph.add(
                    Node(
                        f"params:{run.id}:{stage.name}:{artifact.path}",
                        "params",
                        artifact.path,
                        {"file": artifact.path, "values": _loads(artifact.hash)},
                    )
                )
                self.graph.link(stage_id, params_id, "used params")
        for artifact in stage.artifacts:
            if artifact.kind == "dep":
                dep_id = self.artifact(artifact.path, artifact.hash, before=run.started)
                self.graph.link(stage_id, dep_id, "read")
        return stage_id


def _inside_tracked_dir(path: str, outputs: dict) -> bool:
    return any(o.isdir and path.startswith(p.rstrip("/") + "/") for p, o in outputs.items())


def _loads(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
