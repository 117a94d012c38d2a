"""``opsctl doctor``."""

from __future__ import annotations

from typing import Optional

import typer

from opsctl.cli.output import Styled, out
from opsctl.cli.run import SCHEDULER_OPTION
from opsctl.executors.registry import choices_text


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


_MARKS = {"ok": Styled("✓ ok", "green"), "warn": Styled("! warn", "yellow"), "fail": Styled("✗ fail", "red")}


def doctor(
    executor: Optional[str] = typer.Option(
        None,
        "--executor",
        metavar="NAME",
        help=f"Check what this executor needs ({choices_text()}; default: opsctl.yaml's executor).",
    ),
    scheduler: Optional[str] = SCHEDULER_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check that this machine can run projects.

    Python, Git, DVC, the project, the Docker engine and disk, and how to fix
    what doesn't work.
    """
    from opsctl.core.doctor import run_checks
    from opsctl.errors import DoctorFailedError

    with out.status("Checking…"):
        report = run_checks(executor=executor, executor_settings={"scheduler": scheduler} if scheduler else {})
    if as_json:
        out.json(
            {
                "ok": report.ok,
                "checks": [
                    {"name": c.name, "status": c.status, "required": c.required, "detail": c.detail, "fix": c.fix}
                    for c in report.checks
                ],
            }
        )
    else:
        out.table(
            ["check", "status", "detail"],
            [(c.name, _MARKS[c.status], c.detail + (f" — fix: {c.fix}" if c.fix else "")) for c in report.checks],
        )
    if not report.ok:
        names = ", ".join(c.name for c in report.failed)
        first_fix = next((c.fix for c in report.failed if c.fix), None)
        raise DoctorFailedError(f"{len(report.failed)} required check(s) failed: {names}", hint=first_fix)
