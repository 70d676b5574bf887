"""Rollups of layer runs: kept exact on every write, and read back for totals and stats.

A window `[since, until)` is answered from whole daily buckets in the middle,
whole hourly buckets at the edges, and the raw rows of the partial hours at
either end, so the answer is exact and its cost does not grow with the table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import Dialect, dialect_of
from runwatch.db.tables import (
    DATA_VERSION_KEY,
    PURGED_BEFORE_KEY,
    layer_run_bucket_changes,
    layer_run_rollups,
    layer_runs,
    runwatch_state,
)
from runwatch.db.types import as_utc

r = layer_run_rollups
t = layer_runs

ROLLUP_KEY = ("grain", "bucket_start", "layer_name", "status")
ROLLUP_SUMS = ("runs", "insights", "tokens", "cost_nanousd", "duration_us", "completed_runs")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def nanos(cost_usd: float | None) -> int:
    """Cost in whole nano-dollars, rounded half up (as the migration's backfill does)."""
    return 0 if cost_usd is None else math.floor(cost_usd * 1e9 + 0.5)


def micros(seconds: float | None) -> int:
    return 0 if seconds is None else math.floor(seconds * 1e6 + 0.5)


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


# --- keeping the rollups exact -------------------------------------------------


def layer_run_deltas(
    added: Iterable[Mapping[str, Any]] = (), removed: Iterable[Mapping[str, Any]] = ()
) -> dict[tuple[Any, ...], list[int]]:
    """The change of each rollup row (`ROLLUP_KEY` → `ROLLUP_SUMS`) that the runs make.

    Runs are summed per (hour, layer, status) first and the hours then per day
    and month: a batch costs one small step per run, not one per run and grain.
    The sums are integers, so the order of the additions does not matter.
    """
    hourly: dict[tuple[Any, ...], list[int]] = {}
    for rows, sign in ((added, 1), (removed, -1)):
        for row in rows:
            key = (floor_hour(row["started_at"]), row["layer_name"], row["status"])
            total = hourly.get(key)
            if total is None:
                total = hourly[key] = [0, 0, 0, 0, 0, 0]
            total[0] += sign
            total[1] += sign * (row["insights_created"] or 0)
            total[2] += sign * (row["tokens_total"] or 0)
            total[3] += sign * nanos(row["estimated_cost_usd"])
            total[4] += sign * micros(row["duration_seconds"])
            total[5] += sign * (row["completed_at"] is not None)
    deltas: dict[tuple[Any, ...], list[int]] = {}
    for (hour, layer_name, status), values in hourly.items():
        day = floor_day(hour)
        for bucket in (("hour", hour), ("day", day), ("month", floor_month(day))):
            key = (*bucket, layer_name, status)
            total = deltas.get(key)
            if total is None:
                deltas[key] = list(values)
            else:
                for i, value in enumerate(values):
                    total[i] += value
    return deltas


async def record_layer_run_changes(
    conn: AsyncConnection,
    *,
    added: Iterable[Mapping[str, Any]] = (),
    removed: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Apply the runs a write added and removed (an update is both) to the rollups.

    Call in the same transaction as the write. Deltas are summed per bucket
    first and applied in key order, so concurrent writers lock rollup rows in
    the same order and cannot deadlock. Then advances the data version.
    """
    deltas = layer_run_deltas(added, removed)
    columns = (*ROLLUP_KEY, *ROLLUP_SUMS)
    params = [
        dict(zip(columns, (*key, *v), strict=True)) for key, v in sorted(deltas.items()) if any(v)
    ]
    await dialect_of(conn).upsert_many(conn, r, params, key=ROLLUP_KEY, summed=ROLLUP_SUMS)
    await bump_data_version(conn)


NEW_VERSION_INFO_KEY = "runwatch_new_data_version"


async def bump_data_version(conn: AsyncConnection) -> None:
    """Advance the version that ETags are made from (in the writer's transaction).

    The new version is left in `conn.info`, so that once the transaction has
    committed the writing process can update its own cached version at once
    (other processes hear of it by notification).
    """
    result = await conn.execute(
        update(runwatch_state)
        .where(runwatch_state.c.key == DATA_VERSION_KEY)
        .values(number=runwatch_state.c.number + 1)
        .returning(
            runwatch_state.c.number,
            dialect_of(conn).announce_new_version(runwatch_state.c.number),
        )
    )
    row = result.first()
    if row is not None:
        conn.info[NEW_VERSION_INFO_KEY] = int(row[0])


@dataclass(frozen=True)
class DataState:
    """The data version (what ETags are made of) and the layer-run purge horizon."""

    version: int
    purged_before: datetime | None


_STATE_QUERY = select(runwatch_state.c.key, runwatch_state.c.number, runwatch_state.c.moment).where(
    runwatch_state.c.key.in_([DATA_VERSION_KEY, PURGED_BEFORE_KEY])
)


async def read_data_state(conn: AsyncConnection) -> DataState:
    """Both in one statement: a read needs the version for its tag, a list the horizon too."""
    version, horizon = 0, None
    for key, number, moment in await conn.execute(_STATE_QUERY):
        if key == DATA_VERSION_KEY:
            version = int(number or 0)
        else:
            horizon = moment
    return DataState(version, horizon)


async def data_version(conn: AsyncConnection) -> int:
    query = select(runwatch_state.c.number).where(runwatch_state.c.key == DATA_VERSION_KEY)
    return int((await conn.execute(query)).scalar_one_or_none() or 0)


async def purged_before(conn: AsyncConnection) -> datetime | None:
    query = select(runwatch_state.c.moment).where(runwatch_state.c.key == PURGED_BEFORE_KEY)
    return (await conn.execute(query)).scalar_one_or_none()


async def set_purged_before(conn: AsyncConnection, moment: datetime) -> None:
    """Move the horizon, and the version with it: readers cache the horizon per version."""
    await dialect_of(conn).upsert_many(
        conn,
        runwatch_state,
        [{"key": PURGED_BEFORE_KEY, "moment": moment, "number": None}],
        key=("key",),
        replaced=("moment",),
    )
    await bump_data_version(conn)


# --- reading them back ------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A part of a window answered one way: raw rows, or rollups of one grain."""

    source: str  # "raw", "hour" or "day"
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

    @property
    def cost_usd(self) -> float:
        return self.cost_nanousd / 1e9


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


async def rebuild_layer_run_rollups(
    conn: AsyncConnection, *, progress: Callable[[int], object] | None = None
) -> None:
    """Recompute every rollup from the raw rows (after a bulk load that bypassed them).

    Rollups of purged periods cannot be recomputed (their rows are gone), so
    buckets before the purge horizon are kept as they are. `progress(1)` is
    called as each grain (hour, day, month) is done.
    """
    dialect = dialect_of(conn)
    horizon = await purged_before(conn)
    keep_before = [] if horizon is None else [r.c.bucket_start < floor_day(horizon)]
    await conn.execute(r.delete().where(*(~c for c in keep_before)))
    if horizon is not None:
        # The month of the horizon holds purged runs and kept ones: it is
        # summed again below from its days, which are exact on both sides.
        partial_month = (r.c.grain == "month") & (r.c.bucket_start >= floor_month(horizon))
        await conn.execute(r.delete().where(partial_month))
    for grain, _floor, _ceil in GRAINS:
        if grain == "month" and horizon is not None:
            month = dialect.truncate_to("month", r.c.bucket_start)
            from_days = (
                select(
                    literal("month"),
                    month,
                    r.c.layer_name,
                    r.c.status,
                    *(func.sum(r.c[name]) for name in ROLLUP_SUMS),
                )
                .where(r.c.grain == "day", r.c.bucket_start >= floor_month(horizon))
                .group_by(month, r.c.layer_name, r.c.status)
            )
            await conn.execute(r.insert().from_select([*ROLLUP_KEY, *ROLLUP_SUMS], from_days))
            if progress is not None:
                progress(1)
            continue
        bucket = dialect.truncate_to(grain, t.c.started_at)
        rows = (
            select(
                literal(grain),
                bucket,
                t.c.layer_name,
                t.c.status,
                func.count(),
                func.coalesce(func.sum(t.c.insights_created), 0),
                func.coalesce(func.sum(t.c.tokens_total), 0),
                func.coalesce(
                    func.sum(dialect.round_half_up_to_int(t.c.estimated_cost_usd * 1e9)), 0
                ),
                func.coalesce(
                    func.sum(dialect.round_half_up_to_int(t.c.duration_seconds * 1e6)), 0
                ),
                func.count(t.c.completed_at),
            )
            .where(*([] if horizon is None else [t.c.started_at >= floor_day(horizon)]))
            .group_by(bucket, t.c.layer_name, t.c.status)
        )
        await conn.execute(r.insert().from_select([*ROLLUP_KEY, *ROLLUP_SUMS], rows))
        if progress is not None:
            progress(1)
    # Fresh statistics, or the planner may scan the whole table for a window.
    await conn.execute(text("ANALYZE layer_run_rollups"))
    await count_rebuilt_buckets(conn)
    await bump_data_version(conn)


async def count_rebuilt_buckets(conn: AsyncConnection) -> None:
    """Count a rebuild as a change of every bucket, so that no reader reuses what it read before.

    Buckets counted before get one more; buckets with runs that were never
    counted (a bulk load that bypassed the service) get their first.
    """
    bc = layer_run_bucket_changes
    await conn.execute(update(bc).values(changes=bc.c.changes + 1))
    counted = (
        select(bc.c.grain)
        .where(bc.c.grain == r.c.grain, bc.c.bucket_start == r.c.bucket_start)
        .exists()
    )
    uncounted = (
        select(r.c.grain, r.c.bucket_start, literal(1))
        .where(~counted)
        .group_by(r.c.grain, r.c.bucket_start)
    )
    await conn.execute(bc.insert().from_select(["grain", "bucket_start", "changes"], uncounted))
