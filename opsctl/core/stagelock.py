"""``opsctl.lock``: which image each stage last ran in, beside ``dvc.lock`` and
tracked in Git like it, so that every clone agrees on which stages a changed
image makes stale.

DVC's lock records a stage's command, deps, params and outs but not the
environment the command ran in. This file adds that: for a stage run by the
docker executor, the image's name in ``opsctl.yaml`` and its identity — the
hash of its build inputs for a built image (identical in every clone), the
image id for a ``ref:`` image. A stage run on the host records no image.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opsctl.core.files import write_atomically

LOCK_FILE = "opsctl.lock"
SCHEMA = 1
HEADER = (
    "# Written by `opsctl run`: the image each stage last ran in. Commit it with dvc.lock;\n"
    "# a stage whose image changed since is stale.\n"
)

_write_lock = threading.Lock()  # one writer of opsctl.lock at a time in this process
_pending_lock = threading.Lock()
_pending: dict[tuple[str, str], StageImage] = {}  # (root, stage) -> entry not written yet


@dataclass(frozen=True)
class StageImage:
    executor: str  # docker | local
    image: str | None = None  # the name under images: in opsctl.yaml
    ref: str | None = None  # the tag or reference the container ran
    identity: str | None = None  # "inputs:<sha256>" (built) or the image id "sha256:..." (ref:)


def read_lock(root: Path) -> dict[str, StageImage]:
    from opsctl.core.yamlload import MAX_DATA_BYTES, load_yaml_file
    from opsctl.errors import ConfigError

    path = root / LOCK_FILE
    if not path.is_file():
        return {}
    try:
        doc = load_yaml_file(path, max_bytes=MAX_DATA_BYTES) or {}
    except ConfigError:
        return {}  # unreadable, too big, aliases that explode: every image counts as unknown, never as changed
    stages = doc.get("stages") if isinstance(doc, dict) else None
    result = {}
    for name, entry in (stages or {}).items():
        if isinstance(entry, dict):
            # Only text fields count: anything else in a hand-edited file is unknown.
            fields: dict[str, Any] = {k: _text(entry.get(k)) for k in StageImage.__dataclass_fields__}
            result[str(name)] = StageImage(**{**fields, "executor": str(fields["executor"] or "local")})
    return result


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def record_stage(root: Path, stage: str, image: StageImage) -> None:
    """Set one stage's entry; the file is replaced whole (never half-written). Entries of
    stages recorded at the same moment by other threads go into the same write (parallel
    stages finish together); each call returns once its own entry is on disk."""
    import yaml

    key = (str(root), stage)
    with _pending_lock:
        _pending[key] = image
    with _write_lock:
        with _pending_lock:
            if key not in _pending:
                return  # written by the thread that held _write_lock before us
            batch = {name: entry for (where, name), entry in _pending.items() if where == str(root)}
            for name in batch:
                del _pending[(str(root), name)]
        try:
            current = read_lock(root)
            current.update(batch)
            doc = {
                "schema": SCHEMA,
                "stages": {
                    name: {k: v for k, v in asdict(entry).items() if v is not None}
                    for name, entry in sorted(current.items())
                },
            }
            write_atomically(root / LOCK_FILE, HEADER + yaml.safe_dump(doc, sort_keys=False))
        except BaseException:
            with _pending_lock:  # the others write their own, or fail in turn
                _pending.update({(str(root), name): entry for name, entry in batch.items() if name != stage})
            raise
