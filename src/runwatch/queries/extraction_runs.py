"""Extraction runs' SQL: filters, list and count, and the statements the services run.

Functions here run one statement each and return rows (or whether a row was
written); what is allowed, and what an answer means, is decided in
`runwatch.services`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Row,
    Select,
    bindparam,
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
from runwatch.queries.pagination import Page, SortSpec, fetch_page

t = extraction_runs

SUMMARY_COLUMNS = (
    t.c.id,
    t.c.prompt_id,
    t.c.config_id,
    t.c.document_name,
    t.c.status,
    t.c.created_at,
    t.c.started_at,
    t.c.completed_at,
    t.c.cost_usd,
)
HIDDEN_COLUMNS = (
    "metric_precision",
    "metric_recall",
    "metric_f1",
    "metric_latency_ms",
    "updated_at",
)
DETAIL_COLUMNS = tuple(c for c in t.columns if c.name not in HIDDEN_COLUMNS)
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


@dataclass(frozen=True)
class ExtractionRunFilter:
    """What `GET /extraction-runs` and the stats can be narrowed by; empty means everything."""

    prompt_id: str | None = None
    config_id: str | None = None
    document_name: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


def extraction_run_conditions(f: ExtractionRunFilter) -> list[ColumnElement[bool]]:
    """The WHERE clause for a filter: the single source for list, count and stats.

    Values are named bind parameters (see `filter_params`), so a statement
    built from one filter can be kept and run again with another of the same
    shape. Time bounds apply to `created_at`, which every run has from the start.
    """
    conditions: list[ColumnElement[bool]] = []
    for name in ("prompt_id", "config_id", "document_name"):
        value = getattr(f, name)
        if value is not None:
            conditions.append(t.c[name] == bindparam(name, value))
    if len(f.statuses) == 1:
        conditions.append(t.c.status == bindparam("status", f.statuses[0]))
    elif f.statuses:
        conditions.append(t.c.status.in_(bindparam("statuses", list(f.statuses), expanding=True)))
    if f.since is not None:
        conditions.append(t.c.created_at >= bindparam("since", f.since))
    if f.until is not None:
        conditions.append(t.c.created_at < bindparam("until", f.until))
    return conditions


def filter_shape(f: ExtractionRunFilter) -> tuple[Any, ...]:
    return tuple(name for name, value in filter_params(f).items() if value is not None)


def filter_params(f: ExtractionRunFilter) -> dict[str, Any]:
    """The values of `extraction_run_conditions`' parameters, by name."""
    params: dict[str, Any] = {
        "prompt_id": f.prompt_id,
        "config_id": f.config_id,
        "document_name": f.document_name,
        "since": f.since,
        "until": f.until,
    }
    if len(f.statuses) == 1:
        params["status"] = f.statuses[0]
    elif f.statuses:
        params["statuses"] = list(f.statuses)
    return {name: value for name, value in params.items() if value is not None}


def sort_spec(token: str) -> SortSpec:
    """A `sort` parameter (already whitelisted by the schema) as a SortSpec."""
    name = token.lstrip("-")
    return SortSpec(
        name=name,
        column=t.c[name],
        id_column=t.c.id,
        descending=token.startswith("-"),
        nullable=t.c[name].nullable,
        is_time=name == "created_at",
    )


async def list_extraction_runs(
    conn: AsyncConnection,
    *,
    filters: ExtractionRunFilter,
    sort: str = "-created_at",
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
    with_total: bool = False,
) -> Page:
    """One page of light run metadata in `sort` order, by offset or after a keyset cursor.

    With `with_total`, `Page.total` is the exact count, fetched in the same statement.
    """

    def build() -> tuple[Select[Any], Select[Any] | None]:
        query = select(*SUMMARY_COLUMNS).where(*extraction_run_conditions(filters))
        return query, count_query(filters) if with_total else None

    return await fetch_page(
        conn,
        shape=("extraction_runs", filter_shape(filters), with_total),
        build=build,
        params=filter_params(filters),
        spec=sort_spec(sort),
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


def count_query(filters: ExtractionRunFilter) -> Select[Any]:
    return select(func.count()).select_from(t).where(*extraction_run_conditions(filters))


async def count_extraction_runs(conn: AsyncConnection, *, filters: ExtractionRunFilter) -> int:
    return int((await conn.execute(count_query(filters))).scalar_one())


async def find_extraction_run(conn: AsyncConnection, run_id: str) -> Mapping[str, Any] | None:
    """Every shown column of the run, or None when there is no such run."""
    row = (await conn.execute(select(*DETAIL_COLUMNS).where(t.c.id == run_id))).first()
    return None if row is None else row._mapping


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
    conditions = extraction_run_conditions(
        ExtractionRunFilter(prompt_id=prompt_id, config_id=config_id, document_name=document_name)
    )
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
    return {row.document_name: row._mapping for row in await conn.execute(query)}


async def summary_rows(conn: AsyncConnection, filters: ExtractionRunFilter) -> Sequence[Row[Any]]:
    """Sums per (prompt, config, status) (`part` "groups"), then every latency (`part` "latencies").

    A group row has `runs`, `cost_usd`, `tokens_input`, `tokens_output` and, for
    each of `SUMMED_METRICS`, `sum_<name>` and `count_<name>`; a latency row has
    `latency_ms`. One statement, so one snapshot on PostgreSQL: the latencies
    are of the same runs as the groups, whatever commits while it runs.
    """
    conditions = extraction_run_conditions(filters)
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
    return (await conn.execute(union_all(grouped, latencies))).all()
