"""Reads run on the driver's own connection give what SQLAlchemy gives, and survive a dead one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs, layer_runs
from runwatch.kinds import EXTRACTION_RUNS, LAYER_RUNS
from runwatch.queries.runs import RunFilter, filter_params, filter_shape, run_conditions
from tests.factories import layer_run


async def _seed(client: httpx.AsyncClient) -> list[dict]:
    now = datetime.now(UTC)
    runs = [
        layer_run(
            started_at=now - timedelta(hours=i),
            status=("success", "failed", "running")[i % 3],
            errors=[{"type": "Timeout", "message": f"after {i}s"}] if i % 3 == 1 else None,
        )
        for i in range(9)
    ]
    for run in runs:
        if run["status"] == "running":
            run["completed_at"] = None
    response = await client.post("/runs/batch", json={"runs": runs})
    assert response.status_code == 200, response.text
    return runs


async def _through_sqlalchemy(conn: AsyncConnection, query: Any, params: dict) -> list[dict]:
    return [dict(row._mapping) for row in await conn.execute(query, params)]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
async def test_driver_rows_equal_sqlalchemy_rows(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    runs = await _seed(client)
    filters = RunFilter(statuses=("failed", "running"))
    shape = filter_shape(filters)
    query = (
        layer_runs.select()
        .where(*run_conditions(LAYER_RUNS, shape))
        .order_by(layer_runs.c.started_at.desc(), layer_runs.c.id)
    )
    params = filter_params(filters)
    async with engines.read.connect() as conn:
        driver = await dialect_of(conn).fetch_all(conn, query, params)
        plain = await _through_sqlalchemy(conn, query, params)
        assert [dict(r) for r in driver] == plain
        assert [list(r) for r in await dialect_of(conn).fetch_rows(conn, query, params)] == [
            list(r.values()) for r in plain
        ]
        assert len(driver) == 6
        assert any(r["errors"] for r in driver)  # JSON decoded the same way
        assert any(r["completed_at"] is None for r in driver)
        by_id = layer_runs.select().where(layer_runs.c.id == runs[4]["id"])
        one = await dialect_of(conn).fetch_all(conn, by_id, {})
        assert one[0]["id"] == runs[4]["id"]
        assert one[0]["started_at"].tzinfo is not None


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
async def test_extraction_detail_rows_equal_sqlalchemy_rows(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    """Their JSON columns (output, metrics, expected) and null timestamps come back alike."""
    expected = {"invoice": {"total": 12.5, "lines": [1, 2]}, "note": "ünïcode \u2028"}
    created = await client.post(
        "/extraction-runs",
        json={"prompt_id": "p", "config_id": "c", "document_name": "d", "expected": expected},
    )
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    query = (
        extraction_runs.select()
        .with_only_columns(*EXTRACTION_RUNS.detail_columns)
        .where(*run_conditions(EXTRACTION_RUNS, ((), 0, False, False)))
    )
    async with engines.read.connect() as conn:
        driver = await dialect_of(conn).fetch_all(conn, query, {})
        plain = await _through_sqlalchemy(conn, query, {})
    assert [dict(r) for r in driver] == plain
    assert driver[0]["expected"] == expected
    assert driver[0]["started_at"] is None
    detail = await client.get(f"/extraction-runs/{run_id}")
    assert detail.status_code == 200
    assert detail.json()["expected"] == expected


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
async def test_a_read_on_a_killed_connection_is_answered(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    runs = await _seed(client)
    first = await client.get(f"/runs/{runs[0]['id']}")
    assert first.status_code == 200
    # End every other session of the database: the pooled read connections die.
    async with engines.write.connect() as admin:
        await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    again = await client.get(f"/runs/{runs[1]['id']}")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == runs[1]["id"]
    page = await client.get("/runs", params={"status": "failed"})
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 3
