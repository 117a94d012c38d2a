"""``opsctl template ...``."""

from __future__ import annotations

import typer

from opsctl.cli.output import out

app = typer.Typer(help="Project templates for `opsctl init`.", no_args_is_help=True)


@app.command("list")
def list_templates(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """The built-in templates. Any Copier template (path or Git URL) works with `opsctl init --template` too."""
    from opsctl.core.scaffold import DEFAULT_TEMPLATE
    from opsctl.core.scaffold import list_templates as list_builtin

    templates = list_builtin()
    if as_json:
        out.json(
            [
                {
                    "name": t.name,
                    "description": t.description,
                    "source": t.source,
                    "default": t.name == DEFAULT_TEMPLATE,
                }
                for t in templates
            ]
        )
        return
    out.table(
        ["name", "description", "source"],
        [(f"{t.name}{' (default)' if t.name == DEFAULT_TEMPLATE else ''}", t.description, t.source) for t in templates],
    )
