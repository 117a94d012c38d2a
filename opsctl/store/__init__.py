"""The embedded run store (SQLite under ``.opsctl/``): schema, migrations, queries.

Imports nothing above it; services in ``opsctl.core`` are its only callers.
"""

from opsctl.store.runs import (
    FINAL_STATUSES,
    KINDS,
    OPS,
    OUTCOMES,
    RUN_FIELDS,
    STATUSES,
    ArtifactRecord,
    Filter,
    NewRun,
    Producer,
    RunDetail,
    RunRecord,
    RunStore,
    RunSummary,
    StageRecord,
)
from opsctl.store.schema import LATEST_VERSION

__all__ = [
    "FINAL_STATUSES",
    "KINDS",
    "LATEST_VERSION",
    "OPS",
    "OUTCOMES",
    "RUN_FIELDS",
    "STATUSES",
    "ArtifactRecord",
    "Filter",
    "NewRun",
    "Producer",
    "RunDetail",
    "RunRecord",
    "RunStore",
    "RunSummary",
    "StageRecord",
]
