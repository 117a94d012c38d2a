"""``drift:`` in ``opsctl.yaml``: which dataset is compared with which reference, and how.

Light (no numpy): parsed with the rest of opsctl.yaml, so a bad setting is an error naming
its key path before anything runs. The statistics are core/drift_stats.py.

    drift:
      data/incoming/batch.csv:
        reference: monitor/churn.profile.json   # a dataset path or a profile file
        columns: [tenure, plan, monthly_fee]     # default: every column both have
        method: auto                             # auto | ks | chi2 | ztest | wasserstein | jensenshannon | psi
        threshold: 0.05                          # default per method
        share: 0.5                               # the dataset drifts when this share of columns drifts
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

METHODS = ("ks", "chi2", "ztest", "wasserstein", "jensenshannon", "psi")
DEFAULT_SHARE = 0.5


@dataclass(frozen=True)
class DriftSettings:
    path: str  # the current dataset
    reference: str  # a dataset path or a profile file, relative to the project
    columns: tuple[str, ...] = ()  # empty: every column both sides have
    method: str = "auto"
    threshold: float | None = None  # None: the method's default
    share: float = DEFAULT_SHARE


def parse_drift(v: Any, raw: Any) -> dict[str, DriftSettings]:
    """Validate the ``drift:`` section; ``v`` is core.config's validator (errors name the key path)."""
    settings = {}
    for path, spec in v.mapping(raw, "drift").items():
        key = f"drift.{path}"
        v.relative_path(path, key, "in the project (the dataset to compare)")
        spec = v.mapping(spec if spec is not None else {}, key)
        v.known_keys(spec, key, {"reference", "columns", "method", "threshold", "share"})
        if "reference" not in spec:
            raise v.error(f"{key}.reference", "a dataset path or a profile file (the data to compare with)", None)
        reference = posixpath.normpath(v.relative_path(spec["reference"], f"{key}.reference", "in the project"))
        columns = spec.get("columns", [])
        if not isinstance(columns, list) or not all(isinstance(c, str) and c for c in columns):
            raise v.error(f"{key}.columns", "a list of column names", columns)
        method = v.choice(spec.get("method", "auto"), f"{key}.method", ("auto", *METHODS))
        threshold = spec.get("threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise v.error(
                f"{key}.threshold", "a number (a p-value for ks, chi2 and ztest; a distance otherwise)", threshold
            )
        if threshold is not None and not threshold > 0:
            raise v.error(f"{key}.threshold", "a number above 0", threshold)
        share = spec.get("share", DEFAULT_SHARE)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise v.error(f"{key}.share", "a share of the columns above 0 and at most 1, e.g. 0.5", share)
        normal = posixpath.normpath(path)
        settings[normal] = DriftSettings(
            path=normal,
            reference=reference,
            columns=tuple(dict.fromkeys(columns)),
            method=method,
            threshold=float(threshold) if threshold is not None else None,
            share=float(share),
        )
    return settings
