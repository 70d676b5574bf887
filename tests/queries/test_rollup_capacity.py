"""A rollup bucket near the 64-bit limit still takes writes: the sums are wide enough."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select, update

from runwatch.db.engine import Engines
from runwatch.db.tables import layer_run_rollups as r
from tests.factories import iso, layer_run

BIGINT_MAX = 2**63 - 1
MONTH = datetime(2000, 1, 1, tzinfo=UTC)


async def _month_sums(engines: Engines) -> tuple[int, int]:
    async with engines.write.connect() as conn:
        row = (
            await conn.execute(
                select(r.c.cost_nanousd, r.c.duration_us).where(
                    r.c.grain == "month", r.c.bucket_start == MONTH, r.c.status == "success"
                )
            )
        ).one()
    return int(row.cost_nanousd), int(row.duration_us)


async def test_a_bucket_past_bigint_takes_more_runs(
    client: httpx.AsyncClient, engines: Engines, dialect: str
) -> None:
    first = layer_run(started_at=datetime(2000, 1, 3, tzinfo=UTC), duration=100.0)
    assert (await client.post("/runs", json=first)).status_code == 201
    # As if thousands of million-dollar, decades-long runs had been recorded
    # in this bucket: both sums a little under the 64-bit limit.
    near = BIGINT_MAX - 10**14
    async with engines.write.begin() as conn:
        await conn.execute(
            update(r)
            .where(r.c.grain == "month", r.c.bucket_start == MONTH)
            .values(cost_nanousd=near, duration_us=near)
        )
    started = datetime(2000, 1, 5, tzinfo=UTC)
    completed = datetime(2026, 1, 5, tzinfo=UTC)
    longest = layer_run(
        started_at=started, duration=None, completed_at=iso(completed), estimated_cost_usd=1e6
    )
    response = await client.post("/runs", json=longest)
    assert response.status_code == 201, response.text
    listed = await client.get("/runs", params={"since": "2000-01-01T00:00:00Z",
                                               "until": "2000-02-01T00:00:00Z"})  # fmt: skip
    assert listed.status_code == 200
    assert listed.json()["total"] == 2
    cost, duration = await _month_sums(engines)
    if dialect == "postgresql":  # NUMERIC(38, 0): exact past 2**63
        assert cost == near + 10**15
        assert duration == near + round((completed - started).total_seconds() * 1e6)
    else:  # SQLite goes over to floating point rather than failing the write
        assert cost > BIGINT_MAX
        assert duration > BIGINT_MAX
    # Deleting the run takes its contribution away again.
    assert (await client.delete(f"/runs/{longest['id']}")).status_code == 204
    if dialect == "postgresql":
        assert await _month_sums(engines) == (near, near)
