"""core/drift_stats.py against scipy's reference implementations, on a worked PSI example,
and on data with a known answer (false alarms at the significance level, a 0.5 σ shift
caught, a new category caught)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon as scipy_js
from scipy.stats import chi2_contingency, ks_2samp, norm, wasserstein_distance

from opsctl.core import drift_stats
from opsctl.core.drift_stats import auto_method, compare

RNG = np.random.default_rng(20261129)


def test_ks_is_scipys():
    ref, cur = RNG.normal(0, 1, 800), RNG.normal(0.1, 1.2, 600)
    result = compare(ref, cur, numeric=True, method="ks")
    expected = ks_2samp(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert result.drift == (expected.pvalue < 0.05) and result.threshold == 0.05


def test_chi2_is_scipys_two_sample_test():
    ref = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200, dtype=object)
    cur = np.array(["a"] * 260 + ["b"] * 180 + ["c"] * 160, dtype=object)
    result = compare(ref, cur, numeric=False, method="chi2")
    expected = chi2_contingency([[500, 300, 200], [260, 180, 160]])
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_ztest_is_the_two_proportion_test():
    ref = np.array([1] * 300 + [0] * 700, dtype=object)
    cur = np.array([1] * 380 + [0] * 620, dtype=object)
    result = compare(ref, cur, numeric=False, method="ztest")
    p1, p2, n = 0.7, 0.62, 1000  # shares of the first value, 0
    pooled = (p1 + p2) / 2
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (2 / n))
    assert result.statistic == pytest.approx(z, abs=1e-9)
    assert result.p_value == pytest.approx(2 * (1 - norm.cdf(abs(z))), abs=1e-9)
    assert result.drift
    same = compare(np.array([1, 1], dtype=object), np.array([1, 1, 1], dtype=object), numeric=False, method="ztest")
    assert (same.statistic, same.p_value, same.drift) == (0.0, 1.0, False)


def test_wasserstein_is_scipys_over_the_reference_spread():
    ref, cur = RNG.normal(5, 2, 3000), RNG.normal(5.4, 2, 2000)
    result = compare(ref, cur, numeric=True, method="wasserstein")
    assert result.statistic == pytest.approx(wasserstein_distance(ref, cur) / np.std(ref), abs=1e-9)
    assert result.p_value is None and result.threshold == 0.1 and result.drift == (result.statistic >= 0.1)


def test_jensenshannon_is_scipys_on_the_binned_shares():
    ref, cur = RNG.normal(0, 1, 2000), RNG.normal(0.3, 1, 1500)
    result = compare(ref, cur, numeric=True, method="jensenshannon")
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    r, c = np.where(r == 0, 0.0001, r), np.where(c == 0, 0.0001, c)
    assert result.statistic == pytest.approx(scipy_js(r, c), abs=1e-9)
    cats = compare(
        np.array(list("aab"), dtype=object), np.array(list("abb"), dtype=object), numeric=False, method="jensenshannon"
    )
    assert cats.statistic == pytest.approx(scipy_js([2 / 3, 1 / 3], [1 / 3, 2 / 3]), abs=1e-9)


def test_psi_on_a_worked_example():
    # Reference shares 50/30/20 %, current 40/30/30 %:
    # (0.5-0.4)ln(0.5/0.4) + 0 + (0.2-0.3)ln(0.2/0.3) = 0.0223144 + 0.0405465 = 0.0628609
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    cur = np.array(["a"] * 40 + ["b"] * 30 + ["c"] * 30, dtype=object)
    result = compare(ref, cur, numeric=False, method="psi")
    assert result.statistic == pytest.approx(0.1 * math.log(0.5 / 0.4) + 0.1 * math.log(1.5), abs=1e-12)
    assert result.statistic == pytest.approx(0.0628609, abs=1e-6) and not result.drift


def test_auto_follows_the_reference_size_and_the_kind_of_column():
    assert auto_method(True, 1000, 50) == "ks"
    assert auto_method(False, 1000, 7) == "chi2"
    assert auto_method(False, 1000, 2) == "ztest"
    assert auto_method(True, 1000, 2) == "ztest"  # 0/1 numbers are categories
    assert auto_method(True, 1001, 50) == "wasserstein"
    assert auto_method(False, 1001, 7) == "jensenshannon"
    assert auto_method(True, 5000, 4) == "jensenshannon"


def test_false_alarms_are_at_the_significance_level():
    """200 pairs of samples of one distribution: the share flagged is about alpha."""
    alarms = sum(
        compare(RNG.normal(0, 1, 500), RNG.normal(0, 1, 500), numeric=True, method="auto").drift for _ in range(200)
    )
    assert alarms / 200 <= 0.08
    categories = np.array(list("abcde"), dtype=object)
    cat_alarms = sum(
        compare(RNG.choice(categories, 800), RNG.choice(categories, 800), numeric=False).drift for _ in range(200)
    )
    assert cat_alarms / 200 <= 0.08


def test_a_half_sigma_shift_over_5000_rows_is_caught():
    caught = sum(compare(RNG.normal(0, 1, 5000), RNG.normal(0.5, 1, 5000), numeric=True).drift for _ in range(100))
    assert caught >= 99
    assert compare(RNG.normal(0, 1, 5000), RNG.normal(0.5, 1, 5000), numeric=True).method == "wasserstein"


def test_a_new_category_in_10_percent_of_rows_is_caught():
    categories = np.array(list("abc"), dtype=object)
    ref = RNG.choice(categories, 900)
    cur = np.concatenate([RNG.choice(categories, 810), np.array(["new"] * 90, dtype=object)])
    small = compare(ref, cur, numeric=False)
    assert small.method == "chi2" and small.drift and small.p_value < 1e-12
    big = compare(
        RNG.choice(categories, 20000), np.concatenate([RNG.choice(categories, 9000), ["new"] * 1000]), numeric=False
    )
    assert big.method == "jensenshannon" and big.drift


def test_nulls_are_left_out_and_bad_input_is_refused():
    result = compare([1.0, float("nan"), 2.0, 3.0] * 50, [1.0, 2.0, None, 3.0] * 50, numeric=True, method="ks")
    assert result.statistic == pytest.approx(0.0) and not result.drift
    with pytest.raises(ValueError, match="needs values in both"):
        compare([float("nan")], [1.0], numeric=True)
    with pytest.raises(ValueError, match="unknown drift method"):
        compare([1.0], [1.0], numeric=True, method="evidently")
    with pytest.raises(ValueError, match="ks compares numbers"):
        compare(["a"], ["b"], numeric=False, method="ks")
    with pytest.raises(ValueError, match="two values"):
        drift_stats.ztest(np.array(list("abc"), dtype=object), np.array(list("a"), dtype=object))
