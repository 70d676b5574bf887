"""A layer run's life: recorded (running or already final), updated while running, then fixed.

A run is recorded once per id: the same id with the same content again is
answered with the stored run, with other content it conflicts. While it is
`running` it may report progress; a final status completes it, and a
completed run never changes. The SQL is in `queries/layer_runs.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.domain import FINAL_LAYER_RUN_STATUSES, MAX_TOKENS
from runwatch.errors import Conflict, InvalidArgument, NotFound
from runwatch.kinds import LAYER_RUNS
from runwatch.queries import layer_runs as repo
from runwatch.queries.runs import get_run

COUNTS = ("targets_matched", "targets_processed", "targets_skipped", "insights_created")


def _duration(started_at: datetime, completed_at: datetime | None) -> float | None:
    if completed_at is None:
        return None
    return (completed_at - started_at).total_seconds()


def new_layer_run_row(data: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """A full row from validated create data: server id, derived totals, timestamps."""
    row = {name: data.get(name) for name in repo.CONTENT_COLUMNS}
    for count in COUNTS:
        row[count] = row[count] or 0
    if row["id"] is None:
        row["id"] = str(ULID())
    if row["tokens_total"] is None and None not in (row["tokens_input"], row["tokens_output"]):
        row["tokens_total"] = row["tokens_input"] + row["tokens_output"]
    row["duration_seconds"] = _duration(row["started_at"], row["completed_at"])
    row["created_at"] = row["updated_at"] = now
    return row


def _same_content(stored: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    return all(stored[name] == row[name] for name in repo.CONTENT_COLUMNS)


async def create_layer_run(
    conn: AsyncConnection, data: Mapping[str, Any]
) -> tuple[Mapping[str, Any], bool]:
    """Record a run. Returns `(run, created)`; the same id with other content is a Conflict."""
    row = new_layer_run_row(data, now=datetime.now(UTC))
    created = await repo.insert_layer_run(conn, row)
    stored = await get_run(conn, LAYER_RUNS, row["id"])
    if not created and not _same_content(stored, row):
        raise Conflict(f"A different layer run with id '{row['id']}' already exists.")
    return stored, created


async def create_layer_runs(
    conn: AsyncConnection, items: Sequence[Mapping[str, Any]]
) -> list[tuple[str, bool]]:
    """Record many runs at once. Returns `(id, created)` per item, in order.

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
    inserted = await repo.insert_layer_runs(conn, rows)
    existing_rows = [row for row in rows if row["id"] not in inserted]
    if existing_rows:
        stored = await repo.find_layer_runs(conn, [row["id"] for row in existing_rows])
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


def _derived_tokens_total(current: Mapping[str, Any], values: Mapping[str, Any]) -> int | None:
    """`tokens_total` when an update changes input or output and does not give it."""
    if "tokens_total" in values or not ("tokens_input" in values or "tokens_output" in values):
        return None
    tokens_in = values.get("tokens_input", current["tokens_input"])
    tokens_out = values.get("tokens_output", current["tokens_output"])
    if tokens_in is None or tokens_out is None:
        return None
    if tokens_in + tokens_out > MAX_TOKENS:
        raise InvalidArgument.at(
            ("body", "tokens_input" if "tokens_input" in values else "tokens_output"),
            f"tokens_input + tokens_output would be {tokens_in + tokens_out}, more than "
            f"{MAX_TOKENS} (tokens_total is their sum unless given)",
        )
    return tokens_in + tokens_out


def update_values(
    current: Mapping[str, Any], changes: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    """What an update of the running run `current` writes; 409 or 422 when it may not."""
    if current["status"] != "running":
        raise Conflict(
            f"Layer run '{current['id']}' is '{current['status']}'; a completed run cannot change."
        )
    values = dict(changes)
    if values.get("status", "running") in FINAL_LAYER_RUN_STATUSES:
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
    total = _derived_tokens_total(current, values)
    if total is not None:
        values["tokens_total"] = total
    for count in COUNTS:
        if count in values and values[count] is None:
            del values[count]
    values["updated_at"] = now
    return values


async def update_layer_run(
    conn: AsyncConnection, run_id: str, changes: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Apply progress or completion to a running run; a final run is immutable (Conflict)."""
    # Locked until commit, so the rollups see exactly the values being replaced.
    current = await repo.lock_layer_run(conn, run_id)
    if current is None:
        raise NotFound(f"No layer run with id '{run_id}'.")
    values = update_values(current, changes, now=datetime.now(UTC))
    row = await repo.update_running_layer_run(conn, current, values)
    if row is None:  # another request completed it between our read and this write
        raise Conflict(f"Layer run '{run_id}' was completed by another request.")
    return row


async def delete_layer_run(conn: AsyncConnection, run_id: str) -> None:
    """Delete the run; its contribution to the stats goes with it. NotFound if none."""
    if not await repo.delete_layer_run(conn, run_id):
        raise NotFound(f"No layer run with id '{run_id}'.")
