"""Layer versions: the totals of each `layer_hash` in a window, read and folded.

Read as segment_cache plans a window: the stable hours and days of
`layer_run_version_rollups` and `layer_run_duration_bins` (reused while
unchanged), plus the raw runs of the partial first hour and of the current
hour on, so every count and sum is exact; sums of squares carry
floating-point rounding only. What the totals mean (rates, means, tests,
regressions) is decided in `services/layer_versions.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_run_version_rollups, layer_runs
from runwatch.domain import LAYER_RUN_STATUSES
from runwatch.queries.buckets import Segment
from runwatch.queries.durations import (
    BinCounts,
    BinKey,
    add_raw_duration,
    window_histograms,
    window_percentiles,
)
from runwatch.queries.operator_deltas import VERSION_SUMS, version_values
from runwatch.queries.segment_cache import (
    NO_CACHE,
    RawQuery,
    RollupCache,
    merged_parts,
    plan_window,
    read_head,
    segment_bounds,
)

vr = layer_run_version_rollups
t = layer_runs


@dataclass
class VersionTotals:
    """Everything counted for one (layer, layer_hash) in a window."""

    layer_name: str
    layer_hash: str
    first_seen: datetime
    last_seen: datetime
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYER_RUN_STATUSES, 0))
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VERSION_SUMS, 0))
    percentiles: dict[int, float | None] = field(default_factory=dict)


def _version_part(segment: Segment, *, layer_name: str | None) -> Select[Any]:
    """One stable segment's sums per (layer, layer_hash, status)."""
    query = select(
        vr.c.layer_name,
        vr.c.layer_hash,
        vr.c.status,
        *(func.sum(vr.c[name]).label(name) for name in VERSION_SUMS),
        func.min(vr.c.first_seen).label("first_seen"),
        func.max(vr.c.last_seen).label("last_seen"),
    ).where(vr.c.grain == literal(segment.source), *segment_bounds(vr.c.bucket_start, segment))
    if layer_name is not None:
        query = query.where(vr.c.layer_name == layer_name)
    return query.group_by(vr.c.layer_name, vr.c.layer_hash, vr.c.status)


# Per (layer, layer_hash, status): the sums in VERSION_SUMS order, then first and last seen.
VersionSums = dict[tuple[str, str, str], list[Any]]


def _fold_versions(rows: list[Row[Any]]) -> VersionSums:
    out: VersionSums = {}
    for row in rows:
        if not row.runs or row.first_seen is None:
            continue
        values: list[Any] = [
            float(row._mapping[name] or 0.0)
            if name.endswith("_sq")
            else int(row._mapping[name] or 0)
            for name in VERSION_SUMS
        ]
        out[(row.layer_name, row.layer_hash, row.status)] = [
            *values,
            row.first_seen,
            row.last_seen,
        ]
    return out


def _add_sums(into: VersionSums, key: tuple[str, str, str], values: list[Any]) -> None:
    entry = into.get(key)
    if entry is None:
        into[key] = list(values)
        return
    for i in range(len(VERSION_SUMS)):
        entry[i] += values[i]
    first, last = values[-2], values[-1]
    entry[-2] = first if entry[-2] is None else min(entry[-2], first)
    entry[-1] = last if entry[-1] is None else max(entry[-1], last)


def _merge_versions(parts: Iterable[VersionSums]) -> tuple[VersionSums, int]:
    out: VersionSums = {}
    for part in parts:
        for key, values in part.items():
            _add_sums(out, key, values)
    return out, len(out)


# The raw runs' columns, after read_head's three.
RAW_COLUMNS = (
    "layer_name",
    "layer_hash",
    "status",
    "started_at",
    "completed_at",
    "duration_seconds",
    "insights_created",
    "tokens_total",
    "estimated_cost_usd",
)


def _versions_query(layer_name: str | None) -> RawQuery:
    return RawQuery(
        shape=("versions", layer_name is not None),
        columns=lambda: tuple(t.c[name] for name in RAW_COLUMNS),
        started_at=lambda: t.c.started_at,
        where=lambda: [] if layer_name is None else [t.c.layer_name == bindparam("layer_name")],
        params={} if layer_name is None else {"layer_name": layer_name},
    )


async def version_totals(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime | None,
    layer_name: str | None = None,
    now: datetime | None = None,
    cache: RollupCache = NO_CACHE,
) -> list[VersionTotals]:
    """Per (layer, layer_hash), the totals of the runs started in the window, oldest first."""
    plan = plan_window(since, until, now=now or datetime.now(UTC), monthly=False)
    head = await read_head(
        conn, stable=plan.stable, raw=plan.raw, query=_versions_query(layer_name)
    )
    (stable,) = await merged_parts(
        conn,
        cache,
        kind=("version_sums", layer_name),
        windows=[plan.stable],
        changes=head.changes,
        part=partial(_version_part, layer_name=layer_name),
        fold=_fold_versions,
        merge=_merge_versions,
    )
    (histograms,) = await window_histograms(
        conn, cache, windows=[plan], changes=head.changes, layer_name=layer_name, by_version=True
    )
    sums: VersionSums = {key: list(values) for key, values in stable.items()}
    extra: BinCounts = {}
    for row in plan.raw_rows(head.rows):
        run = dict(zip(RAW_COLUMNS, row[3:], strict=True))
        key = (run["layer_name"], run["layer_hash"])
        started = run["started_at"]
        _add_sums(sums, (*key, run["status"]), [*version_values(run, 1), started, started])
        add_raw_duration(extra, key, run["duration_seconds"])
    return _versions_of(sums, histograms, extra)


def _versions_of(
    sums: Mapping[tuple[str, str, str], list[Any]],
    histograms: Mapping[BinKey | None, Any],
    extra: Mapping[BinKey | None, dict[int, int]],
) -> list[VersionTotals]:
    out: dict[tuple[str, str], VersionTotals] = {}
    for (layer, version, status), values in sums.items():
        runs, first, last = values[0], values[-2], values[-1]
        if not runs or first is None:
            continue
        v = out.get((layer, version))
        if v is None:
            v = out[(layer, version)] = VersionTotals(layer, version, first, last)
        v.first_seen, v.last_seen = min(v.first_seen, first), max(v.last_seen, last)
        v.by_status[status] += int(runs)
        for i, name in enumerate(VERSION_SUMS):
            v.sums[name] += values[i]
    for key, v in out.items():
        v.percentiles = window_percentiles(histograms, extra, key)
    return sorted(out.values(), key=lambda v: (v.layer_name, v.first_seen, v.layer_hash))
