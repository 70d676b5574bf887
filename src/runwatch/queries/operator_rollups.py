"""Write-time upkeep of the error-group and layer-version rollups, and their rebuild.

`record_operator_changes` is called by every write of a layer run, in the
writer's transaction, with the rows the write added and removed (an update is
both), as the run rollups are kept. Deltas are applied in key order so that
concurrent writers lock rollup rows in the same order. It also counts the
write against every hour, day and month its runs started in
(`layer_run_bucket_changes`), which tells readers what they may reuse.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from operator import add, itemgetter
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, literal, select, text, tuple_, update
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
from runwatch.fingerprints import run_signatures
from runwatch.percentiles import duration_bin
from runwatch.queries.rollups import (
    DAY,
    GRAINS,
    HOUR,
    count_rebuilt_buckets,
    floor_day,
    floor_hour,
    micros,
    nanos,
    purged_before,
)

e = layer_run_errors
er = layer_run_error_rollups
vr = layer_run_version_rollups
db = layer_run_duration_bins
t = layer_runs

FLOORS = {"hour": floor_hour, "day": floor_day}
STEPS = {"hour": HOUR, "day": DAY}


def _buckets(
    started: datetime, known: dict[datetime, tuple[tuple[str, datetime], ...]]
) -> tuple[tuple[str, datetime], ...]:
    """The (grain, bucket start) of each of `ERROR_ROLLUP_GRAINS` that `started` falls in.

    `known` keeps them by hour for the call: the runs of a batch share few hours.
    """
    hour = floor_hour(started)
    buckets = known.get(hour)
    if buckets is None:
        buckets = known[hour] = tuple((g, FLOORS[g](hour)) for g in ERROR_ROLLUP_GRAINS)
    return buckets


ERROR_KEY = (
    "grain",
    "bucket_start",
    "fingerprint",
    "layer_name",
    "layer_hash",
    "status",
    "model_name",
)
ERROR_SUMS = ("errors", "runs")
VERSION_KEY = ("grain", "bucket_start", "layer_name", "layer_hash", "status")
VERSION_SUMS = (
    "runs",
    "completed_runs",
    "duration_us",
    "duration_sq",
    "insights",
    "tokens",
    "cost_runs",
    "cost_nanousd",
    "cost_sq",
)


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


# --- error groups -----------------------------------------------------------------


def _occurrences(row: Mapping[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for fingerprint, (sig, count) in run_signatures(row.get("errors")).items():
        occurrence = {
            "run_id": row["id"],
            "fingerprint": fingerprint,
            "started_at": row["started_at"],
            "layer_name": row["layer_name"],
            "layer_hash": row["layer_hash"],
            "status": row["status"],
            "model_name": row["model_name"],
            "errors": count,
        }
        out[tuple(occurrence.values())] = {"occurrence": occurrence, "signature": sig}
    return out


def _error_key(grain: str, occ: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        grain,
        FLOORS[grain](occ["started_at"]),
        occ["fingerprint"],
        occ["layer_name"],
        occ["layer_hash"],
        occ["status"],
        occ["model_name"] or NO_MODEL,
    )


async def _record_errors(
    conn: AsyncConnection, added: list[Mapping[str, Any]], removed: list[Mapping[str, Any]]
) -> None:
    before: dict[tuple[Any, ...], dict[str, Any]] = {}
    after: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in removed:
        before.update(_occurrences(row))
    for row in added:
        after.update(_occurrences(row))
    gone = [before[k]["occurrence"] for k in before.keys() - after.keys()]
    new = [after[k] for k in after.keys() - before.keys()]
    if not gone and not new:
        return
    dialect = dialect_of(conn)
    deltas: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    seen: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    for occ, sign in [(o, -1) for o in gone] + [(n["occurrence"], 1) for n in new]:
        for grain in ERROR_ROLLUP_GRAINS:
            key = _error_key(grain, occ)
            deltas[key][0] += sign * occ["errors"]
            deltas[key][1] += sign
            if sign > 0:
                seen[key].append(occ["started_at"])
    if gone:
        pairs = sorted((o["run_id"], o["fingerprint"]) for o in gone)
        await conn.execute(delete(e).where(tuple_(e.c.run_id, e.c.fingerprint).in_(pairs)))
    if new:
        names = {n["signature"].fingerprint: n["signature"] for n in new}
        await dialect.insert_many_ignoring_conflicts(
            conn,
            error_fingerprints,
            [
                {
                    "fingerprint": fp,
                    "type": s.type,
                    "template": s.template,
                    "sample_message": s.message,
                }
                for fp, s in sorted(names.items())
            ],
        )
        await dialect.upsert_many(
            conn,
            e,
            sorted((n["occurrence"] for n in new), key=itemgetter("run_id", "fingerprint")),
            key=("run_id", "fingerprint"),
            replaced=("started_at", "layer_name", "layer_hash", "status", "model_name", "errors"),
        )
    params = []
    for key, delta in sorted(deltas.items(), key=lambda kv: kv[0]):
        if delta[0] == 0 and delta[1] == 0:
            continue
        moments = seen.get(key)
        params.append(
            {
                **dict(zip(ERROR_KEY, key, strict=True)),
                "errors": delta[0],
                "runs": delta[1],
                "first_seen": min(moments) if moments else None,
                "last_seen": max(moments) if moments else None,
            }
        )
    await dialect.upsert_many(
        conn,
        er,
        params,
        key=ERROR_KEY,
        summed=ERROR_SUMS,
        least=("first_seen",),
        greatest=("last_seen",),
    )
    shrunk = [p for p in params if p["runs"] < 0]
    if shrunk:
        await _settle_error_rollups(conn, shrunk)


def _where_key(table: Any, names: tuple[str, ...]) -> Any:
    return and_(*(table.c[name] == bindparam(f"k_{name}") for name in names))


async def _settle_error_rollups(conn: AsyncConnection, keys: list[dict[str, Any]]) -> None:
    """Drop emptied rows; recompute first and last seen of the others from the occurrences."""
    params = [{f"k_{name}": k[name] for name in ERROR_KEY} for k in keys]
    await conn.execute(delete(er).where(_where_key(er, ERROR_KEY), er.c.runs <= 0), params)
    model = func.coalesce(e.c.model_name, literal(NO_MODEL))
    for grain in ERROR_ROLLUP_GRAINS:
        mine = [p for p in params if p["k_grain"] == grain]
        if not mine:
            continue
        for p in mine:
            p["k_end"] = p["k_bucket_start"] + STEPS[grain]
        match = and_(
            e.c.fingerprint == bindparam("k_fingerprint"),
            e.c.started_at >= bindparam("k_bucket_start"),
            e.c.started_at < bindparam("k_end"),
            e.c.layer_name == bindparam("k_layer_name"),
            e.c.layer_hash == bindparam("k_layer_hash"),
            e.c.status == bindparam("k_status"),
            model == bindparam("k_model_name"),
        )
        await conn.execute(
            update(er)
            .where(_where_key(er, ERROR_KEY))
            .values(
                first_seen=select(func.min(e.c.started_at)).where(match).scalar_subquery(),
                last_seen=select(func.max(e.c.started_at)).where(match).scalar_subquery(),
            ),
            mine,
        )


# --- layer versions -------------------------------------------------------------


def _version_values(row: Mapping[str, Any], sign: int) -> list[Any]:
    duration = row["duration_seconds"]
    cost = row["estimated_cost_usd"]
    return [
        sign,
        sign * (row["completed_at"] is not None),
        sign * micros(duration),
        sign * (duration or 0.0) ** 2,
        sign * (row["insights_created"] or 0),
        sign * (row["tokens_total"] or 0),
        sign * (cost is not None),
        sign * nanos(cost),
        sign * (cost or 0.0) ** 2,
    ]


def version_values(row: Mapping[str, Any], sign: int) -> list[Any]:
    """A run's contribution to the sums in VERSION_SUMS order, times `sign`."""
    return _version_values(row, sign)


def _version_deltas(
    added: list[Mapping[str, Any]], removed: list[Mapping[str, Any]]
) -> tuple[dict[tuple[Any, ...], list[Any]], dict[tuple[Any, ...], list[datetime]]]:
    """Per version rollup key, the summed values, and the first and last start added.

    Each key's values are added up run by run in the order given (the float
    sums of squares depend on it), starting from 0.
    """
    deltas: dict[tuple[Any, ...], list[Any]] = {}
    seen: dict[tuple[Any, ...], list[datetime]] = {}
    zeros = (0,) * len(VERSION_SUMS)
    known: dict[datetime, tuple[tuple[str, datetime], ...]] = {}
    for rows, sign in ((removed, -1), (added, 1)):
        for row in rows:
            values = _version_values(row, sign)
            started = row["started_at"]
            rest = (row["layer_name"], row["layer_hash"], row["status"])
            for bucket in _buckets(started, known):
                key = (*bucket, *rest)
                deltas[key] = list(map(add, deltas.get(key, zeros), values))
                if sign > 0:
                    span = seen.get(key)
                    if span is None:
                        seen[key] = [started, started]
                    elif started < span[0]:
                        span[0] = started
                    elif started > span[1]:
                        span[1] = started
    return deltas, seen


async def _record_versions(
    conn: AsyncConnection, added: list[Mapping[str, Any]], removed: list[Mapping[str, Any]]
) -> None:
    deltas, seen = _version_deltas(added, removed)
    no_span = (None, None)
    params = [
        {
            **dict(zip(VERSION_KEY, key, strict=True)),
            **dict(zip(VERSION_SUMS, values, strict=True)),
            **dict(zip(("first_seen", "last_seen"), seen.get(key, no_span), strict=True)),
        }
        for key, values in sorted(deltas.items(), key=lambda kv: kv[0])
        if any(values)
    ]
    if not params:
        return
    await dialect_of(conn).upsert_many(
        conn,
        vr,
        params,
        key=VERSION_KEY,
        summed=VERSION_SUMS,
        least=("first_seen",),
        greatest=("last_seen",),
    )
    shrunk = [p for p in params if p["runs"] < 0]
    if not shrunk:
        return
    keyed = [{f"k_{name}": p[name] for name in VERSION_KEY} for p in shrunk]
    await conn.execute(delete(vr).where(_where_key(vr, VERSION_KEY), vr.c.runs <= 0), keyed)
    for grain in ERROR_ROLLUP_GRAINS:
        mine = [p for p in keyed if p["k_grain"] == grain]
        if not mine:
            continue
        for p in mine:
            p["k_end"] = p["k_bucket_start"] + STEPS[grain]
        match = and_(
            t.c.layer_name == bindparam("k_layer_name"),
            t.c.status == bindparam("k_status"),
            t.c.started_at >= bindparam("k_bucket_start"),
            t.c.started_at < bindparam("k_end"),
            t.c.layer_hash == bindparam("k_layer_hash"),
        )
        await conn.execute(
            update(vr)
            .where(_where_key(vr, VERSION_KEY))
            .values(
                first_seen=select(func.min(t.c.started_at)).where(match).scalar_subquery(),
                last_seen=select(func.max(t.c.started_at)).where(match).scalar_subquery(),
            ),
            mine,
        )


# --- duration histograms ------------------------------------------------------

DURATION_KEY = ("grain", "bucket_start", "layer_name", "layer_hash", "bin")


async def _record_durations(
    conn: AsyncConnection, added: list[Mapping[str, Any]], removed: list[Mapping[str, Any]]
) -> None:
    deltas: dict[tuple[Any, ...], int] = defaultdict(int)
    known: dict[datetime, tuple[tuple[str, datetime], ...]] = {}
    for rows, sign in ((removed, -1), (added, 1)):
        for row in rows:
            if row["duration_seconds"] is None:
                continue
            index = duration_bin(row["duration_seconds"])
            for grain, start in _buckets(row["started_at"], known):
                deltas[(grain, start, row["layer_name"], row["layer_hash"], index)] += sign
    params = [
        {**dict(zip(DURATION_KEY, key, strict=True)), "runs": n}
        for key, n in sorted(deltas.items(), key=lambda kv: kv[0])
        if n
    ]
    if not params:
        return
    await dialect_of(conn).upsert_many(conn, db, params, key=DURATION_KEY, summed=("runs",))
    shrunk = [{f"k_{name}": p[name] for name in DURATION_KEY} for p in params if p["runs"] < 0]
    if shrunk:
        await conn.execute(delete(db).where(_where_key(db, DURATION_KEY), db.c.runs <= 0), shrunk)


# --- bucket change counters -------------------------------------------------------


async def _record_bucket_changes(
    conn: AsyncConnection, added: list[Mapping[str, Any]], removed: list[Mapping[str, Any]]
) -> None:
    hours = {floor_hour(row["started_at"]) for row in (*removed, *added)}
    buckets = sorted({(grain, floor(hour)) for hour in hours for grain, floor, _ceil in GRAINS})
    params = [{"grain": grain, "bucket_start": start, "changes": 1} for grain, start in buckets]
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
