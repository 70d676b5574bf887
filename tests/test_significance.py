"""The compare's tests against worked examples computed by hand and with math.erfc."""

from __future__ import annotations

import math
import statistics

import pytest

from runwatch.significance import (
    Moments,
    success_rate,
    two_proportion_p_value,
    welch_p_value,
)


def normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def test_two_proportion_worked_example() -> None:
    # a: 45 of 50 succeed, b: 30 of 50. Pooled p = 0.75,
    # SE = sqrt(0.75 * 0.25 * (1/50 + 1/50)) = sqrt(0.0075) = 0.0866025,
    # z = (0.6 - 0.9) / 0.0866025 = -3.4641016, p = 0.000532.
    z = (0.6 - 0.9) / math.sqrt(0.0075)
    assert z == pytest.approx(-3.4641016, abs=1e-6)
    p = two_proportion_p_value(45, 50, 30, 50)
    assert p == pytest.approx(normal_two_sided(z), rel=1e-9)
    assert p == pytest.approx(0.000532, abs=2e-6)
    assert two_proportion_p_value(5, 10, 5, 10) == pytest.approx(1.0)
    assert two_proportion_p_value(0, 0, 1, 2) is None
    assert two_proportion_p_value(3, 3, 4, 4) is None  # no variance, no difference
    se = math.sqrt(3 / 7 * 4 / 7 * (1 / 3 + 1 / 4))
    assert two_proportion_p_value(3, 3, 0, 4) == pytest.approx(normal_two_sided(-1 / se))


def test_welch_worked_example_from_sums_and_squares() -> None:
    a = [10.0, 12.0, 14.0, 16.0, 18.0]  # mean 14, variance 10
    b = [20.0, 22.0, 24.0, 26.0, 28.0, 30.0]  # mean 25, variance 14
    assert (statistics.mean(a), statistics.variance(a)) == (14, 10)
    assert (statistics.mean(b), statistics.variance(b)) == (25, 14)
    # t = (25 - 14) / sqrt(10/5 + 14/6) = 11 / 2.0816660 = 5.2842
    t = 11 / math.sqrt(10 / 5 + 14 / 6)
    assert t == pytest.approx(5.2842, abs=1e-4)
    ma = Moments(len(a), sum(a), sum(x * x for x in a))
    mb = Moments(len(b), sum(b), sum(x * x for x in b))
    assert ma.variance == pytest.approx(10)
    assert mb.mean == pytest.approx(25)
    p = welch_p_value(ma, mb)
    assert p == pytest.approx(normal_two_sided(t), rel=1e-9)
    assert p == pytest.approx(1.26e-7, rel=0.02)
    assert welch_p_value(ma, Moments(1, 3.0, 9.0)) is None
    same = Moments(3, 6.0, 12.0)  # 2, 2, 2
    assert welch_p_value(same, same) is None


def test_success_rate() -> None:
    assert success_rate(3, 1, 1) == pytest.approx(0.6)
    assert success_rate(0, 0, 0) is None
    assert success_rate(0, 2, 0) == 0.0
