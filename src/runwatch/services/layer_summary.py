"""`GET /runs/stats/summary`: where the window starts, and the answer shaped from its totals.

The totals per layer, the duration counts and the running runs are read by
`queries/summary.py`; here they become the answer: counts per status, the
success rate, cost in dollars, mean duration, duration percentiles, and the
stuck runs per layer once the thresholds are known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.config import Settings
from runwatch.metrics import measured
from runwatch.percentiles import PERCENTILES
from runwatch.queries import summary as repo
from runwatch.queries.buckets import floor_hour
from runwatch.queries.durations import percentile_fields, window_percentiles
from runwatch.queries.segment_cache import NO_CACHE, RollupCache
from runwatch.services.stuck import count_stuck, lowest_threshold, recent_layers, thresholds_from
from runwatch.significance import success_rate

NO_PERCENTILES = percentile_fields(dict.fromkeys(PERCENTILES))


def _body(days: int, since: datetime, totals: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    by_layer: dict[str, dict[str, Any]] = {}
    overall = [0] * (len(repo.STATUSES) + len(repo.SUMS))
    for name in sorted(totals):
        counts = totals[name]
        if not sum(counts[: len(repo.STATUSES)]):
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
    window = await repo.read_summary_window(
        conn,
        since=since,
        layer_name=layer_name,
        now=now,
        lowest_threshold=None if settings is None else lowest_threshold(settings),
        purge_horizon=learn_horizon is not None,
        cache=cache,
    )
    if learn_horizon is not None:
        learn_horizon(window.purged_before)
        if _window_start(start, window.purged_before) != since:
            return await summarize_layer_runs(
                conn,
                days=days,
                layer_name=layer_name,
                now=now,
                purge_horizon=window.purged_before,
                settings=settings,
                cache=cache,
            )
    found = await repo.summary_totals(conn, window, cache=cache)
    histograms = found.histograms
    body = _body(days, since, found.totals)
    body.update(percentile_fields(window_percentiles(histograms[0], found.extra, None)))
    for name, entry in body["by_layer"].items():
        entry.update(percentile_fields(window_percentiles(histograms[0], found.extra, (name, ""))))
    if settings is not None:
        recent_extra = found.recent_extra
        layers = recent_layers(histograms[1], recent_extra)
        thresholds = thresholds_from(histograms[1], recent_extra, layers=layers, settings=settings)
        stuck = await count_stuck(
            conn, found.running, thresholds, settings=settings, now=now, layer_name=layer_name
        )
        body["stuck_runs"] = sum(stuck.values())
        for name, entry in body["by_layer"].items():
            entry["stuck"] = stuck.get(name, 0)
    return body
