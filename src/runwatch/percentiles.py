"""Duration percentiles from logarithmic bins, within 2% of the exact value.

A duration d > 0 seconds falls in bin i = ceil(log(d) / log(g)), the interval
(g^(i-1), g^i], with g = (1 + a) / (1 - a) and a = 0.02; a duration of 0 has
its own bin. A bin stands for 2 g^i / (g + 1), which is within a relative a of
every value in the bin. The p-th percentile is the nearest rank: the value at
rank ceil(p/100 * n) of the n durations in order; the answer is the value of
the bin holding that rank, so it is within 2% of the exact nearest-rank value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

ALPHA = 0.02
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
ZERO_BIN = -(2**31) + 1  # below every other bin: durations of exactly 0
PERCENTILES = (50, 95, 99)


def duration_bin(seconds: float) -> int:
    """The bin of a non-negative duration."""
    if seconds <= 0:
        return ZERO_BIN
    return math.ceil(math.log(seconds) / _LOG_GAMMA)


def bin_value(index: int) -> float:
    """The duration a bin stands for: within a relative ALPHA of all its values."""
    if index == ZERO_BIN:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


def percentiles(
    counts: Mapping[int, int], points: Iterable[int] = PERCENTILES
) -> dict[int, float | None]:
    """Nearest-rank percentiles from bin counts; None for each when there are no values."""
    total = sum(counts.values())
    out: dict[int, float | None] = {}
    ordered = sorted((b, n) for b, n in counts.items() if n > 0)
    for p in points:
        if total == 0:
            out[p] = None
            continue
        rank = max(1, (p * total + 99) // 100)  # ceil(p/100 · n) in integers
        seen = 0
        for index, n in ordered:
            seen += n
            if seen >= rank:
                out[p] = bin_value(index)
                break
    return out
