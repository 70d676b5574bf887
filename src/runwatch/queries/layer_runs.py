"""Layer runs: one filter function feeding list, count and stats; create, update, delete."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from ulid import ULID

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import FINAL_LAYER_RUN_STATUSES, LAYER_RUN_STATUSES, layer_runs
from runwatch.domain import MAX_TOKENS
from runwatch.errors import Conflict, InvalidArgument, NotFound
from runwatch.metrics import measured
from runwatch.queries.buckets import floor_day, floor_hour
from runwatch.queries.data_state import bump_data_version, purged_before, set_purged_before
from runwatch.queries.operator_rollups import record_operator_changes
from runwatch.queries.pagination import Page, SortSpec, fetch_page
from runwatch.queries.rollup_upkeep import record_layer_run_changes
from runwatch.queries.rollups import rollup_buckets, rollup_count_shape, rollup_count_statement
from runwatch.queries.statements import STATEMENTS

t = layer_runs

# Columns a client may set; together they are the "content" compared when the
# same id is recorded twice.
CONTENT_COLUMNS = tuple(
    c.name for c in t.columns if c.name not in ("created_at", "updated_at", "duration_seconds")
)
SUMMARY_COLUMNS = (
    t.c.id,
    t.c.layer_name,
    t.c.status,
    t.c.started_at,
    t.c.completed_at,
    t.c.duration_seconds,
    t.c.targets_processed,
    t.c.insights_created,
    t.c.tokens_total,
    t.c.estimated_cost_usd,
    t.c.model_name,
)
DETAIL_COLUMNS = tuple(c for c in t.columns if c.name not in ("created_at", "updated_at"))


@dataclass(frozen=True)
class LayerRunFilter:
    """What `GET /runs` and the stats can be narrowed by; empty means everything."""

    layer_name: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    model_name: str | None = None


def filter_shape(f: LayerRunFilter) -> tuple[int, ...]:
    """Which filters are given: with `filter_params`, what `layer_run_conditions` needs."""
    return (
        f.layer_name is not None,
        min(len(f.statuses), 2),  # none, one (an equality the planner knows), or a list
        f.since is not None,
        f.until is not None,
        f.model_name is not None,
    )


def filter_params(f: LayerRunFilter, prefix: str = "") -> dict[str, Any]:
    values = {
        "layer_name": f.layer_name,
        "status": f.statuses[0] if len(f.statuses) == 1 else None,
        "statuses": list(f.statuses) if len(f.statuses) > 1 else None,
        "since": f.since,
        "until": f.until,
        "model_name": f.model_name,
    }
    return {prefix + name: value for name, value in values.items() if value is not None}


def layer_run_conditions(shape: tuple[bool, ...], prefix: str = "") -> list[ColumnElement[bool]]:
    """The WHERE clause for a filter shape, with bind parameters named as `filter_params`.

    The single source for list, count and stats. Time bounds are parameters,
    never computed in SQL, so the planner sees them and picks the
    `started_at` indexes.
    """
    has_layer, has_statuses, has_since, has_until, has_model = shape
    conditions: list[ColumnElement[bool]] = []
    if has_layer:
        conditions.append(t.c.layer_name == bindparam(prefix + "layer_name"))
    if has_statuses == 1:
        conditions.append(t.c.status == bindparam(prefix + "status"))
    elif has_statuses:
        conditions.append(t.c.status.in_(bindparam(prefix + "statuses", expanding=True)))
    if has_since:
        conditions.append(t.c.started_at >= bindparam(prefix + "since"))
    if has_until:
        conditions.append(t.c.started_at < bindparam(prefix + "until"))
    if has_model:
        conditions.append(t.c.model_name == bindparam(prefix + "model_name"))
    return conditions


def sort_spec(token: str) -> SortSpec:
    """A `sort` parameter (already whitelisted by the schema) as a SortSpec."""
    name = token.lstrip("-")
    return SortSpec(
        name=name,
        column=t.c[name],
        id_column=t.c.id,
        descending=token.startswith("-"),
        nullable=t.c[name].nullable,
        is_time=name == "started_at",
    )


@measured("list_layer_runs")
async def list_layer_runs(
    conn: AsyncConnection,
    *,
    filters: LayerRunFilter,
    sort: str = "-started_at",
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
    with_total: bool = False,
    purge_horizon: datetime | None = None,
) -> Page:
    """One page of runs in `sort` order, by offset or after a keyset cursor.

    With `with_total`, `Page.total` is the exact count (see `count_statement`),
    fetched in the same statement as the page.
    """
    shape = filter_shape(filters)
    params = filter_params(filters)
    total_shape: Any = None
    if with_total:
        total_shape, total_params = count_statement_shape(filters, purge_horizon=purge_horizon)
        params.update(total_params)

    def build() -> tuple[Select[Any], Select[Any] | None]:
        query = select(*SUMMARY_COLUMNS).where(*layer_run_conditions(shape))
        total = None if total_shape is None else count_statement(total_shape)
        return query, total

    return await fetch_page(
        conn,
        shape=("layer_runs", shape, total_shape),
        build=build,
        params=params,
        spec=sort_spec(sort),
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


def rollups_can_answer(filters: LayerRunFilter) -> bool:
    """Rollups are kept by (time, layer, status); other filters need the raw rows."""
    return filters.model_name is None


COUNT_PREFIX = "count_"


def count_statement_shape(
    filters: LayerRunFilter, *, purge_horizon: datetime | None
) -> tuple[Hashable, dict[str, Any]]:
    """The shape and parameters of the statement counting the runs that can be listed.

    Answered from the rollups when they cover the filters (constant cost
    however large the table), else by a real count. Runs removed by retention
    purges live on in the rollups, so the window starts at the purge horizon.
    Its parameters are prefixed, so that it can ride along in the page's query.
    """
    if not rollups_can_answer(filters):
        return ("raw", filter_shape(filters)), filter_params(filters, COUNT_PREFIX)
    since = filters.since
    if purge_horizon is not None and (since is None or since < purge_horizon):
        since = purge_horizon
    shape, params = rollup_count_shape(
        layer_name=filters.layer_name,
        statuses=filters.statuses,
        since=since,
        until=filters.until,
        prefix=COUNT_PREFIX,
    )
    return ("rollups", shape), params


def count_statement(shape: Hashable) -> Select[Any]:
    """The one-value count statement of a `count_statement_shape`."""
    assert isinstance(shape, tuple)
    kind, inner = shape
    if kind == "raw":
        return (
            select(func.count())
            .select_from(t)
            .where(*layer_run_conditions(inner, prefix=COUNT_PREFIX))
        )
    return rollup_count_statement(inner, prefix=COUNT_PREFIX)


@measured("count_layer_runs")
async def count_layer_runs(conn: AsyncConnection, *, filters: LayerRunFilter) -> int:
    """The exact number of runs matching `filters` that can still be listed."""
    shape, params = count_statement_shape(filters, purge_horizon=await purged_before(conn))
    query = STATEMENTS.get(("count", shape), lambda: count_statement(shape))
    return int((await conn.execute(query, params)).scalar_one())


_GET_BY_ID = select(*DETAIL_COLUMNS).where(t.c.id == bindparam("run_id"))


@measured("get_layer_run")
async def get_layer_run(conn: AsyncConnection, run_id: str) -> Mapping[str, Any]:
    rows = await dialect_of(conn).fetch_all(conn, _GET_BY_ID, {"run_id": run_id})
    if not rows:
        raise NotFound(f"No layer run with id '{run_id}'.")
    return rows[0]


def _duration(started_at: datetime, completed_at: datetime | None) -> float | None:
    if completed_at is None:
        return None
    return (completed_at - started_at).total_seconds()


def new_layer_run_row(data: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """A full row from validated create data: server id, derived totals, timestamps."""
    row = {name: data.get(name) for name in CONTENT_COLUMNS}
    for count in ("targets_matched", "targets_processed", "targets_skipped", "insights_created"):
        row[count] = row[count] or 0
    if row["id"] is None:
        row["id"] = str(ULID())
    if row["tokens_total"] is None and None not in (row["tokens_input"], row["tokens_output"]):
        row["tokens_total"] = row["tokens_input"] + row["tokens_output"]
    row["duration_seconds"] = _duration(row["started_at"], row["completed_at"])
    row["created_at"] = row["updated_at"] = now
    return row


def _same_content(stored: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    return all(stored[name] == row[name] for name in CONTENT_COLUMNS)


@measured("create_layer_run")
async def create_layer_run(
    conn: AsyncConnection, data: Mapping[str, Any]
) -> tuple[Mapping[str, Any], bool]:
    """Record a run. Returns `(run, created)`; the same id with other content is a Conflict."""
    row = new_layer_run_row(data, now=datetime.now(UTC))
    stmt = dialect_of(conn).insert_ignoring_conflicts(t).values(row)
    created = (await conn.execute(stmt)).rowcount == 1
    if created:
        await record_layer_run_changes(conn, added=[row])
        await record_operator_changes(conn, added=[row])
    stored = await get_layer_run(conn, row["id"])
    if not created and not _same_content(stored, row):
        raise Conflict(f"A different layer run with id '{row['id']}' already exists.")
    return stored, created


@measured("create_layer_runs")
async def create_layer_runs(
    conn: AsyncConnection, items: Sequence[Mapping[str, Any]]
) -> list[tuple[str, bool]]:
    """Record many runs in one statement. Returns `(id, created)` per item, in order.

    All or nothing: if any id exists with other content the whole batch raises
    Conflict, and the caller's transaction rolls every insert back.
    """
    now = datetime.now(UTC)
    rows = [new_layer_run_row(item, now=now) for item in items]
    ids = [row["id"] for row in rows]
    seen: set[str] = set()
    for index, run_id in enumerate(ids):
        if run_id in seen:
            raise InvalidArgument.at(("body", "runs", index, "id"), f"duplicate id '{run_id}'")
        seen.add(run_id)
    inserted = set(
        await dialect_of(conn).insert_many_ignoring_conflicts(conn, t, rows, returning="id")
    )
    if inserted:
        await record_layer_run_changes(conn, added=[r for r in rows if r["id"] in inserted])
        await record_operator_changes(conn, added=[r for r in rows if r["id"] in inserted])
    existing_rows = [row for row in rows if row["id"] not in inserted]
    if existing_rows:
        stored = {
            r.id: r._mapping
            for r in await conn.execute(
                select(*DETAIL_COLUMNS).where(t.c.id.in_([r["id"] for r in existing_rows]))
            )
        }
        differing = [r["id"] for r in existing_rows if not _same_content(stored[r["id"]], r)]
        if differing:
            shown = ", ".join(f"'{i}'" for i in differing[:10])
            raise Conflict(
                f"{len(differing)} run(s) already exist with different content: {shown}.",
                errors=[
                    {"loc": ["body", "runs", ids.index(i), "id"], "msg": "conflict"}
                    for i in differing
                ],
            )
    return [(run_id, run_id in inserted) for run_id in ids]


@measured("update_layer_run")
async def update_layer_run(
    conn: AsyncConnection, run_id: str, changes: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Apply progress or completion to a running run; a final run is immutable (Conflict)."""
    # Locked until commit, so the rollups see exactly the values being replaced.
    query = dialect_of(conn).lock_rows(select(*DETAIL_COLUMNS).where(t.c.id == run_id))
    found = (await conn.execute(query)).first()
    if found is None:
        raise NotFound(f"No layer run with id '{run_id}'.")
    current = found._mapping
    if current["status"] != "running":
        raise Conflict(
            f"Layer run '{run_id}' is '{current['status']}'; a completed run cannot change."
        )
    values = dict(changes)
    status = values.get("status", "running")
    now = datetime.now(UTC)
    if status in FINAL_LAYER_RUN_STATUSES:
        completed_at = values.get("completed_at") or max(now, current["started_at"])
        if completed_at < current["started_at"]:
            raise InvalidArgument.at(
                ("body", "completed_at"), "completed_at must not precede started_at"
            )
        values["completed_at"] = completed_at
        values["duration_seconds"] = _duration(current["started_at"], completed_at)
    elif values.get("completed_at") is not None:
        raise InvalidArgument.at(
            ("body", "completed_at"), "completed_at needs a final status in the same update"
        )
    if "tokens_total" not in values and ("tokens_input" in values or "tokens_output" in values):
        tokens_in = values.get("tokens_input", current["tokens_input"])
        tokens_out = values.get("tokens_output", current["tokens_output"])
        if tokens_in is not None and tokens_out is not None:
            if tokens_in + tokens_out > MAX_TOKENS:
                raise InvalidArgument.at(
                    ("body", "tokens_input" if "tokens_input" in values else "tokens_output"),
                    f"tokens_input + tokens_output would be {tokens_in + tokens_out}, more than "
                    f"{MAX_TOKENS} (tokens_total is their sum unless given)",
                )
            values["tokens_total"] = tokens_in + tokens_out
    for count in ("targets_matched", "targets_processed", "targets_skipped", "insights_created"):
        if count in values and values[count] is None:
            del values[count]
    values["updated_at"] = now
    stmt = (
        update(t)
        .where(t.c.id == run_id, t.c.status == "running")
        .values(values)
        .returning(*DETAIL_COLUMNS)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:  # another request completed it between our read and this write
        raise Conflict(f"Layer run '{run_id}' was completed by another request.")
    await record_layer_run_changes(conn, added=[row._mapping], removed=[current])
    await record_operator_changes(conn, added=[row._mapping], removed=[current])
    return row._mapping


@measured("delete_layer_run")
async def delete_layer_run(conn: AsyncConnection, run_id: str) -> None:
    result = await conn.execute(delete(t).where(t.c.id == run_id).returning(*DETAIL_COLUMNS))
    removed = result.first()
    if removed is None:
        raise NotFound(f"No layer run with id '{run_id}'.")
    await record_layer_run_changes(conn, removed=[removed._mapping])
    await record_operator_changes(conn, removed=[removed._mapping])


@measured("layer_run_timeseries")
async def layer_run_timeseries(
    conn: AsyncConnection,
    *,
    grain: str,
    days: int,
    layer_name: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Contiguous, zero-filled hourly or daily buckets ending with the current one."""
    now = now or datetime.now(UTC)
    step = timedelta(hours=1) if grain == "hour" else timedelta(days=1)
    count = days * 24 if grain == "hour" else days
    end = (floor_hour(now) if grain == "hour" else floor_day(now)) + step
    start = end - count * step
    sums = await rollup_buckets(conn, grain=grain, start=start, end=end, layer_name=layer_name)
    buckets = []
    for i in range(count):
        bucket_start = start + i * step
        by_status = dict.fromkeys(LAYER_RUN_STATUSES, 0)
        insights = tokens = cost = 0
        for status in LAYER_RUN_STATUSES:
            values = sums.get((bucket_start, status))
            if values:
                by_status[status] = values[0]
                insights += values[1]
                tokens += values[2]
                cost += values[3]
        buckets.append(
            {
                "start": bucket_start,
                "runs": sum(by_status.values()),
                "by_status": by_status,
                "insights": insights,
                "tokens": tokens,
                "cost_usd": cost / 1e9,
            }
        )
    return {
        "bucket": grain,
        "period_days": days,
        "start": start,
        "end": end,
        "layer_name": layer_name,
        "buckets": buckets,
    }


async def purge_layer_runs(
    engine: AsyncEngine,
    *,
    before: datetime,
    batch_size: int = 5000,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Delete runs that started before `before`, in small transactions; returns how many.

    The rollups are left as they are, so stats over long windows stay right;
    `total` of lists starts at the purge horizon from now on. `progress(n)` is
    called after each transaction with the runs it deleted.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    async with engine.begin() as conn:
        horizon = await purged_before(conn)
        if horizon is None or horizon < before:
            await set_purged_before(conn, before)
    deleted = 0
    while True:
        async with engine.begin() as conn:
            oldest = (
                select(t.c.id)
                .where(t.c.started_at < before)
                .order_by(t.c.started_at)
                .limit(batch_size)
            )
            result = await conn.execute(delete(t).where(t.c.id.in_(oldest.scalar_subquery())))
            await bump_data_version(conn)
        deleted += result.rowcount
        if progress is not None:
            progress(result.rowcount)
        if result.rowcount < batch_size:
            return deleted
