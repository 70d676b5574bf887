"""Extraction runs' SQL: the statements of their lifecycle, compares and summary.

Functions here run one statement each and return rows (or whether a row was
written); what is allowed, and what an answer means, is decided in
`runwatch.services`. The reads every kind shares are in `queries/runs.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Row,
    cast,
    delete,
    func,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import extraction_runs
from runwatch.kinds import EXTRACTION_RUNS
from runwatch.queries.runs import RunFilter, filter_params, filter_shape, run_conditions

t = extraction_runs

DETAIL_COLUMNS = EXTRACTION_RUNS.detail_columns
CLAIM_COLUMNS = (
    t.c.id,
    t.c.prompt_id,
    t.c.config_id,
    t.c.document_name,
    t.c.status,
    t.c.created_at,
    t.c.started_at,
    t.c.attempts,
    t.c.worker_id,
    t.c.lease_expires_at,
)
# Metrics copied into their own columns on completion (see tables.py).
METRIC_COLUMNS = {
    "precision": "metric_precision",
    "recall": "metric_recall",
    "f1": "metric_f1",
    "latency_ms": "metric_latency_ms",
}
# The metrics whose sums and counts the summary reads per group.
SUMMED_METRICS = ("precision", "recall", "f1")


def _conditions(filters: RunFilter) -> list[ColumnElement[bool]]:
    """`filters` as conditions; their values are `filter_params(filters)`."""
    return run_conditions(EXTRACTION_RUNS, filter_shape(filters))


async def insert_extraction_run(conn: AsyncConnection, row: Mapping[str, Any]) -> bool:
    """Insert `row` unless a run with its id exists; True when it was inserted."""
    stmt = dialect_of(conn).insert_ignoring_conflicts(t).values(dict(row))
    return (await conn.execute(stmt)).rowcount == 1


async def delete_extraction_run(conn: AsyncConnection, run_id: str) -> bool:
    """Delete the run; True when there was one."""
    result = await conn.execute(delete(t).where(t.c.id == run_id).returning(t.c.id))
    return result.first() is not None


def _back_to_pending(now: datetime) -> dict[str, Any]:
    """The values that put a running run back in the queue, unowned and unstarted."""
    return {
        "status": "pending",
        "started_at": None,
        "worker_id": None,
        "lease_expires_at": None,
        "updated_at": now,
    }


def _still_expired(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (t.c.status == "running", t.c.lease_expires_at < now)


async def lock_expired_leases(
    conn: AsyncConnection, *, now: datetime, limit: int
) -> Sequence[Row[Any]]:
    """Up to `limit` running runs whose lease ended before `now`: `(id, attempts)`, locked.

    Rows another transaction holds are skipped, not waited for: whoever holds
    them is already dealing with them.
    """
    expired = dialect_of(conn).lock_rows_skipping_locked(
        select(t.c.id, t.c.attempts)
        .where(*_still_expired(now))
        .order_by(t.c.lease_expires_at, t.c.id)
        .limit(limit)
    )
    return (await conn.execute(expired)).all()


async def requeue_expired(conn: AsyncConnection, ids: Sequence[str], *, now: datetime) -> None:
    """Put these runs back to `pending`, where their lease is still expired."""
    await conn.execute(
        update(t).where(t.c.id.in_(ids), *_still_expired(now)).values(_back_to_pending(now))
    )


async def fail_expired(
    conn: AsyncConnection, ids: Sequence[str], *, now: datetime, error: str
) -> None:
    """Fail these runs with `error`, where their lease is still expired."""
    await conn.execute(
        update(t)
        .where(t.c.id.in_(ids), *_still_expired(now))
        .values(
            status="failed", completed_at=now, lease_expires_at=None, error=error, updated_at=now
        )
    )


async def claim_pending(
    conn: AsyncConnection,
    *,
    worker_id: str,
    max_runs: int,
    lease_expires_at: datetime,
    now: datetime,
) -> list[Mapping[str, Any]]:
    """Move the oldest pending runs (up to `max_runs`) to `running` for `worker_id`.

    One statement: pick and lock the oldest pending rows, then update them. On
    PostgreSQL the pick locks with SKIP LOCKED and is MATERIALIZED, so that it
    locks exactly the rows it hands out; on SQLite the write transaction holds
    the database lock from its start. Either way a run goes to one claimer.
    """
    picked = (
        dialect_of(conn)
        .lock_rows_skipping_locked(
            select(t.c.id)
            .where(t.c.status == "pending")
            .order_by(t.c.created_at, t.c.id)
            .limit(max_runs)
        )
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    stmt = (
        update(t)
        .where(t.c.id.in_(select(picked.c.id)), t.c.status == "pending")
        .values(
            status="running",
            started_at=now,
            worker_id=worker_id,
            lease_expires_at=lease_expires_at,
            attempts=t.c.attempts + 1,
            updated_at=now,
        )
        .returning(*CLAIM_COLUMNS)
    )
    return [row._mapping for row in await conn.execute(stmt)]


async def update_if_unchanged(
    conn: AsyncConnection, current: Mapping[str, Any], values: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Write `values` to the run `current` was read from, unless it has moved on since.

    A run that changed status or was claimed again in between is left alone
    (None); otherwise the run as written comes back.
    """
    stmt = (
        update(t)
        .where(
            t.c.id == current["id"],
            t.c.status == current["status"],
            t.c.attempts == current["attempts"],
        )
        .values(dict(values))
        .returning(*DETAIL_COLUMNS)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else row._mapping


async def release_if_unchanged(
    conn: AsyncConnection, current: Mapping[str, Any], *, attempts: int, now: datetime
) -> Mapping[str, Any] | None:
    """Put the running run `current` back to `pending` with `attempts`, as `update_if_unchanged`."""
    return await update_if_unchanged(conn, current, {**_back_to_pending(now), "attempts": attempts})


async def latest_completed_per_document(
    conn: AsyncConnection,
    *,
    prompt_id: str | None,
    config_id: str | None,
    document_name: str | None,
) -> dict[str, Mapping[str, Any]]:
    """The latest completed run per document (by completed_at, then id): id and metrics."""
    filters = RunFilter.where(prompt_id=prompt_id, config_id=config_id, document_name=document_name)
    conditions = _conditions(filters)
    rank = (
        func.row_number()
        .over(
            partition_by=t.c.document_name,
            order_by=(t.c.completed_at.desc(), t.c.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(t.c.id, t.c.document_name, t.c.metrics, rank)
        .where(*conditions, t.c.status == "completed")
        .subquery()
    )
    query = select(ranked.c.id, ranked.c.document_name, ranked.c.metrics).where(ranked.c.rank == 1)
    rows = await conn.execute(query, filter_params(filters))
    return {row.document_name: row._mapping for row in rows}


async def summary_rows(conn: AsyncConnection, filters: RunFilter) -> Sequence[Row[Any]]:
    """Sums per (prompt, config, status) (`part` "groups"), then every latency (`part` "latencies").

    A group row has `runs`, `cost_usd`, `tokens_input`, `tokens_output` and, for
    each of `SUMMED_METRICS`, `sum_<name>` and `count_<name>`; a latency row has
    `latency_ms`. One statement, so one snapshot on PostgreSQL: the latencies
    are of the same runs as the groups, whatever commits while it runs.
    """
    conditions = _conditions(filters)
    metric_aggregates = []
    no_metrics = []
    for name in SUMMED_METRICS:
        column = t.c[METRIC_COLUMNS[name]]
        metric_aggregates += [
            func.coalesce(func.sum(column), 0.0).label(f"sum_{name}"),
            func.count(column).label(f"count_{name}"),
        ]
        no_metrics += [literal(0.0).label(f"sum_{name}"), literal(0).label(f"count_{name}")]
    grouped = (
        select(
            literal("groups").label("part"),
            t.c.prompt_id,
            t.c.config_id,
            t.c.status,
            func.count().label("runs"),
            func.coalesce(func.sum(t.c.cost_usd), 0.0).label("cost_usd"),
            func.coalesce(func.sum(t.c.tokens_input), 0).label("tokens_input"),
            func.coalesce(func.sum(t.c.tokens_output), 0).label("tokens_output"),
            *metric_aggregates,
            cast(null(), Double).label("latency_ms"),
        )
        .where(*conditions)
        .group_by(t.c.prompt_id, t.c.config_id, t.c.status)
    )
    latencies = select(
        literal("latencies").label("part"),
        t.c.prompt_id,
        t.c.config_id,
        t.c.status,
        literal(0).label("runs"),
        literal(0.0).label("cost_usd"),
        literal(0).label("tokens_input"),
        literal(0).label("tokens_output"),
        *no_metrics,
        t.c.metric_latency_ms.label("latency_ms"),
    ).where(*conditions, t.c.metric_latency_ms.is_not(None))
    return (await conn.execute(union_all(grouped, latencies), filter_params(filters))).all()
