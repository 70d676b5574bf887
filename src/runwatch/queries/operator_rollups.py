"""Write-time upkeep of the error-group and layer-version rollups, and their rebuild.

`record_operator_changes` is called by every write of a layer run, in the
writer's transaction, with the rows the write added and removed (an update is
both), as the run rollups are kept. It applies what `operator_deltas` makes of
them, in key order so that concurrent writers lock rollup rows in the same
order. It also counts the write against every hour, day and month its runs
started in (`layer_run_bucket_changes`), which tells readers what they may
reuse.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import (
    ERROR_ROLLUP_GRAINS,
    NO_MODEL,
    error_fingerprints,
    layer_run_bucket_changes,
    layer_run_duration_bins,
    layer_run_error_rollups,
    layer_run_errors,
    layer_run_version_rollups,
    layer_runs,
)
from runwatch.percentiles import duration_bin
from runwatch.queries.buckets import floor_day
from runwatch.queries.data_state import purged_before
from runwatch.queries.operator_deltas import (
    DURATION_KEY,
    ERROR_KEY,
    ERROR_SUMS,
    FLOORS,
    STEPS,
    VERSION_KEY,
    VERSION_SUMS,
    Rows,
    changed_buckets,
    duration_changes,
    error_changes,
    version_changes,
)
from runwatch.queries.rollup_upkeep import count_rebuilt_buckets

e = layer_run_errors
er = layer_run_error_rollups
vr = layer_run_version_rollups
db = layer_run_duration_bins
t = layer_runs


async def record_operator_changes(
    conn: AsyncConnection,
    *,
    added: Iterable[Mapping[str, Any]] = (),
    removed: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Apply the runs a write added and removed to the error and version rollups."""
    added, removed = list(added), list(removed)
    await _record_errors(conn, added, removed)
    await _record_versions(conn, added, removed)
    await _record_durations(conn, added, removed)
    await _record_bucket_changes(conn, added, removed)


def _where_key(table: Any, names: tuple[str, ...]) -> Any:
    return and_(*(table.c[name] == bindparam(f"k_{name}") for name in names))


async def _upsert_seen(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, Any]],
    key: tuple[str, ...],
    summed: tuple[str, ...],
) -> None:
    """Add the sums to the rollup rows, widening their first and last seen."""
    await dialect_of(conn).upsert_many(
        conn, table, rows, key=key, summed=summed, least=("first_seen",), greatest=("last_seen",)
    )


async def _settle_seen(
    conn: AsyncConnection,
    table: Table,
    key: tuple[str, ...],
    rows: list[dict[str, Any]],
    started_at: Any,
    match: ColumnElement[bool],
) -> None:
    """After rows lost runs: drop the emptied, recompute first and last seen of the others.

    `match` picks the runs (or occurrences) of one rollup row from its `k_`
    parameters and `k_end`, the end of its bucket; `started_at` is their start.
    """
    shrunk = [{f"k_{name}": p[name] for name in key} for p in rows if p["runs"] < 0]
    if not shrunk:
        return
    await conn.execute(delete(table).where(_where_key(table, key), table.c.runs <= 0), shrunk)
    for grain in ERROR_ROLLUP_GRAINS:
        mine = [p for p in shrunk if p["k_grain"] == grain]
        if not mine:
            continue
        for p in mine:
            p["k_end"] = p["k_bucket_start"] + STEPS[grain]
        await conn.execute(
            update(table)
            .where(_where_key(table, key))
            .values(
                first_seen=select(func.min(started_at)).where(match).scalar_subquery(),
                last_seen=select(func.max(started_at)).where(match).scalar_subquery(),
            ),
            mine,
        )


async def _record_errors(conn: AsyncConnection, added: Rows, removed: Rows) -> None:
    changes = error_changes(added, removed)
    if changes is None:
        return
    dialect = dialect_of(conn)
    if changes.gone:
        await conn.execute(delete(e).where(tuple_(e.c.run_id, e.c.fingerprint).in_(changes.gone)))
    if changes.occurrences:
        await dialect.insert_many_ignoring_conflicts(conn, error_fingerprints, changes.fingerprints)
        await dialect.upsert_many(
            conn,
            e,
            changes.occurrences,
            key=("run_id", "fingerprint"),
            replaced=("started_at", "layer_name", "layer_hash", "status", "model_name", "errors"),
        )
    await _upsert_seen(conn, er, changes.rollups, ERROR_KEY, ERROR_SUMS)
    match = and_(
        e.c.fingerprint == bindparam("k_fingerprint"),
        e.c.started_at >= bindparam("k_bucket_start"),
        e.c.started_at < bindparam("k_end"),
        e.c.layer_name == bindparam("k_layer_name"),
        e.c.layer_hash == bindparam("k_layer_hash"),
        e.c.status == bindparam("k_status"),
        func.coalesce(e.c.model_name, literal(NO_MODEL)) == bindparam("k_model_name"),
    )
    await _settle_seen(conn, er, ERROR_KEY, changes.rollups, e.c.started_at, match)


async def _record_versions(conn: AsyncConnection, added: Rows, removed: Rows) -> None:
    params = version_changes(added, removed)
    if not params:
        return
    await _upsert_seen(conn, vr, params, VERSION_KEY, VERSION_SUMS)
    match = and_(
        t.c.layer_name == bindparam("k_layer_name"),
        t.c.status == bindparam("k_status"),
        t.c.started_at >= bindparam("k_bucket_start"),
        t.c.started_at < bindparam("k_end"),
        t.c.layer_hash == bindparam("k_layer_hash"),
    )
    await _settle_seen(conn, vr, VERSION_KEY, params, t.c.started_at, match)


async def _record_durations(conn: AsyncConnection, added: Rows, removed: Rows) -> None:
    params = duration_changes(added, removed)
    if not params:
        return
    await dialect_of(conn).upsert_many(conn, db, params, key=DURATION_KEY, summed=("runs",))
    shrunk = [{f"k_{name}": p[name] for name in DURATION_KEY} for p in params if p["runs"] < 0]
    if shrunk:
        await conn.execute(delete(db).where(_where_key(db, DURATION_KEY), db.c.runs <= 0), shrunk)


async def _record_bucket_changes(conn: AsyncConnection, added: Rows, removed: Rows) -> None:
    params = changed_buckets(added, removed)
    key = ("grain", "bucket_start")
    await dialect_of(conn).upsert_many(
        conn, layer_run_bucket_changes, params, key=key, summed=("changes",)
    )


# --- rebuilding ------------------------------------------------------------------


async def rebuild_operator_rollups(conn: AsyncConnection) -> None:
    """Recompute the error and version rollups from the raw runs, as the run rollups are.

    What lies before the purge horizon cannot be recomputed and is kept.
    """
    dialect = dialect_of(conn)
    horizon = await purged_before(conn)
    cut = None if horizon is None else floor_day(horizon)
    for table, column in (
        (er, er.c.bucket_start),
        (vr, vr.c.bucket_start),
        (db, db.c.bucket_start),
        (e, e.c.started_at),
    ):
        await conn.execute(delete(table).where(*([] if cut is None else [column >= cut])))
    recent = [] if cut is None else [t.c.started_at >= cut]
    for grain in ERROR_ROLLUP_GRAINS:
        bucket = dialect.truncate_to(grain, t.c.started_at)
        duration, cost = t.c.duration_seconds, t.c.estimated_cost_usd
        rows = (
            select(
                literal(grain),
                bucket,
                t.c.layer_name,
                t.c.layer_hash,
                t.c.status,
                func.count(),
                func.count(t.c.completed_at),
                func.coalesce(func.sum(dialect.round_half_up_to_int(duration * 1e6)), 0),
                func.coalesce(func.sum(duration * duration), 0.0),
                func.coalesce(func.sum(t.c.insights_created), 0),
                func.coalesce(func.sum(t.c.tokens_total), 0),
                func.count(cost),
                func.coalesce(func.sum(dialect.round_half_up_to_int(cost * 1e9)), 0),
                func.coalesce(func.sum(cost * cost), 0.0),
                func.min(t.c.started_at),
                func.max(t.c.started_at),
            )
            .where(*recent)
            .group_by(bucket, t.c.layer_name, t.c.layer_hash, t.c.status)
        )
        columns = [*VERSION_KEY, *VERSION_SUMS, "first_seen", "last_seen"]
        await conn.execute(vr.insert().from_select(columns, rows))
    query = select(t).where(t.c.errors.is_not(None), *recent).order_by(t.c.started_at, t.c.id)
    batch: list[Mapping[str, Any]] = []
    for row in (await conn.execute(query)).mappings():
        batch.append(dict(row))
        if len(batch) >= 1000:
            await _record_errors(conn, batch, [])
            batch = []
    if batch:
        await _record_errors(conn, batch, [])
    await _rebuild_durations(conn, recent)
    for table in (
        "layer_run_error_rollups",
        "layer_run_version_rollups",
        "layer_run_duration_bins",
    ):
        await conn.execute(text(f"ANALYZE {table}"))
    await count_rebuilt_buckets(conn)


async def _rebuild_durations(conn: AsyncConnection, recent: list[Any]) -> None:
    """Count the bins in Python: SQLite may be built without `ln`."""
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    query = select(t.c.started_at, t.c.layer_name, t.c.layer_hash, t.c.duration_seconds).where(
        t.c.duration_seconds.is_not(None), *recent
    )
    async for started, layer, version, seconds in await conn.stream(query):
        index = duration_bin(seconds)
        for grain in ERROR_ROLLUP_GRAINS:
            counts[(grain, FLOORS[grain](started), layer, version, index)] += 1
    params = [{**dict(zip(DURATION_KEY, k, strict=True)), "runs": n} for k, n in counts.items()]
    for i in range(0, len(params), 10_000):
        await conn.execute(db.insert(), params[i : i + 10_000])
