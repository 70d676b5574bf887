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
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import column as sql_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import Dialect, dialect_of
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
from runwatch.queries.buckets import SQUARED_AS_ZERO_BELOW, floor_day
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
    added_errors,
    changed_buckets,
    duration_changes,
    error_changes,
    version_changes,
)
from runwatch.queries.rollup_upkeep import batch_columns, count_rebuilt_buckets, sums_by_bucket

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
    if changes.gone:
        await conn.execute(delete(e).where(tuple_(e.c.run_id, e.c.fingerprint).in_(changes.gone)))
    await _store_occurrences(conn, changes.fingerprints, changes.occurrences)
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


async def _store_occurrences(
    conn: AsyncConnection, fingerprints: list[dict[str, Any]], occurrences: list[dict[str, Any]]
) -> None:
    """Name the new fingerprints and write the occurrences (both in key order)."""
    if not occurrences:
        return
    dialect = dialect_of(conn)
    await dialect.insert_many_ignoring_conflicts(conn, error_fingerprints, fingerprints)
    await dialect.upsert_many(
        conn,
        e,
        occurrences,
        key=("run_id", "fingerprint"),
        replaced=("started_at", "layer_name", "layer_hash", "status", "model_name", "errors"),
    )


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
    await _count_bucket_changes(conn, changed_buckets(added, removed))


async def _count_bucket_changes(conn: AsyncConnection, params: list[dict[str, Any]]) -> None:
    key = ("grain", "bucket_start")
    await dialect_of(conn).upsert_many(
        conn, layer_run_bucket_changes, params, key=key, summed=("changes",)
    )


# --- a batch, summed by the database ------------------------------------------------


@dataclass(frozen=True)
class BatchChanges:
    """What Python makes of a batch's new runs, before any rollup row is locked."""

    ids: list[str]
    fingerprints: list[dict[str, Any]]  # as `ErrorChanges`
    occurrences: list[dict[str, Any]]
    timed: list[str]  # the runs with a duration, and the bin of each
    bins: list[int]
    buckets: list[dict[str, Any]]  # `changed_buckets`


def batch_changes(added: Rows) -> BatchChanges:
    """Made before the batch's first rollup upsert: from there to its commit, concurrent
    batches wait for it, and Python's time between statements would count twice."""
    fingerprints, occurrences = added_errors(added)
    timed = [row for row in added if row["duration_seconds"] is not None]
    return BatchChanges(
        ids=[row["id"] for row in added],
        fingerprints=fingerprints,
        occurrences=occurrences,
        timed=[row["id"] for row in timed],
        bins=[duration_bin(row["duration_seconds"]) for row in timed],
        buckets=changed_buckets(added, []),
    )


async def add_batch_to_operator_rollups(conn: AsyncConnection, changes: BatchChanges) -> None:
    """`record_operator_changes(added=…)` for runs just inserted, in the same order.

    The error occurrences are made in Python (their fingerprints are) and
    their rollups summed by the database; the versions are summed by it over
    the runs read back by id, and the duration bins counted by it from the
    bins Python gives each run (so that one `duration_bin` decides them).
    PostgreSQL only (`Dialect.sums_batches`).
    """
    dialect = dialect_of(conn)
    if changes.occurrences:
        await _store_occurrences(conn, changes.fingerprints, changes.occurrences)
        await conn.execute(_batch_errors(dialect), {"ids": changes.ids})
    await conn.execute(_batch_versions(dialect), {"ids": changes.ids})
    if changes.timed:
        binned = {"timed": changes.timed, "bins": changes.bins}
        await conn.execute(_batch_durations(dialect), binned)
    await _count_bucket_changes(conn, changes.buckets)


def square_sql(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """`buckets.square` in SQL (null stays null, which sums skip)."""
    return case((func.abs(value) < SQUARED_AS_ZERO_BELOW, 0.0), else_=value * value)


def version_sums(dialect: Dialect, grain: str, runs: FromClause) -> Select[Any]:
    """One grain's version rollup rows summed in SQL from `runs`, named as the table's columns.

    The sums of `version_values`; the float sums of squares may differ from
    Python's in the last bits, being added in another order.
    """
    duration, cost = runs.c.duration_seconds, runs.c.estimated_cost_usd
    sums = [
        func.count().label("runs"),
        func.count(runs.c.completed_at).label("completed_runs"),
        func.coalesce(func.sum(dialect.round_half_up_to_int(duration * 1e6)), 0).label(
            "duration_us"
        ),
        func.coalesce(func.sum(square_sql(duration)), 0.0).label("duration_sq"),
        func.coalesce(func.sum(runs.c.insights_created), 0).label("insights"),
        func.coalesce(func.sum(runs.c.tokens_total), 0).label("tokens"),
        func.count(cost).label("cost_runs"),
        func.coalesce(func.sum(dialect.round_half_up_to_int(cost * 1e9)), 0).label("cost_nanousd"),
        func.coalesce(func.sum(square_sql(cost)), 0.0).label("cost_sq"),
        func.min(runs.c.started_at).label("first_seen"),
        func.max(runs.c.started_at).label("last_seen"),
    ]
    return sums_by_bucket(dialect, grain, runs, ("layer_name", "layer_hash", "status"), sums)


@cache
def _batch_errors(dialect: Dialect) -> Any:
    """The error rollups of the occurrences of runs just added, read back by run id."""
    model = func.coalesce(e.c.model_name, literal(NO_MODEL)).label("model_name")
    added = (
        select(e.c.started_at, e.c.fingerprint, e.c.layer_name, e.c.layer_hash, e.c.status)
        .add_columns(model, e.c.errors)
        .where(dialect.among(e.c.run_id, "ids"))
        .cte("added")
    )
    names = ("fingerprint", "layer_name", "layer_hash", "status", "model_name")
    sums = [
        func.sum(added.c.errors).label("errors"),
        func.count().label("runs"),
        func.min(added.c.started_at).label("first_seen"),
        func.max(added.c.started_at).label("last_seen"),
    ]
    counts = [sums_by_bucket(dialect, grain, added, names, sums) for grain in ERROR_ROLLUP_GRAINS]
    seen = {"least": ("first_seen",), "greatest": ("last_seen",)}
    return dialect.batch_upsert(er, counts, key=ERROR_KEY, summed=ERROR_SUMS, **seen)


@cache
def _batch_versions(dialect: Dialect) -> Any:
    added = select(*batch_columns()).where(dialect.among(t.c.id, "ids")).cte("added")
    sums = [version_sums(dialect, grain, added) for grain in ERROR_ROLLUP_GRAINS]
    seen = {"least": ("first_seen",), "greatest": ("last_seen",)}
    return dialect.batch_upsert(vr, sums, key=VERSION_KEY, summed=VERSION_SUMS, **seen)


@cache
def _batch_durations(dialect: Dialect) -> Any:
    """PostgreSQL's: the (id, bin) pairs come as two arrays, read by `unnest` side by side."""
    binned = (
        func.unnest(
            bindparam("timed", type_=postgresql.ARRAY(Text)),
            bindparam("bins", type_=postgresql.ARRAY(Integer)),
        )
        .table_valued(sql_column("id", Text), sql_column("bin", Integer))
        .render_derived(name="binned")
    )
    timed = (
        select(t.c.started_at, t.c.layer_name, t.c.layer_hash, binned.c.bin)
        .select_from(t.join(binned, t.c.id == binned.c.id))
        .cte("timed")
    )
    names = ("layer_name", "layer_hash", "bin")
    counts = [
        sums_by_bucket(dialect, grain, timed, names, [func.count().label("runs")])
        for grain in ERROR_ROLLUP_GRAINS
    ]
    return dialect.batch_upsert(db, counts, key=DURATION_KEY, summed=("runs",))


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
        rows = version_sums(dialect, grain, t).where(*recent)
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
