"""Has a dataset moved from its reference? Column by column, then the dataset's verdict.

Each column both sides have (or the ones the settings name) is compared with the method its
kind and the reference's size call for (core/drift_stats.py); the dataset drifts when at
least ``share`` of the compared columns drift. What can't be measured is said per column
rather than failing the whole comparison:

- a column numeric on one side and text on the other has drifted (method ``type``): its
  data changed shape, which no statistic measures but every model notices;
- a column with values on one side only (all null on the other) has drifted (method
  ``nulls``);
- a column null on both sides, or an identifier (a text column whose values are all distinct
  in the reference, or with more than MAX_CATEGORIES of them), is listed as not compared and
  left out of the share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opsctl.core import drift_stats
from opsctl.core.drift_data import MAX_CATEGORIES, OTHER, ColumnData, DatasetData
from opsctl.core.drift_settings import DEFAULT_SHARE
from opsctl.errors import UsageError

PICTURE_BINS = 12  # bars in a column's picture of its two distributions
PICTURE_CATEGORIES = 8
MIN_IDENTIFIER_ROWS = 20  # a text column whose values are all distinct over this many rows is a key


@dataclass
class ColumnResult:
    column: str
    kind: str  # numeric | categorical | mixed
    method: str | None  # None when not compared
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drift: bool
    compared: bool = True  # False: left out of the share (see the module's docstring)
    detail: str | None = None
    picture: dict | None = None  # {"bins": [label], "reference": [share], "current": [share]}

    def to_json(self) -> dict:
        return {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drift": self.drift,
            "compared": self.compared,
            "detail": self.detail,
            "histogram": self.picture,
        }


@dataclass
class DriftReport:
    reference: str
    current: str
    threshold_share: float
    reference_rows: int = 0
    current_rows: int = 0
    reference_hash: str = ""
    current_hash: str = ""
    columns: list[ColumnResult] = field(default_factory=list)

    @property
    def compared(self) -> list[ColumnResult]:
        return [c for c in self.columns if c.compared]

    @property
    def drifted(self) -> list[ColumnResult]:
        return [c for c in self.columns if c.compared and c.drift]

    @property
    def share(self) -> float:
        compared = len(self.compared)
        return len(self.drifted) / compared if compared else 0.0

    @property
    def drift(self) -> bool:
        return bool(self.compared) and self.share >= self.threshold_share

    def to_json(self) -> dict:
        return {
            "drift": self.drift,
            "share": self.share,
            "threshold_share": self.threshold_share,
            "reference": self.reference,
            "current": self.current,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_hash": self.reference_hash,
            "current_hash": self.current_hash,
            "columns": [c.to_json() for c in self.columns],
        }


def compare_datasets(
    reference: DatasetData,
    current: DatasetData,
    *,
    columns: tuple[str, ...] = (),
    method: str = "auto",
    threshold: float | None = None,
    share: float = DEFAULT_SHARE,
) -> DriftReport:
    """The drift of ``current`` from ``reference`` (raw data or a profile, see core/drift_data.py).
    UsageError when there is nothing to compare: no rows, no column in common, a named
    column missing."""
    for side in (reference, current):
        if side.rows == 0:
            raise UsageError(f"{side.label}: has no rows to compare")
    names = _columns_to_compare(reference, current, columns)
    report = DriftReport(
        reference.label,
        current.label,
        share,
        reference_rows=reference.rows,
        current_rows=current.rows,
        reference_hash=reference.hash,
        current_hash=current.hash,
    )
    for name in names:
        report.columns.append(
            compare_column(reference.columns[name], current.columns[name], method=method, threshold=threshold)
        )
    return report


def _columns_to_compare(reference: DatasetData, current: DatasetData, wanted: tuple[str, ...]) -> list[str]:
    if wanted:
        for side in (reference, current):
            missing = [c for c in wanted if c not in side.columns]
            if missing:
                raise UsageError(
                    f"{side.label}: has no column {', '.join(missing)}",
                    hint=f"its columns: {_listing(list(side.columns))}",
                )
        return list(wanted)
    names = [name for name in current.columns if name in reference.columns]
    if not names:
        raise UsageError(
            f"{reference.label} and {current.label} have no column in common",
            hint=f"reference: {_listing(list(reference.columns))}; current: {_listing(list(current.columns))}",
        )
    return names


def _listing(names: list[str], limit: int = 12) -> str:
    if not names:
        return "(none)"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def compare_column(
    ref: ColumnData, cur: ColumnData, *, method: str = "auto", threshold: float | None = None
) -> ColumnResult:
    name = ref.name
    kind = ref.kind if ref.kind == cur.kind else "mixed"

    def not_compared(detail: str) -> ColumnResult:
        return ColumnResult(name, kind, None, None, None, None, False, compared=False, detail=detail)

    if not ref.count and not cur.count:
        return not_compared("no values on either side (all null)")
    if ref.too_many or cur.too_many:
        return not_compared(f"over {MAX_CATEGORIES:,} distinct values (an identifier, not a distribution)")
    for side, other, where in ((ref, cur, "reference"), (cur, ref, "current data")):
        if not side.count:  # before the types: an all-null column's type is only a guess (CSV's "null")
            return ColumnResult(
                name, other.kind, "nulls", None, None, None, True, detail=f"no values in the {where} (all null)"
            )
    if ref.kind == "categorical" and ref.count >= MIN_IDENTIFIER_ROWS and ref.distinct == ref.count:
        return not_compared("every value distinct in the reference (an identifier, not a distribution)")
    if ref.kind != cur.kind:
        sides = {"numeric": "numbers", "categorical": "text"}
        return ColumnResult(
            name,
            kind,
            "type",
            None,
            None,
            None,
            True,
            detail=f"{sides[ref.kind]} in the reference, {sides[cur.kind]} in the current data",
        )
    try:
        if kind == "numeric":
            result, picture = _numeric(ref, cur, method, threshold)
        else:
            result, picture = _categorical(ref, cur, method, threshold)
    except ValueError as exc:  # a method that can't compare this column (e.g. ztest of 3 values)
        return not_compared(str(exc))
    return ColumnResult(
        name, kind, result.method, result.statistic, result.p_value, result.threshold, result.drift, picture=picture
    )


def _numeric(
    ref: ColumnData, cur: ColumnData, method: str, threshold: float | None
) -> tuple[drift_stats.ColumnDrift, dict]:
    few = ref.counts is not None and cur.counts is not None
    distinct = len(set(ref.counts or {}) | set(cur.counts or {})) if few else drift_stats.FEW_VALUES + 1
    chosen = drift_stats.auto_method(True, ref.count, distinct) if method == "auto" else method
    if few and chosen in ("chi2", "ztest") or (few and chosen in ("jensenshannon", "psi") and method == "auto"):
        assert ref.counts is not None and cur.counts is not None
        counted = drift_stats.compare_counts(
            ref.counts, cur.counts, method=chosen, threshold=threshold, reference_rows=ref.count
        )
        return counted, _categorical_picture(ref.counts, cur.counts)
    cur_values = cur.numbers(chosen)
    ref_values = ref.numbers(chosen)
    picture = _numeric_picture(ref_values, cur_values)
    if chosen in ("chi2", "ztest"):
        raise ValueError(f"{chosen} compares categories: this column has more than {drift_stats.FEW_VALUES} values")
    rebuilt = ref.values is None
    if rebuilt and chosen == "wasserstein":
        # The reference is a quantile curve sampled at REBUILT_ROWS points; the current data is
        # compared the same way (its own quantile curve, exact, at as many points): the distance
        # between two distributions needs no more, and a million-row side costs no more.
        cur_values = quantile_sample(cur_values, len(ref_values))
    return (
        drift_stats.compare(
            ref_values,
            cur_values,
            numeric=True,
            method=chosen,
            threshold=threshold,
            reference_rows=ref.count if rebuilt else None,
            reference_std=ref.std if rebuilt else None,
        ),
        picture,
    )


def quantile_sample(values: np.ndarray, points: int) -> np.ndarray:
    """``points`` values evenly spaced in probability on the quantile curve of ``values``
    (linear between order statistics, as a profile's sample is rebuilt)."""
    if len(values) <= points:
        return values
    ordered = np.sort(values)
    return np.interp(np.linspace(0, 1, points), np.linspace(0, 1, len(ordered)), ordered)


def _categorical(
    ref: ColumnData, cur: ColumnData, method: str, threshold: float | None
) -> tuple[drift_stats.ColumnDrift, dict]:
    ref_counts, cur_counts = dict(ref.counts or {}), dict(cur.counts or {})
    if OTHER in ref_counts:  # a profile that kept its top values only: the rest are "other" here too
        lumped: dict[Any, int] = {}
        for value, count in cur_counts.items():
            key = value if value in ref_counts and value != OTHER else OTHER
            lumped[key] = lumped.get(key, 0) + count
        cur_counts = lumped
    result = drift_stats.compare_counts(
        ref_counts, cur_counts, method=method, threshold=threshold, reference_rows=ref.count
    )
    return result, _categorical_picture(ref_counts, cur_counts)


def _numeric_picture(ref: np.ndarray, cur: np.ndarray) -> dict:
    """Both sides' shares over the same bins (a picture, not a statistic)."""
    lo, hi = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, PICTURE_BINS + 1)
    ref_shares = np.histogram(ref, bins=PICTURE_BINS, range=(lo, hi))[0] / len(ref)
    cur_shares = np.histogram(cur, bins=PICTURE_BINS, range=(lo, hi))[0] / len(cur)
    return {
        "bins": [_number(e) for e in edges[:-1]],
        "edges": [float(e) for e in edges],
        "reference": [round(float(s), 6) for s in ref_shares],
        "current": [round(float(s), 6) for s in cur_shares],
    }


def _categorical_picture(ref: dict[Any, int], cur: dict[Any, int]) -> dict:
    ref_total, cur_total = sum(ref.values()) or 1, sum(cur.values()) or 1
    weight = {k: ref.get(k, 0) / ref_total + cur.get(k, 0) / cur_total for k in set(ref) | set(cur)}
    shown = sorted(weight, key=lambda k: (-weight[k], str(k)))[:PICTURE_CATEGORIES]
    rest = [k for k in weight if k not in shown]
    bins = [str(k) for k in shown] + ([OTHER] if rest else [])

    def shares(counts: dict[Any, int], total: int) -> list[float]:
        row = [counts.get(k, 0) / total for k in shown]
        if rest:
            row.append(sum(counts.get(k, 0) for k in rest) / total)
        return [round(s, 6) for s in row]

    return {"bins": bins, "reference": shares(ref, ref_total), "current": shares(cur, cur_total)}


def _number(value: float) -> str:
    return f"{value:.4g}"
