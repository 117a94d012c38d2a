"""Per-column drift statistics: has a column's distribution moved from its reference?

The thin statistics layer of drift monitoring (issue 13's first piece): numpy and scipy only,
imported only on the monitor path. The methods and their defaults are Evidently's, which
are well tested in practice, computed with scipy's reference implementations:

- ``ks`` (two-sample Kolmogorov-Smirnov, numeric), ``chi2`` (chi-squared test of the two
  samples' category counts), ``ztest`` (two-proportion z-test, binary): p-values, drift when
  p < threshold (0.05);
- ``wasserstein`` (earth mover's distance divided by the reference's standard deviation),
  ``jensenshannon`` (distance between binned or category frequencies), ``psi`` (population
  stability index over the same bins): distances, drift when >= threshold (0.1).

``auto`` picks as Evidently does: a reference of at most 1,000 rows gets the tests (ks for
numbers, chi2 for categories, ztest for two categories); a larger one the distances
(wasserstein for numbers, jensenshannon for categories). A numeric column with at most 5
distinct values is treated as categorical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from opsctl.core.drift_settings import METHODS  # one list, also read by opsctl.yaml's parser

TESTS = ("ks", "chi2", "ztest")  # they give a p-value: drift when it is below the threshold
DEFAULT_THRESHOLDS = {"ks": 0.05, "chi2": 0.05, "ztest": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}
SMALL_REFERENCE = 1000  # rows: up to this, statistical tests; above it, distances
FEW_VALUES = 5  # a numeric column with at most this many distinct values is compared as categories
EMPTY_BIN = 0.0001  # a bin's share where it has no rows: the log in PSI and JS must stay finite
MIN_STD = 0.001  # Wasserstein's normaliser for a (nearly) constant reference


class ColumnDrift(NamedTuple):
    method: str
    statistic: float
    p_value: float | None  # None for the distances
    threshold: float
    drift: bool


def auto_method(numeric: bool, reference_rows: int, distinct: int) -> str:
    """The method ``auto`` means for a column (see the module's docstring)."""
    categorical = not numeric or distinct <= FEW_VALUES
    if reference_rows <= SMALL_REFERENCE:
        if not categorical:
            return "ks"
        return "ztest" if distinct <= 2 else "chi2"
    return "jensenshannon" if categorical else "wasserstein"


def compare(
    reference: Any,
    current: Any,
    *,
    numeric: bool,
    method: str = "auto",
    threshold: float | None = None,
    reference_rows: int | None = None,
    reference_std: float | None = None,
) -> ColumnDrift:
    """The drift of one column. ``reference`` and ``current``: its values (nulls are left
    out); ``numeric``: compare them as numbers (else as categories). When the reference
    values are a sample rebuilt from a profile, ``reference_rows`` and ``reference_std``
    are the real data's row count and spread (the method, the bins and the normaliser
    follow them)."""
    ref, cur = _values(reference, numeric), _values(current, numeric)
    if not len(ref) or not len(cur):
        raise ValueError("a column needs values in both the reference and the current data")
    if not numeric:
        return compare_counts(_tally(ref), _tally(cur), method=method, threshold=threshold)
    rows = reference_rows or len(ref)
    if method == "auto":
        method = auto_method(True, rows, len(np.unique(np.concatenate([ref, cur]))))
    limit = _limit(method, threshold)
    if method == "wasserstein":
        spread = float(np.std(ref)) if reference_std is None else reference_std
        statistic, p_value = wasserstein(ref, cur, spread=spread)
    elif method in ("jensenshannon", "psi"):
        bins: Any = "sturges" if reference_rows is None else sturges_bins(reference_rows + len(cur))
        statistic, p_value = _BINNED[method](*binned_shares(ref, cur, True, bins=bins))
    elif method == "ks":
        statistic, p_value = ks(ref, cur)
    else:  # a test of categories on a numeric column (e.g. 0/1): count its values
        return compare_counts(_tally(ref), _tally(cur), method=method, threshold=threshold, reference_rows=rows)
    return _verdict(method, statistic, p_value, limit)


def compare_counts(
    reference: Mapping[Any, int],
    current: Mapping[Any, int],
    *,
    method: str = "auto",
    threshold: float | None = None,
    reference_rows: int | None = None,
) -> ColumnDrift:
    """The drift of a column of categories, from each side's count per value (the exact
    counts of the data, or a profile's top values plus its "other")."""
    keys = sorted(set(reference) | set(current), key=lambda v: (type(v).__name__, str(v)))
    ref = np.array([reference.get(k, 0) for k in keys], dtype=float)
    cur = np.array([current.get(k, 0) for k in keys], dtype=float)
    if not ref.sum() or not cur.sum():
        raise ValueError("a column needs values in both the reference and the current data")
    if method == "auto":
        method = auto_method(False, reference_rows or int(ref.sum()), len(keys))
    limit = _limit(method, threshold)
    if method in ("ks", "wasserstein"):
        raise ValueError(f"{method} compares numbers: this column holds categories")
    if method == "ztest":
        if len(keys) > 2:
            raise ValueError("ztest compares a column of two values")
        statistic, p_value = _ztest_counts(ref, cur)
    elif method == "chi2":
        statistic, p_value = _chi2_counts(ref, cur)
    else:
        statistic, p_value = _BINNED[method](_floored(ref / ref.sum()), _floored(cur / cur.sum()))
    return _verdict(method, statistic, p_value, limit)


def _limit(method: str, threshold: float | None) -> float:
    if method not in METHODS:
        raise ValueError(f"unknown drift method {method!r} (one of {', '.join(METHODS)})")
    return DEFAULT_THRESHOLDS[method] if threshold is None else threshold


def _verdict(method: str, statistic: float, p_value: float | None, limit: float) -> ColumnDrift:
    drift = p_value < limit if p_value is not None else statistic >= limit
    return ColumnDrift(method, float(statistic), None if p_value is None else float(p_value), limit, bool(drift))


def sturges_bins(rows: int) -> int:
    """How many bins Sturges' rule gives ``rows`` values (numpy's ``bins="sturges"``)."""
    return int(np.ceil(np.log2(max(rows, 1)) + 1.0))


def _tally(values: np.ndarray) -> dict[Any, int]:
    keys, counts = np.unique(values, return_counts=True) if values.dtype != object else _object_counts(values)
    return {k.item() if hasattr(k, "item") else k: int(c) for k, c in zip(keys, counts, strict=True)}


def _object_counts(values: np.ndarray) -> tuple[list, list]:
    from collections import Counter

    found = Counter(values.tolist())
    return list(found), list(found.values())


def _values(values: Any, numeric: bool) -> np.ndarray:
    array = np.asarray(values, dtype=float if numeric else object)
    if numeric:
        return array[~np.isnan(array)]
    return np.array([v for v in array if v is not None and v == v], dtype=object)  # v != v: NaN


def ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    from scipy.stats import ks_2samp

    result = ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    """Chi-squared test of independence on the 2 x k table of category counts (scipy's
    ``chi2_contingency``) of two arrays of values."""
    _keys, ref_counts, cur_counts = _counts(ref, cur)
    return _chi2_counts(ref_counts, cur_counts)


def _chi2_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float | None]:
    """A two-sample test: the reference is a sample too, so same-source data is flagged at
    the significance level (testing the current counts against the reference's shares as
    if they were exact, as Evidently does, flags far more)."""
    from scipy.stats import chi2_contingency

    if len(ref_counts) < 2:  # one category on both sides: nothing moved
        return 0.0, 1.0
    result = chi2_contingency(np.vstack([ref_counts, cur_counts]))
    return float(result.statistic), float(result.pvalue)


def ztest(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    """Two-proportion z-test on the share of the first value (the columns hold two)."""
    keys, ref_counts, cur_counts = _counts(ref, cur)
    if len(keys) > 2:
        raise ValueError("ztest compares a column of two values")
    return _ztest_counts(ref_counts, cur_counts)


def _ztest_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float | None]:
    n1, n2 = float(ref_counts.sum()), float(cur_counts.sum())
    p1, p2 = ref_counts[0] / n1, cur_counts[0] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:  # one value everywhere: nothing moved
        return 0.0, 1.0
    z = (p1 - p2) / spread
    return float(z), math.erfc(abs(z) / math.sqrt(2))  # 2 (1 - Φ(|z|)), without importing scipy.stats


def wasserstein(ref: np.ndarray, cur: np.ndarray, *, spread: float | None = None) -> tuple[float, float | None]:
    """Earth mover's distance over the reference's standard deviation (``spread``)."""
    spread = float(np.std(ref)) if spread is None else spread
    return wasserstein_distance(ref, cur) / max(spread, MIN_STD), None


def wasserstein_distance(u: np.ndarray, v: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance of two samples (the area between their CDFs): each
    side sorted, the two merged (a stable sort of two sorted runs is a linear merge), and each
    value's CDF on either side a running count of the values from that side. scipy's own
    searches every value in both sides (about 4x slower on a million rows), and importing
    scipy.stats costs most of a second."""
    values = np.concatenate([np.sort(u), np.sort(v)])
    order = np.argsort(values, kind="stable")
    from_u = order < len(u)
    u_cdf = np.cumsum(from_u)[:-1] / len(u)
    v_cdf = np.cumsum(~from_u)[:-1] / len(v)
    # between tied values the width is 0, so a tie's partial counts never weigh
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(values[order])))


def _jensenshannon(ref_shares: np.ndarray, cur_shares: np.ndarray) -> tuple[float, float | None]:
    """scipy.spatial.distance.jensenshannon (natural log) of two share vectors, all above 0."""
    p, q = ref_shares / ref_shares.sum(), cur_shares / cur_shares.sum()
    m = (p + q) / 2
    divergence = (np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m))) / 2
    return float(np.sqrt(max(divergence, 0.0))), None


def _psi(ref_shares: np.ndarray, cur_shares: np.ndarray) -> tuple[float, float | None]:
    """Population stability index: sum over bins of (ref - cur) * ln(ref / cur)."""
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares))), None


_BINNED: dict[str, Callable[[np.ndarray, np.ndarray], tuple[float, float | None]]] = {
    "jensenshannon": _jensenshannon,
    "psi": _psi,
}


def binned_shares(
    ref: np.ndarray, cur: np.ndarray, numeric: bool, *, bins: Any = "sturges"
) -> tuple[np.ndarray, np.ndarray]:
    """Each side's share of rows per bin (numbers: Sturges' bins over both sides) or per
    category, an empty bin counted as EMPTY_BIN."""
    if numeric:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=bins)
        # the same equal-width bins as a count and a range: numpy's fast path (edges as an
        # array make it sort every value)
        count, span = len(edges) - 1, (float(edges[0]), float(edges[-1]))
        ref_shares = np.histogram(ref, bins=count, range=span)[0] / len(ref)
        cur_shares = np.histogram(cur, bins=count, range=span)[0] / len(cur)
    else:
        _keys, ref_counts, cur_counts = _counts(ref, cur)
        ref_shares, cur_shares = ref_counts / len(ref), cur_counts / len(cur)
    return _floored(ref_shares), _floored(cur_shares)


def _floored(shares: np.ndarray) -> np.ndarray:
    return np.where(shares == 0, EMPTY_BIN, shares)


def _counts(ref: np.ndarray, cur: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """The categories of both sides (in a stable order) and each side's count of each."""
    keys = sorted(set(ref.tolist()) | set(cur.tolist()), key=lambda v: (type(v).__name__, str(v)))
    index = {key: i for i, key in enumerate(keys)}
    ref_counts = np.bincount([index[v] for v in ref.tolist()], minlength=len(keys)).astype(float)
    cur_counts = np.bincount([index[v] for v in cur.tolist()], minlength=len(keys)).astype(float)
    return keys, ref_counts, cur_counts
