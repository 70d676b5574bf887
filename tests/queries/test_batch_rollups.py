"""A batch adds to every rollup what the same runs recorded one at a time add.

On PostgreSQL a batch's rollups are summed by the database (`Dialect.sums_batches`),
a single write's in Python; on SQLite both go through Python. Two copies of the
same runs, told apart only by their layer names, are recorded: one as a batch,
one run at a time. Every rollup row of the first copy must equal its twin.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Table, select

from runwatch.db.engine import Engines
from runwatch.db.tables import (
    layer_run_bucket_changes,
    layer_run_duration_bins,
    layer_run_error_rollups,
    layer_run_rollups,
    layer_run_version_rollups,
)
from runwatch.queries.operator_rollups import rebuild_operator_rollups
from runwatch.queries.rollup_upkeep import rebuild_layer_run_rollups
from tests.factories import layer_run

ROLLUPS = (
    layer_run_rollups,
    layer_run_version_rollups,
    layer_run_duration_bins,
    layer_run_error_rollups,
)
FLOAT_SUMS = ("duration_sq", "cost_sq")
ERRORS = [
    [{"type": "TimeoutError", "message": "call 17 timed out after 30s"}],
    [
        {"type": "ValueError", "message": "bad target t-9"},
        {"type": "ValueError", "message": "bad target t-12"},
    ],
]


def _runs(copy: str, rng: random.Random, start: datetime) -> list[dict[str, Any]]:
    """60 varied runs over three days across a month's end, their layer names marked `copy`."""
    runs = []
    for i in range(60):
        started = start + timedelta(minutes=rng.randrange(3 * 24 * 60), seconds=rng.random())
        status = rng.choice(["running", "success", "success", "partial", "failed", "dry"])
        overrides: dict[str, Any] = {
            "id": f"{copy}-{i}",
            "layer_name": f"{copy}-{rng.choice(['nightly', 'hourly', 'Ünïcode', 'Zeta'])}",
            "layer_hash": rng.choice(["v1", "v2", "V3"]),
            "insights_created": rng.randrange(20),
            # 1e-200: its square underflows, which PostgreSQL refuses to compute.
            "estimated_cost_usd": rng.choice([None, 0.0, 1e-200, rng.random() / 7]),
            "tokens_input": rng.choice([None, rng.randrange(10_000)]),
            "model_name": rng.choice([None, "m-large", "m-small"]),
        }
        if status in ("failed", "partial"):
            overrides["errors"] = rng.choice(ERRORS)
        duration = rng.choice([0.0, 0.5, rng.lognormvariate(3, 2)])
        runs.append(layer_run(started_at=started, status=status, duration=duration, **overrides))
    return runs


async def _rows(engines: Engines, table: Table, copy: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's rows of one copy's layers, by key with the copy's mark taken out."""
    key = [c.name for c in table.primary_key.columns]
    async with engines.write.connect() as conn:
        result = await conn.execute(select(table).where(table.c.layer_name.startswith(f"{copy}-")))
        rows = [dict(row._mapping) for row in result]
    out = {}
    for row in rows:
        row["layer_name"] = row["layer_name"].removeprefix(f"{copy}-")
        out[tuple(row[name] for name in key)] = row
    return out


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _bucket_changes(engines: Engines) -> dict[tuple[str, datetime], int]:
    bc = layer_run_bucket_changes
    async with engines.write.connect() as conn:
        rows = await conn.execute(select(bc.c.grain, bc.c.bucket_start, bc.c.changes))
        return {(grain, start): changes for grain, start, changes in rows}


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_batch_adds_what_single_writes_add(
    client: httpx.AsyncClient, engines: Engines, seed: int
) -> None:
    start = datetime(2026, 1, 30, 5, 0, tzinfo=UTC)
    batch = _runs("batch", random.Random(seed), start)
    single = _runs("single", random.Random(seed), start)
    # One run of the batch is already stored: the batch must not count it twice.
    assert (await client.post("/runs", json=batch[0])).status_code == 201
    changes_before = await _bucket_changes(engines)
    response = await client.post("/runs/batch", json={"runs": batch})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == len(batch) - 1
    # One change for each hour, day and month the inserted runs started in.
    changes = await _bucket_changes(engines)
    touched = {_at(run["started_at"]) for run in batch[1:]}
    hours = {m.replace(minute=0, second=0, microsecond=0) for m in touched}
    days = {h.replace(hour=0) for h in hours}
    buckets = {("hour", h) for h in hours} | {("day", d) for d in days}
    buckets |= {("month", d.replace(day=1)) for d in days}
    assert {k: n - changes_before.get(k, 0) for k, n in changes.items()} == dict.fromkeys(
        buckets, 1
    ) | {k: 0 for k in changes_before if k not in buckets}

    for run in single:
        assert (await client.post("/runs", json=run)).status_code == 201, run

    for table in ROLLUPS:
        batched = await _rows(engines, table, "batch")
        _assert_equal(table, batched, await _rows(engines, table, "single"))
        assert batched, table.name

    # And a rebuild from the raw runs makes the same rows again.
    before = {table.name: await _rows(engines, table, "batch") for table in ROLLUPS}
    async with engines.write.begin() as conn:
        await rebuild_layer_run_rollups(conn)
        await rebuild_operator_rollups(conn)
    for table in ROLLUPS:
        _assert_equal(table, await _rows(engines, table, "batch"), before[table.name])


def _assert_equal(table: Table, rows: dict[Any, dict[str, Any]], twins: dict[Any, Any]) -> None:
    assert rows.keys() == twins.keys(), table.name
    for key, row in rows.items():
        row, twin = dict(row), dict(twins[key])
        for name in FLOAT_SUMS:
            if name in row:
                assert row.pop(name) == pytest.approx(twin.pop(name), rel=1e-12), (key, name)
        assert row == twin, (table.name, key)
