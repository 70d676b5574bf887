"""Upkeep of the layer-run rollups: each write's changes applied, and a rebuild from raw rows.

A write's added and removed runs are turned into per-bucket deltas in Python
and applied as one upsert in key order, in the writer's transaction; a
rebuild recomputes every bucket after a bulk load that bypassed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import Dialect, dialect_of
from runwatch.db.tables import (
    ROLLUP_GRAINS,
    layer_run_bucket_changes,
    layer_run_rollups,
    layer_runs,
)
from runwatch.queries.buckets import GRAINS, floor_day, floor_hour, floor_month, micros, nanos
from runwatch.queries.data_state import bump_data_version, purged_before
from runwatch.queries.rollups import ROLLUP_KEY, ROLLUP_SUMS

r = layer_run_rollups
t = layer_runs


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


def rollup_sums(dialect: Dialect, grain: str, runs: FromClause) -> Select[Any]:
    """One grain's rollup rows summed in SQL from `runs`: `ROLLUP_KEY`, then `ROLLUP_SUMS`.

    The same sums as `layer_run_deltas` (integers, so in any order); used by
    the rebuild over every run and by `add_batch_to_rollups` over a batch.
    """
    cost, duration = runs.c.estimated_cost_usd, runs.c.duration_seconds
    sums = [
        func.count().label("runs"),
        func.coalesce(func.sum(runs.c.insights_created), 0).label("insights"),
        func.coalesce(func.sum(runs.c.tokens_total), 0).label("tokens"),
        func.coalesce(func.sum(dialect.round_half_up_to_int(cost * 1e9)), 0).label("cost_nanousd"),
        func.coalesce(func.sum(dialect.round_half_up_to_int(duration * 1e6)), 0).label(
            "duration_us"
        ),
        func.count(runs.c.completed_at).label("completed_runs"),
    ]
    return sums_by_bucket(dialect, grain, runs, ("layer_name", "status"), sums)


def sums_by_bucket(
    dialect: Dialect,
    grain: str,
    runs: FromClause,
    names: Sequence[str],
    sums: Sequence[ColumnElement[Any]],
) -> Select[Any]:
    """`sums` over `runs` per `grain` bucket of their start and per `names`, in that order."""
    bucket = dialect.truncate_to(grain, runs.c.started_at)
    keys = [runs.c[name] for name in names]
    columns = [literal(grain).label("grain"), bucket.label("bucket_start"), *keys, *sums]
    return select(*columns).group_by(bucket, *keys)


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


async def add_batch_to_rollups(conn: AsyncConnection, ids: Sequence[str]) -> None:
    """`record_layer_run_changes` for runs just inserted, summed by the database.

    One `INSERT … SELECT … ON CONFLICT` over the runs read back by id, its
    rows in key order as a single write locks them (see `batch_upsert`).
    PostgreSQL only (`Dialect.sums_batches`).
    """
    await conn.execute(_batch_statement(dialect_of(conn)), {"ids": list(ids)})
    await bump_data_version(conn)


def batch_columns() -> list[Any]:
    """What the sums read of a run, for the batch statements that read runs back by id."""
    names = ("started_at", "layer_name", "layer_hash", "status", "completed_at")
    names += ("duration_seconds", "insights_created", "tokens_total", "estimated_cost_usd")
    return [t.c[name] for name in names]


@cache
def _batch_statement(dialect: Dialect) -> Any:
    added = select(*batch_columns()).where(dialect.among(t.c.id, "ids")).cte("added")
    sums = [rollup_sums(dialect, grain, added) for grain in ROLLUP_GRAINS]
    return dialect.batch_upsert(r, sums, key=ROLLUP_KEY, summed=ROLLUP_SUMS)


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
        where = [] if horizon is None else [t.c.started_at >= floor_day(horizon)]
        rows = rollup_sums(dialect, grain, t).where(*where)
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
