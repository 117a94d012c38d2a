"""DVC's plots, read the way `dvc plots show` and `dvc plots diff` read them.

DVC keeps a plot in two parts: its *definition* (``plots:`` in ``dvc.yaml``, at the top
level or on a stage's outputs: template, x, y, title, labels) and its *data* (a JSON,
YAML, CSV or TSV file, or an image). ``dvc plots`` collects both per revision into one
nested dict and hands it to its converters, which flatten each plot's rows into
datapoints tagged with their revision, file and field, infer what was left out, and fill
a Vega-Lite template (``dvc_render``).

opsctl builds that same dict from three places and merges them, so a plot from the
workspace, a Git revision and a recorded run overlay with DVC's naming and colours:

- the workspace, read straight from the root ``dvc.yaml`` when it uses nothing only DVC's
  index resolves (``${}``, ``foreach``/``matrix``, ``wdir``, nested ``dvc.yaml`` files,
  directories of plots): building a ``Repo`` costs ~0.5 s (docs/architecture.md, *Plots*);
- Git revisions, and any workspace the fast read declines, through ``Repo.plots.show``;
- a run's recorded definitions and file contents.

Every file is parsed by DVC's own parser, so rows are the same whichever way they came.
DVC's internals used here are in ``dvc_compat`` (``plots_*``).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl.adapters import dvc_compat

# A plot file is read whole by DVC's parser; past this size it is refused rather than parsed
# (a hostile or mistaken file must not exhaust memory). Plots are curves and matrices, not datasets.
MAX_PLOT_FILE_BYTES = 64 << 20


class TooLarge(OSError):
    """A plot file over :data:`MAX_PLOT_FILE_BYTES`."""


class Unavailable(FileNotFoundError):
    """A file that can't be had, with the reason as its message (e.g. a run's file gone from the cache)."""


@dataclass
class Plot:
    """One plot ready to draw: DVC's flattened datapoints over every revision that has data."""

    id: str
    kind: str  # "vega" or "image"
    props: dict  # as DVC's converter resolved them: template, x, y (column names), title, labels
    datapoints: list[dict] = field(default_factory=list)  # each row tagged "rev", "filename", "field"
    revs: list[str] = field(default_factory=list)  # revisions with data, in order
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # rev -> file -> parsed content (bytes: image)
    # (rev, file or None for the definition itself, why): one per source that could not be read
    errors: list[tuple[str, str | None, str]] = field(default_factory=list)

    @property
    def template(self) -> str:
        return str(self.props.get("template") or "linear")

    def vega_lite(self) -> dict:
        """The Vega-Lite spec DVC fills for this plot (`dvc plots show --json`'s ``content``)."""
        from dvc_render import VegaRenderer

        return VegaRenderer(self.datapoints, self.id, **self.props).get_filled_template()


# --- definitions ------------------------------------------------------------------------------


def fast_definitions(doc: Any, targets: list[str]) -> dict | None:
    """DVC's ``definitions`` for a root ``dvc.yaml`` already parsed into ``doc``, or None when
    it uses something only DVC's index resolves (then :func:`repo_plots` must be used).

    The shape is ``Repo.plots.show()``'s: ``{"dvc.yaml": {"data": {id: props}}}`` for the
    top-level ``plots:`` and ``{"": {"data": {path: props}}}`` for stages' plot outputs."""
    if not isinstance(doc, dict) or "vars" in doc:
        return None
    stages = doc.get("stages") or {}
    top = doc.get("plots") or []
    if not isinstance(stages, dict) or not isinstance(top, list):
        return None
    # `${}` in a command, a dep or an out doesn't change the plots (common: `python train.py ${train.lr}`);
    # in a plot definition or a stage's name it does, and only DVC resolves it.
    if dvc_compat.interpolated([top, *stages, *(s.get("plots") for s in stages.values() if isinstance(s, dict))]):
        return None
    result: dict[str, dict] = {}
    for plot_id, props in _top_level(top):
        if plot_id is None:
            return None
        if isinstance(props.get("y"), dict):
            if dvc_compat.plot_matches(targets, "dvc.yaml", plot_id):
                props = dict(props)
                for axis in ("x", "y"):
                    if isinstance(props.get(axis), dict):
                        props[axis] = {posixpath.normpath(f): v for f, v in props[axis].items()}
                result.setdefault("dvc.yaml", {"data": {}})["data"][plot_id] = props
        elif dvc_compat.plot_matches(targets, "dvc.yaml", plot_id):
            result.setdefault("dvc.yaml", {"data": {}})["data"][posixpath.normpath(plot_id)] = props
    for stage in stages.values():
        if not isinstance(stage, dict) or {"foreach", "matrix", "wdir", "vars"} & set(stage):
            return None
        for path, props in _stage_plots(stage.get("plots") or []):
            if path is None:
                return None
            if dvc_compat.plot_matches(targets, "dvc.yaml", path):  # DVC matches outputs against their dvc.yaml too
                result.setdefault("", {"data": {}})["data"][posixpath.normpath(path)] = props
    return result


def _top_level(entries: list) -> Iterator[tuple[str | None, dict]]:
    """The top-level ``plots:`` list: a path, or ``{id: props}`` (None: a shape to leave to DVC)."""
    for entry in entries:
        if isinstance(entry, str):
            yield entry, {}
        elif isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), (dict, type(None))):
            plot_id, props = next(iter(entry.items()))
            yield str(plot_id), dict(props or {})
        else:
            yield None, {}


def _stage_plots(entries: Any) -> Iterator[tuple[str | None, dict]]:
    """A stage's ``plots:`` outputs with their plot props (the rest, e.g. ``cache``, is DVC's)."""
    if not isinstance(entries, list):
        yield None, {}
        return
    for entry in entries:
        if isinstance(entry, str):
            yield entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            path, props = next(iter(entry.items()))
            props = props if isinstance(props, dict) else {}
            yield str(path), {k: v for k, v in props.items() if k in dvc_compat.PLOT_PROPS}
        else:
            yield None, {}


def data_files(definitions: dict) -> dict[str, dict]:
    """The files the definitions read, each with the props DVC parses it with (a stage's plot
    output carries its own, e.g. ``header`` for a CSV; a file only a top-level plot names has none)."""
    files: dict[str, dict] = {}
    outputs = definitions.get("", {}).get("data", {})
    for content in definitions.values():
        for plot_id, props in content.get("data", {}).items():
            for source in dvc_compat.plot_data_sources(plot_id, props):
                files.setdefault(source, dict(outputs.get(source) or {}))
    return files


# --- data ------------------------------------------------------------------------------------


def read_files(root: Path, paths: list[str]) -> dict[str, bytes | Exception]:
    """Each file's bytes, or the error that stops it being read (missing, too large)."""
    contents: dict[str, bytes | Exception] = {}
    for path in paths:
        full = root / path
        try:
            size = full.stat().st_size
            if full.is_dir():
                raise IsADirectoryError(f"{path} is a directory")
            if size > MAX_PLOT_FILE_BYTES:
                raise TooLarge(f"{size:,} bytes, over the {MAX_PLOT_FILE_BYTES >> 20} MiB a plot file may have")
            with open(full, "rb") as f:
                data = f.read(MAX_PLOT_FILE_BYTES + 1)
            if len(data) > MAX_PLOT_FILE_BYTES:
                raise TooLarge(f"over the {MAX_PLOT_FILE_BYTES >> 20} MiB a plot file may have")
            contents[path] = data
        except OSError as exc:
            contents[path] = exc
    return contents


def revision(label: str, definitions: dict, contents: dict[str, bytes | Exception]) -> dict:
    """One revision in ``Repo.plots.show()``'s shape, from definitions and file contents."""
    sources: dict[str, dict] = {}
    for path, props in data_files(definitions).items():
        data = contents.get(path)
        if data is None:
            data = Unavailable("not recorded")  # an empty file is there, and has no data (DVC: no error)
        parsed = {"error": data} if isinstance(data, Exception) else dvc_compat.plot_parse(path, data, props)
        sources[path] = {"props": props, **parsed}
    return {label: {"definitions": {"data": definitions}, "sources": {"data": sources}}}


def repo_plots(root: Path, targets: list[str], revs: list[str]) -> dict:
    """``Repo.plots.show`` for ``revs`` (``workspace`` for the working tree): definitions
    resolved by DVC's index, data read through Git and the DVC cache. Revisions keep the
    names given (DVC shortens SHAs to 7 characters; a name asked for is the one shown)."""
    from opsctl.adapters.dvc import open_repo

    with open_repo(root) as repo, _quiet_dvc_errors():
        shown = dvc_compat.plots_show(repo, targets, revs)
    renamed = {}
    for rev in revs:
        key = rev if rev in shown else rev[:7]
        if key in shown:
            renamed[rev] = shown[key]
    return renamed


def templates_dir(root: Path) -> str | None:
    """Where a project's custom Vega-Lite templates live (``dvc plots templates``)."""
    path = root / ".dvc" / "plots"
    return str(path) if path.is_dir() else None


def match(data: dict, templates: str | None) -> list[Plot]:
    """Every plot in ``data`` (revision -> ``Repo.plots.show()`` shape), merged across
    revisions by DVC's converters, in DVC's order."""
    plots = []
    for renderer, source_errors, definition_errors in dvc_compat.plots_match(data, templates):
        errors: list[tuple[str, str | None, str]] = [
            (rev, path, reason(exc)) for rev, by_path in source_errors.items() for path, exc in by_path.items()
        ]
        errors += [(rev, None, reason(exc)) for rev, exc in definition_errors.items()]
        props = dict(renderer.properties)
        props.pop("out", None)
        plot = Plot(
            id=renderer.name,
            kind=renderer.TYPE,
            props=props,
            datapoints=list(getattr(renderer, "datapoints", []) or []),
            revs=list(props.get("revs_with_datapoints") or []),
            errors=errors,
        )
        for rev, content in data.items():
            sources = content.get("sources", {}).get("data", {})
            for path in dvc_compat.plot_data_sources(plot.id, _definition(content, plot.id)):
                if "data" in sources.get(path, {}):
                    plot.sources.setdefault(rev, {})[path] = sources[path]["data"]
        if plot.kind == "image":
            plot.revs = [rev for rev in data if plot.sources.get(rev)]
        plots.append(plot)
    return plots


def revision_errors(data: dict) -> list[str]:
    """One line per revision whose plot definitions DVC could not read at all (a dvc.yaml
    that fails its schema): "REV: why"."""
    lines = []
    for rev, content in data.items():
        error = content.get("definitions", {}).get("error")
        if isinstance(error, Exception):
            cause = f": {reason(error.__cause__)}" if isinstance(error.__cause__, Exception) else ""
            lines.append(f"{rev}: {reason(error)}{cause}")
    return lines


def _definition(content: dict, plot_id: str) -> dict | None:
    for config in content.get("definitions", {}).get("data", {}).values():
        props = config.get("data", {})
        if plot_id in props:
            return props[plot_id]
        for inner_id, inner in props.items():
            if plot_id.endswith(f"::{inner_id}"):
                return inner
    return None


def reason(exc: Exception) -> str:
    if isinstance(exc, (Unavailable, TooLarge)):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "not found"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def _quiet_dvc_errors() -> Iterator[None]:
    """``Repo.plots.show`` prints "DVC failed to load some plots…" itself; opsctl says which
    file and why, in its own line."""
    from dvc.ui import ui

    write = ui.error_write
    ui.error_write = lambda *a, **k: None
    try:
        yield
    finally:
        ui.error_write = write


def _cached_objects(root: Path):
    """Where the project's DVC cache keeps a file by md5 (the cache's place is read once)."""
    from opsctl.adapters.dvc import cache_dir

    files = cache_dir(root) / "files" / "md5"
    return lambda md5: files / md5[:2] / md5[2:]


def read_cached(root: Path, md5s: list[str]) -> dict[str, bytes | OSError]:
    """Each file's bytes from the project's DVC cache by its md5, or why not
    (FileNotFoundError: not there; TooLarge)."""
    object_path = _cached_objects(root)
    found: dict[str, bytes | OSError] = {}
    for md5 in md5s:
        path = object_path(md5)
        try:
            size = path.stat().st_size
            if size > MAX_PLOT_FILE_BYTES:
                raise TooLarge(f"{size:,} bytes, over the {MAX_PLOT_FILE_BYTES >> 20} MiB a plot file may have")
            found[md5] = path.read_bytes()
        except OSError as exc:
            found[md5] = exc
    return found


def cached_md5s(root: Path, md5s: list[str]) -> set[str]:
    """Those of ``md5s`` the project's DVC cache holds (a run's plot files found there need
    no copy in the run store)."""
    object_path = _cached_objects(root)
    return {md5 for md5 in md5s if object_path(md5).is_file()}


def file_md5(data: bytes) -> str:
    """DVC 3's hash of a file's bytes (``md5``, no line-ending conversion)."""
    import hashlib

    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def filter_definitions(definitions: dict, targets: list[str]) -> dict:
    """The definitions whose plot ids match ``targets`` (all when empty), as DVC matches them."""
    if not targets:
        return definitions
    return {
        config: {
            "data": {
                pid: props
                for pid, props in content.get("data", {}).items()
                if dvc_compat.plot_matches(targets, config or "dvc.yaml", pid)
            }
        }
        for config, content in definitions.items()
    }
