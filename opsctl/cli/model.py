"""``opsctl model ...``: the model registry, in GTO's Git-tag format."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import typer

from opsctl.cli.output import Styled, out

app = typer.Typer(
    help="The model registry: versions and stages as Git tags.\n\n"
    "Register, list, show, history, promote, rollback. Tags follow GTO's format (`gto show` reads them); "
    "they are local until `git push --tags`.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print as JSON.")


# -- the seams to the run store ----------------------------------------------------------
# The registry links versions to runs through these; the run store answers them.


def _resolve_run(prefix: str) -> str:
    """A run id or unique prefix -> the full run id; raises when no (or more than one) run matches."""
    from opsctl.core import registry_link

    return registry_link.resolve_run(_project(), prefix)


def _producing_run(path: str, md5: str) -> str | None:
    """The run whose output PATH had this hash (the default run link of a registration)."""
    from opsctl.core import registry_link

    return registry_link.producing_run(_project(), path, md5)


def _run_metrics(run_id: str) -> dict | None:
    """A run's metrics, for `model show`."""
    from opsctl.core import registry_link

    return registry_link.run_metrics(_project(), run_id)


# -- commands ------------------------------------------------------------------------------


def _project():
    from opsctl.core.project import open_project

    return open_project()


def _when(value) -> str | None:
    return value.isoformat() if value is not None else None


def _push_hint(tag: str) -> None:
    out.info(f"Tags are local: `git push origin {tag}` (or `git push --tags`) shares them.", style="dim")


@app.command("register")
def register(
    name: str = typer.Argument(..., metavar="NAME", help="Model name (letters, digits, '-', '_', '/')."),
    path: str = typer.Argument(..., metavar="PATH", help="The model: a committed DVC-tracked output."),
    version: Optional[str] = typer.Option(
        None, "--version", metavar="X.Y.Z", help="Version to register (default: the next patch; the first is 0.0.1)."
    ),
    run: Optional[str] = typer.Option(
        None, "--run", metavar="RUN", help="The run that produced it (id or unique prefix; default: found by hash)."
    ),
    profile: Optional[str] = typer.Option(
        None,
        "--profile",
        metavar="PROFILE",
        help="The reference profile of its training data (`opsctl monitor profile`), committed; "
        "then `opsctl monitor drift --reference NAME@VERSION` compares with it.",
    ),
    as_json: bool = JSON,
) -> None:
    """Register a new version of a model.

    PATH must be tracked by DVC and committed. The model is declared in dvc.yaml's
    artifacts (committed on its own when new) and the commit is tagged NAME@vX.Y.Z.
    """
    from opsctl.core.registry import register_model

    result = register_model(
        _project(),
        name,
        path,
        version=version,
        run=run,
        resolve_run=_resolve_run,
        producing_run=_producing_run,
        profile=profile,
    )
    if as_json:
        out.json(
            {
                "name": result.name,
                "version": result.version,
                "tag": result.tag,
                "commit": result.commit,
                "path": result.path,
                "md5": result.md5,
                "run": result.run,
                "annotation_commit": result.annotation_commit,
                "profile": result.profile,
                "profile_md5": result.profile_md5,
            }
        )
        return
    if result.annotation_commit:
        out.info(f"Declared {result.name} in dvc.yaml (artifacts) and committed it: {result.annotation_commit[:7]}")
    run_note = f", run {result.run[:12]}" if result.run else ""
    out.success(
        f"Registered {result.name} {result.version}: {result.path} (md5 {result.md5[:12]}{run_note}) "
        f"at commit {result.commit[:7]}, tag {result.tag}"
    )
    if result.profile:
        out.info(
            f"Its reference profile: {result.profile}; compare new data with it: "
            f"opsctl monitor drift DATASET --reference {result.name}@{result.version}",
            style="dim",
        )
    _push_hint(result.tag)


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """Every model: its latest version and the version in each stage."""
    from opsctl.core.registry import list_models

    models = list_models(_project())
    if as_json:
        out.json([{"name": m.name, "latest": m.latest, "stages": m.stages} for m in models])
        return
    if not models:
        out.info("No models registered yet: `opsctl model register NAME PATH`.")
        return
    stages = sorted({s for m in models for s in m.stages})
    out.table(
        ["name", "latest", *stages],
        [
            (m.name, m.latest or "", *(Styled(m.stages[s], "green") if s in m.stages else "" for s in stages))
            for m in models
        ],
    )


@app.command("show")
def show(name: str = typer.Argument(..., metavar="NAME", help="Model name."), as_json: bool = JSON) -> None:
    """A model's versions, newest first: commit, date, author, run, metrics, stages."""
    from opsctl.core.monitoring import checks_against
    from opsctl.core.registry import show_model

    project = _project()
    details = show_model(project, name, run_metrics=_run_metrics)
    drift = {v.version: checks_against(project, [v.profile_md5 or ""], limit=5) for v in details.versions if v.profile}
    if as_json:
        out.json(
            {
                "name": details.name,
                "path": details.path,
                "latest": details.latest,
                "stages": details.stages,
                "deprecated": details.deprecated,
                "versions": [
                    {
                        "version": v.version,
                        "commit": v.commit,
                        "tag": v.tag,
                        "created_at": _when(v.created_at),
                        "author": v.author,
                        "author_email": v.author_email,
                        "path": v.path,
                        "md5": v.md5,
                        "run": v.run,
                        "metrics": v.metrics,
                        "stages": list(v.stages),
                        "profile": v.profile,
                        "profile_md5": v.profile_md5,
                        "drift_checks": [_drift_json(r) for r in drift.get(v.version, [])],
                    }
                    for v in details.versions
                ],
            }
        )
        return
    where = ", ".join(f"{s}: {v}" for s, v in details.stages.items()) or "no stages"
    out.info(
        f"{details.name}  {details.path or ''}  latest {details.latest or '-'}  ({where})"
        + ("  [deprecated]" if details.deprecated else "")
    )
    out.table(
        ["version", "stages", "created", "author", "commit", "run", "metrics", "drift"],
        [
            (
                v.version,
                Styled(", ".join(v.stages), "green") if v.stages else "",
                v.created_at.strftime("%Y-%m-%d %H:%M:%S") if v.created_at else "",
                v.author or "",
                v.commit[:7],
                (v.run or "")[:12],
                _metrics(v.metrics),
                _drift_cell(drift[v.version][0] if drift.get(v.version) else None, bool(v.profile)),
            )
            for v in details.versions
        ],
    )
    staged = [v for v in details.versions if v.stages and drift.get(v.version)]
    for v in staged:
        out.table(
            ["when", "dataset", "verdict", "drifted columns", "run"],
            [
                (
                    datetime.fromtimestamp(r.at).strftime("%Y-%m-%d %H:%M:%S"),
                    r.path,
                    _drift_cell(r, True),
                    ", ".join(r.drifted[:4]),
                    (r.run_id or "")[:12],
                )
                for r in drift[v.version]
            ],
            title=f"Drift checks against {name} {v.version} ({', '.join(v.stages)}): reference {v.profile}",
        )


def _drift_json(record) -> dict:
    return {
        "at": datetime.fromtimestamp(record.at).astimezone().isoformat(timespec="seconds"),
        "dataset": record.path,
        "hash": record.data_hash or None,
        "drift": record.drift,
        "share": record.share,
        "drifted": record.drifted,
        "run": record.run_id,
    }


def _drift_cell(record, has_profile: bool) -> Any:
    from opsctl.core.formatting import DRIFT_STYLES, drift_verdict_text

    if record is None:
        return "not checked" if has_profile else ""
    return Styled(drift_verdict_text(record.drift, len(record.drifted), record.compared), DRIFT_STYLES[record.drift])


def _metrics(metrics: dict | None) -> str:
    if not metrics:
        return ""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:6])


@app.command("history")
def history(name: str = typer.Argument(..., metavar="NAME", help="Model name."), as_json: bool = JSON) -> None:
    """Every event of a model, newest first: registrations, promotions, rollbacks."""
    from opsctl.core.registry import model_history

    events = model_history(_project(), name)
    if as_json:
        out.json(
            [
                {
                    "event": e.event,
                    "version": e.version,
                    "stage": e.stage,
                    "from": e.from_version,
                    "to": e.to_version,
                    "at": _when(e.at),
                    "author": e.author,
                    "author_email": e.author_email,
                    "tag": e.tag,
                    "commit": e.commit,
                    "message": e.message,
                }
                for e in events
            ]
        )
        return
    colours = {
        "registration": "cyan",
        "promotion": "green",
        "rollback": "yellow",
        "unassignment": "magenta",
        "deregistration": "red",
        "deprecation": "red",
    }
    out.table(
        ["when", "event", "version", "stage", "change", "by", "tag"],
        [
            (
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                Styled(e.event, colours.get(e.event, "")),
                e.version or "",
                e.stage or "",
                f"{e.from_version or '-'} → {e.to_version or '-'}" if e.stage else "",
                e.author,
                e.tag,
            )
            for e in events
        ],
    )


@app.command("promote")
def promote(
    name: str = typer.Argument(..., metavar="NAME", help="Model name."),
    version: str = typer.Argument(..., metavar="VERSION", help="A registered version: 1.2.0 or v1.2.0."),
    to: str = typer.Option(..., "--to", metavar="STAGE", help="The stage, e.g. staging or prod."),
    as_json: bool = JSON,
) -> None:
    """Put a registered version in a stage (a new NAME#STAGE#N tag)."""
    from opsctl.core.registry import promote_model

    _stage_change(promote_model(_project(), name, version, to), as_json)


@app.command("rollback")
def rollback(
    name: str = typer.Argument(..., metavar="NAME", help="Model name."),
    stage: str = typer.Option(..., "--stage", metavar="STAGE", help="The stage to roll back."),
    as_json: bool = JSON,
) -> None:
    """Put back the version that was in STAGE before the current one.

    A new assignment tag marked as a rollback; no tag is deleted. Repeated rollbacks go further back.
    """
    from opsctl.core.registry import rollback_model

    _stage_change(rollback_model(_project(), name, stage), as_json)


def _stage_change(change, as_json: bool) -> None:
    if as_json:
        out.json(
            {
                "name": change.name,
                "stage": change.stage,
                "version": change.version,
                "from": change.previous,
                "rollback": change.rollback,
                "tag": change.tag,
                "commit": change.commit,
            }
        )
        return
    was = f" (was {change.previous})" if change.previous else ""
    if change.rollback:
        out.success(
            f"Rolled back {change.name} in {change.stage}: {change.previous} → {change.version}, tag {change.tag}"
        )
    else:
        out.success(f"{change.name} {change.version} is now in {change.stage}{was}, tag {change.tag}")
    _push_hint(change.tag)
