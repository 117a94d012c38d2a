"""``opsctl data ...``: version data with DVC."""

from __future__ import annotations

from typing import Optional

import typer

from opsctl.cli import checks
from opsctl.cli.output import Styled, out

app = typer.Typer(
    help="Version and check data.\n\nAdd, status, push/pull, diff, ls, remotes (DVC); validate and profile (data checks).",
    no_args_is_help=True,
)
remote_app = typer.Typer(
    help="Where pushed data is stored.\n\nLocal directories and s3:// (also S3-compatible servers).",
    no_args_is_help=True,
)
app.add_typer(remote_app, name="remote")
app.command("validate")(checks.validate)

JSON = typer.Option(False, "--json", help="Print as JSON.")


def _project():
    from opsctl.core.project import open_project

    return open_project()


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command("add")
def add(
    paths: list[str] = typer.Argument(..., metavar="PATH", help="Files or directories inside the project."),
    as_json: bool = JSON,
) -> None:
    """Track files or directories with DVC.

    Writes PATH.dvc, adds PATH to .gitignore and stages both in Git.
    """
    from opsctl.cli.progress import data_progress
    from opsctl.core.data import add_data

    project = _project()
    with data_progress() as progress:
        result = add_data(project, paths, progress=progress)
    if as_json:
        out.json({"added": [vars(a) for a in result.added], "staged": result.staged})
        return
    for item in result.added:
        out.success(
            f"{item.path}: {item.files} file{'s' if item.files != 1 else ''}, "
            f"{human_bytes(item.bytes)}, md5 {item.hash} → {item.dvcfile}"
        )
    if result.staged:
        out.info(f"Staged in Git: {' '.join(result.staged)}  (commit them to record this version)")


@app.command("status")
def status(
    remote: Optional[str] = typer.Option(
        None, "--remote", "-r", help="Compare with this remote (default: the default remote)."
    ),
    no_remote: bool = typer.Option(False, "--no-remote", help="Don't contact the remote."),
    as_json: bool = JSON,
) -> None:
    """What changed, locally and on the remote.

    Workspace vs cache, .dvc changes Git has not committed, and what the remote lacks.
    """
    from opsctl.core.data import STATE_HINTS, data_status

    result = data_status(_project(), remote=remote, check_remote=not no_remote)
    if as_json:
        out.json(
            {
                "up_to_date": result.up_to_date,
                "remote": result.remote,
                "remote_checked": result.remote_checked,
                "entries": [{"path": e.path, "state": e.state} for e in result.entries],
            }
        )
        return
    if result.up_to_date:
        checked = f" (and on remote '{result.remote}')" if result.remote_checked else ""
        out.success(f"Everything is up to date{checked}.")
        return
    colours = {
        "new": "green",
        "modified": "yellow",
        "deleted": "red",
        "not in cache": "red",
        "not committed": "cyan",
        "not pushed": "magenta",
    }
    out.table(["path", "state"], [(e.path, Styled(e.state, colours.get(e.state, ""))) for e in result.entries])
    for state in dict.fromkeys(e.state for e in result.entries):
        out.info(f"{state}: {STATE_HINTS[state]}", style="dim")


def _transfer(direction: str, targets: list[str], remote: Optional[str], jobs: Optional[int], as_json: bool) -> None:
    from opsctl.cli.progress import data_progress
    from opsctl.core.data import transfer_data

    project = _project()
    with data_progress() as progress:
        result = transfer_data(project, direction, targets, remote=remote, jobs=jobs, progress=progress)
    if as_json:
        out.json(vars(result))
        return
    verb = "Pushed" if direction == "push" else "Pulled"
    preposition = "to" if direction == "push" else "from"
    if not result.files and not result.changed:
        out.success(f"Nothing to {direction}: remote '{result.remote}' and the workspace already agree.")
    else:
        out.success(
            f"{verb} {result.files} file{'s' if result.files != 1 else ''} "
            f"({human_bytes(result.bytes)}) {preposition} remote '{result.remote}' ({result.url})"
        )
    if result.changed:
        out.info("Updated in the workspace: " + _some(result.changed))
    if result.not_produced:
        out.info(f"Not produced yet (run the pipeline: `opsctl run`): {_some(result.not_produced)}")


def _some(paths: list[str], limit: int = 10) -> str:
    return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


TARGETS = typer.Argument(None, metavar="TARGET", help="Tracked paths or .dvc files (default: everything tracked).")
REMOTE = typer.Option(None, "--remote", "-r", help="Remote name (default: the default remote).")
JOBS = typer.Option(None, "--jobs", "-j", help="Parallel transfers (default: DVC's choice).")


@app.command("push")
def push(
    targets: Optional[list[str]] = TARGETS,
    remote: Optional[str] = REMOTE,
    jobs: Optional[int] = JOBS,
    as_json: bool = JSON,
) -> None:
    """Upload cached data to a remote."""
    _transfer("push", targets or [], remote, jobs, as_json)


@app.command("pull")
def pull(
    targets: Optional[list[str]] = TARGETS,
    remote: Optional[str] = REMOTE,
    jobs: Optional[int] = JOBS,
    as_json: bool = JSON,
) -> None:
    """Download data from a remote into the cache and the workspace."""
    _transfer("pull", targets or [], remote, jobs, as_json)


@app.command("diff")
def diff(
    a_rev: Optional[str] = typer.Argument(None, metavar="A_REV", help="Git revision (default: HEAD)."),
    b_rev: Optional[str] = typer.Argument(None, metavar="B_REV", help="Git revision (default: the workspace)."),
    as_json: bool = JSON,
) -> None:
    """What tracked data changed between revisions.

    Default: HEAD against the workspace; with sizes and hashes.
    """
    from opsctl.core.data import diff_data

    changes = diff_data(_project(), a_rev, b_rev)
    if as_json:
        out.json([vars(c) for c in changes])
        return
    if not changes:
        out.success(f"No tracked data changed between {a_rev or 'HEAD'} and {b_rev or 'the workspace'}.")
        return
    out.table(
        ["path", "change", "old size", "new size", "old hash", "new hash"],
        [
            (
                c.path,
                c.change,
                human_bytes(c.old_size) if c.old_hash else "",
                human_bytes(c.new_size) if c.new_hash else "",
                (c.old_hash or "")[:12],
                (c.new_hash or "")[:12],
            )
            for c in changes
        ],
    )


@app.command("ls")
def ls(
    path: Optional[str] = typer.Argument(None, metavar="PATH", help="Only data at or under this path."),
    no_remote: bool = typer.Option(False, "--no-remote", help="Don't contact the remote."),
    as_json: bool = JSON,
) -> None:
    """Tracked data and where each copy is.

    Size, hash, and whether it is in the workspace, the cache and the remote.
    """
    from opsctl.core.data import list_data

    items = list_data(_project(), path, check_remote=not no_remote)
    if as_json:
        out.json([vars(i) for i in items])
        return
    if not items:
        out.info("No tracked data here yet: add some with `opsctl data add PATH`.")
        return

    def mark(value: bool | None) -> Styled:
        return Styled("?", "dim") if value is None else Styled("yes", "green") if value else Styled("no", "red")

    out.table(
        ["path", "size", "files", "hash", "stage", "workspace", "cache", "remote"],
        [
            (
                i.path,
                human_bytes(i.size),
                i.files,
                (i.hash or "")[:12],
                i.stage or "",
                mark(i.in_workspace),
                mark(i.in_cache),
                mark(i.on_remote),
            )
            for i in items
        ],
    )


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., metavar="NAME", help="Remote name."),
    url: str = typer.Argument(..., metavar="URL", help="A local directory or s3://bucket/prefix."),
    default: bool = typer.Option(False, "--default", "-d", help="Make it the default remote."),
    endpoint_url: Optional[str] = typer.Option(
        None, "--endpoint-url", help="S3-compatible server (MinIO, Ceph, moto)."
    ),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
) -> None:
    """Add a remote, as `dvc remote add` would. Credentials come from the usual AWS variables/files."""
    from opsctl.core.data import add_remote

    remote = add_remote(_project(), name, url, default=default, endpoint_url=endpoint_url, region=region)
    out.success(f"Added remote '{remote.name}' → {remote.url}{' (default)' if remote.default else ''}")


@remote_app.command("list")
def remote_list(as_json: bool = JSON) -> None:
    """The configured remotes."""
    from opsctl.core.data import list_remotes

    remotes = list_remotes(_project())
    if as_json:
        out.json([vars(r) for r in remotes])
        return
    if not remotes:
        out.info("No remotes: add one with `opsctl data remote add NAME URL --default`.")
        return
    out.table(
        ["name", "url", "default", "options"],
        [
            (r.name, r.url, "yes" if r.default else "", " ".join(f"{k}={v}" for k, v in r.options.items()))
            for r in remotes
        ],
    )


@remote_app.command("default")
def remote_default(name: str = typer.Argument(..., metavar="NAME", help="Remote name.")) -> None:
    """Make NAME the default remote."""
    from opsctl.core.data import set_default_remote

    remote = set_default_remote(_project(), name)
    out.success(f"Default remote is now '{remote.name}' ({remote.url})")
