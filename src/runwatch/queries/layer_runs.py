"""Layer runs' SQL: the writes (each keeping the rollups exact) and totals from the rollups.

Functions here run statements and return rows (or what they wrote); what a
write may do, and what an answer means, is decided in
`runwatch.services.layer_lifecycle`. The reads every kind shares are in
`queries/runs.py`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import layer_runs
from runwatch.metrics import measured
from runwatch.queries.data_state import bump_data_version
from runwatch.queries.operator_rollups import (
    add_batch_to_operator_rollups,
    batch_changes,
    record_operator_changes,
)
from runwatch.queries.rollup_upkeep import add_batch_to_rollups, record_layer_run_changes
from runwatch.queries.rollups import rollup_count_shape, rollup_count_statement
from runwatch.queries.runs import RunFilter

t = layer_runs

# Columns a client may set; together they are the "content" compared when the
# same id is recorded twice.
CONTENT_COLUMNS = tuple(
    c.name for c in t.columns if c.name not in ("created_at", "updated_at", "duration_seconds")
)
DETAIL_COLUMNS = tuple(c for c in t.columns if c.name not in ("created_at", "updated_at"))


class LayerRunTotals:
    """Exact totals of layer runs from the rollups, kept by (time, layer, status).

    Runs removed by retention purges live on in the rollups, so a window
    starts at the purge horizon.
    """

    def shape(
        self, filters: RunFilter, *, purge_horizon: datetime | None, prefix: str
    ) -> tuple[Hashable, dict[str, Any]] | None:
        if not filters.only("layer_name"):
            return None  # rollups are not kept by model
        since = filters.since
        if purge_horizon is not None and (since is None or since < purge_horizon):
            since = purge_horizon
        return rollup_count_shape(
            layer_name=filters.value("layer_name"),
            statuses=filters.statuses,
            since=since,
            until=filters.until,
            prefix=prefix,
        )

    def statement(self, shape: Hashable, *, prefix: str) -> Select[Any]:
        return rollup_count_statement(shape, prefix=prefix)


LAYER_RUN_TOTALS = LayerRunTotals()


async def _record(
    conn: AsyncConnection,
    *,
    added: Sequence[Mapping[str, Any]] = (),
    removed: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Keep every rollup of layer runs exact for rows added and removed in this transaction."""
    await record_layer_run_changes(conn, added=added, removed=removed)
    await record_operator_changes(conn, added=added, removed=removed)


@measured("insert_layer_run")
async def insert_layer_run(conn: AsyncConnection, row: Mapping[str, Any]) -> bool:
    """Insert `row` unless a run with its id exists; True when it was inserted."""
    stmt = dialect_of(conn).insert_ignoring_conflicts(t).values(dict(row))
    inserted = (await conn.execute(stmt)).rowcount == 1
    if inserted:
        await _record(conn, added=[row])
    return inserted


@measured("insert_layer_runs")
async def insert_layer_runs(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert the rows whose id is new, in one statement; the ids inserted.

    Where the database sums a batch itself (`Dialect.sums_batches`), the
    rollups are kept by one statement per rollup table, in `_record`'s order.
    """
    dialect = dialect_of(conn)
    inserted = set(await dialect.insert_many_ignoring_conflicts(conn, t, rows, returning="id"))
    if inserted:
        added = [row for row in rows if row["id"] in inserted]
        if dialect.sums_batches:
            changes = batch_changes(added)
            await add_batch_to_rollups(conn, changes.ids)
            await add_batch_to_operator_rollups(conn, changes)
        else:
            await _record(conn, added=added)
    return inserted


async def find_layer_runs(
    conn: AsyncConnection, ids: Sequence[str]
) -> dict[str, Mapping[str, Any]]:
    """The stored runs among `ids`, by id, with every detail column."""
    query = select(*DETAIL_COLUMNS).where(t.c.id.in_(list(ids)))
    return {row.id: row._mapping for row in await conn.execute(query)}


async def lock_layer_run(conn: AsyncConnection, run_id: str) -> Mapping[str, Any] | None:
    """The run, locked until the transaction ends (None when there is none)."""
    query = dialect_of(conn).lock_rows(select(*DETAIL_COLUMNS).where(t.c.id == run_id))
    found = (await conn.execute(query)).first()
    return None if found is None else found._mapping


@measured("update_layer_run")
async def update_running_layer_run(
    conn: AsyncConnection, current: Mapping[str, Any], values: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Write `values` to the run `current` was read from, while it is still running.

    None when it is not (another request completed it in between); otherwise
    the run as written, its old values taken out of the rollups and its new ones put in.
    """
    stmt = (
        update(t)
        .where(t.c.id == current["id"], t.c.status == "running")
        .values(dict(values))
        .returning(*DETAIL_COLUMNS)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    await _record(conn, added=[row._mapping], removed=[current])
    return row._mapping


@measured("delete_layer_run")
async def delete_layer_run(conn: AsyncConnection, run_id: str) -> bool:
    """Delete the run and its contribution to the rollups; True when there was one."""
    result = await conn.execute(delete(t).where(t.c.id == run_id).returning(*DETAIL_COLUMNS))
    removed = result.first()
    if removed is None:
        return False
    await _record(conn, removed=[removed._mapping])
    return True


async def delete_oldest_started_before(
    conn: AsyncConnection, before: datetime, *, limit: int
) -> int:
    """Delete up to `limit` of the oldest runs started before `before`; how many.

    The rollups keep them (stats over long windows stay right); the data
    version moves, so no answer from before is served again.
    """
    oldest = select(t.c.id).where(t.c.started_at < before).order_by(t.c.started_at).limit(limit)
    result = await conn.execute(delete(t).where(t.c.id.in_(oldest.scalar_subquery())))
    await bump_data_version(conn)
    return result.rowcount
