"""Upkeep of the layer-run rollups: each write's changes applied, and a rebuild from raw rows.

A write's added and removed runs are turned into per-bucket deltas in Python
and applied as one upsert in key order, in the writer's transaction; a
rebuild recomputes every bucket after a bulk load that bypassed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import layer_run_bucket_changes, layer_run_rollups, layer_runs
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
