"""The pipeline as DVC sees it — stages, their order and why each is stale —
plus what DVC cannot see: the image each stage runs in.

One planner serves ``opsctl status``, ``opsctl run --dry-run`` and ``opsctl
run``: a stage is stale when DVC's change detection says so (deps, params,
outs, command, never run), when its image changed since it last ran (from
``opsctl.lock``), or when a stage upstream of it will run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsctl.core.gates import Gate, plan_drift_gates, plan_gates
from opsctl.core.project import Project
from opsctl.core.stagelock import StageImage
from opsctl.executors.registry import runs_in_containers

if TYPE_CHECKING:
    from opsctl.core.plan_cache import Stats as PlanCacheStats


@dataclass(frozen=True)
class StageImageUse:
    """The image a stage runs in under the docker executor, as it is now."""

    image: str  # name under images: in opsctl.yaml
    ref: str  # the tag (built) or reference (ref:) a container runs
    identity: str | None  # see stagelock.StageImage.identity; None when unknown (engine down)
    built: bool
    missing: bool = False  # a ref: image the engine answered it does not have


@dataclass(frozen=True)
class PlanStep:
    name: str
    cmd: str
    wdir: str
    upstream: list[str]
    reasons: list[str]  # empty: up to date
    own_change: bool  # stale for its own reasons (not only because an upstream stage runs)
    upstream_stale: bool  # a stage it depends on runs first (so its inputs are not known yet)
    image_changed: bool  # its image differs from the one it last ran in (the run cache can't know)
    image: StageImageUse | None = None
    restorable: bool | None = None  # dry-run only: the run cache holds this exact stage
    deps: tuple[str, ...] = ()  # local deps and outs, relative to the project root
    outs: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        return bool(self.reasons)


@dataclass
class Plan:
    executor: str
    steps: list[PlanStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # for the front end to show (core never prints)
    gates: list[Gate] = field(default_factory=list)  # the data checks of every stage (core/gates.py)
    changed_data_sources: list[str] = field(default_factory=list)  # .dvc data changed in the workspace
    cached: bool = False  # answered by the no-op fast path (core/plan_cache.py), without DVC
    # A full plan of the whole pipeline kept for that fast path: True; False: not this time (a
    # file changed while DVC looked: the next check can be kept); None: not asked, or never.
    kept: bool | None = None

    @property
    def to_run(self) -> list[PlanStep]:
        return [s for s in self.steps if s.stale]

    def gates_of(self, stage: str, when: str) -> list[str]:
        """The datasets checked ``when`` (BEFORE or AFTER) ``stage`` runs."""
        return [g.dataset for g in self.gates if g.stage == stage and g.when == when]


@dataclass(frozen=True)
class StageStatus:
    name: str
    stale: bool
    reasons: list[str]
    upstream: list[str]
    cmd: str


def pipeline_status(project: Project) -> list[StageStatus]:
    """Each pipeline stage in topological order: up to date, or stale and why."""
    plan = make_plan(project, [], executor=None, force=False)
    return [StageStatus(s.name, s.stale, s.reasons, s.upstream, s.cmd) for s in plan.steps]


def make_plan(
    project: Project,
    targets: list[str],
    *,
    executor: str | None,
    force: bool,
    session=None,
    check_run_cache: bool = False,
    fast: bool = True,
) -> Plan:
    """What ``opsctl run TARGET...`` would do. ``session``: an open RunSession to reuse;
    without one the plan is read without taking the project's lock, so it answers while a
    run holds the project (what it reads is only ever replaced whole) — and, when nothing it
    depends on changed since the last full plan, from that plan (:func:`cached_plan`) unless
    ``fast`` is False."""
    from opsctl.core.stagelock import read_lock

    executor = executor or project.config.executor
    if session is None:
        cached = cached_plan(project, targets, executor=executor, force=force) if fast else None
        if cached is not None:
            return cached
        from opsctl.adapters.dvc_run import RunSession

        with RunSession(project.root, read_only=True) as own:
            return make_plan(
                project, targets, executor=executor, force=force, session=own, check_run_cache=check_run_cache
            )
    started_ns = getattr(session, "opened_ns", None) or time.time_ns()  # when DVC began to read the project
    stages = session.plan(targets)
    lock = read_lock(project.root)
    # Only a stage that last ran in an image can have had that image change; asking for
    # identities costs file hashing (built images) or an engine call (ref: images). A ref:
    # image is asked for whatever the stage's record: one missing is a stage that cannot run.
    compared = [
        s.name
        for s in stages
        if (s.name in lock and runs_in_containers(lock[s.name].executor)) or _uses_ref_image(project, s.name)
    ]
    images = stage_images(project, compared) if runs_in_containers(executor) and compared else {}
    kept = None
    if session.watch is not None:  # a whole-pipeline plan: keep it for the next no-op check
        kept = _remember(project, executor, stages, images, session, started_ns)
    plan = _finish_plan(project, targets, executor, force, stages, images, lock)
    plan.kept = kept
    plan.changed_data_sources = list(session.changed_data_sources)
    if check_run_cache:
        plan.steps = [_with_restorable(session, s) for s in plan.steps]
    return plan


def _finish_plan(project: Project, targets: list[str], executor: str, force: bool, stages, images, lock) -> Plan:
    plan = Plan(executor, plan_steps(stages, images, lock, force=force))
    if not targets:  # only the whole pipeline says which stages dvc.yaml has
        plan.warnings = unknown_stage_warnings(project, [s.name for s in stages])
    if project.config.checks:
        plan.gates = plan_gates(project.config.checks, [(s.name, s.deps, s.outs) for s in plan.steps])
    if project.config.drift:
        plan.gates += plan_drift_gates(project.config.drift, [(s.name, s.deps, s.outs) for s in plan.steps])
    return plan


# -- the no-op fast path (core/plan_cache.py; docs/architecture.md, "The no-op fast path") --------


@dataclass(frozen=True)
class _KeptChange:
    kind: str
    path: str | None
    change: str


@dataclass(frozen=True)
class _KeptStage:
    """A stage of a kept verdict: the fields of adapters/dvc.py's PipelineStage the plan reads,
    restated here because importing that module costs ~80 ms of the fast path's ~0.25 s."""

    name: str
    cmd: str
    wdir: str
    upstream: tuple[str, ...]
    changes: tuple[_KeptChange, ...]
    dep_paths: tuple[str, ...]
    out_paths: tuple[str, ...]


def cached_plan(
    project: Project, targets: list[str], *, executor: str, force: bool, stats: PlanCacheStats | None = None
) -> Plan | None:
    """The plan from the last full one, when nothing it depends on changed since; else None.
    ``stats``: filled with whether it hit, why not, and how long the check took."""
    from opsctl.adapters.dvc_lock import stage_being_written
    from opsctl.core import plan_cache

    stats = stats if stats is not None else plan_cache.Stats()
    verdict = plan_cache.load(project, _cache_key(executor), stats=stats)
    if verdict is None:
        return None
    if stage_being_written(project.root):  # the full check refuses then, naming the run: so must this
        stats.hit, stats.reason = False, "dvc repro is writing a stage's outputs"
        return None
    try:
        return _plan_from_verdict(project, targets, executor, force, verdict)
    except plan_cache.UNREADABLE as exc:  # a record edited by hand: ask DVC
        stats.hit, stats.reason = False, f"unreadable verdict ({type(exc).__name__})"
        return None


def _plan_from_verdict(project: Project, targets: list[str], executor: str, force: bool, verdict: dict) -> Plan | None:
    """The plan a kept verdict says (None for a target it doesn't know); KeyError, TypeError, ...
    for a verdict of the wrong shape."""
    from opsctl.core.stagelock import read_lock

    stages = [
        _KeptStage(
            s["name"],
            s["cmd"],
            s["wdir"],
            tuple(s["upstream"]),
            tuple(_KeptChange(*c) for c in s["changes"]),
            tuple(s["dep_paths"]),
            tuple(s["out_paths"]),
        )
        for s in verdict["stages"]
    ]
    images = {name: StageImageUse(**use) if use else None for name, use in verdict["images"].items()}
    changed_data_sources = [str(path) for path in verdict["changed_data_sources"]]
    if targets:
        by_name = {s.name: s for s in stages}
        if any(t not in by_name for t in targets):
            return None  # the full plan says what is wrong with the name
        wanted: set[str] = set()
        todo = list(targets)
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo += by_name[name].upstream
        stages = [s for s in stages if s.name in wanted]
    plan = _finish_plan(project, targets, executor, force, stages, images, read_lock(project.root))
    plan.changed_data_sources = changed_data_sources
    plan.cached = True
    return plan


class PlanWatcher:
    """The dashboard's eye on the pipeline between full plans: which files the kept plan
    depended on changed since (stat only, cheap enough to ask every 50 ms), and the plan as
    those changes make it look before DVC confirms it — a stage whose dep or out changed is
    stale, and so is every stage below it."""

    def __init__(self, project: Project) -> None:
        from opsctl.core import plan_cache

        self.project = project
        executor = project.config.executor
        self._executor = executor
        self._watcher = plan_cache.Watcher(project, _cache_key(executor))
        self._data_changes: set[str] = set()  # of the last changes(): deps, outs (not params files)

    def changes(self) -> tuple[str, ...] | None:
        """Changed paths (relative to the project when inside it); None without a kept plan."""
        import os

        found = self._watcher.changes()
        if found is None:
            return None
        root = str(self.project.root)
        self._data_changes = {
            os.path.relpath(p, root) for p in found if p.startswith(root + os.sep) and not self._watcher.is_content(p)
        }
        return tuple(os.path.relpath(p, root) if p.startswith(root + os.sep) else p for p in found)

    def provisional(self, changes: tuple[str, ...]) -> Plan | None:
        """The kept plan (as of the last :meth:`changes`) with ``changes`` applied as described
        above; None without one, or when no stage's dep or out is among them. A params file is
        not a stage's data here: whether a stage's own keys changed is for DVC to say."""
        from dataclasses import replace

        from opsctl.core.plan_cache import UNREADABLE

        verdict = self._watcher.verdict()
        try:
            plan = _plan_from_verdict(self.project, [], self._executor, False, verdict) if verdict else None
        except UNREADABLE:  # a record edited by hand: DVC's read says
            return None
        if plan is None:
            return None
        stale: set[str] = set()
        steps = []
        touched_any = False
        for step in plan.steps:
            paths = [*(("dep", d) for d in step.deps), *(("out", o) for o in step.outs)]
            touched = [
                f"{kind} {path} changed (checking with DVC…)"
                for kind, path in paths
                if any(c == path or c.startswith(path.rstrip("/") + "/") for c in changes if c in self._data_changes)
            ]
            touched_any = touched_any or bool(touched)
            upstream = [f"upstream {u} is stale" for u in step.upstream if u in stale and not step.stale]
            if touched or upstream or step.stale:
                stale.add(step.name)
            if touched or upstream:
                step = replace(
                    step, reasons=[*step.reasons, *touched, *upstream], own_change=step.own_change or bool(touched)
                )
            steps.append(step)
        if not touched_any:
            return None
        plan.steps = steps
        return plan


def nothing_to_run(project: Project, targets: list[str], executor: str) -> Plan | None:
    """The plan of a pipeline with nothing to do, from the no-op fast path: nothing stale, no
    changed data to commit, no other run holding the project. None whenever a run has anything
    to do, or might: then DVC plans it, under the project's lock."""
    from opsctl.adapters.dvc_lock import run_in_progress

    plan = cached_plan(project, targets, executor=executor, force=False)
    if plan is None or plan.to_run or plan.changed_data_sources or run_in_progress(project.root):
        return None
    return plan


def _cache_key(executor: str) -> dict:
    return {"executor": executor}


def _remember(project: Project, executor: str, stages, images, session, started_ns: int) -> bool | None:
    """Keep the plan for the no-op fast path: see plan_cache.save for what the result means."""
    from dataclasses import asdict

    from opsctl.core import plan_cache
    from opsctl.core.config import CONFIG_FILE
    from opsctl.core.stagelock import LOCK_FILE

    watch = session.watch
    if watch.incomplete:
        plan_cache.forget(project)
        return None
    watched = plan_cache.Watched(
        content=watch.content | {str(project.root / CONFIG_FILE), str(project.root / LOCK_FILE)},
        data=watch.data | watch.cache_objects,
        collected=watch.walked,
        md5=dict(watch.md5),
        refs={use.ref: use.identity for use in images.values() if use is not None and not use.built},
    )
    for use in images.values():
        if use is not None and use.built:
            _watch_build_inputs(project, project.config.images[use.image], watched)
    verdict = {
        "stages": [
            {
                "name": s.name,
                "cmd": s.cmd,
                "wdir": s.wdir,
                "upstream": list(s.upstream),
                "changes": [[c.kind, c.path, c.change] for c in s.changes],
                "dep_paths": list(s.dep_paths),
                "out_paths": list(s.out_paths),
            }
            for s in stages
        ],
        "changed_data_sources": list(session.changed_data_sources),
        "images": {name: asdict(use) if use else None for name, use in images.items()},
    }
    kept = plan_cache.save(project, _cache_key(executor), verdict, watched, started_ns)
    if not kept:
        plan_cache.forget(project)  # what is there no longer holds
    return kept


def _watch_build_inputs(project: Project, spec, watched) -> None:
    """A built image's identity is the hash of its build inputs (core/images.py): its
    Dockerfile's bytes and every file of its context, whose directories are listed whole."""
    import os
    from pathlib import Path

    from opsctl.core.images import build_paths, is_project_state

    context, dockerfile = build_paths(project, spec)
    watched.content.add(str(dockerfile))
    for top, dirs, files in os.walk(context):
        dirs[:] = [d for d in dirs if not is_project_state(project, Path(top, d))]
        watched.listed.add(top)
        watched.data |= {os.path.join(top, f) for f in files}


def _uses_ref_image(project: Project, stage: str) -> bool:
    image = project.config.settings_for(stage).image
    return image is not None and image in project.config.images and not project.config.images[image].is_built


def unknown_stage_warnings(project: Project, stage_names: list[str]) -> list[str]:
    """A settings entry under ``stages:`` for a stage the pipeline does not have (a typo, or
    a stage since renamed) applies to nothing: say so, with the stage names it is close to."""
    import difflib

    from opsctl.core.config import CONFIG_FILE, DEFAULT_STAGE_KEY
    from opsctl.core.yamlload import cut

    warnings = []
    for name in project.config.stages:
        if name == DEFAULT_STAGE_KEY or name in stage_names:
            continue
        close = difflib.get_close_matches(name, stage_names, n=3, cutoff=0.6)
        known = f"did you mean {', '.join(close)}?" if close else f"stages: {cut(', '.join(stage_names)) or 'none'}"
        warnings.append(f"{CONFIG_FILE}: {cut(f'stages.{name}')}: no such stage in dvc.yaml ({known})")
    return warnings


def _with_restorable(session, step: PlanStep) -> PlanStep:
    from dataclasses import replace

    # Only a stage whose inputs are known now can be looked up: one below a running stage
    # gets new inputs first, and a changed image is something the run cache doesn't record.
    if not step.own_change or step.upstream_stale or step.image_changed:
        return step
    return replace(step, restorable=session.in_run_cache(step.name))


def plan_steps(
    stages, images: dict[str, StageImageUse | None], lock: dict[str, StageImage], *, force: bool
) -> list[PlanStep]:
    """Pure: DVC's stages and change reasons + image identities + opsctl.lock -> plan steps."""
    steps = []
    stale: set[str] = set()
    for stage in stages:
        never_run = [c for c in stage.changes if c.kind == "never-run"]
        # For a stage that never ran, DVC lists every dep and out as changed: noise.
        reasons = [_describe(change) for change in (never_run or stage.changes)]
        use = images.get(stage.name)
        image_reason = _image_change(lock.get(stage.name), use)
        if image_reason:
            reasons.append(image_reason)
        own = bool(reasons)
        if force and not reasons:
            reasons.append("forced (--force)")
        # DVC reports a stage's own changes only; a stage below a stale one runs too.
        stale_upstream = [name for name in stage.upstream if name in stale]
        reasons += [f"upstream {name} is stale" for name in stale_upstream]
        if reasons:
            stale.add(stage.name)
        steps.append(
            PlanStep(
                name=stage.name,
                cmd=stage.cmd,
                wdir=stage.wdir,
                upstream=list(stage.upstream),
                reasons=reasons,
                own_change=own,
                upstream_stale=bool(stale_upstream),
                image_changed=bool(image_reason),
                image=use,
                deps=tuple(getattr(stage, "dep_paths", ())),
                outs=tuple(getattr(stage, "out_paths", ())),
            )
        )
    return steps


def _image_change(last: StageImage | None, now: StageImageUse | None) -> str | None:
    """Why a stage's image counts as changed, or None. A stage with no record (it never ran
    under opsctl, or ran on the host) is not stale for its image: nothing says it differs.
    A ref: image the engine no longer has is always a reason: the stage cannot run as it is."""
    if now is not None and now.missing:
        return f"image {now.image} missing ({now.ref} is not in the Docker engine)"
    if last is None or now is None or not runs_in_containers(last.executor) or not last.identity or not now.identity:
        return None
    if last.image != now.image:
        return f"image changed from {last.image} to {now.image}"
    if last.identity != now.identity:
        return f"image {now.image} changed" + (" (build inputs)" if now.built else " (image id)")
    return None


def _describe(change) -> str:
    if change.kind == "never-run":
        return "never run (no dvc.lock entry)"
    if change.kind == "param":
        return f"param {change.path.split(':', 1)[1]} {change.change}"
    if change.kind in ("dep", "out") and change.path:
        return f"{change.kind} {change.path} {change.change}"
    return change.change


def stage_images(project: Project, stage_names: list[str]) -> dict[str, StageImageUse | None]:
    """The image each stage runs in under the docker executor, as it is now.

    A built image is identified by the hash of its build inputs (no engine
    needed); a ``ref:`` image by its local image id (asked of the engine; None
    when the engine is unreachable, so status still works without one).
    """
    from opsctl.core.images import image_tag, inputs_hash
    from opsctl.errors import ToolUnavailableError

    by_image: dict[str, StageImageUse] = {}
    result: dict[str, StageImageUse | None] = {}
    for name in stage_names:
        image_name = project.config.settings_for(name).image
        if image_name is None:
            result[name] = None
            continue
        if image_name not in by_image:
            spec = project.config.images[image_name]
            if spec.ref is None:  # built from its Dockerfile
                digest = inputs_hash(project, spec)
                by_image[image_name] = StageImageUse(
                    image_name, image_tag(project, spec, digest), f"inputs:{digest}", True
                )
            else:
                # One HTTP request, not the docker SDK's import (~0.25 s): adapters/engine_api.py.
                from opsctl.adapters.engine_api import image_id_quickly as image_id

                missing = False
                try:
                    identity = image_id(spec.ref)
                    missing = identity is None
                except ToolUnavailableError:
                    identity = None  # the engine is down: unknown, not missing
                by_image[image_name] = StageImageUse(image_name, spec.ref, identity, False, missing)
        result[name] = by_image[image_name]
    return result


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
