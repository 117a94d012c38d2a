"""Images for pipeline stages: ``opsctl build``.

A built image is tagged by a hash of its build inputs — the Dockerfile, the
build args and target, and every context file that ``.dockerignore`` lets
through — so an unchanged image is never rebuilt, and a changed input always
gives a new tag (and makes its stages stale). A ``ref:`` image is used as it is
and identified by its local image id; it is never pulled.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from opsctl.core.config import ImageSpec, outside_project
from opsctl.core.files import write_atomically
from opsctl.core.project import Project
from opsctl.core.yamlload import cut
from opsctl.errors import BuildFailedError, ConfigError, ToolUnavailableError, UsageError

IMAGES_FILE = "images.json"  # under .opsctl/: what each image was last built or resolved as
# Labels on every image opsctl builds, so they can be found (and cleaned up) by project.
PROJECT_LABEL = "org.opsctl.project"
IMAGE_LABEL = "org.opsctl.image"
INPUTS_LABEL = "org.opsctl.inputs"


@dataclass(frozen=True)
class ImageRecord:
    name: str
    ref: str  # the tag stages run (built) or the ref as written (ref:)
    image_id: str
    inputs_hash: str | None  # None for ref: images
    built: bool  # False: already up to date, or a ref: image
    seconds: float


def image_tag(project: Project, spec: ImageSpec, inputs_hash: str) -> str:
    return f"opsctl/{_slug(project.config.project)}-{_slug(spec.name)}:{inputs_hash[:12]}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text.lower()).strip("-._") or "x"


def inputs_hash(project: Project, spec: ImageSpec) -> str:
    """sha256 of everything a build depends on (not timestamps: a fresh clone agrees)."""
    from opsctl.adapters.docker import context_files

    context, dockerfile = build_paths(project, spec)
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {"dockerfile": spec.dockerfile, "args": spec.build_args, "target": spec.target}, sort_keys=True
        ).encode()
    )
    digest.update(dockerfile.read_bytes())
    for rel in context_files(str(context), os.path.relpath(dockerfile, context)):
        path = context / rel
        if is_project_state(project, path):
            continue
        digest.update(rel.encode() + b"\0")
        digest.update(b"link:" + os.readlink(path).encode() if path.is_symlink() else _file_digest(path))
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
    return digest.hexdigest()


def build_paths(project: Project, spec: ImageSpec) -> tuple[Path, Path]:
    """The build context, and the Dockerfile (relative to the context, as in Docker Compose).

    Both must be inside the project once symlinks are resolved: a context of /usr would
    be hashed file by file on every `opsctl status`, and sent whole to the engine."""
    context = (project.root / spec.context).resolve()
    if outside_project(spec.context, project.root):
        raise ConfigError(
            f"opsctl.yaml: images.{spec.name}.context: {cut(spec.context)} is outside the project ({context})",
            hint="a build context must be a directory inside the project",
        )
    if not context.is_dir():
        raise ConfigError(f"opsctl.yaml: images.{spec.name}.context: {cut(spec.context)} is not a directory")
    dockerfile = context / (spec.dockerfile or "Dockerfile")
    if not dockerfile.resolve().is_relative_to(project.root.resolve()):
        raise ConfigError(
            f"opsctl.yaml: images.{spec.name}.dockerfile: {cut(spec.dockerfile or dockerfile.name)} is outside the project "
            f"({dockerfile.resolve()})",
            hint="keep the Dockerfile inside the project",
        )
    if not dockerfile.is_file():
        raise ConfigError(
            f"opsctl.yaml: images.{spec.name}.dockerfile: no such file {os.path.relpath(dockerfile, project.root)}",
            hint="create it, or point images.<name>.dockerfile at the right file (relative to the context)",
        )
    return context, dockerfile


def is_project_state(project: Project, path: Path) -> bool:
    """opsctl's and Git's own state never counts as a build input (it changes with every
    build and commit); projects keep both out of the context with .dockerignore."""
    try:
        parts = path.relative_to(project.root).parts
    except ValueError:
        return False
    # .dvc/tmp: DVC's locks, and the work trees of experiments (core/experiments.py)
    return bool(parts) and (parts[0] in (".opsctl", ".git") or parts[:2] == (".dvc", "tmp"))


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def select_images(project: Project, names: list[str]) -> list[ImageSpec]:
    images = project.config.images
    if not images:
        raise UsageError("no images declared in opsctl.yaml", hint="add an `images:` section (see the README)")
    unknown = [n for n in names if n not in images]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(images), n=3)
        suggestion = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown image '{unknown[0]}' (declared: {', '.join(images)}){suggestion}")
    return [images[n] for n in (names or images)]


def build_images(
    project: Project,
    names: list[str] | None = None,
    *,
    no_cache: bool = False,
    on_line: Callable[[str, str], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> list[ImageRecord]:
    """Build (or confirm) the named images, all when none are named; record them in .opsctl/images.json."""
    from opsctl.adapters import docker as docker_adapter

    records = []
    for spec in select_images(project, names or []):
        started = time.monotonic()
        if spec.ref is not None:  # an existing image, not built
            found = docker_adapter.image_id(spec.ref)
            if found is None:
                raise ToolUnavailableError(
                    f"image '{spec.name}' ({spec.ref}) is not available locally; opsctl never pulls implicitly",
                    hint=f"docker pull {spec.ref} (or docker load it), then run again",
                )
            records.append(ImageRecord(spec.name, spec.ref, found, None, False, time.monotonic() - started))
            continue
        digest = inputs_hash(project, spec)
        tag = image_tag(project, spec, digest)
        existing = None if no_cache else docker_adapter.image_id(tag)
        if existing is not None:
            records.append(ImageRecord(spec.name, tag, existing, digest, False, time.monotonic() - started))
            continue
        if on_start:
            on_start(spec.name)
        context, dockerfile = build_paths(project, spec)
        latest = tag.rsplit(":", 1)[0] + ":latest"
        try:
            built_id = docker_adapter.build_image(
                context=str(context),
                dockerfile=os.path.relpath(dockerfile, context),
                tags=[tag, latest],
                build_args=spec.build_args,
                target=spec.target,
                no_cache=no_cache,
                labels={PROJECT_LABEL: project.config.project, IMAGE_LABEL: spec.name, INPUTS_LABEL: digest},
                on_line=(lambda line, name=spec.name: on_line(name, line)) if on_line else (lambda line: None),
            )
        except BuildFailedError as exc:
            raise BuildFailedError(f"image '{spec.name}' failed to build: {exc}", exc.log_tail) from None
        records.append(ImageRecord(spec.name, tag, built_id, digest, True, time.monotonic() - started))
    _remember(project, records)
    return records


def _remember(project: Project, records: list[ImageRecord]) -> None:
    path = project.state_dir / IMAGES_FILE
    known = {}
    if path.is_file():
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            known = {}
    for record in records:
        known[record.name] = {k: v for k, v in asdict(record).items() if k not in ("built", "seconds")}
    write_atomically(path, json.dumps(known, indent=2, sort_keys=True))
