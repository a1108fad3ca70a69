"""Paired tests over seeds on hand-made numbers, checked against closed forms and scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from recbole_hnlm.bench.significance import mean_std, paired_test, relative_gain


def test_paired_ttest_matches_closed_form_and_scipy():
    # differences 0.01, 0.02, 0.04: mean 7/300, sample sd sqrt(7/3)/100, so t = sqrt(7) with 2 dof, and
    # the t(2) CDF gives the two-sided p = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(7)/3.
    a = [0.31, 0.32, 0.34]
    b = [0.30, 0.30, 0.30]
    res = paired_test(a, b, "ttest")
    assert res.n == 3
    assert res.mean_diff == pytest.approx(7 / 300)
    assert res.statistic == pytest.approx(math.sqrt(7), rel=1e-9)
    assert res.pvalue == pytest.approx(1 - math.sqrt(7) / 3, rel=1e-9)
    assert res.pvalue == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert not res.significant()
    # swapping the samples flips the sign, not the p-value
    swapped = paired_test(b, a)
    assert swapped.statistic == pytest.approx(-math.sqrt(7))
    assert swapped.pvalue == pytest.approx(res.pvalue)


def test_wilcoxon_exact_p_value():
    # 5 pairs, all differences positive and distinct: the exact two-sided p is 2 / 2^5.
    a = [0.5, 0.6, 0.7, 0.8, 0.9]
    b = [0.49, 0.58, 0.67, 0.76, 0.85]
    res = paired_test(a, b, "wilcoxon")
    assert res.pvalue == pytest.approx(2 / 32)
    assert res.statistic == 0.0


def test_degenerate_samples_are_reported_not_faked():
    single = paired_test([0.3], [0.2])
    assert math.isnan(single.pvalue) and "fewer than 2" in single.note
    equal = paired_test([0.3, 0.4], [0.3, 0.4], "wilcoxon")
    assert math.isnan(equal.pvalue) and "zero" in equal.note
    assert equal.as_dict()["pvalue"] is None
    shift = paired_test([0.3, 0.4, 0.5], [0.2, 0.3, 0.4])
    assert shift.pvalue == 0.0 and shift.statistic == math.inf
    with pytest.raises(ValueError, match="equal-length"):
        paired_test([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="ttest, wilcoxon"):
        paired_test([0.1, 0.2], [0.1, 0.3], "sign")


def test_mean_std_and_gain():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert relative_gain(0.11, 0.10) == pytest.approx(0.1)
    assert math.isnan(relative_gain(0.1, 0.0))
