"""A run's plots in the run store (schema migration 7): what `opsctl plots show --run` draws
after the workspace has moved on.

``run_plots`` holds the run's plot definitions (DVC's shape, as JSON, in their order: plots
are shown in the order dvc.yaml declares them) once per run;
``run_plot_files`` one row per plot file: its md5 and size, and its bytes only when the DVC
cache doesn't hold them (``content``) and they fit the run's cap; a file over the cap is
``omitted``. Functions take a :class:`~opsctl.store.runs.RunStore` and use its transactions,
as store/experiments.py does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from opsctl.errors import RunNotFoundError
from opsctl.store.runs import RunStore, rid_of


@dataclass
class RecordedFile:
    """A plot file as a run recorded it: by md5 (the bytes are in the DVC cache), or with its
    bytes (``content``), or neither when it was over the run's cap (``omitted``)."""

    path: str
    md5: str
    size: int
    content: bytes | None = None
    omitted: bool = False


@dataclass
class RecordedPlots:
    definitions: dict  # DVC's definitions shape (adapters.dvc_plots.fast_definitions)
    files: list[RecordedFile]
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read

    @property
    def omitted(self) -> list[RecordedFile]:
        return [f for f in self.files if f.omitted]


def record_plots(store: RunStore, run_id: str, plots: RecordedPlots) -> None:
    """Record (or replace) a run's plots, in one transaction."""
    with store._write() as conn:
        rid = rid_of(conn, run_id)
        if rid is None:
            raise RunNotFoundError(f"no run '{run_id}'")
        conn.execute("DELETE FROM run_plot_files WHERE rid = ?", (rid,))
        conn.execute(
            "INSERT OR REPLACE INTO run_plots (rid, definitions, errors) VALUES (?, ?, ?)",
            (rid, json.dumps(plots.definitions, default=str), json.dumps(plots.errors)),
        )
        conn.executemany(
            "INSERT INTO run_plot_files (rid, path, md5, size, content, omitted) VALUES (?, ?, ?, ?, ?, ?)",
            [(rid, f.path, f.md5, f.size, f.content, int(f.omitted)) for f in plots.files],
        )


def has_plots(store: RunStore, run_id: str) -> bool:
    """Whether the run recorded plots (without reading their files)."""
    with store._read() as conn:
        rid = rid_of(conn, run_id)
        if rid is None:
            raise RunNotFoundError(f"no run '{run_id}'")
        return conn.execute("SELECT 1 FROM run_plots WHERE rid = ?", (rid,)).fetchone() is not None


def run_plots(store: RunStore, run_id: str) -> RecordedPlots | None:
    """The plots a run recorded (None: it recorded none: no plots declared, or an older opsctl)."""
    with store._read() as conn:
        rid = rid_of(conn, run_id)
        if rid is None:
            raise RunNotFoundError(f"no run '{run_id}'")
        row = conn.execute("SELECT definitions, errors FROM run_plots WHERE rid = ?", (rid,)).fetchone()
        if row is None:
            return None
        files = [
            RecordedFile(path, md5, size, content, bool(omitted))
            for path, md5, size, content, omitted in conn.execute(
                "SELECT path, md5, size, content, omitted FROM run_plot_files WHERE rid = ? ORDER BY path", (rid,)
            )
        ]
    return RecordedPlots(json.loads(row[0]), files, json.loads(row[1]))
