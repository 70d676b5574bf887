"""Time buckets of the rollups, and the plan that covers a window with them.

Rollups are kept per hour, day and month; sums are kept in whole units
(nano-dollars, microseconds) so that adding and subtracting leaves no
rounding residue. A window `[since, until)` is covered by whole months in the
middle, whole days and hours towards its edges, and raw rows for the partial
hours at its ends. Plain arithmetic: nothing here reads the database.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def nanos(cost_usd: float | None) -> int:
    """Cost in whole nano-dollars, rounded half up (as the migration's backfill does)."""
    return 0 if cost_usd is None else math.floor(cost_usd * 1e9 + 0.5)


def micros(seconds: float | None) -> int:
    return 0 if seconds is None else math.floor(seconds * 1e6 + 0.5)


# Below this a value's square counts as 0: PostgreSQL refuses a product that
# underflows to 0 (Python gives 0.0), so the sums of squares made in SQL
# (operator_rollups.square_sql) and in Python (`square`) follow this one rule.
SQUARED_AS_ZERO_BELOW = 1e-150


def square(value: float | None) -> float:
    """`value` squared for the sums of squares: 0 for None and below `SQUARED_AS_ZERO_BELOW`."""
    if value is None or abs(value) < SQUARED_AS_ZERO_BELOW:
        return 0.0
    return value * value


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    start = floor_hour(moment)
    return start if start == moment else start + HOUR


def ceil_day(moment: datetime) -> datetime:
    start = floor_day(moment)
    return start if start == moment else start + DAY


def floor_month(moment: datetime) -> datetime:
    return floor_day(moment).replace(day=1)


def ceil_month(moment: datetime) -> datetime:
    start = floor_month(moment)
    if start == moment:
        return start
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


# Finest first: a window is covered by whole months in the middle, whole days
# and hours towards its edges, and raw rows for the partial hours at its ends.
GRAINS = (
    ("hour", floor_hour, ceil_hour),
    ("day", floor_day, ceil_day),
    ("month", floor_month, ceil_month),
)


@dataclass(frozen=True)
class Segment:
    """A part of a window answered one way: raw rows, or rollups of one grain."""

    source: str  # "raw", "hour", "day" or "month"
    start: datetime | None  # inclusive; None = unbounded
    end: datetime | None  # exclusive; None = unbounded


def plan_segments(since: datetime | None, until: datetime | None) -> list[Segment]:
    """Cover `[since, until)` exactly with as few rows as possible (None = unbounded)."""
    if since is not None and until is not None and until <= since:
        return []
    start = None if since is None else ceil_hour(since)
    end = None if until is None else floor_hour(until)
    if start is not None and end is not None and start >= end:
        return [Segment("raw", since, until)]  # within one or two partial hours
    left: list[Segment] = []
    right: list[Segment] = []
    if since is not None and since != start:
        left.append(Segment("raw", since, start))
    if until is not None and until != end:
        right.append(Segment("raw", end, until))
    # Climb from hours to months: at each grain, take the part of [start, end)
    # that is not made of whole units of the next grain.
    for (grain, _floor, _ceil), (_next, next_floor, next_ceil) in itertools.pairwise(GRAINS):
        next_start = None if start is None else next_ceil(start)
        next_end = None if end is None else next_floor(end)
        if next_start is not None and next_end is not None and next_start >= next_end:
            middle = [Segment(grain, start, end)] if start != end else []
            return left + middle + right[::-1]
        if start is not None and start != next_start:
            left.append(Segment(grain, start, next_start))
        if end is not None and end != next_end:
            right.append(Segment(grain, next_end, end))
        start, end = next_start, next_end
    return [*left, Segment(GRAINS[-1][0], start, end), *right[::-1]]
