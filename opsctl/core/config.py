"""``opsctl.yaml``: load, validate and describe a project's opsctl settings.

The file is optional. Without it a project runs on defaults (host executor,
no images), which is how opsctl adopts DVC projects it did not create.
Validation errors name the file, the key path and what was expected, because
"invalid config" alone sends users hunting.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.core.yamlload import cut, quote
from opsctl.errors import ConfigError
from opsctl.executors.base import memory_bytes
from opsctl.executors.registry import COUNT, EXECUTORS
from opsctl.executors.registry import names as executor_names

if TYPE_CHECKING:
    from opsctl.core.checks import DatasetChecks
    from opsctl.core.drift_settings import DriftSettings

CONFIG_FILE = "opsctl.yaml"
DEFAULT_STAGE_KEY = "default"

MIN_MEMORY = 6 << 20  # the engine refuses a smaller limit ("Minimum memory limit allowed is 6MB")
MAX_MEMORY = (1 << 63) - 1  # the engine stores the limit as a signed 64-bit number
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Docker's own networks a stage may name; any other name must be an existing user-defined
# network (checked against the engine when a run starts). `container:<id>` is refused.
BUILTIN_NETWORKS = ("none", "bridge", "host")

# Docker's image reference grammar (distribution/reference): [domain/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REF_RE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
MAX_REF_CHARS = 512


@dataclass(frozen=True)
class ImageSpec:
    """An image a stage runs in: built from a Dockerfile, or an existing ``ref``."""

    name: str
    dockerfile: str | None = None
    context: str = "."
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    ref: str | None = None

    @property
    def is_built(self) -> bool:
        return self.ref is None


@dataclass(frozen=True)
class StageSettings:
    image: str | None = None
    cpus: float | None = None
    memory: str | None = None
    gpus: int | str | None = None
    network: str | None = None
    env: tuple[str, ...] = ()
    pids: int | None = None  # None: the executor's default (executors.base.DEFAULT_PIDS)


@dataclass(frozen=True)
class RemoteSpec:
    name: str
    url: str
    default: bool = False


@dataclass(frozen=True)
class ProjectConfig:
    project: str
    executor: str = "local"
    images: dict[str, ImageSpec] = field(default_factory=dict)
    stages: dict[str, StageSettings] = field(default_factory=dict)
    remotes: dict[str, RemoteSpec] = field(default_factory=dict)
    checks: dict[str, DatasetChecks] = field(default_factory=dict)  # dataset path -> its data checks
    drift: dict[str, DriftSettings] = field(default_factory=dict)  # current dataset -> its reference and method
    executors: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # executor -> its settings (executors/registry.py)
    registry: str | None = None  # HOST:PORT of the image registry remote executors' workers pull from

    def settings_for(self, stage: str) -> StageSettings:
        """The stage's own settings laid over the ``default`` entry."""
        base = self.stages.get(DEFAULT_STAGE_KEY, StageSettings())
        own = self.stages.get(stage)
        if own is None:
            return base
        merged = {
            key: getattr(own, key) if getattr(own, key) not in (None, ()) else getattr(base, key)
            for key in StageSettings.__dataclass_fields__
        }
        return StageSettings(**merged)

    def key_of(self, stage: str, key: str) -> str:
        """Where the stage's ``key`` setting comes from: ``stages.<stage>.<key>`` or ``stages.default.<key>``."""
        own = self.stages.get(stage)
        if own is not None and getattr(own, key) not in (None, ()):
            return f"stages.{stage}.{key}"
        return f"stages.{DEFAULT_STAGE_KEY}.{key}"


def outside_project(rel: str, root: Path | None = None) -> bool:
    """Whether a path the project's files name (relative to ROOT) leads out of it: absolute,
    or '..' past the root; with ``root``, also once symlinks are resolved."""
    normal = os.path.normpath(rel)
    if os.path.isabs(rel) or normal == ".." or normal.startswith(".." + os.sep):
        return True
    return root is not None and not (root / rel).resolve().is_relative_to(root.resolve())


def default_config(root: Path) -> ProjectConfig:
    """What applies when a project has no ``opsctl.yaml``."""
    return ProjectConfig(project=root.name, executor="local")


def load_config(root: Path) -> ProjectConfig | None:
    """Read ``ROOT/opsctl.yaml``; ``None`` when the file does not exist. The file is read
    with bounds (size, alias expansion, duplicate keys: see core/yamlload.py)."""
    from opsctl.core.yamlload import MAX_CONFIG_BYTES, load_yaml_file

    path = root / CONFIG_FILE
    if not path.exists():
        return None
    raw = load_yaml_file(path, max_bytes=MAX_CONFIG_BYTES)
    return parse_config(raw if raw is not None else {}, source=str(path), root=root)


def parse_config(raw: Any, *, source: str = CONFIG_FILE, root: Path | None = None) -> ProjectConfig:
    """Validate a parsed ``opsctl.yaml`` document into a :class:`ProjectConfig`."""
    v = _Validator(source)
    doc = v.mapping(raw, "")
    v.known_keys(
        doc, "", {"project", "executor", "executors", "registry", "images", "stages", "remotes", "checks", "drift"}
    )

    project = doc.get("project", root.name if root else None)
    if project is None:
        raise v.error("project", "a project name (string)", None)
    project = v.string(project, "project")
    executor = v.choice(doc.get("executor", "local"), "executor", executor_names())
    executors = _parse_executors(v, doc.get("executors", {}))
    registry = _parse_registry(v, doc.get("registry"))

    images = {}
    for name, spec in v.mapping(doc.get("images", {}), "images").items():
        images[name] = _parse_image(v, str(name), spec)

    stages = {}
    for name, spec in v.mapping(doc.get("stages", {}), "stages").items():
        settings = _parse_stage(v, str(name), spec)
        if settings.image is not None and settings.image not in images:
            known = ", ".join(sorted(images)) or "none declared"
            raise ConfigError(
                f"{source}: {cut(f'stages.{name}.image')}: unknown image '{cut(settings.image)}' "
                f"(images declared under 'images:': {known})"
            )
        stages[str(name)] = settings

    remotes = {}
    for name, spec in v.mapping(doc.get("remotes", {}), "remotes").items():
        path = f"remotes.{name}"
        if isinstance(spec, str):
            remotes[str(name)] = RemoteSpec(str(name), spec)
            continue
        spec = v.mapping(spec, path)
        v.known_keys(spec, path, {"url", "default"})
        remotes[str(name)] = RemoteSpec(
            str(name),
            v.string(spec.get("url"), f"{path}.url"),
            v.boolean(spec.get("default", False), f"{path}.default"),
        )

    checks, drift = {}, {}
    if doc.get("checks") is not None:  # their parsers are imported only by projects that have them
        from opsctl.core.checks import parse_checks

        checks = parse_checks(v, doc["checks"])
    if doc.get("drift") is not None:
        from opsctl.core.drift_settings import parse_drift

        drift = parse_drift(v, doc["drift"])
    return ProjectConfig(
        project=project,
        executor=executor,
        images=images,
        stages=stages,
        remotes=remotes,
        checks=checks,
        drift=drift,
        executors=executors,
        registry=registry,
    )


def _parse_executors(v: _Validator, raw: Any) -> dict[str, dict[str, Any]]:
    """``executors: {NAME: {KEY: VALUE}}``: per-executor settings, the keys each executor
    declares in executors/registry.py."""
    settings = {}
    for name, spec in v.mapping(raw if raw is not None else {}, "executors").items():
        name = v.choice(str(name), "executors", executor_names())
        entry = v.mapping(spec if spec is not None else {}, f"executors.{name}")
        kinds = dict(EXECUTORS[name].settings)
        v.known_keys(entry, f"executors.{name}", set(kinds))
        for key, value in entry.items():
            path = f"executors.{name}.{key}"
            if kinds[key] == COUNT:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise v.error(path, "a whole number, 0 or more", value)
            else:
                v.string(value, path)
        settings[name] = dict(entry)
    return settings


def _parse_registry(v: _Validator, value: Any) -> str | None:
    """``registry: HOST[:PORT]``: where remote executors' workers pull the images from."""
    if value is None:
        return None
    text = v.string(value, "registry")
    if "://" in text or "/" in text or any(c.isspace() for c in text):
        raise v.error(
            "registry", "a registry address HOST[:PORT] (no scheme, no path), e.g. registry.example:5000", text
        )
    return text


def _parse_image(v: _Validator, name: str, spec: Any) -> ImageSpec:
    path = f"images.{name}"
    if not _NAME_RE.match(name):
        raise v.error(path, "an image name made of letters, digits, '.', '_' or '-'", name)
    spec = v.mapping(spec, path)
    v.known_keys(spec, path, {"dockerfile", "context", "build_args", "target", "ref"})
    if "ref" in spec:
        extra = sorted(set(spec) & {"dockerfile", "context", "build_args", "target"})
        if extra:
            raise ConfigError(
                f"{v.source}: {path}: 'ref' (an existing image) cannot be combined with {', '.join(extra)} "
                "(those describe an image to build)"
            )
        return ImageSpec(name=name, ref=_image_ref(v, spec["ref"], f"{path}.ref"))
    build_args = v.mapping(spec.get("build_args", {}), f"{path}.build_args")
    args = {}
    for key, value in build_args.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise v.error(f"{path}.build_args.{key}", "a string or number", value)
        args[str(key)] = str(value)
    context = v.relative_path(spec.get("context", "."), f"{path}.context", "in the project")
    dockerfile = v.string(spec.get("dockerfile", "Dockerfile"), f"{path}.dockerfile")
    v.relative_path(os.path.join(context, dockerfile), f"{path}.dockerfile", "in the project", shown=dockerfile)
    return ImageSpec(
        name=name,
        dockerfile=dockerfile,
        context=context,
        build_args=args,
        target=v.string(spec["target"], f"{path}.target") if "target" in spec else None,
    )


def _parse_stage(v: _Validator, name: str, spec: Any) -> StageSettings:
    path = f"stages.{name}"
    spec = v.mapping(spec, path)
    v.known_keys(spec, path, {"image", "cpus", "memory", "gpus", "network", "env", "pids"})
    cpus = spec.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
        raise v.error(f"{path}.cpus", "a positive number of CPUs, e.g. 2 or 0.5", cpus)
    memory = _memory(v, spec.get("memory"), f"{path}.memory")
    gpus = spec.get("gpus")
    if gpus is not None and gpus != "all" and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
        raise v.error(f"{path}.gpus", "a number of GPUs (0, 1, ...) or 'all'", gpus)
    pids = spec.get("pids")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int) or pids <= 0):
        raise v.error(f"{path}.pids", "a positive number of processes, e.g. 4096", pids)
    network = spec.get("network")
    if network is not None and (not isinstance(network, str) or not _NAME_RE.match(network)):
        raise v.error(
            f"{path}.network", "none, bridge, host or the name of a network made with `docker network create`", network
        )
    env = spec.get("env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) and e for e in env):
        raise v.error(f"{path}.env", "a list of environment variable names to pass through", env)
    return StageSettings(
        image=v.string(spec["image"], f"{path}.image") if "image" in spec else None,
        cpus=float(cpus) if cpus is not None else None,
        memory=memory,
        gpus=gpus,
        network=network,
        env=tuple(env),
        pids=pids,
    )


def _image_ref(v: _Validator, value: Any, path: str) -> str:
    """An existing image's reference as Docker reads one: [registry/]name[:tag][@digest], or an image id."""
    ref = v.string(value, path)
    if len(ref) > MAX_REF_CHARS or not _REF_RE.fullmatch(ref):
        raise v.error(path, "an image reference such as busybox:1.36 or registry.example.com/team/app:2", ref)
    return ref


def _memory(v: _Validator, value: Any, path: str) -> str | None:
    """A memory limit in Docker's units (b, k, m, g; bytes without one), at least 6m as the engine requires."""
    if value is None:
        return None
    text = str(value)
    size = memory_bytes(text) if not isinstance(value, bool) and text == text.strip() else None
    if size is None:
        raise v.error(path, "a size such as 512m or 4g", value)
    if size < MIN_MEMORY:
        raise v.error(path, "at least 6m (the Docker engine's minimum; a number without a unit is bytes)", value)
    if size > MAX_MEMORY:
        raise v.error(path, "a size the Docker engine can hold (below 8 EiB)", value)
    return text


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, expected: str, got: Any) -> ConfigError:
        """The one shape of a validation error: file, key path, what was expected, and the
        value found — quoted to ~80 characters, however big it is."""
        shown = "nothing" if got is None else f"{type(got).__name__} {quote(got)}"
        return ConfigError(f"{self.source}: {cut(path) or '(top level)'}: expected {expected}, got {shown}")

    def mapping(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(path, "a mapping", value)
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, "a non-empty string", value)
        return value

    def relative_path(self, value: Any, path: str, where: str, *, shown: str | None = None) -> str:
        """A path relative to the project that stays inside it (no absolute path, no '..' out
        of it); symlinks are resolved where the path is used (core/images.py)."""
        text = self.string(value, path)
        if outside_project(text):
            raise self.error(path, f"a relative path {where}", shown or text)
        return text

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, "true or false", value)
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.error(path, "one of " + ", ".join(choices), value)
        return value

    def known_keys(self, doc: dict, path: str, known: set[str]) -> None:
        unknown = sorted(str(k) for k in doc if k not in known)
        if unknown:
            where = f"{path}." if path else ""
            raise ConfigError(
                f"{self.source}: unknown key '{cut(where + unknown[0])}' (expected one of: {', '.join(sorted(known))})"
            )
