"""Reads of the layer-run rollups: totals and counts over a window, and sums per bucket.

A window `[since, until)` is answered from whole months, days and hours of
rollups in the middle and the raw rows of the partial hours at either end
(`buckets.plan_segments`), so the answer is exact and its cost does not grow
with the table.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    bindparam,
    cast,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import Dialect, dialect_of
from runwatch.db.tables import layer_run_rollups, layer_runs
from runwatch.db.types import as_utc
from runwatch.queries.buckets import Segment, plan_segments

r = layer_run_rollups
t = layer_runs

ROLLUP_KEY = ("grain", "bucket_start", "layer_name", "status")
ROLLUP_SUMS = ("runs", "insights", "tokens", "cost_nanousd", "duration_us", "completed_runs")


@dataclass(frozen=True)
class GroupTotals:
    """Aggregates of one (layer, status) group over a window."""

    layer_name: str
    status: str
    runs: int
    insights: int
    tokens: int
    cost_nanousd: int
    duration_us: int
    completed_runs: int


def _raw_part(segment: Segment, dims: list[ColumnElement[bool]], dialect: Dialect) -> Any:
    conditions = list(dims)
    if segment.start is not None:
        conditions.append(t.c.started_at >= segment.start)
    if segment.end is not None:
        conditions.append(t.c.started_at < segment.end)
    cost = dialect.round_half_up_to_int(t.c.estimated_cost_usd * 1e9)
    duration = dialect.round_half_up_to_int(t.c.duration_seconds * 1e6)
    return (
        select(
            t.c.layer_name,
            t.c.status,
            func.count().label("runs"),
            func.coalesce(func.sum(t.c.insights_created), 0).label("insights"),
            func.coalesce(func.sum(t.c.tokens_total), 0).label("tokens"),
            func.coalesce(func.sum(cost), 0).label("cost_nanousd"),
            func.coalesce(func.sum(duration), 0).label("duration_us"),
            func.count(t.c.completed_at).label("completed_runs"),
        )
        .where(*conditions)
        .group_by(t.c.layer_name, t.c.status)
    )


def _rollup_part(segment: Segment, dims: list[ColumnElement[bool]]) -> Any:
    conditions = [r.c.grain == literal(segment.source), *dims]
    if segment.start is not None:
        conditions.append(r.c.bucket_start >= segment.start)
    if segment.end is not None:
        conditions.append(r.c.bucket_start < segment.end)
    return (
        select(
            r.c.layer_name,
            r.c.status,
            *(func.sum(r.c[name]).label(name) for name in ROLLUP_SUMS),
        )
        .where(*conditions)
        .group_by(r.c.layer_name, r.c.status)
    )


def layer_status_sums(segment: Segment, *, layer_name: str | None) -> Any:
    """The sums of one rollup segment per (layer, status), of one layer or of all."""
    return _rollup_part(segment, _dimension_conditions(r, layer_name, ()))


def _dimension_conditions(
    table: Any, layer_name: str | None, statuses: tuple[str, ...]
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if layer_name is not None:
        conditions.append(table.c.layer_name == layer_name)
    if statuses:
        conditions.append(table.c.status.in_(statuses))
    return conditions


async def rollup_totals(
    conn: AsyncConnection,
    *,
    layer_name: str | None = None,
    statuses: tuple[str, ...] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[GroupTotals]:
    """Per (layer, status) totals of the runs started in `[since, until)`, from rollups."""
    segments = plan_segments(since, until)
    if not segments:
        return []
    raw_dims = _dimension_conditions(t, layer_name, statuses)
    rollup_dims = _dimension_conditions(r, layer_name, statuses)
    parts = [
        _raw_part(s, raw_dims, dialect_of(conn))
        if s.source == "raw"
        else _rollup_part(s, rollup_dims)
        for s in segments
    ]
    if len(parts) == 1:
        query = parts[0]
    else:
        # Merge the parts in the database: one row per (layer, status) comes back.
        union = union_all(*parts).subquery("parts")
        query = select(
            union.c.layer_name,
            union.c.status,
            *(func.sum(union.c[name]).label(name) for name in ROLLUP_SUMS),
        ).group_by(union.c.layer_name, union.c.status)
    groups = [
        GroupTotals(row[0], row[1], *(int(v or 0) for v in row[2:]))
        for row in await conn.execute(query)
    ]
    return sorted((g for g in groups if g.runs), key=lambda g: (g.layer_name, g.status))


def _window_shape(
    segments: list[Segment], prefix: str
) -> tuple[tuple[tuple[str, bool, bool], ...], dict[str, Any]]:
    shape = tuple((s.source, s.start is not None, s.end is not None) for s in segments)
    params: dict[str, Any] = {}
    for i, s in enumerate(segments):
        if s.start is not None:
            params[f"{prefix}seg{i}_start"] = s.start
        if s.end is not None:
            params[f"{prefix}seg{i}_end"] = s.end
    return shape, params


def _bound_dims(table: Any, prefix: str, has_layer: bool, statuses: int) -> list[Any]:
    """Layer and status conditions; `statuses` is 0 (none), 1 (one: `status`) or 2 (a list)."""
    conditions: list[Any] = []
    if has_layer:
        conditions.append(table.c.layer_name == bindparam(prefix + "layer_name"))
    if statuses == 1:
        conditions.append(table.c.status == bindparam(prefix + "status"))
    elif statuses:
        conditions.append(table.c.status.in_(bindparam(prefix + "statuses", expanding=True)))
    return conditions


def _bound_segment(
    prefix: str, i: int, source: str, has_start: bool, has_end: bool
) -> list[ColumnElement[bool]]:
    column = t.c.started_at if source == "raw" else r.c.bucket_start
    conditions = [] if source == "raw" else [r.c.grain == literal(source)]
    if has_start:
        conditions.append(column >= bindparam(f"{prefix}seg{i}_start"))
    if has_end:
        conditions.append(column < bindparam(f"{prefix}seg{i}_end"))
    return conditions


def rollup_count_shape(
    *,
    layer_name: str | None = None,
    statuses: tuple[str, ...] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    prefix: str = "",
) -> tuple[Hashable, dict[str, Any]]:
    """Shape and parameters of the statement counting runs started in `[since, until)`.

    The same plan as `rollup_totals`, summed in the database to one number.
    """
    window, params = _window_shape(plan_segments(since, until), prefix)
    if layer_name is not None:
        params[prefix + "layer_name"] = layer_name
    if len(statuses) == 1:
        params[prefix + "status"] = statuses[0]
    elif statuses:
        params[prefix + "statuses"] = list(statuses)
    return (window, layer_name is not None, min(len(statuses), 2)), params


def rollup_count_statement(shape: Hashable, *, prefix: str = "") -> Select[Any]:
    """The one-value statement of a `rollup_count_shape`."""
    assert isinstance(shape, tuple)
    window, has_layer, has_statuses = shape
    if not window:
        return select(literal(0, BigInteger))
    raw_dims = _bound_dims(t, prefix, has_layer, has_statuses)
    rollup_dims = _bound_dims(r, prefix, has_layer, has_statuses)
    parts = []
    for i, (source, has_start, has_end) in enumerate(window):
        bounds = _bound_segment(prefix, i, source, has_start, has_end)
        if source == "raw":
            part = select(func.count().label("n")).select_from(t).where(*raw_dims, *bounds)
        else:
            part = select(func.sum(r.c.runs).label("n")).where(*rollup_dims, *bounds)
        parts.append(part)
    union = union_all(*parts).subquery("parts")
    return select(cast(func.coalesce(func.sum(union.c.n), 0), BigInteger))


async def rollup_buckets(
    conn: AsyncConnection,
    *,
    grain: str,
    start: datetime,
    end: datetime,
    layer_name: str | None = None,
) -> dict[tuple[datetime, str], list[int]]:
    """Sums per (bucket start, status) of whole `grain` buckets in `[start, end)`."""
    conditions = [r.c.grain == grain, r.c.bucket_start >= start, r.c.bucket_start < end]
    conditions += _dimension_conditions(r, layer_name, ())
    query = (
        select(r.c.bucket_start, r.c.status, *(func.sum(r.c[n]).label(n) for n in ROLLUP_SUMS))
        .where(*conditions)
        .group_by(r.c.bucket_start, r.c.status)
    )
    out: dict[tuple[datetime, str], list[int]] = {}
    for row in await conn.execute(query):
        bucket = row.bucket_start
        if isinstance(bucket, str):  # SQLite returns aggregated keys as text
            bucket = as_utc(datetime.fromisoformat(bucket))
        out[(bucket, row.status)] = [int(row._mapping[n] or 0) for n in ROLLUP_SUMS]
    return out
