"""The model registry: model versions and their stages, as Git tags in GTO's format.

A registered version is the annotated tag ``NAME@vX.Y.Z`` on the commit that
records the model (its dvc.lock/.dvc entry); a stage assignment is the annotated
tag ``NAME#STAGE#N`` on that same commit. Nothing is ever deleted: a promotion
and a rollback are both new assignment tags, so the audit trail is Git's and the
real ``gto show`` / ``gto history`` read the same registry.

What GTO decides, and how this module matches it (GTO 1.x, ``gto/base.py``,
``gto/tag.py``, ``gto/registry.py``):

* the version in a stage is, among the versions still assigned to it and not
  deregistered, the one whose latest assignment tag is the newest
  (``Artifact.get_vstages`` with the CLI's default ``--sort timestamp`` and
  ``versions_per_stage=1``; ``VStage.created_at`` is its latest assignment);
* ``N`` in ``NAME#STAGE#N`` is one more than the highest counter of any tag of
  that artifact (``tag.name_tag``);
* the default version is ``v0.0.1``, then the next patch after the highest
  (``SemVer.get_minimal`` / ``bump_patch``);
* GTO keeps a tag's message as free text: opsctl adds its metadata as
  ``key: value`` lines after GTO's own first line.

Tag times have one-second resolution and GTO orders by time alone, so a stage
assignment is never written in the same second as the previous one for that
stage (it waits for the clock to tick).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from opsctl.core.project import Project
from opsctl.errors import DvcError, GitError, OpsctlError, UsageError

# -- GTO's naming rules (gto/constants.py), copied verbatim so the same tags parse ------------

_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_DIRNAME = "[a-zA-Z0-9-_./]+"
_SEMVER = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<buildmetadata>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_FULLNAME = f"(?P<dirname>{_DIRNAME}:)?(?P<name>{_NAME})"
_FULLNAME_IN_TAG = _FULLNAME.replace(":", "=")
NAME_RE = re.compile(f"^{_NAME}$")
FULLNAME_RE = re.compile(f"^{_FULLNAME}$")
VERSION_RE = re.compile(f"^v{_SEMVER}$")
TAG_RE = re.compile(
    f"^(?P<artifact>{_FULLNAME_IN_TAG})"
    f"(((#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?))|@((?P<deprecated>deprecated)|(?P<created>created)))"
    "(#(?P<counter>[0-9]+))?$"
)

FIRST_VERSION = "v0.0.1"
MODEL_TYPE = "model"
PUSH_HINT = "tags are local until shared: `git push --tags` (or `git push origin TAG`)"

# GTO's event priorities (gto/base.py): the order of events that share a second.
_PRIORITY = {"deprecate": 2, "register": 3, "deregister": 4, "assign": 5, "unassign": 6}

# The callables the caller passes to link models with runs (the run store lives elsewhere).
ResolveRun = Callable[[str], str]  # a run id or unique prefix -> the full id; raises when unknown
ProducingRun = Callable[[str, str], "str | None"]  # (path, md5) -> the run whose output had that hash
RunMetrics = Callable[[str], "dict | None"]  # run id -> its metrics


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    commit: str
    tag: str | None  # the registration tag; None for a GTO version known only from a stage tag
    created_at: datetime | None
    author: str | None
    author_email: str | None
    path: str | None  # opsctl's metadata in the tag message (None for tags GTO wrote)
    md5: str | None
    run: str | None
    active: bool  # False once deregistered
    stages: tuple[str, ...] = ()  # the stages this version is in now
    metrics: dict | None = None
    profile: str | None = None  # the reference profile of its training data (`register --profile`)
    profile_md5: str | None = None


@dataclass(frozen=True)
class HistoryEvent:
    event: str  # registration | deregistration | promotion | rollback | unassignment | deprecation
    name: str
    version: str | None
    stage: str | None
    from_version: str | None  # stage events: the version in the stage before and after
    to_version: str | None
    tag: str
    commit: str
    at: datetime
    author: str
    author_email: str
    message: str


@dataclass(frozen=True)
class Model:
    name: str
    versions: tuple[ModelVersion, ...]  # every version ever registered, newest (highest) first
    stages: dict[str, str]  # stage -> the version in it now
    history: tuple[HistoryEvent, ...]  # oldest first
    deprecated: bool
    counter: int  # the highest N of its tags
    stage_times: dict[str, int] = field(default_factory=dict)  # stage -> time of its newest tag
    rollback_to: dict[str, str] = field(default_factory=dict)  # stage -> the version a rollback restores

    @property
    def latest(self) -> str | None:
        registered = [v.version for v in self.versions if v.active and v.tag and VERSION_RE.match(v.version)]
        return max(registered, key=version_key) if registered else None

    def find(self, version: str) -> ModelVersion | None:
        return next((v for v in self.versions if v.version == version and v.tag), None)


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest: str | None
    stages: dict[str, str]


@dataclass(frozen=True)
class ModelDetails:
    name: str
    path: str | None
    latest: str | None
    stages: dict[str, str]
    deprecated: bool
    versions: list[ModelVersion]  # active versions, newest first
    rollback_to: dict[str, str] = field(default_factory=dict)  # stage -> the version a rollback restores


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    tag: str
    commit: str
    path: str
    md5: str
    run: str | None
    annotation_commit: str | None  # the commit opsctl made to declare the model in dvc.yaml, if any
    profile: str | None = None
    profile_md5: str | None = None


@dataclass(frozen=True)
class StageChange:
    name: str
    stage: str
    version: str
    previous: str | None
    tag: str
    commit: str
    rollback: bool


# -- pure logic: names, versions, messages -------------------------------------------------------


def check_name(name: str, *, register: bool = False) -> str:
    """GTO's artifact name rule; registering (which writes the root dvc.yaml) takes a plain name only."""
    regex = NAME_RE if register else FULLNAME_RE
    if not regex.match(name or ""):
        raise UsageError(
            f"invalid model name '{name}': use letters, digits, '-', '_' and '/', "
            "starting and ending with a letter or digit"
        )
    return name


def check_stage(stage: str, allowed: list[str] | None = None) -> str:
    if not NAME_RE.match(stage or ""):
        raise UsageError(
            f"invalid stage name '{stage}': use letters, digits, '-', '_' and '/', "
            "starting and ending with a letter or digit"
        )
    if allowed is not None and stage not in allowed:
        raise UsageError(f"stage '{stage}' is not allowed here", hint=f".gto allows: {', '.join(allowed)}")
    return stage


def normalize_version(text: str) -> str:
    """``1.2.0`` or ``v1.2.0`` -> ``v1.2.0``; anything that is not semantic versioning is a usage error."""
    candidate = text if text.startswith("v") else f"v{text}"
    if not VERSION_RE.match(candidate):
        raise UsageError(f"invalid version '{text}': expected X.Y.Z (semantic versioning), e.g. 1.2.0 or v1.2.0")
    return candidate


def version_key(version: str) -> tuple:
    """Semantic-versioning precedence (build metadata ignored), usable as a sort key."""
    match = VERSION_RE.match(version)
    if not match:
        raise ValueError(f"not a version: {version}")
    pre = match["prerelease"]
    # A release ranks above its pre-releases; numeric identifiers rank below alphanumeric ones.
    pre_key = (1,) if pre is None else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (int(match["major"]), int(match["minor"]), int(match["patch"]), pre_key)


def next_version(existing: Iterable[str]) -> str:
    """What ``gto register`` picks by default: v0.0.1, then the next patch after the highest version."""
    versions = [v for v in existing if VERSION_RE.match(v)]
    if not versions:
        return FIRST_VERSION
    match = VERSION_RE.match(max(versions, key=version_key))
    assert match is not None  # versions holds only names that match
    return f"v{match['major']}.{match['minor']}.{int(match['patch']) + 1}"


def tag_name(name: str) -> str:
    """An artifact's name as it appears in a tag (GTO's ``name_to_tag``)."""
    return name.replace(":", "=")


def registration_message(
    name: str, version: str, path: str, md5: str, run: str | None, profile: tuple[str, str] | None = None
) -> str:
    lines = [f"Registering artifact {name} version {version}", "", f"path: {path}", f"md5: {md5}"]
    if run:
        lines.append(f"run: {run}")
    if profile:
        lines += [f"profile: {profile[0]}", f"profile-md5: {profile[1]}"]
    return "\n".join(lines) + "\n"


def assignment_message(name: str, stage: str, version: str, previous: str | None, rollback: bool) -> str:
    lines = [
        f"Assigning stage {stage} to artifact {name} version {version}",
        "",
        f"action: {'rollback' if rollback else 'promote'}",
    ]
    if previous:
        lines.append(f"from: {previous}")
    return "\n".join(lines) + "\n"


_TRAILER = re.compile(r"^([a-z][a-z0-9-]*):\s?(.*)$")


def parse_trailers(message: str) -> dict[str, str]:
    """The ``key: value`` lines of a tag message's last paragraph (opsctl's metadata)."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    found = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line.strip())
        if not match:
            return {}
        found[match[1]] = match[2].strip()
    return found


# -- pure logic: from tags to the registry's state ----------------------------------------


@dataclass(frozen=True)
class TagEvent:
    """One GTO tag, parsed."""

    kind: str  # register | deregister | assign | unassign | deprecate
    artifact: str
    version: str | None  # from the tag name (register, deregister)
    stage: str | None
    counter: int | None
    tag: str
    commit: str
    timestamp: int
    at: datetime
    author: str
    author_email: str
    message: str

    @property
    def order(self) -> tuple:
        return (self.timestamp, _PRIORITY[self.kind], -1 if self.counter is None else self.counter, self.tag)


def parse_tag_name(name: str) -> dict | None:
    """GTO's reading of a tag name (``gto.tag.parse_name``): None when it is not a registry tag."""
    match = TAG_RE.match(name)
    if not match or match["created"]:  # GTO writes no "@created" tags and cannot read them back either
        return None
    parsed = {
        "artifact": match["artifact"].replace("=", ":"),
        "stage": None,
        "version": None,
        "counter": int(match["counter"]) if match["counter"] else None,
    }
    if match["deprecated"]:
        parsed["kind"] = "deprecate"
    elif match["version"]:
        parsed["kind"] = "deregister" if match["cancel"] == "!" else "register"
        parsed["version"] = match["version"]
    else:
        parsed["kind"] = "unassign" if match["cancel"] == "!" else "assign"
        parsed["stage"] = match["stage"]
    return parsed


def _when(timestamp: int, offset: str) -> datetime:
    try:
        sign = -1 if offset.startswith("-") else 1
        minutes = int(offset[1:3]) * 60 + int(offset[3:5])
        tz = timezone(sign * timedelta(minutes=minutes))
    except (ValueError, IndexError):
        tz = timezone.utc
    return datetime.fromtimestamp(timestamp, tz)


def parse_tags(tags) -> tuple[list[TagEvent], dict[str, int]]:
    """Registry events from tag records (anything with the fields of
    ``adapters.registry.TagRecord``), and each artifact's highest tag counter."""
    events: list[TagEvent] = []
    counters: dict[str, int] = {}
    for tag in tags:
        parsed = parse_tag_name(tag.name)
        if parsed is None:
            continue
        if parsed["counter"] is not None:
            counters[parsed["artifact"]] = max(counters.get(parsed["artifact"], 0), parsed["counter"])
        if not tag.annotated:  # GTO ignores lightweight tags (gto.tag.find)
            continue
        events.append(
            TagEvent(
                kind=parsed["kind"],
                artifact=parsed["artifact"],
                version=parsed["version"],
                stage=parsed["stage"],
                counter=parsed["counter"],
                tag=tag.name,
                commit=tag.commit,
                timestamp=tag.timestamp,
                at=_when(tag.timestamp, tag.tz_offset),
                author=tag.tagger,
                author_email=tag.tagger_email,
                message=tag.message.strip(),
            )
        )
    return events, counters


def build_registry(tags) -> dict[str, Model]:
    """Every artifact's versions, stages and history from its tags (see the module docstring)."""
    events, counters = parse_tags(tags)
    by_artifact: dict[str, list[TagEvent]] = {}
    for event in events:
        by_artifact.setdefault(event.artifact, []).append(event)
    return {name: _build_model(name, evs, counters.get(name, 0)) for name, evs in sorted(by_artifact.items())}


class _Replay:
    """The registry of one artifact as its events are applied in time order (GTO's rules)."""

    def __init__(self) -> None:
        self.direct: dict[str, str] = {}  # version -> its last register/deregister event
        self.assigned: dict[
            tuple[str, str], tuple | None
        ] = {}  # (version, stage) -> order of its last assignment, None once unassigned
        self.stacks: dict[str, list[str]] = {}  # stage -> the versions it held, for rollback

    def eligible(self, version: str) -> bool:
        # Deregistered versions leave every stage; versions known only from stage tags count.
        return self.direct.get(version, "register") == "register"

    def current(self, stage: str) -> str | None:
        held = [
            (order, v)
            for (v, s), order in self.assigned.items()
            if s == stage and order is not None and self.eligible(v)
        ]
        return max(held)[1] if held else None

    def stages(self) -> set[str]:
        return {s for (_v, s) in self.assigned}

    def rollback_target(self, stage: str) -> str | None:
        current = self.current(stage)
        for version in reversed(self.stacks.get(stage, [])):
            if version != current and self.eligible(version):
                return version
        return None

    def record(self, stage: str, after: str | None, rollback: bool) -> None:
        stack = self.stacks.setdefault(stage, [])
        if after is None or (stack and stack[-1] == after):
            return
        if rollback and after in stack:
            while stack[-1] != after:  # undo down to the version restored
                stack.pop()
        else:
            stack.append(after)


def _build_model(name: str, events: list[TagEvent], counter: int) -> Model:
    events = sorted(events, key=lambda e: e.order)
    registrations: dict[str, TagEvent] = {}
    for event in events:
        if event.kind == "register" and event.version:  # (register tags always name one)
            registrations.setdefault(event.version, event)

    def version_at(commit: str) -> str:
        # GTO ties a stage tag to the version registered at its commit (or the bare commit).
        found = [v for v, r in registrations.items() if r.commit == commit]
        return max(found, key=version_key) if found else commit

    replay = _Replay()
    history: list[HistoryEvent] = []
    stage_times: dict[str, int] = {}
    deprecated = False
    for event in events:
        version = event.version or (version_at(event.commit) if event.stage else None)
        deprecated = event.kind == "deprecate"
        touched = [event.stage] if event.stage else sorted(replay.stages()) if event.kind == "deregister" else []
        before = {s: replay.current(s) for s in touched}
        rollback = event.kind == "assign" and parse_trailers(event.message).get("action") == "rollback"
        # (register/deregister tags name a version; assign/unassign tags a stage, whose version is found above)
        if event.kind in ("register", "deregister") and version:
            replay.direct[version] = event.kind
        elif event.kind == "assign" and version and event.stage:
            replay.assigned[(version, event.stage)] = event.order
        elif event.kind == "unassign" and version and event.stage:
            replay.assigned[(version, event.stage)] = None
        for stage in touched:
            replay.record(stage, replay.current(stage), rollback)
        if event.stage:
            stage_times[event.stage] = max(stage_times.get(event.stage, 0), event.timestamp)
        kind = {
            "register": "registration",
            "deregister": "deregistration",
            "unassign": "unassignment",
            "deprecate": "deprecation",
            "assign": "rollback" if rollback else "promotion",
        }[event.kind]
        history.append(
            HistoryEvent(
                event=kind,
                name=name,
                version=version,
                stage=event.stage,
                from_version=before.get(event.stage) if event.stage else None,
                to_version=replay.current(event.stage) if event.stage else None,
                tag=event.tag,
                commit=event.commit,
                at=event.at,
                author=event.author,
                author_email=event.author_email,
                message=event.message,
            )
        )

    stages = {s: v for s in sorted(replay.stages()) if (v := replay.current(s)) is not None}
    in_stages: dict[str, list[str]] = {}
    for stage, version in stages.items():
        in_stages.setdefault(version, []).append(stage)
    versions = []
    for version, reg in registrations.items():
        meta = parse_trailers(reg.message)
        versions.append(
            ModelVersion(
                name=name,
                version=version,
                commit=reg.commit,
                tag=reg.tag,
                created_at=reg.at,
                author=reg.author,
                author_email=reg.author_email,
                path=meta.get("path"),
                md5=meta.get("md5"),
                run=meta.get("run"),
                active=replay.eligible(version),
                stages=tuple(in_stages.get(version, ())),
                profile=meta.get("profile"),
                profile_md5=meta.get("profile-md5"),
            )
        )
    for version in in_stages.keys() - registrations.keys():  # a stage on a bare commit (gto assign --skip-registration)
        versions.append(
            ModelVersion(
                name, version, version, None, None, None, None, None, None, None, True, tuple(in_stages[version])
            )
        )
    versions.sort(
        key=lambda v: (1, version_key(v.version)) if VERSION_RE.match(v.version) else (0, v.version), reverse=True
    )
    return Model(
        name=name,
        versions=tuple(versions),
        stages=stages,
        history=tuple(history),
        deprecated=deprecated,
        counter=counter,
        stage_times=stage_times,
        rollback_to={s: t for s in stages if (t := replay.rollback_target(s)) is not None},
    )


# -- services ----------------------------------------------------------------------------


def _registry(project: Project) -> dict[str, Model]:
    from opsctl.adapters import registry as store

    return build_registry(store.list_tags(project.root))


def _model(project: Project, name: str) -> Model:
    check_name(name)
    model = _registry(project).get(name)
    if model is None:
        raise UsageError(f"no model named '{name}' in the registry", hint="see `opsctl model list`")
    return model


def list_models(project: Project) -> list[ModelSummary]:
    """Every model (not deprecated, as ``gto show``): its highest version and what is in each stage."""
    return [ModelSummary(m.name, m.latest, dict(m.stages)) for m in _registry(project).values() if not m.deprecated]


def show_model(project: Project, name: str, *, run_metrics: RunMetrics | None = None) -> ModelDetails:
    """A model's versions, newest first, each with its commit, author, run, metrics and stages."""
    from opsctl.adapters import registry as store

    model = _model(project, name)
    versions = [v for v in model.versions if v.active]
    if run_metrics is not None:
        versions = [replace(v, metrics=run_metrics(v.run)) if v.run else v for v in versions]
    declared = store.declared_artifacts(project.root).get(name, {}).get("path")
    path = declared or next((v.path for v in versions if v.path), None)
    return ModelDetails(
        name, path, model.latest, dict(model.stages), model.deprecated, versions, dict(model.rollback_to)
    )


def version_artifact(project: Project, name: str, version: str) -> tuple[str, str | None, str | None]:
    """NAME@VERSION -> (path, md5, run id or None): what lineage starts from.

    opsctl's tags say it in their message; for a version GTO registered, the path comes
    from dvc.yaml's ``artifacts:`` and the hash from dvc.lock, both at the version's commit.
    """
    from opsctl.adapters import registry as store

    wanted = normalize_version(version)
    model = _model(project, name)
    found = model.find(wanted)
    if found is None:
        known = ", ".join(v.version for v in model.versions if v.tag) or "none"
        raise UsageError(f"{name} has no version {wanted}", hint=f"registered versions: {known}")
    path, md5 = found.path, found.md5
    if path is None:
        path = _norm(store.declared_artifacts(project.root, found.commit).get(name, {}).get("path"))
        if path is None:
            raise OpsctlError(
                f"{name} {wanted} does not say which file it is",
                hint=f"its commit ({found.commit[:7]}) declares no artifact {name} in dvc.yaml",
            )
    if md5 is None:
        md5 = store.recorded_hash(project.root, path, found.commit)
    return path, md5, found.run


def all_history(project: Project) -> list[HistoryEvent]:
    """Every registry event of every model (deprecated ones too), oldest first."""
    return sorted((e for m in _registry(project).values() for e in m.history), key=lambda e: e.at)


def model_history(project: Project, name: str) -> list[HistoryEvent]:
    """Every registry event of a model, newest first: registrations, promotions, rollbacks, ..."""
    return list(reversed(_model(project, name).history))


def register_model(
    project: Project,
    name: str,
    path: str,
    *,
    version: str | None = None,
    run: str | None = None,
    resolve_run: ResolveRun | None = None,
    producing_run: ProducingRun | None = None,
    cwd: Path | None = None,
    profile: str | None = None,
) -> Registration:
    """Register the model at PATH (a committed DVC-tracked output) as a new version of NAME.

    Checks everything first, so a refused registration leaves no commit and no tag.
    Declares NAME in dvc.yaml's ``artifacts:`` when it is not yet (one commit of
    dvc.yaml alone), then tags the commit.
    """
    from opsctl.adapters import registry as store

    check_name(name, register=True)
    wanted = normalize_version(version) if version is not None else None
    rel = _project_path(project, cwd, path)
    run_id = None
    if run is not None:
        if resolve_run is None:
            raise UsageError("--run needs the run store, which is not available here")
        run_id = resolve_run(run)

    root = project.root
    model = build_registry(store.list_tags(root)).get(name)
    taken = {v.version for v in model.versions if v.tag} if model else set()
    if wanted in taken:
        raise OpsctlError(f"{name} {wanted} is registered already", hint="pick another version, or leave --version out")

    output = store.inspect_output(root, rel)
    md5 = _check_registrable(output)
    reference = _check_profile(project, _project_path(project, cwd, profile)) if profile is not None else None

    declared = store.declared_artifacts(root, "HEAD")
    declare = name not in declared
    if not declare and _norm(declared[name].get("path")) != rel:
        raise OpsctlError(
            f"dvc.yaml declares the artifact {name} with path {declared[name].get('path')}, not {rel}",
            hint="register that path, or use another name",
        )
    head = store.head_commit(root)
    if not declare and model:
        at_head = [v.version for v in model.versions if v.tag and v.commit == head]
        if at_head:
            raise OpsctlError(
                f"{name} {at_head[0]} is registered at this commit ({head[:7]}) already; GTO allows one version per commit",
                hint="commit the new model (its dvc.lock/.dvc entry) first, then register it",
            )
    if run_id is None and producing_run is not None:
        run_id = producing_run(rel, md5)
    new_version = wanted or next_version(taken)

    annotation = None
    commit = head
    if declare:
        annotation = commit = store.declare_artifact(root, name, rel, f"opsctl: register model {name}", MODEL_TYPE)
    tag = f"{tag_name(name)}@{new_version}"
    message = registration_message(name, new_version, rel, md5, run_id, reference)
    if not store.create_tag(root, tag, commit, message):
        raise OpsctlError(
            f"tag {tag} exists already (registered at the same time elsewhere?)",
            hint="see `opsctl model show " + name + "` and register again",
        )
    return Registration(name, new_version, tag, commit, rel, md5, run_id, annotation, *(reference or (None, None)))


def _check_profile(project: Project, rel: str) -> tuple[str, str]:
    """(path, md5) of a reference profile to register with a model version: it must be an
    opsctl profile, committed to Git or tracked by DVC and committed, so that NAME@VERSION
    finds its bytes later (``opsctl monitor drift --reference NAME@VERSION``)."""
    import hashlib

    from opsctl.adapters import registry as store
    from opsctl.core.drift_data import read_profile_file

    path = project.root / rel
    if not path.is_file():
        raise UsageError(f"{rel}: no such profile", hint=f"make it: opsctl monitor profile DATASET -o {rel}")
    read_profile_file(path, rel)  # an OpsctlError when it is not a profile this opsctl reads
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    committed = store.file_at(project.root, rel, "HEAD")
    if committed is not None and hashlib.md5(committed.encode(), usedforsecurity=False).hexdigest() == md5:
        return rel, md5
    output = store.inspect_output(project.root, rel)
    if output.tracked and output.workspace == "ok" and output.committed and output.md5 == md5:
        return rel, md5
    raise GitError(
        f"{rel} is not committed as it is in the workspace",
        hint=f"`git add {rel} && git commit` (or `opsctl data add {rel}` and commit its .dvc file), then register",
    )


def profile_of_version(project: Project, name: str, version: str) -> tuple[str, str, str]:
    """(profile path, its md5, the version's commit) registered with NAME at VERSION."""
    wanted = normalize_version(version)
    found = _model(project, name).find(wanted)
    if found is None:
        raise UsageError(f"{name} has no version {wanted}", hint=f"see `opsctl model show {name}`")
    if not found.profile or not found.profile_md5:
        raise UsageError(
            f"{name} {wanted} has no reference profile",
            hint="register versions with `opsctl model register NAME PATH --profile PROFILE`",
        )
    return found.profile, found.profile_md5, found.commit


def _check_registrable(output) -> str:
    """The hash ``output`` is registered with; DvcError or GitError when it cannot be."""
    path = output.path
    if not output.tracked:
        if output.inside:
            raise DvcError(
                f"{path} is inside {output.inside}, which DVC tracks as a whole",
                hint=f"register {output.inside} itself",
            )
        raise DvcError(
            f"{path} is not tracked by DVC",
            hint="make it an output of a pipeline stage and run it, or `opsctl data add` it; commit, then register",
        )
    if output.workspace == "not recorded":
        raise DvcError(
            f"{path} has no recorded version yet: stage {output.stage} has not run",
            hint=f"run the pipeline, commit {output.dvcfile}, then register",
        )
    if output.workspace == "deleted":
        raise DvcError(
            f"{path} is missing from the workspace", hint="`opsctl data pull` it (or re-run its stage), then register"
        )
    if output.workspace != "ok":
        raise DvcError(
            f"{path} differs from what {output.dvcfile} records ({output.workspace})",
            hint=f"re-run its stage (or restore it), commit {output.dvcfile}, then register",
        )
    if not output.committed:
        raise GitError(
            f"the version of {path} in {output.dvcfile} is not committed",
            hint=f"`git add {output.dvcfile} && git commit`, then register",
        )
    assert output.md5 is not None  # its workspace copy is "ok": the hash is recorded
    return output.md5


def _project_path(project: Project, cwd: Path | None, raw: str) -> str:
    path = Path(os.path.normpath((Path(cwd or os.getcwd()) / raw).absolute()))
    root = project.root.resolve()
    try:
        rel = (path.resolve() if path.exists() else path).relative_to(root)
    except ValueError:
        try:
            rel = path.relative_to(project.root)
        except ValueError:
            raise UsageError(f"{raw} is outside the project ({root})") from None
    if not rel.parts or rel.parts[0] in (".git", ".dvc", ".opsctl"):
        raise UsageError(f"{raw} is not a model path inside the project")
    return rel.as_posix()


def _norm(path) -> str | None:
    return Path(os.path.normpath(str(path))).as_posix() if path else None


def promote_model(project: Project, name: str, version: str, stage: str) -> StageChange:
    """Put VERSION of NAME in STAGE: a new assignment tag on that version's commit."""
    from opsctl.adapters import registry as store

    wanted = normalize_version(version)
    check_stage(stage, store.allowed_stages(project.root))
    model = _model(project, name)
    found = model.find(wanted)
    if found is None:
        known = ", ".join(v.version for v in model.versions if v.tag and v.active) or "none"
        raise UsageError(f"{name} has no version {wanted}", hint=f"registered versions: {known}")
    if not found.active:
        raise OpsctlError(f"{name} {wanted} was deregistered; it cannot enter a stage")
    previous = model.stages.get(stage)
    if previous == wanted:
        raise OpsctlError(f"{name} {wanted} is in stage {stage} already")
    return _assign(project, model, stage, found, previous, rollback=False)


def rollback_model(project: Project, name: str, stage: str) -> StageChange:
    """Put back the version that was in STAGE before the current one, as a new assignment
    tag marked as a rollback (no tag is ever deleted). Repeated rollbacks go further back."""
    check_stage(stage)
    model = _model(project, name)
    current = model.stages.get(stage)
    if current is None:
        raise UsageError(
            f"{name} has no version in stage {stage}", hint="stages in use: " + (", ".join(model.stages) or "none")
        )
    target = model.rollback_to.get(stage)
    if target is None:
        raise OpsctlError(
            f"no earlier version of {name} was in stage {stage}: nothing to roll back to",
            hint=f"`opsctl model history {name}` shows what happened",
        )
    version = next(v for v in model.versions if v.version == target)
    return _assign(project, model, stage, version, current, rollback=True)


def _assign(
    project: Project,
    model: Model,
    stage: str,
    version: ModelVersion,
    previous: str | None,
    *,
    rollback: bool,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> StageChange:
    from opsctl.adapters import registry as store

    _wait_past(model.stage_times.get(stage, 0), model.name, stage, clock, sleep)
    message = assignment_message(model.name, stage, version.version, previous, rollback)
    counter = model.counter
    for _attempt in range(5):
        tag = f"{tag_name(model.name)}#{stage}#{counter + 1}"
        if store.create_tag(project.root, tag, version.commit, message):
            return StageChange(model.name, stage, version.version, previous, tag, version.commit, rollback)
        # Someone else took that number just now: count again.
        counter = build_registry(store.list_tags(project.root)).get(model.name, model).counter
    raise GitError(f"could not pick a free tag number for {model.name}#{stage}: too many at once")


def _wait_past(last: int, name: str, stage: str, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    """Tag times count whole seconds and GTO orders a stage's tags by time alone: wait until
    this tag's second is later than the stage's newest one, so GTO agrees on its order."""
    now = clock()
    if last >= now + 2:
        raise OpsctlError(
            f"the newest tag of {name}#{stage} is dated in the future ({datetime.fromtimestamp(last).isoformat()})",
            hint="this machine's clock is behind that tag's; the stage's order depends on tag times, so fix the clock",
        )
    # A sleep is timed on the monotonic clock and tags on the wall clock, which NTP may slew:
    # look again until the wall clock's second has really moved past the stage's newest tag.
    while int(now) <= last:
        sleep(last + 1 - now + 0.01)
        now = clock()
