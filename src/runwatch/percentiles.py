"""Duration percentiles from logarithmic bins, within 2% of the exact value.

A duration d > 0 seconds falls in bin i = ceil(log(d) / log(g)), the interval
(g^(i-1), g^i], with g = (1 + a) / (1 - a) and a = 0.02; a duration of 0 has
its own bin. A bin stands for 2 g^i / (g + 1), which is within a relative a of
every value in the bin. The p-th percentile is the nearest rank: the value at
rank ceil(p/100 * n) of the n durations in order; the answer is the value of
the bin holding that rank, so it is within 2% of the exact nearest-rank value.
"""

from __future__ import annotations

import bisect
import itertools
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


Answer = dict[int, float | None]


class Histogram:
    """Bin counts in bin order with running totals: percentiles with a few more counts added.

    Built once from the counts of many buckets, it answers the percentiles of
    those counts plus a small `extra` (the runs read raw for one request) with
    a binary search per stretch between two added bins, never merging the two.
    The last few answers are kept by `extra`: a window's raw runs of most keys
    are the same from one request to the next.
    """

    __slots__ = ("_known", "bins", "running")
    KEPT = 8  # answers kept per histogram

    def __init__(self, counts: Mapping[int, int]) -> None:
        ordered = sorted((b, n) for b, n in counts.items() if n > 0)
        self.bins = [b for b, _ in ordered]
        self.running = list(itertools.accumulate(n for _, n in ordered))
        self._known: dict[tuple[tuple[int, ...], tuple[tuple[int, int], ...]], Answer] = {}

    @property
    def total(self) -> int:
        return self.running[-1] if self.running else 0

    def _up_to(self, index: int) -> int:
        """How many counts lie in bins up to and including `index`."""
        position = bisect.bisect_right(self.bins, index)
        return self.running[position - 1] if position else 0

    def _at_rank(self, rank: int, added: list[tuple[int, int]]) -> int | None:
        """The bin holding the `rank`-th value of these counts plus `added` (bin, running).

        The count up to and including each added bin grows along `added`, so the
        first added bin whose count reaches `rank` is found by bisection; the
        rank then lies in our bins of the stretch before it, or in that bin.
        """
        low, high = 0, len(added)
        while low < high:
            middle = (low + high) // 2
            index, running = added[middle]
            if self._up_to(index) + running >= rank:
                high = middle
            else:
                low = middle + 1
        below = added[low - 1][1] if low else 0  # added counts before the stretch
        position = bisect.bisect_left(self.running, rank - below)
        if low == len(added):
            return self.bins[position] if position < len(self.bins) else None
        index = added[low][0]
        if position < len(self.bins) and self.bins[position] < index:
            return self.bins[position]
        return index

    def percentiles(
        self, extra: Mapping[int, int] | None = None, points: Iterable[int] = PERCENTILES
    ) -> dict[int, float | None]:
        """Nearest-rank percentiles of these counts plus `extra`, as `percentiles` gives."""
        points = tuple(points)
        ordered = tuple(sorted((b, n) for b, n in (extra or {}).items() if n > 0))
        known = self._known.get((points, ordered))
        if known is not None:
            return known
        running = itertools.accumulate(n for _, n in ordered)
        added = [(b, total) for (b, _), total in zip(ordered, running, strict=True)]
        total = self.total + (added[-1][1] if added else 0)
        out: dict[int, float | None] = {}
        for p in points:
            found = None
            if total:
                found = self._at_rank(max(1, (p * total + 99) // 100), added)
            out[p] = None if found is None else bin_value(found)
        if len(self._known) >= self.KEPT:
            del self._known[next(iter(self._known))]  # the oldest
        self._known[(points, ordered)] = out
        return out
