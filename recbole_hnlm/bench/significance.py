"""Paired significance tests over seeds: sampler A vs sampler B, run k with the same seed on both.

Two tests, both from scipy: the paired t-test (``ttest``, the default) and the Wilcoxon signed-rank test
(``wilcoxon``, exact for small samples). With 3 seeds the Wilcoxon test cannot go below p = 0.25
(two-sided), so the t-test is the one that can flag anything at that size; both report NaN, with the
reason, when there is nothing to test (fewer than 2 pairs, or all differences zero).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

METHODS = ("ttest", "wilcoxon")


LEVEL = 0.05  # the significance level the tables star


@dataclass(frozen=True)
class PairedTest:
    method: str
    n: int
    mean_diff: float  # mean of a - b
    statistic: float
    pvalue: float
    note: str = ""

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def significant(self, level: float = LEVEL) -> bool:
        return not math.isnan(self.pvalue) and self.pvalue < level


def paired_test(a: Sequence[float], b: Sequence[float], method: str = "ttest") -> PairedTest:
    """Two-sided paired test of ``a`` against ``b`` (``a[k]`` and ``b[k]`` share seed k)."""
    if method not in METHODS:
        raise ValueError(f"significance test must be one of {', '.join(METHODS)}, got {method!r}")
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"paired test needs two equal-length 1-d samples, got shapes {x.shape} and {y.shape}"
        )
    diff = x - y
    n = int(diff.size)
    mean_diff = float(diff.mean()) if n else math.nan
    nan = math.nan
    if n < 2:
        return PairedTest(method, n, mean_diff, nan, nan, "fewer than 2 paired runs")
    if np.all(diff == 0):
        return PairedTest(method, n, mean_diff, nan, nan, "all differences are zero")
    from scipy import stats

    if method == "ttest":
        if np.allclose(diff, diff[0], rtol=1e-9, atol=1e-12):
            # zero variance but a non-zero shift: t is infinite, p is 0 (scipy warns and returns the same)
            return PairedTest(
                method, n, mean_diff, math.copysign(math.inf, mean_diff), 0.0, "constant difference"
            )
        res = stats.ttest_rel(x, y)
        return PairedTest(method, n, mean_diff, float(res.statistic), float(res.pvalue))
    res = stats.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    return PairedTest(method, n, mean_diff, float(res.statistic), float(res.pvalue))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def relative_gain(value: float, reference: float) -> float:
    """``(value - reference) / reference``; NaN when the reference is 0 or missing."""
    if reference is None or not math.isfinite(reference) or reference == 0:
        return math.nan
    return (value - reference) / reference
