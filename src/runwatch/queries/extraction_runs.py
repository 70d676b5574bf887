"""Extraction runs: filters, list and count; create, claim, lease, complete; compare and stats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.db.dialect import insert_ignoring_conflicts, lock_rows_skipping_locked
from runwatch.db.tables import FINAL_EXTRACTION_RUN_STATUSES, extraction_runs
from runwatch.errors import Conflict, InvalidArgument, NotFound
from runwatch.metrics import EXTRACTION_WORKER_EVENTS
from runwatch.queries.pagination import Page, SortSpec, fetch_page
from runwatch.scoring import diff_fields, difference, percentile, score

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
STANDARD_METRICS = ("precision", "recall", "f1", "latency_ms")
SORT_KEYS = ("created_at", "cost_usd")
# Expired leases handled per claim; the rest wait for the next claim.
EXPIRY_BATCH = 1000


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


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
    name = token.lstrip("-")
    if name not in SORT_KEYS:
        raise InvalidArgument.at(("query", "sort"), f"unknown sort key '{name}'")
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


async def get_extraction_run(conn: AsyncConnection, run_id: str) -> Mapping[str, Any]:
    row = (await conn.execute(select(*DETAIL_COLUMNS).where(t.c.id == run_id))).first()
    if row is None:
        raise NotFound(f"No extraction run with id '{run_id}'.")
    return row._mapping


CREATE_CONTENT = ("prompt_id", "config_id", "document_name", "expected")


async def create_extraction_run(
    conn: AsyncConnection, data: Mapping[str, Any], *, now: datetime | None = None
) -> tuple[Mapping[str, Any], bool]:
    """Store a pending run. Returns `(run, created)`; the same id with other content conflicts."""
    now = _now(now)
    row = {name: data.get(name) for name in CREATE_CONTENT}
    row["id"] = data.get("id") or str(ULID())
    row.update(status="pending", created_at=now, updated_at=now, attempts=0)
    stmt = insert_ignoring_conflicts(t, conn.dialect.name).values(row)
    created = (await conn.execute(stmt)).rowcount == 1
    stored = await get_extraction_run(conn, row["id"])
    if not created and any(stored[name] != row[name] for name in CREATE_CONTENT):
        raise Conflict(f"A different extraction run with id '{row['id']}' already exists.")
    return stored, created


async def expire_extraction_leases(
    conn: AsyncConnection, *, max_attempts: int, now: datetime | None = None
) -> tuple[int, int]:
    """Take back running runs whose lease has expired; returns `(requeued, failed)`.

    A run that has had fewer than `max_attempts` claims goes back to `pending`
    (keeping its place, since claims take the oldest first); one that has used
    them all is `failed`. Rows another transaction holds are skipped, not
    waited for: whoever holds them is already dealing with them.
    """
    now = _now(now)
    expired = lock_rows_skipping_locked(
        select(t.c.id, t.c.attempts)
        .where(t.c.status == "running", t.c.lease_expires_at < now)
        .order_by(t.c.lease_expires_at, t.c.id)
        .limit(EXPIRY_BATCH),
        conn.dialect.name,
    )
    rows = (await conn.execute(expired)).all()
    requeue = [r.id for r in rows if r.attempts < max_attempts]
    give_up = [r.id for r in rows if r.attempts >= max_attempts]
    still_expired = (t.c.status == "running", t.c.lease_expires_at < now)
    if requeue:
        await conn.execute(
            update(t)
            .where(t.c.id.in_(requeue), *still_expired)
            .values(
                status="pending",
                started_at=None,
                worker_id=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
    if give_up:
        await conn.execute(
            update(t)
            .where(t.c.id.in_(give_up), *still_expired)
            .values(
                status="failed",
                completed_at=now,
                lease_expires_at=None,
                error=f"The lease expired on each of {max_attempts} attempts; giving up.",
                updated_at=now,
            )
        )
    if requeue:
        EXTRACTION_WORKER_EVENTS.labels("lease_expired_requeued").inc(len(requeue))
    if give_up:
        EXTRACTION_WORKER_EVENTS.labels("lease_expired_failed").inc(len(give_up))
    return len(requeue), len(give_up)


async def claim_extraction_runs(
    conn: AsyncConnection,
    *,
    worker_id: str,
    max_runs: int,
    lease_seconds: int,
    max_attempts: int,
    now: datetime | None = None,
) -> list[Mapping[str, Any]]:
    """Hand the oldest pending runs (up to `max_runs`) to `worker_id`, oldest first.

    Expired leases are taken back first. On PostgreSQL the pending rows are
    locked with SKIP LOCKED, so concurrent claimers get disjoint runs without
    waiting on each other; on SQLite the write transaction holds the database
    lock from its start. Either way a run goes to exactly one claimer.
    """
    now = _now(now)
    await expire_extraction_leases(conn, max_attempts=max_attempts, now=now)
    # One statement: pick and lock the oldest pending rows, then update them.
    # The pick is MATERIALIZED so PostgreSQL locks exactly the rows it hands out.
    picked = (
        lock_rows_skipping_locked(
            select(t.c.id)
            .where(t.c.status == "pending")
            .order_by(t.c.created_at, t.c.id)
            .limit(max_runs),
            conn.dialect.name,
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
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=t.c.attempts + 1,
            updated_at=now,
        )
        .returning(*CLAIM_COLUMNS)
    )
    claimed = [row._mapping for row in await conn.execute(stmt)]
    return sorted(claimed, key=lambda r: (r["created_at"], r["id"]))


def _check_holder(current: Mapping[str, Any], worker_id: str | None) -> None:
    if worker_id is not None and current["worker_id"] not in (None, worker_id):
        raise Conflict(
            f"Extraction run '{current['id']}' is held by worker '{current['worker_id']}', "
            f"not '{worker_id}'; its lease may have expired and been claimed again."
        )


def _metric_columns(metrics: Mapping[str, Any] | None) -> dict[str, float | None]:
    metrics = metrics or {}
    out: dict[str, float | None] = {}
    for name, column in METRIC_COLUMNS.items():
        value = metrics.get(name)
        out[column] = float(value) if isinstance(value, (int, float)) else None
    return out


def _completion_metrics(
    current: Mapping[str, Any], values: Mapping[str, Any], completed_at: datetime
) -> dict[str, float]:
    """Metrics for a run being completed: as reported, or scored against `expected`.

    `latency_ms` (completed - started) is added when the reported metrics lack it.
    """
    latency_ms = (completed_at - current["started_at"]).total_seconds() * 1000.0
    reported = values["metrics"] if values.get("metrics") is not None else current["metrics"]
    if reported is not None:
        metrics = dict(reported)
    else:
        metrics = {}
        output = values["output"] if "output" in values else current["output"]
        if current["expected"] is not None and output is not None:
            metrics.update(score(output, current["expected"]).as_metrics())
    metrics.setdefault("latency_ms", round(latency_ms, 3))
    return metrics


async def update_extraction_run(
    conn: AsyncConnection,
    run_id: str,
    changes: Mapping[str, Any],
    *,
    default_lease_seconds: int,
    now: datetime | None = None,
) -> Mapping[str, Any]:
    """Start, extend, or finish a run: pending → running → completed | failed, else Conflict.

    `changes` holds the fields sent: `status`, `worker_id`, `lease_seconds`,
    `output`, `metrics`, `tokens` (`{"input", "output"}`), `cost_usd`, `error`.
    """
    now = _now(now)
    current = await get_extraction_run(conn, run_id)
    was = current["status"]
    target = changes.get("status") or was
    if was in FINAL_EXTRACTION_RUN_STATUSES:
        raise Conflict(f"Extraction run '{run_id}' is '{was}'; a finished run cannot change.")
    if (was, target) not in {
        ("pending", "running"),
        ("running", "running"),
        ("running", "completed"),
        ("running", "failed"),
    }:
        raise Conflict(
            f"Extraction run '{run_id}' cannot go from '{was}' to '{target}'; runs move "
            "pending → running → completed | failed."
        )
    if changes.get("error") is not None and target != "failed":
        raise InvalidArgument.at(("body", "error"), "an error goes with status 'failed'")
    if target == "failed" and not changes.get("error"):
        raise InvalidArgument.at(("body", "error"), "a failed run needs an error message")
    lease_seconds = changes.get("lease_seconds")
    if lease_seconds is not None and target != "running":
        raise InvalidArgument.at(("body", "lease_seconds"), "only a running run holds a lease")
    worker_id = changes.get("worker_id")
    _check_holder(current, worker_id)

    values: dict[str, Any] = {"status": target, "updated_at": now}
    for name in ("output", "cost_usd", "error"):
        if name in changes and changes[name] is not None:
            values[name] = changes[name]
    if changes.get("metrics") is not None:
        values["metrics"] = changes["metrics"]
    tokens = changes.get("tokens")
    if tokens is not None:
        for key in ("input", "output"):
            if tokens.get(key) is not None:
                values[f"tokens_{key}"] = tokens[key]
    if worker_id is not None:
        values["worker_id"] = worker_id
    if was == "pending":
        values["started_at"] = now
        values["attempts"] = current["attempts"] + 1
        values["lease_expires_at"] = now + timedelta(seconds=lease_seconds or default_lease_seconds)
    elif target == "running" and lease_seconds is not None:
        values["lease_expires_at"] = now + timedelta(seconds=lease_seconds)
    if target in FINAL_EXTRACTION_RUN_STATUSES:
        completed_at = max(now, current["started_at"])
        values["completed_at"] = completed_at
        values["lease_expires_at"] = None
        if target == "completed":
            values["metrics"] = _completion_metrics(current, values, completed_at)
        values.update(_metric_columns(values.get("metrics", current["metrics"])))

    stmt = (
        update(t)
        .where(t.c.id == run_id, t.c.status == was, t.c.attempts == current["attempts"])
        .values(values)
        .returning(*DETAIL_COLUMNS)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:  # changed by another request between our read and this write
        raise Conflict(f"Extraction run '{run_id}' was changed by another request; read it again.")
    return row._mapping


async def release_extraction_run(
    conn: AsyncConnection,
    run_id: str,
    *,
    worker_id: str | None = None,
    now: datetime | None = None,
) -> Mapping[str, Any]:
    """Give a running run back to `pending` unfinished; the attempt is not counted."""
    now = _now(now)
    current = await get_extraction_run(conn, run_id)
    if current["status"] != "running":
        raise Conflict(
            f"Extraction run '{run_id}' is '{current['status']}'; only a running run "
            "can be released."
        )
    _check_holder(current, worker_id)
    stmt = (
        update(t)
        .where(t.c.id == run_id, t.c.status == "running", t.c.attempts == current["attempts"])
        .values(
            status="pending",
            started_at=None,
            worker_id=None,
            lease_expires_at=None,
            attempts=max(current["attempts"] - 1, 0),
            updated_at=now,
        )
        .returning(*DETAIL_COLUMNS)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise Conflict(f"Extraction run '{run_id}' was changed by another request; read it again.")
    return row._mapping


async def delete_extraction_run(conn: AsyncConnection, run_id: str) -> None:
    result = await conn.execute(delete(t).where(t.c.id == run_id).returning(t.c.id))
    if result.first() is None:
        raise NotFound(f"No extraction run with id '{run_id}'.")


def _metric_order(names: set[str]) -> list[str]:
    standard = [m for m in STANDARD_METRICS if m in names]
    return standard + sorted(names - set(STANDARD_METRICS))


def compare_metrics(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """One entry per metric on either side: values, `difference` (b - a) and percent of a."""
    a, b = a or {}, b or {}
    out = []
    for name in _metric_order(set(a) | set(b)):
        value_a, value_b = a.get(name), b.get(name)
        delta, percent = difference(value_a, value_b)
        out.append(
            {
                "metric": name,
                "run_a": value_a,
                "run_b": value_b,
                "difference": delta,
                "percent_difference": percent,
            }
        )
    return out


async def compare_extraction_runs(
    conn: AsyncConnection, run_a_id: str, run_b_id: str
) -> dict[str, Any]:
    """Metric by metric and field by field comparison of two runs, in any status."""
    run_a = await get_extraction_run(conn, run_a_id)
    run_b = await get_extraction_run(conn, run_b_id)
    fields = diff_fields(run_a["output"], run_b["output"])
    counts = {"same": 0, "different": 0, "only_in_a": 0, "only_in_b": 0}
    for f in fields:
        counts[f.status] += 1
    return {
        "run_a": run_a,
        "run_b": run_b,
        "metric_comparisons": compare_metrics(run_a["metrics"], run_b["metrics"]),
        "field_differences": [
            {"field": f.field, "status": f.status, "run_a": f.run_a, "run_b": f.run_b}
            for f in fields
            if f.status != "same"
        ],
        "summary": {
            "fields_same": counts["same"],
            "fields_different": counts["different"],
            "fields_only_in_a": counts["only_in_a"],
            "fields_only_in_b": counts["only_in_b"],
        },
    }


@dataclass(frozen=True)
class GroupSide:
    """One side of a group comparison: the runs of a prompt and/or a config."""

    prompt_id: str | None = None
    config_id: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        return extraction_run_conditions(
            ExtractionRunFilter(prompt_id=self.prompt_id, config_id=self.config_id)
        )


async def _latest_completed(
    conn: AsyncConnection, side: GroupSide, document_name: str | None
) -> dict[str, Mapping[str, Any]]:
    """The latest completed run of `side` per document (by completed_at, then id)."""
    conditions = [*side.conditions(), t.c.status == "completed"]
    if document_name is not None:
        conditions.append(t.c.document_name == document_name)
    rank = (
        func.row_number()
        .over(
            partition_by=t.c.document_name,
            order_by=(t.c.completed_at.desc(), t.c.id.desc()),
        )
        .label("rank")
    )
    ranked = select(t.c.id, t.c.document_name, t.c.metrics, rank).where(*conditions).subquery()
    query = select(ranked.c.id, ranked.c.document_name, ranked.c.metrics).where(ranked.c.rank == 1)
    return {row.document_name: row._mapping for row in await conn.execute(query)}


async def compare_extraction_groups(
    conn: AsyncConnection,
    *,
    a: GroupSide,
    b: GroupSide,
    document_name: str | None = None,
    max_documents: int,
) -> dict[str, Any]:
    """Pair the latest completed run of each side per document and compare their metrics.

    Means are taken over the paired documents that have the metric on both
    sides, so both means describe the same documents. F1 decides wins: the
    side with the higher F1 wins a document, equal F1 (within 1e-9) is a tie.
    """
    side_a = await _latest_completed(conn, a, document_name)
    side_b = await _latest_completed(conn, b, document_name)
    if len(side_a.keys() | side_b.keys()) > max_documents:
        raise InvalidArgument(
            f"The comparison covers more than {max_documents} documents; narrow it with "
            "document_name.",
        )
    paired = sorted(side_a.keys() & side_b.keys())
    documents = []
    sums: dict[str, list[float]] = {}
    wins_a = wins_b = ties = missing = 0
    for name in paired:
        run_a, run_b = side_a[name], side_b[name]
        metrics_a, metrics_b = run_a["metrics"] or {}, run_b["metrics"] or {}
        comparisons = compare_metrics(metrics_a, metrics_b)
        documents.append(
            {
                "document_name": name,
                "run_a": run_a["id"],
                "run_b": run_b["id"],
                "metric_comparisons": comparisons,
            }
        )
        for c in comparisons:
            if c["run_a"] is not None and c["run_b"] is not None:
                acc = sums.setdefault(c["metric"], [0.0, 0.0, 0.0])
                acc[0] += c["run_a"]
                acc[1] += c["run_b"]
                acc[2] += 1
        f1_a, f1_b = metrics_a.get("f1"), metrics_b.get("f1")
        if f1_a is None or f1_b is None:
            missing += 1
        elif abs(f1_a - f1_b) <= 1e-9:
            ties += 1
        elif f1_a > f1_b:
            wins_a += 1
        else:
            wins_b += 1
    means = []
    for metric in _metric_order(set(sums)):
        total_a, total_b, count = sums[metric]
        mean_a, mean_b = round(total_a / count, 9), round(total_b / count, 9)
        delta, percent = difference(mean_a, mean_b)
        means.append(
            {
                "metric": metric,
                "documents": int(count),
                "mean_a": mean_a,
                "mean_b": mean_b,
                "difference": delta,
                "percent_difference": percent,
            }
        )
    return {
        "a": {"prompt_id": a.prompt_id, "config_id": a.config_id},
        "b": {"prompt_id": b.prompt_id, "config_id": b.config_id},
        "document_name": document_name,
        "documents_compared": len(paired),
        "documents": documents,
        "means": means,
        "f1": {"wins_a": wins_a, "wins_b": wins_b, "ties": ties, "missing": missing},
        "documents_only_in_a": sorted(side_a.keys() - side_b.keys()),
        "documents_only_in_b": sorted(side_b.keys() - side_a.keys()),
    }


def _empty_group() -> dict[str, Any]:
    return {
        "runs": 0,
        "pending": 0,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "cost_usd": 0.0,
        "tokens_input": 0,
        "tokens_output": 0,
        # running sums and counts for the means, folded into the answer below
        "_sums": {name: [0.0, 0] for name in ("precision", "recall", "f1")},
        "_latencies": [],
    }


def _finish_group(group: dict[str, Any]) -> dict[str, Any]:
    sums = group.pop("_sums")
    latencies = group.pop("_latencies")
    for name, (total, count) in sums.items():
        group[f"mean_{name}"] = round(total / count, 9) if count else None
    for p in (50, 95):
        value = percentile(latencies, p)
        group[f"p{p}_latency_ms"] = None if value is None else round(value, 6)
    group["cost_usd"] = round(group["cost_usd"], 9)
    return group


async def summarize_extraction_runs(
    conn: AsyncConnection,
    *,
    days: int,
    prompt_id: str | None = None,
    config_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `GET /extraction-runs/stats/summary` body: runs created in the last `days` days.

    Counts and sums come from one grouped query per (prompt, config, status).
    Latency percentiles are computed here from the fetched values (see
    `runwatch.scoring.percentile`), so both dialects give the same numbers.
    """
    since = _now(now) - timedelta(days=days)
    conditions = extraction_run_conditions(
        ExtractionRunFilter(prompt_id=prompt_id, config_id=config_id, since=since)
    )
    metric_aggregates = []
    for name in ("precision", "recall", "f1"):
        column = t.c[METRIC_COLUMNS[name]]
        metric_aggregates += [
            func.coalesce(func.sum(column), 0.0).label(f"sum_{name}"),
            func.count(column).label(f"count_{name}"),
        ]
    grouped = (
        select(
            t.c.prompt_id,
            t.c.config_id,
            t.c.status,
            func.count().label("runs"),
            func.coalesce(func.sum(t.c.cost_usd), 0.0).label("cost_usd"),
            func.coalesce(func.sum(t.c.tokens_input), 0).label("tokens_input"),
            func.coalesce(func.sum(t.c.tokens_output), 0).label("tokens_output"),
            *metric_aggregates,
        )
        .where(*conditions)
        .group_by(t.c.prompt_id, t.c.config_id, t.c.status)
    )
    by_prompt: dict[str, dict[str, Any]] = {}
    by_config: dict[str, dict[str, Any]] = {}
    totals = _empty_group()
    for row in await conn.execute(grouped):
        for group in (
            by_prompt.setdefault(row.prompt_id, _empty_group()),
            by_config.setdefault(row.config_id, _empty_group()),
            totals,
        ):
            group["runs"] += int(row.runs)
            group[row.status] += int(row.runs)
            group["cost_usd"] += float(row.cost_usd)
            group["tokens_input"] += int(row.tokens_input)
            group["tokens_output"] += int(row.tokens_output)
            for name in ("precision", "recall", "f1"):
                group["_sums"][name][0] += float(getattr(row, f"sum_{name}"))
                group["_sums"][name][1] += int(getattr(row, f"count_{name}"))
    latencies = select(t.c.prompt_id, t.c.config_id, t.c.metric_latency_ms).where(
        *conditions, t.c.metric_latency_ms.is_not(None)
    )
    for row in await conn.execute(latencies):
        by_prompt[row.prompt_id]["_latencies"].append(row.metric_latency_ms)
        by_config[row.config_id]["_latencies"].append(row.metric_latency_ms)
        totals["_latencies"].append(row.metric_latency_ms)
    totals = _finish_group(totals)
    return {
        "period_days": days,
        "since": since,
        "total_runs": totals["runs"],
        "pending_runs": totals["pending"],
        "running_runs": totals["running"],
        "completed_runs": totals["completed"],
        "failed_runs": totals["failed"],
        "total_cost_usd": totals["cost_usd"],
        "total_tokens_input": totals["tokens_input"],
        "total_tokens_output": totals["tokens_output"],
        "total_tokens": totals["tokens_input"] + totals["tokens_output"],
        "mean_precision": totals["mean_precision"],
        "mean_recall": totals["mean_recall"],
        "mean_f1": totals["mean_f1"],
        "p50_latency_ms": totals["p50_latency_ms"],
        "p95_latency_ms": totals["p95_latency_ms"],
        "by_prompt": {k: _finish_group(v) for k, v in sorted(by_prompt.items())},
        "by_config": {k: _finish_group(v) for k, v in sorted(by_config.items())},
    }
