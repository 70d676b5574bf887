"""Success rate, defined once, and the two tests a version compare reports.

- `success_rate` is success ÷ (success + failed + partial): the finished runs
  that called a model. Dry and running runs are not in it; null when none.
- The success-rate difference is tested with the two-proportion z-test (pooled
  proportion, two-sided).
- The mean difference (duration, cost) is tested with Welch's test from each
  side's count, sum and sum of squares: t = (mean_b - mean_a) /
  sqrt(var_a/n_a + var_b/n_b) with unbiased variances; the p-value takes t as
  standard normal (`statistics.NormalDist`), which is close once each side has
  about 30 runs and a little too small below that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


def success_rate(success: int, failed: int, partial: int) -> float | None:
    """success ÷ (success + failed + partial); None when that is 0."""
    finished = success + failed + partial
    return success / finished if finished else None


def two_sided_p(z: float) -> float:
    return 2.0 * (1.0 - _NORMAL.cdf(abs(z)))


def two_proportion_p_value(success_a: int, n_a: int, success_b: int, n_b: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None when it is undefined."""
    if n_a == 0 or n_b == 0:
        return None
    pooled = (success_a + success_b) / (n_a + n_b)
    variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    if variance <= 0.0:
        return None if success_a / n_a == success_b / n_b else 0.0
    return two_sided_p((success_b / n_b - success_a / n_a) / math.sqrt(variance))


@dataclass(frozen=True)
class Moments:
    """Count, sum and sum of squares of one sample."""

    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The unbiased sample variance (n - 1), never negative from rounding."""
        if self.n < 2:
            return None
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def welch_p_value(a: Moments, b: Moments) -> float | None:
    """Two-sided p-value of Welch's test of equal means; None with fewer than 2 on a side."""
    va, vb = a.variance, b.variance
    if va is None or vb is None or a.mean is None or b.mean is None:
        return None
    se2 = va / a.n + vb / b.n
    if se2 <= 0.0:
        return None if a.mean == b.mean else 0.0
    return two_sided_p((b.mean - a.mean) / math.sqrt(se2))
