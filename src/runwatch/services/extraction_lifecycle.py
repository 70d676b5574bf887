"""An extraction run's life: created pending, claimed under a lease, completed or failed.

Runs move `pending → running → completed | failed`. A running run is held by
a worker until its lease expires; an expired run goes back to `pending` until
it has used its attempts, then fails. Every write checks that the run has not
moved on since it was read, so two requests cannot both act on one state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.domain import FINAL_EXTRACTION_RUN_STATUSES
from runwatch.errors import Conflict, InvalidArgument, NotFound
from runwatch.kinds import EXTRACTION_RUNS
from runwatch.metrics import EXTRACTION_WORKER_EVENTS, RUNS_RECORDED
from runwatch.queries import extraction_runs as repo
from runwatch.queries.runs import get_run
from runwatch.scoring import score

# The moves a PATCH may make; `running → running` extends the lease or reports progress.
TRANSITIONS = frozenset(
    {
        ("pending", "running"),
        ("running", "running"),
        ("running", "completed"),
        ("running", "failed"),
    }
)
# What makes a run "the same" when it is created again with its id.
CREATE_CONTENT = ("prompt_id", "config_id", "document_name", "expected")
# Expired leases handled per claim; the rest wait for the next claim.
EXPIRY_BATCH = 1000


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _changed_meanwhile(run_id: str) -> Conflict:
    return Conflict(f"Extraction run '{run_id}' was changed by another request; read it again.")


async def get_extraction_run(conn: AsyncConnection, run_id: str) -> Mapping[str, Any]:
    """The run with every shown field; NotFound when there is none."""
    return await get_run(conn, EXTRACTION_RUNS, run_id)


async def delete_extraction_run(conn: AsyncConnection, run_id: str) -> None:
    if not await repo.delete_extraction_run(conn, run_id):
        raise NotFound(f"No extraction run with id '{run_id}'.")


async def create_extraction_run(
    conn: AsyncConnection, data: Mapping[str, Any], *, now: datetime | None = None
) -> tuple[Mapping[str, Any], bool]:
    """Store a pending run. Returns `(run, created)`; the same id with other content conflicts."""
    now = _now(now)
    row = {name: data.get(name) for name in CREATE_CONTENT}
    row["id"] = data.get("id") or str(ULID())
    row.update(status="pending", created_at=now, updated_at=now, attempts=0)
    created = await repo.insert_extraction_run(conn, row)
    stored = await get_extraction_run(conn, row["id"])
    if not created and any(stored[name] != row[name] for name in CREATE_CONTENT):
        raise Conflict(f"A different extraction run with id '{row['id']}' already exists.")
    if created:
        RUNS_RECORDED.labels("extraction", "pending").inc()
    return stored, created


async def expire_extraction_leases(
    conn: AsyncConnection, *, max_attempts: int, now: datetime | None = None
) -> tuple[int, int]:
    """Take back running runs whose lease has expired; returns `(requeued, failed)`.

    A run that has had fewer than `max_attempts` claims goes back to `pending`
    (keeping its place, since claims take the oldest first); one that has used
    them all is `failed`.
    """
    now = _now(now)
    rows = await repo.lock_expired_leases(conn, now=now, limit=EXPIRY_BATCH)
    requeue = [r.id for r in rows if r.attempts < max_attempts]
    give_up = [r.id for r in rows if r.attempts >= max_attempts]
    if requeue:
        await repo.requeue_expired(conn, requeue, now=now)
        EXTRACTION_WORKER_EVENTS.labels("lease_expired_requeued").inc(len(requeue))
    if give_up:
        error = f"The lease expired on each of {max_attempts} attempts; giving up."
        await repo.fail_expired(conn, give_up, now=now, error=error)
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

    Expired leases are taken back first. Concurrent claimers get disjoint runs
    without waiting on each other (see `claim_pending`).
    """
    now = _now(now)
    await expire_extraction_leases(conn, max_attempts=max_attempts, now=now)
    claimed = await repo.claim_pending(
        conn,
        worker_id=worker_id,
        max_runs=max_runs,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        now=now,
    )
    if claimed:
        EXTRACTION_WORKER_EVENTS.labels("claimed").inc(len(claimed))
        RUNS_RECORDED.labels("extraction", "running").inc(len(claimed))
    return sorted(claimed, key=lambda r: (r["created_at"], r["id"]))


def _check_holder(current: Mapping[str, Any], worker_id: str | None) -> None:
    if worker_id is not None and current["worker_id"] not in (None, worker_id):
        raise Conflict(
            f"Extraction run '{current['id']}' is held by worker '{current['worker_id']}', "
            f"not '{worker_id}'; its lease may have expired and been claimed again."
        )


def _check_transition(current: Mapping[str, Any], target: str) -> None:
    run_id, was = current["id"], current["status"]
    if was in FINAL_EXTRACTION_RUN_STATUSES:
        raise Conflict(f"Extraction run '{run_id}' is '{was}'; a finished run cannot change.")
    if (was, target) not in TRANSITIONS:
        raise Conflict(
            f"Extraction run '{run_id}' cannot go from '{was}' to '{target}'; runs move "
            "pending → running → completed | failed."
        )


def _check_changes(changes: Mapping[str, Any], target: str) -> None:
    """The fields sent must fit the status the run is going to."""
    if changes.get("error") is not None and target != "failed":
        raise InvalidArgument.at(("body", "error"), "an error goes with status 'failed'")
    if target == "failed" and not changes.get("error"):
        raise InvalidArgument.at(("body", "error"), "a failed run needs an error message")
    if changes.get("lease_seconds") is not None and target != "running":
        raise InvalidArgument.at(("body", "lease_seconds"), "only a running run holds a lease")


def _reported_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a report sets: what was sent, with `tokens` spread over two columns."""
    names = ("output", "metrics", "cost_usd", "error", "worker_id")
    values = {name: changes[name] for name in names if changes.get(name) is not None}
    tokens = changes.get("tokens") or {}
    for key in ("input", "output"):
        if tokens.get(key) is not None:
            values[f"tokens_{key}"] = tokens[key]
    return values


def _lease_values(
    current: Mapping[str, Any],
    lease_seconds: int | None,
    *,
    target: str,
    now: datetime,
    default_lease_seconds: int,
) -> dict[str, Any]:
    """Starting a pending run counts an attempt and sets a lease; a running one may extend it."""
    if current["status"] == "pending":
        return {
            "started_at": now,
            "attempts": current["attempts"] + 1,
            "lease_expires_at": now + timedelta(seconds=lease_seconds or default_lease_seconds),
        }
    if target == "running" and lease_seconds is not None:
        return {"lease_expires_at": now + timedelta(seconds=lease_seconds)}
    return {}


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


def _metric_columns(metrics: Mapping[str, Any] | None) -> dict[str, float | None]:
    """The standard metrics' own columns, which the summary sums (None where absent)."""
    metrics = metrics or {}
    out: dict[str, float | None] = {}
    for name, column in repo.METRIC_COLUMNS.items():
        value = metrics.get(name)
        out[column] = float(value) if isinstance(value, (int, float)) else None
    return out


def _finish_values(
    current: Mapping[str, Any], values: Mapping[str, Any], *, target: str, now: datetime
) -> dict[str, Any]:
    """A finished run: completed (never before it started), lease gone, metrics in columns."""
    completed_at = max(now, current["started_at"])
    out: dict[str, Any] = {"completed_at": completed_at, "lease_expires_at": None}
    metrics = values.get("metrics", current["metrics"])
    if target == "completed":
        metrics = out["metrics"] = _completion_metrics(current, values, completed_at)
    out.update(_metric_columns(metrics))
    return out


def _count_update(run: Mapping[str, Any], lease_extended: bool) -> None:
    if run["status"] in FINAL_EXTRACTION_RUN_STATUSES:
        EXTRACTION_WORKER_EVENTS.labels(run["status"]).inc()
        RUNS_RECORDED.labels("extraction", run["status"]).inc()
    elif lease_extended:
        EXTRACTION_WORKER_EVENTS.labels("lease_extended").inc()


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
    target = changes.get("status") or current["status"]
    _check_transition(current, target)
    _check_changes(changes, target)
    _check_holder(current, changes.get("worker_id"))
    lease_seconds = changes.get("lease_seconds")
    values: dict[str, Any] = {"status": target, "updated_at": now, **_reported_values(changes)}
    values.update(
        _lease_values(
            current,
            lease_seconds,
            target=target,
            now=now,
            default_lease_seconds=default_lease_seconds,
        )
    )
    if target in FINAL_EXTRACTION_RUN_STATUSES:
        values.update(_finish_values(current, values, target=target, now=now))
    row = await repo.update_if_unchanged(conn, current, values)
    if row is None:
        raise _changed_meanwhile(run_id)
    _count_update(row, lease_extended=lease_seconds is not None)
    return row


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
    attempts = max(current["attempts"] - 1, 0)
    row = await repo.release_if_unchanged(conn, current, attempts=attempts, now=now)
    if row is None:
        raise _changed_meanwhile(run_id)
    EXTRACTION_WORKER_EVENTS.labels("released").inc()
    return row
