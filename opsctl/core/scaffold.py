"""Scaffolding: built-in templates, ``opsctl init`` and ``opsctl init --existing``.

A new project is rendered by Copier into a staging directory beside the
destination, then moved into place and turned into a Git + DVC repository.
Every step is recorded in a :class:`FileTransaction`, so a failure or Ctrl-C
at any point leaves the destination as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl import __version__
from opsctl.core.config import CONFIG_FILE, parse_config
from opsctl.core.project import STATE_DIR, find_git_root, find_root
from opsctl.core.rollback import FileTransaction, ignoring_sigint
from opsctl.errors import NotAProjectError, ProjectExistsError, TemplateNotFoundError, UsageError

DEFAULT_TEMPLATE = "ml-pipeline"
TEMPLATE_META = "template.yml"
# The embedded DVC remote: a directory inside the project (git-ignored under
# .opsctl/), so `dvc push`/`pull` work with no cloud account. DVC resolves a
# relative remote URL against the directory of the config file, i.e. `.dvc/`.
EMBEDDED_REMOTE_NAME = "storage"
EMBEDDED_REMOTE_URL = f"../{STATE_DIR}/remote"
IGNORE_RULE = f"{STATE_DIR}/"

_URL_PREFIXES = ("git@", "git+", "gh:", "gl:", "ssh://", "http://", "https://", "git://", "file://")


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    description: str
    source: str
    track: tuple[str, ...] = ()
    builtin: bool = True


@dataclass(frozen=True)
class TemplateSource:
    spec: str  # what Copier is given: a directory or a Git URL
    display: str
    is_remote: bool
    info: TemplateInfo | None  # known metadata (built-in or local template with template.yml)


@dataclass(frozen=True)
class InitResult:
    root: Path
    template: str
    project_name: str
    files: int
    tracked: list[str]
    remote_name: str
    remote_url: str
    commit: str
    git_identity_guessed: bool


@dataclass(frozen=True)
class AdoptResult:
    root: Path
    written: list[str] = field(default_factory=list)


def builtin_templates_dir() -> Path:
    """Where the built-in templates are: inside the package when installed from a
    wheel, at the top of the repository in a source checkout or editable install."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise TemplateNotFoundError(
        "opsctl's built-in templates are missing from this installation", hint="reinstall opsctl"
    )


def list_templates() -> list[TemplateInfo]:
    """The built-in templates, default first."""
    root = builtin_templates_dir()
    infos = [_read_info(d, builtin=True) for d in sorted(root.iterdir()) if (d / "copier.yml").is_file()]
    return sorted(infos, key=lambda t: (t.name != DEFAULT_TEMPLATE, t.name))


def _read_info(directory: Path, *, builtin: bool) -> TemplateInfo:
    import yaml

    meta_path = directory / TEMPLATE_META
    meta: dict = {}
    if meta_path.is_file():
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    return TemplateInfo(
        name=directory.name,
        description=str(meta.get("description", "")).strip(),
        source=str(directory),
        track=tuple(str(p) for p in meta.get("track") or ()),
        builtin=builtin,
    )


def resolve_template(spec: str | None) -> TemplateSource:
    """A built-in name, a local Copier template directory, or a Git URL."""
    spec = spec or DEFAULT_TEMPLATE
    builtins = {t.name: t for t in list_templates()}
    if spec in builtins:
        info = builtins[spec]
        return TemplateSource(info.source, f"{spec} (built-in)", is_remote=False, info=info)
    if spec.startswith(_URL_PREFIXES) or spec.endswith(".git") and not Path(spec).expanduser().is_dir():
        return TemplateSource(spec, spec, is_remote=True, info=None)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not any((path / f).is_file() for f in ("copier.yml", "copier.yaml")):
            raise TemplateNotFoundError(f"{path} is not a Copier template (no copier.yml in it)")
        resolved = path.resolve()
        return TemplateSource(str(resolved), str(resolved), is_remote=False, info=_read_info(resolved, builtin=False))
    available = ", ".join(builtins)
    raise TemplateNotFoundError(
        f"unknown template '{spec}' (built-in templates: {available})",
        hint="or give the path or Git URL of a Copier template",
    )


def slugify(name: str) -> str:
    """A project name from a directory name: lowercase letters, digits, '-' and '_'."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    if not slug or not slug[0].isalpha():
        slug = f"project-{slug}" if slug else "project"
    return slug


def _is_effectively_empty(directory: Path) -> bool:
    # A freshly cloned empty repository holds only `.git`: scaffolding into it is the normal case.
    return all(entry.name == ".git" for entry in directory.iterdir())


def init_project(
    directory: Path,
    *,
    template: str | None = None,
    name: str | None = None,
    data: dict[str, Any] | None = None,
    defaults: bool = True,
    force: bool = False,
    trust: bool = False,
    vcs_ref: str | None = None,
) -> InitResult:
    """Render a template into ``directory`` and make it a Git + DVC project with a first commit.

    Refuses a non-empty directory unless ``force`` (then files the template also
    has are overwritten; everything is restored if init fails or is interrupted).
    """
    from opsctl.adapters import copier as copier_adapter
    from opsctl.adapters import dvc as dvc_adapter
    from opsctl.adapters.git import GitRepo

    dest = Path(directory).expanduser().resolve()
    if dest.exists() and not dest.is_dir():
        raise ProjectExistsError(f"{dest} exists and is not a directory")
    if dest.is_dir() and (dest / ".dvc").exists():
        raise ProjectExistsError(f"{dest} already has DVC initialised", hint="use `opsctl init --existing` to adopt it")
    if dest.is_dir() and not force and not _is_effectively_empty(dest):
        raise ProjectExistsError(
            f"{dest} is not empty; nothing was changed",
            hint="pass --force to render into it anyway (files the template also has are overwritten), "
            "or --existing to adopt a Git + DVC repository",
        )

    source = resolve_template(template)
    answers = dict(data or {})
    if name:
        answers["project_name"] = name
    # Offered defaults (the question is still asked on a terminal): the directory's name, and the
    # opsctl that CI installs (the templates' `opsctl_requirement`) pinned to this version.
    offered = {"project_name": slugify(dest.name), "opsctl_requirement": f"opsctl=={__version__}"}

    dest.parent.mkdir(parents=True, exist_ok=True)
    # Named before it exists, so that a Ctrl-C at any instant is cleaned up by `finally`.
    staging = dest.parent / f".opsctl-init-{uuid.uuid4().hex[:12]}"
    try:
        staging.mkdir()
        rendered = staging / "project"
        copier_adapter.render(
            source.spec,
            rendered,
            data=answers,
            user_defaults=offered,
            defaults=defaults,
            trust=trust,
            is_remote=source.is_remote,
            vcs_ref=vcs_ref,
        )
        project_name = _answered_name(rendered) or answers.get("project_name") or offered["project_name"]
        files = sum(1 for p in rendered.rglob("*") if p.is_file())
        _check_rendered_config(rendered)

        with FileTransaction(scratch_parent=dest.parent) as tx:
            fresh_dir = not dest.exists()
            # Each change is recorded before it is made, so an interrupt in between is still undone.
            if fresh_dir:
                tx.created(dest)
                rendered.rename(dest)
                added_paths = ["."]
            else:
                added_paths = _move_tree(rendered, dest, tx)

            if (dest / ".git").exists():
                git_repo = GitRepo.open(dest)
            else:
                if not fresh_dir:
                    tx.created(dest / ".git")
                git_repo = GitRepo.init(dest)

            if not fresh_dir:
                for path in (dest / ".dvc", dest / ".dvcignore"):
                    if not path.exists():
                        tx.created(path)
                    else:
                        tx.preserve(path)
            dvc_adapter.init_repo(dest)
            # Given relative to the working directory, DVC stores it relative to
            # `.dvc/` (as `dvc remote add` does), so the project stays movable.
            remote_dir = os.path.relpath(dest / STATE_DIR / "remote")
            dvc_adapter.add_remote(dest, EMBEDDED_REMOTE_NAME, remote_dir, default=True)

            track = [p for p in (source.info.track if source.info else ()) if (dest / p).exists()]
            if not fresh_dir:
                for rel in track:
                    for extra in (dest / f"{rel}.dvc", (dest / rel).parent / ".gitignore"):
                        if not extra.exists():
                            tx.created(extra)
                        else:
                            tx.preserve(extra)
            _tracked, to_git = dvc_adapter.add_paths(dest, track)

            git_repo.add(sorted(set(added_paths + [".dvc", ".dvcignore", *to_git])))
            commit, guessed = git_repo.commit(f"Scaffold {project_name} from opsctl template {source.display}")
    finally:
        with ignoring_sigint():
            shutil.rmtree(staging, ignore_errors=True)

    return InitResult(
        root=dest,
        template=source.display,
        project_name=project_name,
        files=files,
        tracked=track,
        remote_name=EMBEDDED_REMOTE_NAME,
        remote_url=EMBEDDED_REMOTE_URL,
        commit=commit,
        git_identity_guessed=guessed,
    )


def _answered_name(rendered: Path) -> str | None:
    """The project name as finally answered, from Copier's answers file or opsctl.yaml."""
    import yaml

    for filename, key in ((".copier-answers.yml", "project_name"), (CONFIG_FILE, "project")):
        path = rendered / filename
        if path.is_file():
            try:
                value = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(key)
            except yaml.YAMLError:
                continue
            if isinstance(value, str) and value:
                return value
    return None


def _check_rendered_config(rendered: Path) -> None:
    """A template that renders an invalid opsctl.yaml is caught before anything is moved into place."""
    path = rendered / CONFIG_FILE
    if path.is_file():
        import yaml

        parse_config(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, source=f"template's {CONFIG_FILE}")


def _move_tree(src: Path, dest: Path, tx: FileTransaction) -> list[str]:
    """Move every file under ``src`` to the same place under ``dest``, recording each change."""
    moved = []
    for path in sorted(src.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(src)
        target = dest / rel
        tx.mkdirs(target.parent)
        if target.exists() or target.is_symlink():
            tx.preserve(target)
        else:
            tx.created(target)
        shutil.move(str(path), str(target))
        moved.append(str(rel))
    return moved


def adopt_project(directory: Path, *, force: bool = False) -> AdoptResult:
    """``opsctl init --existing``: add ``opsctl.yaml`` and the ``.opsctl/`` ignore rules
    to a Git + DVC repository, touching nothing else (and committing nothing)."""
    start = Path(directory).expanduser().resolve()
    root = find_root(start)
    if root is None:
        git_root = find_git_root(start) if start.exists() else None
        if git_root is None:
            raise NotAProjectError(
                f"{start} is not in a Git repository", hint="use `opsctl init DIR` to create a new project"
            )
        raise NotAProjectError(
            f"{git_root} has no DVC", hint="run `dvc init` there first, then `opsctl init --existing`"
        )
    config_path = root / CONFIG_FILE
    if config_path.exists() and not force:
        raise ProjectExistsError(
            f"{config_path} already exists; nothing was changed", hint="pass --force to replace it"
        )

    written = []
    with FileTransaction() as tx:
        if config_path.exists():
            tx.preserve(config_path)
        else:
            tx.created(config_path)
        config_path.write_text(_adopted_config(root), encoding="utf-8")
        written.append(CONFIG_FILE)
        for ignore_file in (".gitignore", ".dvcignore"):
            if _ensure_line(root / ignore_file, IGNORE_RULE, tx):
                written.append(ignore_file)
    return AdoptResult(root=root, written=written)


def _adopted_config(root: Path) -> str:
    name = slugify(root.name)
    lines = [
        "# opsctl settings; dvc.yaml stays the pipeline's source of truth.",
        f"project: {name}",
        "# local: stages run on this machine, as `dvc repro` would. docker: each stage in a container.",
        "executor: local",
    ]
    if (root / "Dockerfile").is_file():
        lines += [
            "images:",
            "  app:",
            "    dockerfile: Dockerfile",
            "    context: .",
            "stages:",
            "  default: {image: app}",
        ]
    else:
        lines += [
            "# images:",
            "#   app: {dockerfile: Dockerfile, context: .}",
            "# stages:",
            "#   default: {image: app}",
        ]
    text = "\n".join(lines) + "\n"
    import yaml

    parse_config(yaml.safe_load(text), source=CONFIG_FILE)
    return text


def _ensure_line(path: Path, line: str, tx: FileTransaction) -> bool:
    if path.exists():
        content = path.read_text(encoding="utf-8")
        if line in (ln.strip() for ln in content.splitlines()):
            return False
        tx.preserve(path)
        sep = "" if not content or content.endswith("\n") else "\n"
        path.write_text(f"{content}{sep}{line}\n", encoding="utf-8")
    else:
        tx.created(path)
        path.write_text(f"{line}\n", encoding="utf-8")
    return True


def parse_data_pairs(pairs: list[str]) -> dict[str, Any]:
    """``--data KEY=VALUE`` pairs; values are YAML scalars (so ``n=3`` is a number, ``x=true`` a bool)."""
    import yaml

    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--data expects KEY=VALUE, got '{pair}'")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        data[key.strip()] = parsed if isinstance(parsed, (int, float, bool, str)) else value
    return data
