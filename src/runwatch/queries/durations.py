"""Duration percentiles of layer runs over a window, from the histogram rollups.

The stable hours, days and months of a window come from
`layer_run_duration_bins` (reused while unchanged, see segment_cache); the
runs read raw (the partial first hour, and everything from the start of the
current hour on) are binned here, so the bin counts are exact and each
percentile is within 2% of the exact one (runwatch.percentiles). Only
completed runs have a duration; every final status counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Row, Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_run_duration_bins, layer_runs
from runwatch.percentiles import PERCENTILES, Histogram, duration_bin
from runwatch.queries.buckets import Segment
from runwatch.queries.segment_cache import (
    RollupCache,
    WindowPlan,
    merged_parts,
    segment_bounds,
)

db = layer_run_duration_bins
t = layer_runs

# Counts are kept per (layer, layer_hash); the hash is "" when counted per layer.
BinKey = tuple[str, str]
BinCounts = dict[BinKey | None, dict[int, int]]  # under None: all keys together
# Per key, and for all keys together under None.
Histograms = dict[BinKey | None, Histogram]
EMPTY = Histogram({})


def bins_part(segment: Segment, *, layer_name: str | None, by_version: bool) -> Select[Any]:
    """The bin counts of one stable segment, per layer (and version when `by_version`)."""
    version = db.c.layer_hash if by_version else literal("").label("layer_hash")
    query = select(db.c.layer_name, version, db.c.bin, func.sum(db.c.runs).label("runs")).where(
        db.c.grain == literal(segment.source), *segment_bounds(db.c.bucket_start, segment)
    )
    if layer_name is not None:
        query = query.where(db.c.layer_name == layer_name)
    return query.group_by(db.c.layer_name, *([db.c.layer_hash] if by_version else []), db.c.bin)


def fold_bins(rows: list[Row[Any]]) -> BinCounts:
    out: BinCounts = defaultdict(dict)
    for row in rows:
        out[(row[0], row[1])][int(row[2])] = int(row[3] or 0)
    return dict(out)


def merge_bins(parts: Iterable[BinCounts]) -> tuple[Histograms, int]:
    """Histograms per key and overall from segments' counts; the weight is the cells merged."""
    counts: BinCounts = defaultdict(lambda: defaultdict(int))
    overall: dict[int, int] = defaultdict(int)
    cells = 0
    for part in parts:
        for key, bins in part.items():
            mine = counts[key]
            cells += len(bins)
            for index, n in bins.items():
                mine[index] += n
                overall[index] += n
    out: Histograms = {key: Histogram(c) for key, c in counts.items()}
    out[None] = Histogram(overall)
    return out, cells


async def window_histograms(
    conn: AsyncConnection,
    cache: RollupCache,
    *,
    windows: Sequence[WindowPlan],
    changes: Mapping[Segment, int],
    layer_name: str | None,
    by_version: bool,
) -> list[Histograms]:
    """The histograms of each window's stable segments (the uncached ones read together)."""
    return await merged_parts(
        conn,
        cache,
        kind=("duration_bins", layer_name, by_version),
        windows=[w.stable for w in windows],
        changes=changes,
        part=partial(bins_part, layer_name=layer_name, by_version=by_version),
        fold=fold_bins,
        merge=merge_bins,
    )


def add_raw_duration(extra: BinCounts, key: BinKey, seconds: float | None) -> None:
    """Count one raw run's duration (if it has one) under its key and overall."""
    if seconds is None:
        return
    index = duration_bin(seconds)
    for k in (key, None):
        bins = extra.setdefault(k, {})
        bins[index] = bins.get(index, 0) + 1


def add_counts(into: dict[Any, dict[int, int]], counts: Mapping[Any, Mapping[int, int]]) -> None:
    """Add bin counts per key to `into`."""
    for key, bins in counts.items():
        mine = into.setdefault(key, {})
        for index, n in bins.items():
            mine[index] = mine.get(index, 0) + n


def percentile_fields(found: Mapping[int, float | None]) -> dict[str, float | None]:
    """`duration_p50_seconds`, `duration_p95_seconds` and `duration_p99_seconds`."""
    return {f"duration_p{p}_seconds": found[p] for p in PERCENTILES}


def window_percentiles(
    histograms: Histograms, extra: Mapping[BinKey | None, dict[int, int]], key: BinKey | None
) -> dict[int, float | None]:
    """p50/p95/p99 of one key (None: all) over the stable histograms plus the raw runs."""
    return histograms.get(key, EMPTY).percentiles(extra.get(key))
