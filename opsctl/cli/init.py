"""``opsctl init``."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from opsctl.cli.output import out


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    directory: Path = typer.Argument(
        Path("."), metavar="DIRECTORY", help="Where to create the project (default: the current directory)."
    ),
    template: Optional[str] = typer.Option(
        None,
        "--template",
        "-t",
        help="Built-in template name (see `opsctl template list`), or a Copier template path or Git URL. Default: ml-pipeline.",
    ),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Project name (default: from the directory name)."),
    data: list[str] = typer.Option(
        [], "--data", "-d", metavar="KEY=VALUE", help="Answer a template question; repeatable. Skips its prompt."
    ),
    defaults: bool = typer.Option(False, "--defaults", help="Use the default answer for every question; never prompt."),
    force: bool = typer.Option(
        False, "--force", "-f", help="Render into a non-empty directory (files the template also has are overwritten)."
    ),
    existing: bool = typer.Option(
        False,
        "--existing",
        help="Adopt the Git + DVC repository at DIRECTORY: add opsctl.yaml and ignore rules, touch nothing else.",
    ),
    trust: bool = typer.Option(
        False, "--trust", help="Allow a third-party template's tasks and migrations to run (they execute code)."
    ),
    vcs_ref: Optional[str] = typer.Option(None, "--vcs-ref", help="Git tag, branch or commit of a template from Git."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a project from a template.

    Renders the template, then makes it a Git + DVC project with its sample data
    tracked and a first commit.
    """
    from opsctl.core import scaffold
    from opsctl.errors import InterruptedByUser, UsageError

    if existing:
        template_options = [
            flag
            for flag, given in (
                ("--template", template),
                ("--name", name),
                ("--data", data),
                ("--defaults", defaults),
                ("--trust", trust),
                ("--vcs-ref", vcs_ref),
            )
            if given
        ]
        if template_options:
            raise UsageError(f"--existing adopts a repository as it is; it takes no {', '.join(template_options)}")
        adopted = scaffold.adopt_project(directory, force=force)
        if as_json:
            out.json({"root": str(adopted.root), "written": adopted.written})
            return
        if adopted.written:
            out.success(f"Adopted {adopted.root}: wrote {', '.join(adopted.written)}")
            out.info(
                "Review and commit them: git add " + " ".join(adopted.written) + " && git commit -m 'Adopt opsctl'"
            )
        else:
            out.success(f"{adopted.root} already had everything opsctl needs")
        return

    answers = scaffold.parse_data_pairs(data)
    # Prompt only when a person can answer; scripts and CI get the defaults.
    use_defaults = defaults or not (out.interactive and out.is_tty(sys.stdin))
    # A spinner would draw over the template's questions: only spin when nothing is asked.
    spinner = (
        out.status(f"Creating project from {template or scaffold.DEFAULT_TEMPLATE}…") if use_defaults else nullcontext()
    )
    try:
        with spinner:
            result = scaffold.init_project(
                directory,
                template=template,
                name=name,
                data=answers,
                defaults=use_defaults,
                force=force,
                trust=trust,
                vcs_ref=vcs_ref,
            )
    except KeyboardInterrupt:
        raise InterruptedByUser("init interrupted; everything it had created was removed") from None
    if as_json:
        out.json(
            {
                "root": str(result.root),
                "project": result.project_name,
                "template": result.template,
                "files": result.files,
                "tracked": result.tracked,
                "commit": result.commit,
                "remote": {"name": result.remote_name, "url": result.remote_url},
            }
        )
        return
    shown = _display_path(result.root)
    out.success(f"Created {result.project_name} in {shown} from {result.template}")
    details = [f"{result.files} files", f"first commit {result.commit[:8]}"]
    if result.tracked:
        details.append("DVC-tracked: " + ", ".join(result.tracked))
    details.append(f"default DVC remote '{result.remote_name}' (.opsctl/remote inside the project)")
    out.info("  " + " · ".join(details))
    if result.git_identity_guessed:
        out.warn(
            "Git has no user.name/user.email here; the first commit used a guessed identity. "
            "Set yours with `git config --global user.name ...` and `user.email ...`."
        )
    out.info("\nNext:")
    if shown != ".":
        out.info(f"  cd {shown}")
    out.info("  opsctl doctor      # can this machine run it?")
    out.info("  opsctl status      # which stages will run, and why")
    out.info("  opsctl run         # run the pipeline: each stage in its container (or on the host)")
    out.info("  opsctl ui          # browse runs, logs, lineage and models in the dashboard")


def _display_path(path: Path) -> str:
    try:
        rel = path.relative_to(Path.cwd().resolve())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."
