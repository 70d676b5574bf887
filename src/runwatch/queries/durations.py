"""Duration percentiles of layer runs over a window, from the histogram rollups.

Whole days and hours come from `layer_run_duration_bins`; the runs of the
partial hours at the window's edges are binned here, so the bin counts are
exact and each percentile is within 2% of the exact one (runwatch.percentiles).
Only completed runs have a duration; every final status counts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_run_duration_bins, layer_runs
from runwatch.percentiles import PERCENTILES, duration_bin, percentiles
from runwatch.queries.error_groups import window_segments

db = layer_run_duration_bins
t = layer_runs

BinCounts = dict[tuple[str, str], dict[int, int]]


async def duration_bin_counts(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime | None,
    layer_name: str | None = None,
) -> BinCounts:
    """Per (layer, layer_hash), how many completed runs of the window fell in each bin."""
    counts: BinCounts = defaultdict(lambda: defaultdict(int))
    rolled = []
    for segment in window_segments(since, until):
        if segment.source == "raw":
            query = select(t.c.layer_name, t.c.layer_hash, t.c.duration_seconds).where(
                t.c.duration_seconds.is_not(None),
                *([] if segment.start is None else [t.c.started_at >= segment.start]),
                *([] if segment.end is None else [t.c.started_at < segment.end]),
                *([] if layer_name is None else [t.c.layer_name == layer_name]),
            )
            for layer, version, seconds in await conn.execute(query):
                counts[(layer, version)][duration_bin(seconds)] += 1
            continue
        rolled.append(
            select(db.c.layer_name, db.c.layer_hash, db.c.bin, func.sum(db.c.runs).label("runs"))
            .where(
                db.c.grain == literal(segment.source),
                *([] if segment.start is None else [db.c.bucket_start >= segment.start]),
                *([] if segment.end is None else [db.c.bucket_start < segment.end]),
                *([] if layer_name is None else [db.c.layer_name == layer_name]),
            )
            .group_by(db.c.layer_name, db.c.layer_hash, db.c.bin)
        )
    if rolled:
        union = union_all(*rolled).subquery("bins")
        query = select(
            union.c.layer_name, union.c.layer_hash, union.c.bin, func.sum(union.c.runs)
        ).group_by(union.c.layer_name, union.c.layer_hash, union.c.bin)
        for layer, version, index, n in await conn.execute(query):
            counts[(layer, version)][int(index)] += int(n or 0)
    return counts


def percentile_fields(bins: dict[int, int]) -> dict[str, float | None]:
    """`duration_p50_seconds`, `duration_p95_seconds` and `duration_p99_seconds` of some bins."""
    found = percentiles(bins)
    return {f"duration_p{p}_seconds": found[p] for p in PERCENTILES}


def merged(counts: BinCounts, keep: Any = lambda key: True) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for key, bins in counts.items():
        if keep(key):
            for index, n in bins.items():
                out[index] += n
    return out


async def add_duration_percentiles(
    conn: AsyncConnection, summary: dict[str, Any], *, layer_name: str | None
) -> dict[str, Any]:
    """Add p50/p95/p99 to a summary body, overall and per layer (same window)."""
    counts = await duration_bin_counts(
        conn, since=summary["since"], until=None, layer_name=layer_name
    )
    # One pass over the bins: per layer, and for everything.
    by_layer: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overall: dict[int, int] = defaultdict(int)
    for (name, _version), bins in counts.items():
        layer = by_layer[name]
        for index, n in bins.items():
            layer[index] += n
            overall[index] += n
    summary.update(percentile_fields(overall))
    for name, entry in summary["by_layer"].items():
        entry.update(percentile_fields(by_layer.get(name, {})))
    return summary
