"""`GET /runs/stats/summary`'s reads: totals per layer, duration counts and running runs.

The window is read as segment_cache plans it: one statement reads the change
counters of its stable hours, days and months together with its raw runs (the
partial first hour, and everything from the start of the current hour on) and
the running runs (so that the stuck ones are counted once the thresholds are
known); the stable segments' totals and duration histograms are reused while
their counters hold, or read (one statement each) when they do not. What the
partial first hour's raw runs add up to is kept too, and those runs are read
again only when that hour's counter moves or the window's start does (every
10 s). So a summary after a write to the current hour costs one statement,
reads only the current hour's runs, and is exactly what reading every rollup
gives. The answer is shaped, and the stuck runs
counted, in `services/layer_summary.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Row, bindparam
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_runs
from runwatch.percentiles import duration_bin
from runwatch.queries.buckets import Segment, micros, nanos
from runwatch.queries.durations import (
    BinCounts,
    Histograms,
    add_counts,
    window_histograms,
)
from runwatch.queries.rollups import layer_status_sums
from runwatch.queries.segment_cache import (
    NO_CACHE,
    Head,
    RawQuery,
    RollupCache,
    WindowPlan,
    hour_of,
    merged_parts,
    plan_window,
    read_head,
)
from runwatch.queries.stuck import (
    RunningRuns,
    fold_running,
    recent_window,
    running_params,
    running_parts,
)

t = layer_runs

# Per layer: runs per status, then the sums.
STATUSES = ("running", "success", "partial", "failed", "dry")
SUMS = ("insights", "tokens", "cost_nanousd", "duration_us", "completed_runs")
Totals = dict[str, list[int]]
# What a raw range's runs add up to: totals per layer and their duration counts.
RawFold = tuple[Totals, BinCounts]


def summary_query(
    layer_name: str | None, lowest_threshold: float | None, now: datetime
) -> RawQuery:
    params: dict[str, Any] = {} if layer_name is None else {"layer_name": layer_name}
    if lowest_threshold is not None:
        params.update(running_params(lowest_threshold, now))
    return RawQuery(
        shape=("summary", layer_name is not None, lowest_threshold is not None),
        columns=lambda: (
            t.c.layer_name,
            t.c.status,
            t.c.duration_seconds,
            t.c.insights_created,
            t.c.tokens_total,
            t.c.estimated_cost_usd,
            t.c.completed_at.is_not(None).label("completed"),
        ),
        started_at=lambda: t.c.started_at,
        where=lambda: [] if layer_name is None else [t.c.layer_name == bindparam("layer_name")],
        params=params,
        more=None if lowest_threshold is None else running_parts(layer_name),
    )


def _fold_totals(rows: list[Row[Any]]) -> Totals:
    out: Totals = {}
    for row in rows:
        entry = out.setdefault(row.layer_name, [0] * (len(STATUSES) + len(SUMS)))
        entry[STATUSES.index(row.status)] += int(row.runs or 0)
        for i, name in enumerate(SUMS, start=len(STATUSES)):
            entry[i] += int(row._mapping[name] or 0)
    return out


def _merge_totals_into(out: Totals, part: Totals) -> None:
    for name, values in part.items():
        entry = out.get(name)
        if entry is None:
            out[name] = list(values)
        else:
            for i, v in enumerate(values):
                entry[i] += v


def _merge_totals(parts: Iterable[Totals]) -> tuple[Totals, int]:
    out: Totals = {}
    for part in parts:
        _merge_totals_into(out, part)
    return out, len(out)


_STATUS_INDEX = {status: i for i, status in enumerate(STATUSES)}
_WIDTH = len(STATUSES) + len(SUMS)


def _add_raw(totals: Totals, extra: BinCounts, rows: Iterable[Sequence[Any]]) -> None:
    """Add raw runs to the totals per layer and to the duration counts.

    The current hour's runs pass through here on every fresh summary (a couple
    of thousand an hour on a busy service), so the loop keeps each layer's
    entry and bins at hand.
    """
    base = len(STATUSES)
    status_index = _STATUS_INDEX
    layers: dict[str, tuple[list[int], dict[int, int] | None]] = {}
    overall: dict[int, int] | None = None
    for _part, _changes, _moment, layer, status, duration, insights, tokens, cost, done in rows:
        found = layers.get(layer)
        if found is None:
            entry = totals.get(layer)
            if entry is None:
                entry = totals[layer] = [0] * _WIDTH
            found = layers[layer] = (entry, None)
        entry, bins = found
        entry[status_index[status]] += 1
        if insights:
            entry[base] += insights
        if tokens:
            entry[base + 1] += tokens
        if cost is not None:
            entry[base + 2] += nanos(cost)
        if done:
            entry[base + 4] += 1
        if duration is None:
            continue
        entry[base + 3] += micros(duration)
        if bins is None:
            bins = extra.setdefault((layer, ""), {})
            layers[layer] = (entry, bins)
        if overall is None:
            overall = extra.setdefault(None, {})
        index = duration_bin(duration)
        bins[index] = bins.get(index, 0) + 1
        overall[index] = overall.get(index, 0) + 1


@dataclass(frozen=True)
class SummaryWindow:
    """What the first statement of a summary read: the plans, the counters and the raw runs."""

    layer_name: str | None
    totals_plan: WindowPlan
    bins_plan: WindowPlan
    recent: WindowPlan | None
    head: Head
    # Raw ranges within one hour, each with what was kept of it (counter and fold) if anything.
    kept: dict[Segment, tuple[int, RawFold] | None]

    @property
    def purged_before(self) -> datetime | None:
        """The purge horizon in force, when the read asked for it."""
        return self.head.purged_before


@dataclass(frozen=True)
class SummaryTotals:
    """A summary window folded: totals per layer, duration counts, and the running runs read."""

    totals: Totals
    # The window's duration histograms, then (when the running runs were read) the recent ones.
    histograms: list[Histograms]
    # The durations of the window's raw runs, and of the recent window's.
    extra: BinCounts
    recent_extra: BinCounts
    running: RunningRuns


async def read_summary_window(
    conn: AsyncConnection,
    *,
    since: datetime,
    layer_name: str | None,
    now: datetime,
    lowest_threshold: float | None,
    purge_horizon: bool,
    cache: RollupCache = NO_CACHE,
) -> SummaryWindow:
    """The one statement every summary runs: the window's change counters and raw runs.

    With `lowest_threshold` (seconds no layer's stuck threshold is below), the
    running runs are read too, and the recent window the stuck thresholds come
    from is planned; with `purge_horizon`, the horizon in force is read as well.
    The runs of a raw range within one hour are not sent if `cache` kept what
    they add up to under that hour's counter as it still is.
    """
    totals_plan = plan_window(since, None, now=now)
    bins_plan = plan_window(since, None, now=now, monthly=False)
    recent = recent_window(now) if lowest_threshold is not None else None
    plans = [totals_plan, bins_plan, *([] if recent is None else [recent])]
    raw = list(dict.fromkeys(s for p in plans for s in p.raw))
    kept: dict[Segment, tuple[int, RawFold] | None] = {}
    if cache.max_rows:
        for segment in raw:
            hour = hour_of(segment)
            if hour is not None:
                found = cache.get(_kept_key(layer_name, hour))
                kept[segment] = found[1:] if found is not None and found[0] == segment else None
    head = await read_head(
        conn,
        stable=[s for p in plans for s in p.stable],
        raw=raw,
        query=summary_query(layer_name, lowest_threshold, now),
        purge_horizon=purge_horizon,
        known={segment: None if k is None else k[0] for segment, k in kept.items()},
    )
    return SummaryWindow(layer_name, totals_plan, bins_plan, recent, head, kept)


def _kept_key(layer_name: str | None, hour: Segment) -> tuple[Any, ...]:
    # One range per hour is kept: as the window moves, the next replaces it.
    return ("summary_raw", layer_name, hour)


def _raw_folds(window: SummaryWindow, cache: RollupCache) -> dict[Segment, RawFold]:
    """What each raw range's runs add up to: kept, or folded from the rows read (and kept)."""
    out: dict[Segment, RawFold] = {}
    for segment, rows in window.head.rows.items():
        hour = hour_of(segment) if segment in window.kept else None
        if hour is not None:
            counter = window.head.changes[hour]
            kept = window.kept[segment]
            if kept is not None and kept[0] == counter:
                out[segment] = kept[1]  # unchanged: the statement sent no rows for it
                continue
        fold: RawFold = ({}, {})
        _add_raw(*fold, rows)
        out[segment] = fold
        if hour is not None:
            key = _kept_key(window.layer_name, hour)
            cache.replace(key, (segment, counter, fold), len(rows))
    return out


async def summary_totals(
    conn: AsyncConnection, window: SummaryWindow, *, cache: RollupCache = NO_CACHE
) -> SummaryTotals:
    """The window's totals and duration counts: stable segments reused or read, raw runs added."""
    layer_name, head = window.layer_name, window.head
    (stable_totals,) = await merged_parts(
        conn,
        cache,
        kind=("layer_totals", layer_name),
        windows=[window.totals_plan.stable],
        changes=head.changes,
        part=partial(layer_status_sums, layer_name=layer_name),
        fold=_fold_totals,
        merge=_merge_totals,
    )
    plans = [window.bins_plan, *([] if window.recent is None else [window.recent])]
    histograms = await window_histograms(
        conn, cache, windows=plans, changes=head.changes, layer_name=layer_name, by_version=False
    )
    # Each raw range once (the current hour is in both windows), then per window.
    ranges = _raw_folds(window, cache)
    totals = {name: list(values) for name, values in stable_totals.items()}
    extra: BinCounts = {}
    for segment in window.totals_plan.raw:
        _merge_totals_into(totals, ranges[segment][0])
        add_counts(extra, ranges[segment][1])
    recent_extra: BinCounts = {}
    for segment in window.recent.raw if window.recent is not None else ():
        add_counts(recent_extra, ranges[segment][1])
    return SummaryTotals(totals, histograms, extra, recent_extra, fold_running(head.more))
