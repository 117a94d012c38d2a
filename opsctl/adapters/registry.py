"""The model registry's storage: Git tags in GTO's format and the ``artifacts:``
section of ``dvc.yaml``. The only module that touches Git or DVC for the registry.

Git is driven through plain ``git`` processes (as ``adapters.git.stage_files``
does): listing every tag with its message is one ``git for-each-ref``, and the
registry's read commands never import GitPython, DVC or GTO.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import DvcError, GitError, ToolUnavailableError

PROJECT_FILE = "dvc.yaml"
GTO_CONFIG = ".gto"  # GTO's own config (gto/config.py CONFIG_FILE_NAME): may list the allowed stages

# One record per tag: fields split by NUL, records ended by \x01 (a tag message holds neither).
_FIELDS = (
    "refname",
    "objecttype",
    "objectname",
    "*objectname",
    "taggername",
    "taggeremail",
    "taggerdate:raw",
    "contents",
)
_FORMAT = "%00".join(f"%({f})" for f in _FIELDS) + "%01"


@dataclass(frozen=True)
class TagRecord:
    """One Git tag as the registry reads it."""

    name: str
    annotated: bool
    commit: str  # the commit it points at (peeled for an annotated tag)
    tagger: str
    tagger_email: str
    timestamp: int  # seconds since the epoch; 0 for a lightweight tag
    tz_offset: str  # the tagger's "+0100"
    message: str


@dataclass(frozen=True)
class OutputState:
    """A DVC-tracked output as it stands for registration."""

    path: str  # relative to the project root, as given
    tracked: bool
    inside: str | None  # when not tracked itself: the tracked directory holding it
    dvcfile: str | None  # dvc.lock or the .dvc file recording its hash, relative to the root
    stage: str | None  # the pipeline stage producing it (None for a .dvc file)
    md5: str | None  # the hash recorded in the workspace's dvcfile
    workspace: str  # "ok", "modified", "deleted", or "not recorded" (no hash yet: the stage never ran)
    committed: bool  # the dvcfile's entry for it is the same at HEAD as in the workspace


def _git(
    root: Path,
    *args: str,
    input: str | None = None,  # noqa: A002
    env: dict | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            input=input,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
        )
    except OSError:
        from opsctl.adapters.git import INSTALL_HINT

        raise ToolUnavailableError("git is not installed or not on PATH", hint=INSTALL_HINT) from None
    if check and result.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_last_line(result.stderr) or result.returncode}")
    return result


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].removeprefix("fatal: ").removeprefix("error: ") if lines else ""


def _identity_env(root: Path) -> dict[str, str]:
    """A committer for tags and commits on machines without ``user.name``/``user.email``,
    the same fallback ``GitRepo.commit`` uses."""
    from opsctl.adapters.git import _fallback_identity, identity_configured

    return {} if identity_configured(root) else _fallback_identity()


# -- tags ---------------------------------------------------------------------------


def list_tags(root: Path) -> list[TagRecord]:
    """Every tag of the repository with its tagger, time and message (one ``git for-each-ref``)."""
    raw = _git(root, "for-each-ref", f"--format={_FORMAT}", "refs/tags").stdout
    tags = []
    for record in raw.split("\x01"):
        record = record.lstrip("\n")
        if not record:
            continue
        fields = record.split("\0")
        if len(fields) != len(_FIELDS):
            continue
        ref, objtype, objname, peeled, tagger, email, date, contents = fields
        annotated = objtype == "tag"
        seconds, _, offset = date.partition(" ")
        tags.append(
            TagRecord(
                name=ref.removeprefix("refs/tags/"),
                annotated=annotated,
                commit=(peeled or objname) if annotated else objname,
                tagger=tagger,
                tagger_email=email.strip().removeprefix("<").removesuffix(">"),
                timestamp=int(seconds) if seconds.isdigit() else 0,
                tz_offset=offset or "+0000",
                message=contents,
            )
        )
    return tags


def create_tag(root: Path, name: str, commit: str, message: str) -> bool:
    """Create the annotated tag ``name`` at ``commit``; False when a tag of that name exists already
    (another process got there first: the caller picks the next name)."""
    result = _git(
        root,
        "tag",
        "--annotate",
        "--cleanup=whitespace",
        "--file=-",
        name,
        commit,
        input=message,
        env=_identity_env(root),
        check=False,
    )
    if result.returncode == 0:
        return True
    if "already exists" in result.stderr:
        return False
    raise GitError(f"could not create tag {name}: {_last_line(result.stderr) or result.returncode}")


def head_commit(root: Path) -> str:
    result = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if result.returncode != 0:
        raise GitError("this repository has no commits yet", hint="commit the project first")
    return result.stdout.strip()


# -- dvc.yaml's artifacts -------------------------------------------------------------


def _load_yaml(text: str | None) -> dict:
    import yaml

    if not text:
        return {}
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        raise DvcError(f"cannot parse YAML: {' '.join(str(exc).split())}") from None
    return data if isinstance(data, dict) else {}


def _file_at(root: Path, rel: str, rev: str | None) -> str | None:
    """The text of ``rel`` (relative to the DVC root) at Git revision ``rev``, or in the workspace (None)."""
    if rev is None:
        path = root / rel
        return path.read_text(encoding="utf-8") if path.is_file() else None
    # "./" makes the path relative to the DVC root even when Git's root is above it.
    result = _git(root, "show", f"{rev}:./{rel}", check=False)
    return result.stdout if result.returncode == 0 else None


def file_at(root: Path, rel: str, rev: str) -> str | None:
    """The text of ``rel`` (project-relative) at Git revision ``rev``; None when it has none."""
    return _file_at(root, rel, rev)


def declared_artifacts(root: Path, rev: str | None = None) -> dict[str, dict]:
    """The ``artifacts:`` section of the root ``dvc.yaml`` at ``rev`` (None: the workspace)."""
    section = _load_yaml(_file_at(root, PROJECT_FILE, rev)).get("artifacts") or {}
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in section.items()} if isinstance(section, dict) else {}


def declare_artifact(root: Path, name: str, path: str, message: str, type_: str = "model") -> str:
    """Add ``name: {path, type}`` to ``dvc.yaml``'s ``artifacts:`` and commit that file alone.

    Refuses when ``dvc.yaml`` already has changes Git has not committed: they are the
    user's, and the commit must carry only this one. Returns the new commit.
    """
    status = _git(root, "status", "--porcelain", "--", PROJECT_FILE).stdout
    if status.strip():
        raise GitError(
            f"{PROJECT_FILE} has uncommitted changes; registering would commit them with the model annotation",
            hint=f"commit or stash your changes to {PROJECT_FILE} first, then register again",
        )
    dvcyaml = root / PROJECT_FILE
    before = dvcyaml.read_bytes() if dvcyaml.exists() else None
    try:
        from opsctl.adapters.dvc import _prepare_dvc

        _prepare_dvc()
        from dvc.exceptions import DvcException
        from dvc.utils.serialize import modify_yaml

        try:
            # DVC's own round-trip writer: comments, order and layout of the rest stay as they are.
            with modify_yaml(dvcyaml) as data:
                artifacts = data.get("artifacts")
                if artifacts is None:
                    data["artifacts"] = artifacts = {}
                artifacts[name] = {"path": path, "type": type_}
        except DvcException as exc:
            raise DvcError(f"cannot update {PROJECT_FILE}: {' '.join(str(exc).split())}") from None
        env = _identity_env(root)
        _git(root, "add", "--", PROJECT_FILE)
        _git(root, "commit", "--quiet", "--no-verify", "--only", "-m", message, "--", PROJECT_FILE, env=env)
    except BaseException:
        # Nothing half-done: the file as it was (and its index entry, which `git add` touched).
        if before is None:
            dvcyaml.unlink(missing_ok=True)
        else:
            dvcyaml.write_bytes(before)
        _git(root, "reset", "--quiet", "--", PROJECT_FILE, check=False)
        raise
    return head_commit(root)


def allowed_stages(root: Path) -> list[str] | None:
    """The stages GTO's config (``.gto`` at the Git root) allows, or None when it does not restrict them."""
    top = _git(root, "rev-parse", "--show-toplevel", check=False).stdout.strip()
    config = Path(top or root) / GTO_CONFIG
    if not config.is_file():
        return None
    stages = _load_yaml(config.read_text(encoding="utf-8")).get("stages")
    return [str(s) for s in stages] if isinstance(stages, list) else None


# -- the output being registered ------------------------------------------------------


def inspect_output(root: Path, path: str) -> OutputState:
    """Whether ``path`` (relative to the root) is a DVC-tracked output, whether the workspace
    holds what its dvc.lock/.dvc entry records, and whether that entry is committed."""
    from opsctl.adapters.dvc import open_repo

    target = (root / path).resolve()
    with open_repo(root) as repo:
        from dvc.stage import PipelineStage

        outs = list(repo.index.outs)
        match = next((o for o in outs if Path(o.fs_path).resolve() == target), None)
        if match is None:
            inside = next((o for o in outs if Path(o.fs_path).resolve() in target.parents), None)
            return OutputState(
                path, False, _rel(root, inside.fs_path) if inside else None, None, None, None, "ok", False
            )
        stage = match.stage
        if isinstance(stage, PipelineStage):
            dvcfile = _rel(root, os.path.splitext(stage.dvcfile.path)[0] + ".lock")
            key = stage.name
        else:
            dvcfile, key = _rel(root, stage.path), None
        md5 = match.hash_info.value if match.hash_info else None
        if not md5:
            workspace = "not recorded"
        else:
            status = match.workspace_status()
            workspace = next(iter(status.values())) if status else "ok"
        def_path = str(match.def_path)
        stage_name = stage.addressing if isinstance(stage, PipelineStage) else None
    here = _entry(_load_yaml(_file_at(root, dvcfile, None)), key, def_path)
    at_head = _entry(_load_yaml(_file_at(root, dvcfile, "HEAD")), key, def_path)
    return OutputState(
        path, True, None, dvcfile, stage_name, md5, workspace, committed=here is not None and here == at_head
    )


def recorded_hash(root: Path, path: str, rev: str) -> str | None:
    """The md5 that ``rev``'s dvc.lock (a root-level stage) or ``PATH.dvc`` records for ``path``; best effort,
    without DVC, for versions whose tag message does not say (tags GTO wrote)."""
    lock = _load_yaml(_file_at(root, "dvc.lock", rev))
    for stage in (lock.get("stages") or {}).values() if isinstance(lock.get("stages"), dict) else ():
        for out in (stage or {}).get("outs") or []:
            if isinstance(out, dict) and str(out.get("path")) == path and out.get("md5"):
                return str(out["md5"])
    single = _load_yaml(_file_at(root, f"{path}.dvc", rev))
    for out in single.get("outs") or []:
        if isinstance(out, dict) and out.get("md5"):
            return str(out["md5"])
    return None


def _entry(data: dict, stage: str | None, def_path: str) -> dict | None:
    """The ``outs`` entry for ``def_path`` in a parsed dvc.lock (under ``stages: {stage}``) or .dvc file."""
    if stage is not None:
        data = ((data.get("stages") or {}).get(stage) or {}) if isinstance(data.get("stages"), dict) else {}
    for out in data.get("outs") or []:
        if isinstance(out, dict) and str(out.get("path")) == def_path:
            return out
    return None


def _rel(root: Path, path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()
