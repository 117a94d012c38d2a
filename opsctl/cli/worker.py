"""``opsctl worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from opsctl.cli.output import out


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    scheduler: str = typer.Argument(..., metavar="tcp://HOST:8786", help="The Dask scheduler to join."),
    name: Optional[str] = typer.Option(None, "--name", help="The worker's name (default: Dask's)."),
    nthreads: Optional[int] = typer.Option(
        None, "--nthreads", help="Stages this worker runs at once (default: the number of cores)."
    ),
    resources: Optional[str] = typer.Option(
        None,
        "--resources",
        metavar="NAME=N,...",
        help="Resources to declare, over the detected CPU, MEMORY and GPU (e.g. GPU=1).",
    ),
    node_dir: Optional[Path] = typer.Option(
        None, "--node-dir", help="Where stage workspaces, logs and this node's DVC cache live (default: Dask's dir)."
    ),
) -> None:
    """Join a Dask cluster as a worker for `opsctl run --executor dask`.

    Checks this machine first (a Docker engine, Dask installed), declares its
    cores, memory and GPUs as Dask resources, then becomes a `dask worker`.
    The DVC remote's credentials come from this machine's environment.
    """
    from opsctl.core.worker import become_worker, plan_worker

    plan = plan_worker(scheduler, name=name, nthreads=nthreads, resources=resources, node_dir=node_dir)
    out.info(f"Joining {scheduler} as a Dask worker ({plan.resources_text})")
    become_worker(plan)
