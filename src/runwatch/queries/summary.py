"""`GET /runs/stats/summary`: totals per layer, duration percentiles and stuck runs.

The window is read as segment_cache plans it: one statement reads the change
counters of its stable hours, days and months together with its raw runs (the
partial first hour, and everything from the start of the current hour on) and
the running runs (so that the stuck ones are counted once the thresholds are
known); the stable segments' totals and duration histograms are reused while
their counters hold, or read (one statement each) when they do not. So a
summary after a write to the current hour costs one statement, and is exactly
what reading every rollup gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Row, bindparam
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.config import Settings
from runwatch.db.tables import layer_runs
from runwatch.metrics import measured
from runwatch.percentiles import PERCENTILES
from runwatch.queries.buckets import Segment, floor_hour, micros, nanos
from runwatch.queries.durations import (
    BinCounts,
    add_counts,
    add_raw_duration,
    percentile_fields,
    window_histograms,
    window_percentiles,
)
from runwatch.queries.rollups import layer_status_sums
from runwatch.queries.segment_cache import (
    NO_CACHE,
    RawQuery,
    RollupCache,
    merged_parts,
    plan_window,
    read_head,
)
from runwatch.queries.stuck import (
    count_stuck,
    recent_layers,
    recent_window,
    running_params,
    running_parts,
    stuck_counts,
    thresholds_from,
)
from runwatch.significance import success_rate

t = layer_runs

# Per layer: runs per status, then the sums.
STATUSES = ("running", "success", "partial", "failed", "dry")
SUMS = ("insights", "tokens", "cost_nanousd", "duration_us", "completed_runs")
Totals = dict[str, list[int]]
NO_PERCENTILES = percentile_fields(dict.fromkeys(PERCENTILES))


def _summary_query(layer_name: str | None, settings: Settings | None, now: datetime) -> RawQuery:
    params: dict[str, Any] = {} if layer_name is None else {"layer_name": layer_name}
    if settings is not None:
        params.update(running_params(settings, now))
    return RawQuery(
        shape=("summary", layer_name is not None, settings is not None),
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
        more=None if settings is None else running_parts(layer_name),
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


def _add_raw(totals: Totals, extra: BinCounts, rows: Iterable[Row[Any]]) -> None:
    """Add raw runs to the totals per layer and to the duration counts."""
    status_index = {status: i for i, status in enumerate(STATUSES)}
    width = len(STATUSES) + len(SUMS)
    base = len(STATUSES)
    for _part, _changes, _moment, layer, status, duration, insights, tokens, cost, done in rows:
        entry = totals.get(layer)
        if entry is None:
            entry = totals[layer] = [0] * width
        entry[status_index[status]] += 1
        entry[base] += insights or 0
        entry[base + 1] += tokens or 0
        entry[base + 2] += nanos(cost)
        entry[base + 3] += micros(duration)
        if done:
            entry[base + 4] += 1
        add_raw_duration(extra, (layer, ""), duration)


def _body(days: int, since: datetime, totals: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    by_layer: dict[str, dict[str, Any]] = {}
    overall = [0] * (len(STATUSES) + len(SUMS))
    for name in sorted(totals):
        counts = totals[name]
        if not sum(counts[: len(STATUSES)]):
            continue
        for i, v in enumerate(counts):
            overall[i] += v
        running, success, partial_, failed, dry, insights, tokens, cost, duration, completed = (
            counts
        )
        # In the order of the LayerStats schema: the answer is encoded as it is.
        by_layer[name] = {
            "runs": running + success + partial_ + failed + dry,
            "insights": insights,
            "successful": success,
            "failed": failed,
            "partial": partial_,
            "dry": dry,
            "running": running,
            "success_rate": success_rate(success, failed, partial_),
            "tokens": tokens,
            "cost_usd": cost / 1e9,
            "mean_duration_seconds": duration / 1e6 / completed if completed else None,
            "stuck": 0,
            **NO_PERCENTILES,
        }
    running, success, partial_, failed, dry, insights, tokens, cost, _duration, _done = overall
    return {
        "period_days": days,
        "since": since,
        "total_runs": running + success + partial_ + failed + dry,
        "successful_runs": success,
        "failed_runs": failed,
        "dry_runs": dry,
        "partial_runs": partial_,
        "running_runs": running,
        "stuck_runs": 0,
        "success_rate": success_rate(success, failed, partial_),
        **NO_PERCENTILES,
        "total_insights": insights,
        "total_tokens": tokens,
        "total_cost_usd": cost / 1e9,
        "by_layer": by_layer,
    }


def _window_start(start: datetime, purge_horizon: datetime | None) -> datetime:
    """Where the window starts: at the start of its first hour if that hour was purged."""
    if purge_horizon is not None and start < purge_horizon:
        return floor_hour(start)
    return start


@measured("summarize_layer_runs")
async def summarize_layer_runs(
    conn: AsyncConnection,
    *,
    days: int,
    layer_name: str | None = None,
    now: datetime | None = None,
    purge_horizon: datetime | None = None,
    learn_horizon: Callable[[datetime | None], None] | None = None,
    settings: Settings | None = None,
    cache: RollupCache = NO_CACHE,
) -> dict[str, Any]:
    """The `GET /runs/stats/summary` body (in its schema's order): the last `days` days.

    The first, partial hour of the window is read from the raw rows. When a
    purge has removed them (the window starts before `purge_horizon`), the
    window starts at the start of that hour instead, answered from the
    rollups, and `since` says so: a purge never makes the summary undercount.
    With `learn_horizon`, `purge_horizon` is only the last one known: the
    horizon in force is read with the raw runs and handed to `learn_horizon`,
    and should it move the window's start, the window is read again. With
    `settings`, the stuck runs (whenever they started) are counted too.
    """
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    since = _window_start(start, purge_horizon)
    totals_plan = plan_window(since, None, now=now)
    bins_plan = plan_window(since, None, now=now, monthly=False)
    recent = recent_window(now) if settings is not None else None
    plans = [totals_plan, bins_plan, *([] if recent is None else [recent])]
    head = await read_head(
        conn,
        stable=[s for p in plans for s in p.stable],
        raw=list(dict.fromkeys(s for p in plans for s in p.raw)),
        query=_summary_query(layer_name, settings, now),
        purge_horizon=learn_horizon is not None,
    )
    if learn_horizon is not None:
        learn_horizon(head.purged_before)
        if _window_start(start, head.purged_before) != since:
            return await summarize_layer_runs(
                conn,
                days=days,
                layer_name=layer_name,
                now=now,
                purge_horizon=head.purged_before,
                settings=settings,
                cache=cache,
            )
    (stable_totals,) = await merged_parts(
        conn,
        cache,
        kind=("layer_totals", layer_name),
        windows=[totals_plan.stable],
        changes=head.changes,
        part=partial(layer_status_sums, layer_name=layer_name),
        fold=_fold_totals,
        merge=_merge_totals,
    )
    histograms = await window_histograms(
        conn,
        cache,
        windows=plans[1:],
        changes=head.changes,
        layer_name=layer_name,
        by_version=False,
    )
    # Each raw range once (the current hour is in both windows), then per window.
    ranges: dict[Segment, tuple[Totals, BinCounts]] = {}
    for segment, rows in head.rows.items():
        ranges[segment] = ({}, {})
        _add_raw(*ranges[segment], rows)
    totals = {name: list(values) for name, values in stable_totals.items()}
    extra: BinCounts = {}
    for segment in totals_plan.raw:
        _merge_totals_into(totals, ranges[segment][0])
        add_counts(extra, ranges[segment][1])
    recent_extra: BinCounts = {}
    for segment in recent.raw if recent is not None else ():
        add_counts(recent_extra, ranges[segment][1])
    body = _body(days, since, totals)
    body.update(percentile_fields(window_percentiles(histograms[0], extra, None)))
    for name, entry in body["by_layer"].items():
        entry.update(percentile_fields(window_percentiles(histograms[0], extra, (name, ""))))
    if settings is not None:
        layers = recent_layers(histograms[1], recent_extra)
        thresholds = thresholds_from(histograms[1], recent_extra, layers=layers, settings=settings)
        stuck = count_stuck(head.more, thresholds, settings=settings, now=now)
        if stuck is None:  # a layer's threshold is longer than the running runs read
            stuck = await stuck_counts(conn, thresholds=thresholds, now=now, layer_name=layer_name)
        body["stuck_runs"] = sum(stuck.values())
        for name, entry in body["by_layer"].items():
            entry["stuck"] = stuck.get(name, 0)
    return body
