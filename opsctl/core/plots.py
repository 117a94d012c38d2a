"""Plots: DVC's plots of the workspace, of Git revisions and of recorded runs, overlaid,
drawn in the terminal (core.plot_text) or written as exact SVG and self-contained HTML from
DVC's own Vega-Lite templates (docs/architecture.md, *Plots*).

A run records its plots as it ends (:func:`snapshot`): their definitions, and for each file
its md5 — the file itself stays in the DVC cache when it is there (DVC's run cache puts
plot outputs there even with ``cache: false``) — else a copy in the run store, up to
:data:`RUN_COPY_CAP` bytes a run. A file over the cap is not kept, and the run says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.core.files import write_atomically
from opsctl.core.project import Project
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.store.plots import RecordedPlots

WORKSPACE = "workspace"
RUN_COPY_CAP = 1 << 20  # bytes of plot files a run may copy into the run store (the rest: by md5 in the cache)
VL_VERSION = "5.21"  # DVC's templates declare Vega-Lite v5 (and one still uses v4's `selection`)
MAX_SOURCES = 8  # runs and revisions overlaid at once: more is unreadable, and each costs a read


@dataclass
class PlotSet:
    """The plots asked for, each merged across the sources (workspace, revisions, runs)."""

    plots: list[Any]  # adapters.dvc_plots.Plot, in DVC's order
    sources: list[str]  # the names series carry: "workspace", a revision as given, a run id
    runs: list[str] = field(default_factory=list)  # those of the sources that are runs
    notes: list[str] = field(default_factory=list)  # what belongs to no one plot (a dvc.yaml DVC can't read)

    def where(self, source: str) -> str:
        if source == WORKSPACE:
            return "in the workspace"
        return f"in run {source}" if source in self.runs else f"at revision {source}"

    def errors_of(self, plot: Any) -> list[str]:
        """What could not be read for one plot, one line each: ``FILE: why (where)``; a plot whose
        files were read but hold nothing says so."""
        lines = [f"{path or plot.id}: {why} ({self.where(rev)})" for rev, path, why in plot.errors]
        if not lines and not has_data(plot):
            lines.append(f"{plot.id}: no data to draw")
        return lines

    @property
    def errors(self) -> list[str]:
        return [line for plot in self.plots for line in self.errors_of(plot)] + self.notes


def has_data(plot: Any) -> bool:
    """Whether ``plot`` has anything to draw (datapoints, or an image's bytes)."""
    return bool(plot.datapoints if plot.kind == "vega" else plot.sources)


# --- reading ----------------------------------------------------------------------------------


def load(
    project: Project,
    targets: Sequence[str] = (),
    *,
    runs: Sequence[str] = (),
    revs: Sequence[str] = (),
) -> PlotSet:
    """The plots of ``targets`` (all when empty; DVC's matching: a regular expression at the
    start of a plot id) from the workspace, or from each of ``runs`` and ``revs`` overlaid
    (``workspace`` counts as a revision)."""
    from opsctl.adapters import dvc_plots

    if len(runs) + len(revs) > MAX_SOURCES:
        raise UsageError(f"at most {MAX_SOURCES} runs and revisions can be overlaid ({len(runs) + len(revs)} given)")
    targets = list(targets)
    _check_targets(targets)
    data: dict[str, dict] = {}
    sources: list[str] = []
    run_ids: list[str] = []
    git_revs = [rev for rev in revs if rev != WORKSPACE]
    _check_revs(project, git_revs)
    if not runs and not revs or WORKSPACE in revs:
        data.update(workspace(project, targets))
        sources.append(WORKSPACE)
    if git_revs:
        data.update(dvc_plots.repo_plots(project.root, targets, git_revs))
        sources.extend(git_revs)
    for run in runs:
        run_id, revision = _run_revision(project, run, targets)
        data.update(revision)
        sources.append(run_id)
        run_ids.append(run_id)
    plots = dvc_plots.match(data, dvc_plots.templates_dir(project.root))
    return PlotSet(plots, sources, run_ids, dvc_plots.revision_errors(data))


def _check_targets(targets: list[str]) -> None:
    """Each target is a regular expression (DVC's matching): a bad one is a usage error here,
    not a crash inside the matching."""
    import re

    for target in targets:
        try:
            re.compile(target)
        except re.error as exc:
            raise UsageError(f"TARGET '{target}' is not a regular expression: {exc}") from None


def _check_revs(project: Project, revs: list[str]) -> None:
    from opsctl.adapters.git import commit_exists

    for rev in revs:
        if rev.startswith("-") or not commit_exists(project.root, rev):
            raise UsageError(f"no Git revision '{rev}' in this project", hint="a branch, tag or commit")


def workspace(project: Project, targets: list[str]) -> dict:
    """The workspace's plots in ``Repo.plots.show()``'s shape: read from the root ``dvc.yaml``
    when it is plain enough (see adapters.dvc_plots), else through DVC's index."""
    from opsctl.adapters import dvc_plots

    definitions = fast_definitions(project, targets)
    if definitions is None:
        return dvc_plots.repo_plots(project.root, targets, [WORKSPACE])
    contents = dvc_plots.read_files(project.root, list(dvc_plots.data_files(definitions)))
    missing = any(isinstance(data, FileNotFoundError) for data in contents.values())
    if missing and not any(isinstance(data, dvc_plots.TooLarge) for data in contents.values()):
        # A file DVC tracks (dvc.lock, a .dvc file) and gone from the working tree: DVC reads it
        # from its cache, as `dvc plots show` does; one truly gone is reported missing by DVC too.
        # Not with a file over the size cap here: DVC would read that one whole.
        return dvc_plots.repo_plots(project.root, targets, [WORKSPACE])
    return dvc_plots.revision(WORKSPACE, definitions, contents)


def fast_definitions(project: Project, targets: list[str]) -> dict | None:
    """The workspace's plot definitions read straight from ``dvc.yaml``, or None when only
    DVC's index can resolve them (then DVC is asked)."""
    from opsctl.adapters import dvc_plots
    from opsctl.adapters.git import files_named
    from opsctl.core.yamlload import MAX_DATA_BYTES, load_yaml_file

    if files_named(project.root, "dvc.yaml") not in (["dvc.yaml"], []):
        return None  # nested dvc.yaml files, or Git can't tell
    path = project.root / "dvc.yaml"
    doc = load_yaml_file(path, max_bytes=MAX_DATA_BYTES, source="dvc.yaml") if path.exists() else {}
    definitions = dvc_plots.fast_definitions(doc or {}, targets)
    if definitions is None:
        return None
    known = {pid for content in definitions.values() for pid in content.get("data", {})}
    for target in targets:  # as DVC: a target that is a file, named by no definition, is plotted as is
        if target not in known and (project.root / target).is_file():
            definitions.setdefault("", {"data": {}})["data"][target] = {}
    if any((project.root / p).is_dir() for p in dvc_plots.data_files(definitions)):
        return None  # a directory of plots: DVC unpacks it
    return definitions


def _run_revision(project: Project, run: str, targets: list[str]) -> tuple[str, dict]:
    """A recorded run's plots as one revision named by the run's id."""
    from opsctl.adapters import dvc_plots
    from opsctl.core.runs import open_store
    from opsctl.store.plots import run_plots

    store = open_store(project)
    try:
        run_id = store.get_run(run).id
        recorded = run_plots(store, run_id)
    finally:
        store.close()
    if recorded is None:
        raise UsageError(
            f"run {run_id} has no plots recorded",
            hint="it ran before dvc.yaml declared plots, or before opsctl recorded them: run the pipeline again",
        )
    definitions = dvc_plots.filter_definitions(recorded.definitions, targets)
    contents: dict[str, bytes | Exception] = {}
    by_md5 = [f.md5 for f in recorded.files if f.content is None and not f.omitted]
    cached = dvc_plots.read_cached(project.root, by_md5) if by_md5 else {}
    for file in recorded.files:
        if file.content is not None:
            contents[file.path] = file.content
        elif file.omitted:
            contents[file.path] = dvc_plots.Unavailable(
                f"not kept: {file.size:,} bytes, over the run store's copy cap, and not in the DVC cache"
            )
        elif isinstance(cached[file.md5], FileNotFoundError):
            contents[file.path] = dvc_plots.Unavailable(
                f"gone from the DVC cache (md5 {file.md5[:8]}; `opsctl data pull` may bring it back)"
            )
        else:
            contents[file.path] = cached[file.md5]
    for path, why in recorded.errors.items():
        contents.setdefault(path, dvc_plots.Unavailable(f"could not be recorded: {why}"))
    return run_id, dvc_plots.revision(run_id, definitions, contents)


# --- recording --------------------------------------------------------------------------------


def snapshot(project: Project, *, cap: int = RUN_COPY_CAP) -> RecordedPlots | None:
    """The workspace's plots as a run records them (None: the project declares none). Files
    the DVC cache holds are recorded by md5; the others are copied while the copies fit in
    ``cap`` bytes, smallest first, so one large file doesn't crowd out the rest."""
    from opsctl.adapters import dvc_plots
    from opsctl.store.plots import RecordedFile, RecordedPlots

    definitions = fast_definitions(project, [])
    if definitions is None:
        shown = dvc_plots.repo_plots(project.root, [], [WORKSPACE]).get(WORKSPACE, {})
        definitions = shown.get("definitions", {}).get("data", {})
    paths = list(dvc_plots.data_files(definitions))
    if not paths:
        return None
    contents = dvc_plots.read_files(project.root, paths)
    errors = {path: dvc_plots.reason(data) for path, data in contents.items() if isinstance(data, Exception)}
    read = {path: data for path, data in contents.items() if isinstance(data, bytes)}
    md5s = {path: dvc_plots.file_md5(data) for path, data in read.items()}
    cached = dvc_plots.cached_md5s(project.root, list(md5s.values()))
    files = []
    room = cap
    for path in sorted(read, key=lambda p: len(read[p])):
        data = read[path]
        file = RecordedFile(path, md5s[path], len(data))
        if md5s[path] not in cached:
            if len(data) <= room:
                file.content, room = data, room - len(data)
            else:
                file.omitted = True
        files.append(file)
    return RecordedPlots(definitions, files, errors)


# --- output -----------------------------------------------------------------------------------


def as_json(plot_set: PlotSet) -> dict:
    """What `opsctl plots show --json` prints: per plot its template, properties, the
    revisions it has data for, each source file's content as read, and the filled Vega-Lite
    spec (DVC's `plots show --json` content); then the errors."""
    plots = []
    for plot in plot_set.plots:
        entry: dict[str, Any] = {"id": plot.id, "type": plot.kind, "revisions": plot.revs}
        if plot.kind == "vega":
            entry["template"] = plot.template
            entry["props"] = {k: v for k, v in plot.props.items() if k not in ("template_dir", "revs_with_datapoints")}
            entry["data"] = plot.sources
            entry["spec"] = plot.vega_lite() if plot.datapoints else None
        else:
            entry["files"] = {rev: sorted(files) for rev, files in plot.sources.items()}
        plots.append(entry)
    return {"sources": plot_set.sources, "plots": plots, "errors": plot_set.errors}


def svg(plot: Any) -> str:
    """The plot as DVC Studio draws it, rendered by an embedded Vega (vl-convert)."""
    return vega_lite_svg(plot.vega_lite())


def vega_lite_svg(spec: dict) -> str:
    """A Vega-Lite spec as SVG, by the embedded Vega (no browser, no Node)."""
    import vl_convert

    return vl_convert.vegalite_to_svg(spec, vl_version=VL_VERSION)


def write_svgs(plot_set: PlotSet, directory: Path) -> list[Path]:
    """One file per plot in ``directory``: ``ID.svg`` (an image plot: each revision's image as it
    is, ``REV_ID``). Files are written whole (a temporary name, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plot_set.plots:
        if plot.kind == "vega":
            if plot.datapoints:
                written.append(write_atomically(directory / f"{file_name(plot.id)}.svg", svg(plot).encode()))
            continue
        for rev, files in plot.sources.items():
            for path, data in files.items():
                written.append(write_atomically(directory / file_name(f"{rev}_{path}"), data))
    return written


def file_name(plot_id: str) -> str:
    """A plot id (a path, or ``dvc.yaml::name``) as one safe file name."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", plot_id.replace("::", "__")).strip("._") or "plot"


def write_html(plot_set: PlotSet, path: Path, *, title: str = "opsctl plots") -> Path:
    """One self-contained page: every plot drawn by Vega in the browser from the bundled
    scripts (opsctl/assets/vega.js: no CDN, works offline), images inline."""
    import base64
    import html

    bundle = (Path(__file__).resolve().parent.parent / "assets" / "vega.js").read_text(encoding="utf-8")
    parts = []
    for i, plot in enumerate(plot_set.plots):
        heading = f"<h2>{html.escape(str(plot.props.get('title') or plot.id))}</h2>"
        if plot.kind == "vega":
            if not plot.datapoints:
                continue
            spec = json.dumps(plot.vega_lite()).replace("<", "\\u003c")  # no "</script>" inside the script
            parts.append(
                f'<section>{heading}<div id="plot{i}"></div>'
                f"<script>vegaEmbed('#plot{i}', {spec}, {{actions: false}});</script></section>"
            )
        else:
            images = []
            for rev, files in plot.sources.items():
                for file, data in files.items():
                    mime = image_mime(file)
                    src = f"data:{mime};base64,{base64.b64encode(data).decode()}"
                    caption = html.escape(f"{rev}: {file}")
                    images.append(
                        f'<figure><img src="{src}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
                    )
            parts.append(f"<section>{heading}{''.join(images)}</section>")
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}section{margin-bottom:2em}"
        "figure{display:inline-block;margin:0 1em 1em 0}img{max-width:100%}</style>"
        f"<script>{bundle}</script></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return write_atomically(path, page.encode("utf-8"))


def image_mime(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".svg": "image/svg+xml"}.get(
        suffix, "image/png"
    )
