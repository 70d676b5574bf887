"""Layer runs per hour or day, for charts: contiguous, zero-filled buckets from the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.domain import LAYER_RUN_STATUSES
from runwatch.metrics import measured
from runwatch.queries.buckets import floor_day, floor_hour
from runwatch.queries.rollups import rollup_buckets


@measured("layer_run_timeseries")
async def layer_run_timeseries(
    conn: AsyncConnection,
    *,
    grain: str,
    days: int,
    layer_name: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Contiguous, zero-filled hourly or daily buckets ending with the current one."""
    now = now or datetime.now(UTC)
    step = timedelta(hours=1) if grain == "hour" else timedelta(days=1)
    count = days * 24 if grain == "hour" else days
    end = (floor_hour(now) if grain == "hour" else floor_day(now)) + step
    start = end - count * step
    sums = await rollup_buckets(conn, grain=grain, start=start, end=end, layer_name=layer_name)
    buckets = []
    for i in range(count):
        bucket_start = start + i * step
        by_status = dict.fromkeys(LAYER_RUN_STATUSES, 0)
        insights = tokens = cost = 0
        for status in LAYER_RUN_STATUSES:
            values = sums.get((bucket_start, status))
            if values:
                by_status[status] = values[0]
                insights += values[1]
                tokens += values[2]
                cost += values[3]
        buckets.append(
            {
                "start": bucket_start,
                "runs": sum(by_status.values()),
                "by_status": by_status,
                "insights": insights,
                "tokens": tokens,
                "cost_usd": cost / 1e9,
            }
        )
    return {
        "bucket": grain,
        "period_days": days,
        "start": start,
        "end": end,
        "layer_name": layer_name,
        "buckets": buckets,
    }
