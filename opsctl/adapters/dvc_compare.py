"""Params and metrics of one side of a comparison — a Git revision or the workspace — read as
``dvc params diff`` and ``dvc metrics diff`` read them, for ``opsctl report``.

DVC answers those by switching its whole repository to each revision and building the stage
index there (~1 s per command at 50 stages, most of it the index). What it reads is small: the
root ``dvc.yaml``, the params files the stages name and the metric files. So when ``dvc.yaml``
uses nothing that only DVC's index resolves (``${}``/``vars``, ``foreach``/``matrix``, ``wdir``,
nested ``dvc.yaml`` files, a directory of metrics, a Python params file), :func:`read_side`
reads those files itself — from Git in one ``git cat-file --batch`` at a revision, from disk in
the workspace, and a metric file kept only in the DVC cache by its ``dvc.lock`` md5 — and the
diff is DVC's own, restated in dvc_compat. Otherwise it returns None and :func:`dvc_sides` asks
DVC. tests/adapters/test_dvc_compare.py holds both paths to ``Repo.params.diff`` and
``Repo.metrics.diff`` (docs/architecture.md, "Report").
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl.adapters import dvc_compat
from opsctl.adapters.dvc_compat import interpolated
from opsctl.adapters.dvc_records import FileReader, load_structure, outs_of, recorded_outputs

DEFAULT_PARAMS = "params.yaml"  # DVC's ParamsDependency.DEFAULT_PARAMS_FILE: always compared when it exists


class NeedsDvc(Exception):
    """The revision uses something only DVC's index resolves (the message says what)."""


@dataclass
class Side:
    """What one side holds: ``{file: content}`` for params and metrics (content ``{}`` when the
    file can't be read, as DVC's diff counts it), and why a file couldn't be read."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_side(root: Path, commit: str | None) -> Side:
    """Params and metrics of the workspace (``commit`` None) or of ``commit``, read without
    DVC; :class:`NeedsDvc` when ``dvc.yaml`` needs DVC's index to be understood."""
    reader = FileReader(root, commit)
    dvc_yamls = reader.dvc_yaml_files()
    if dvc_yamls is None:
        raise NeedsDvc("Git can't list the work tree")
    if [p for p in dvc_yamls if p != "dvc.yaml"]:
        raise NeedsDvc("more than one dvc.yaml")
    files = reader.read(["dvc.yaml", "dvc.lock"])
    doc = _load(files["dvc.yaml"], "dvc.yaml", missing={})
    lock = _load(files["dvc.lock"], "dvc.lock", missing={})
    for name, content in (("dvc.yaml", doc), ("dvc.lock", lock)):
        if content and (problem := dvc_compat.dvc_file_problem(content, lock=name == "dvc.lock")):
            raise NeedsDvc(f"{name} doesn't pass DVC's schema: {problem}")
    param_keys, metric_paths = _declared(doc)

    side = Side()
    contents = reader.read(list(dict.fromkeys([DEFAULT_PARAMS, *param_keys, *metric_paths])))
    missing = [p for p, raw in contents.items() if isinstance(raw, FileNotFoundError)]
    contents.update(_cached_outputs(root, reader, lock, missing))
    # DVC adds params.yaml, when it exists, as a wholly tracked file: every key is compared,
    # not only those the stages name (dvc.repo.params.show._collect_params).
    if not isinstance(contents[DEFAULT_PARAMS], FileNotFoundError):
        param_keys[DEFAULT_PARAMS] = []
    for path, keys in param_keys.items():
        side.params[path] = _content(side, path, contents[path], lambda data, p=path, k=keys: _params(p, data, k))
    for path in metric_paths:
        raw = contents[path]
        if isinstance(raw, IsADirectoryError):
            raise NeedsDvc(f"{path} is a directory of metrics")
        side.metrics[path] = _content(side, path, raw, lambda data, p=path: _metrics(p, data))
    return side


def _load(raw: bytes | OSError, path: str, *, missing: Any) -> Any:
    if isinstance(raw, FileNotFoundError):
        return missing
    if isinstance(raw, OSError):
        raise NeedsDvc(f"{path}: {raw}")
    try:
        return load_structure(path, raw)
    except Exception as exc:  # noqa: BLE001 — DVC will say what is wrong with it
        raise NeedsDvc(f"{path} can't be read here: {exc}") from None


def _content(side: Side, path: str, raw: bytes | OSError, parse) -> Any:
    if isinstance(raw, IsADirectoryError):
        raise NeedsDvc(f"{path} is a directory")
    if isinstance(raw, OSError):
        side.errors[path] = "not found" if isinstance(raw, FileNotFoundError) else str(raw)
        return {}
    try:
        return parse(raw)
    except dvc_compat.NotRestated as exc:
        raise NeedsDvc(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 — a corrupt file is DVC's {"error"}: counted as empty
        side.errors[path] = f"unreadable: {type(exc).__name__}"
        return {}


def _metrics(path: str, data: bytes) -> Any:
    return dvc_compat.metric_values(dvc_compat.load_values(path, data))


def _params(path: str, data: bytes, keys: list[str]) -> Any:
    return dvc_compat.select_params(dvc_compat.load_values(path, data), keys)


def _declared(doc: Any) -> tuple[dict[str, list[str]], list[str]]:
    """The params files (with the keys the stages name; ``[]``: the whole file) and the metric
    files a plain ``dvc.yaml`` declares, in DVC's order of discovery."""
    if not isinstance(doc, dict):
        raise NeedsDvc("dvc.yaml is not a mapping")
    # `${}` in a command, a dep or an out changes nothing here: its values come from params.yaml,
    # which is compared whole anyway (DVC's _collect_vars skips a file already in the params).
    # In what names params or metrics, or with `vars` (other files' values count as params), it does.
    if "vars" in doc or interpolated([doc.get("params"), doc.get("metrics"), *(doc.get("stages") or {})]):
        raise NeedsDvc("dvc.yaml uses vars, or ${} where params or metrics are named")
    stages = doc.get("stages") or {}
    if not isinstance(stages, dict):
        raise NeedsDvc("stages is not a mapping")
    params: dict[str, list[str]] = {}
    whole: set[str] = set()
    metrics: list[str] = []
    for stage in stages.values():
        if not isinstance(stage, dict) or {"foreach", "matrix", "wdir", "do", "vars"} & set(stage):
            raise NeedsDvc("a stage uses foreach, matrix, wdir or vars")
        if interpolated([stage.get("params"), stage.get("metrics")]):
            raise NeedsDvc("${} where a stage names its params or metrics")
        for file, keys in _stage_params(stage.get("params") or []):
            params.setdefault(file, [])
            if keys:
                params[file].extend(keys)
            else:
                whole.add(file)
        metrics.extend(_out_paths(stage.get("metrics") or []))
    for file in _paths(doc.get("params") or [], "params"):
        params.setdefault(file, [])
        whole.add(file)
    metrics.extend(_paths(doc.get("metrics") or [], "metrics"))
    for file in whole:
        params[file] = []
    return params, list(dict.fromkeys(metrics))


def _stage_params(entries: Any) -> Iterator[tuple[str, list[str]]]:
    if not isinstance(entries, list):
        raise NeedsDvc("a stage's params is not a list")
    for entry in entries:
        if isinstance(entry, str):
            yield DEFAULT_PARAMS, [entry]
        elif isinstance(entry, dict):
            for file, keys in entry.items():
                if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
                    raise NeedsDvc(f"params of {file} are not a list of keys")
                yield posixpath.normpath(str(file)), list(keys or [])
        else:
            raise NeedsDvc("a stage's params entry is neither a key nor a file")


def _out_paths(entries: Any) -> Iterator[str]:
    if not isinstance(entries, list):
        raise NeedsDvc("a stage's metrics is not a list")
    for entry in entries:
        if isinstance(entry, str):
            yield posixpath.normpath(entry)
        elif isinstance(entry, dict) and len(entry) == 1:
            yield posixpath.normpath(str(next(iter(entry))))
        else:
            raise NeedsDvc("a metrics output of a shape DVC resolves")


def _paths(entries: Any, what: str) -> list[str]:
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise NeedsDvc(f"the top-level {what} is not a list of paths")
    return [posixpath.normpath(e) for e in entries]


def _lock_outs(lock: Any) -> dict[str, str]:
    """``{path: md5}`` of the stage outputs a parsed ``dvc.lock`` records."""
    return {path: r.md5 for path, r in outs_of(lock).items()}


def _dvc_file_md5(raw: bytes | OSError, name: str) -> str | None:
    """The md5 of the output a ``PATH.dvc`` file tracks at ``PATH``."""
    if not isinstance(raw, bytes):
        return None
    try:
        outs = outs_of(load_structure(name, raw), posixpath.dirname(name))
    except Exception:  # noqa: BLE001 — an unreadable .dvc file tracks nothing here
        return None
    entry = outs.get(name[: -len(".dvc")])
    return entry.md5 if entry is not None and len(outs) == 1 else None


def _cached_outputs(root: Path, reader: FileReader, lock: Any, paths: list[str]) -> dict[str, bytes | OSError]:
    """Declared files the side doesn't have as files but DVC tracks — a stage output in
    ``dvc.lock`` or a ``PATH.dvc`` file's — read from the DVC cache by their md5 (such a file
    is in Git only as that md5). One inside a tracked directory is left to DVC."""
    if not paths:
        return {}
    outs = _lock_outs(lock)
    md5s = {path: outs[path] for path in paths if path in outs}
    for path in paths:
        if holder := next((out for out in outs if path.startswith(f"{out}/")), None):
            raise NeedsDvc(f"{path} is inside the tracked directory {holder}")
    rest = [p for p in paths if p not in md5s]
    parents = {f"{d}.dvc" for p in rest for d in _parents(p)}
    dvc_files = reader.read([*(f"{p}.dvc" for p in rest), *parents]) if rest else {}
    for name in parents:
        if not isinstance(dvc_files[name], FileNotFoundError):
            raise NeedsDvc(f"{name} tracks a directory holding a params or metrics file")
    for path in rest:
        if md5 := _dvc_file_md5(dvc_files[f"{path}.dvc"], f"{path}.dvc"):
            md5s[path] = md5
    if not md5s:
        return {}
    if any(md5.endswith(".dir") for md5 in md5s.values()):
        raise NeedsDvc("a params or metrics path is a tracked directory")
    from opsctl.adapters.dvc_plots import read_cached

    found = read_cached(root, list(md5s.values()))
    return {path: found[md5] for path, md5 in md5s.items()}


def _parents(path: str) -> list[str]:
    """``a/b/c.json`` -> ``["a", "a/b"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def output_hashes(root: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """The DVC hash each of ``paths`` has at ``commit``: from a stage output in ``dvc.lock``
    or from a ``.dvc`` file (paths neither records are left out)."""
    outputs = recorded_outputs(root, commit)
    return {p: outputs[p].md5 for p in paths if p in outputs}


def dvc_sides(root: Path, base: str, head: str | None) -> tuple[Side, Side]:
    """Both sides through DVC (``Repo.params.show`` / ``Repo.metrics.show`` over the two
    revisions; ``head`` None: the workspace), for what :func:`read_side` leaves to DVC."""
    from opsctl.adapters.dvc import open_repo

    label = head or "workspace"
    with open_repo(root) as repo:
        params, metrics = dvc_compat.params_and_metrics_show(repo, [base, label])
    sides = []
    for rev in (base, label):
        side = Side()
        for kind, shown in (("params", params), ("metrics", metrics)):
            target = side.params if kind == "params" else side.metrics
            result = shown.get(rev) or {}
            if result.get("error") is not None:
                side.errors[f"({kind})"] = _one_line(result["error"])
            for path, entry in (result.get("data") or {}).items():
                path = path.replace(os.sep, "/")
                if "error" in entry:
                    side.errors[path] = _one_line(entry["error"])
                    target[path] = {}
                else:
                    target[path] = entry.get("data", {})
        sides.append(side)
    return sides[0], sides[1]


def _one_line(exc: Any) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
