"""Reads on a real streaming hot standby, writes on the primary, survival when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from runwatch.app import create_app
from runwatch.config import Settings
from tests.factories import layer_run
from tests.support.postgres import TemporaryPostgres, running_postgres
from tests.support.replication import TemporaryStandby


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[TemporaryPostgres, TemporaryStandby]]:
    with running_postgres(migrated=True) as primary:
        standby = TemporaryStandby(primary)
        try:
            standby.start()
            yield primary, standby
        finally:
            standby.stop()


def dsn(server: TemporaryPostgres) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/postgres"


async def fetchval(server: TemporaryPostgres, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn(server))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def replicated(standby: TemporaryStandby, run_id: str) -> None:
    for _ in range(250):
        if await fetchval(standby, "SELECT count(*) FROM layer_runs WHERE id = $1", run_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the standby did not replay the write")


@pytest.fixture
async def client(
    cluster: tuple[TemporaryPostgres, TemporaryStandby],
) -> AsyncIterator[httpx.AsyncClient]:
    primary, standby = cluster
    settings = Settings(
        database_url=primary.url,
        read_database_url=standby.url,
        auto_migrate=False,
        db_connect_timeout=2.0,
        replica_retry_seconds=60,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_standby_is_really_a_standby(
    cluster: tuple[TemporaryPostgres, TemporaryStandby],
) -> None:
    primary, standby = cluster
    assert await fetchval(standby, "SELECT pg_is_in_recovery()") is True
    assert await fetchval(primary, "SELECT pg_is_in_recovery()") is False


async def test_reads_on_standby_writes_on_primary(
    client: httpx.AsyncClient, cluster: tuple[TemporaryPostgres, TemporaryStandby]
) -> None:
    primary, standby = cluster
    body = layer_run()
    response = await client.post("/runs", json=body)
    assert response.status_code == 201
    assert await fetchval(primary, "SELECT count(*) FROM layer_runs WHERE id = $1", body["id"])
    await replicated(standby, body["id"])

    for path in ("/runs", f"/runs/{body['id']}", "/runs/stats/summary?days=30"):
        read = await client.get(path)
        assert read.status_code == 200, read.text
        assert read.headers["x-runwatch-read-source"] == "replica-0"
        assert read.headers["x-runwatch-standby"] == "true"  # pg_is_in_recovery() there
    listed = (await client.get("/runs", params={"limit": 100})).json()
    assert body["id"] in {r["id"] for r in listed["runs"]}


async def test_read_your_writes_by_pinning_the_primary(client: httpx.AsyncClient) -> None:
    body = layer_run()
    assert (await client.post("/runs", json=body)).status_code == 201
    pinned = await client.get(f"/runs/{body['id']}", headers={"X-Runwatch-Read-From": "primary"})
    assert pinned.status_code == 200
    assert pinned.headers["x-runwatch-read-source"] == "primary"
    assert "x-runwatch-standby" not in pinned.headers


async def test_service_survives_the_standby_stopping(
    client: httpx.AsyncClient, cluster: tuple[TemporaryPostgres, TemporaryStandby]
) -> None:
    _primary, standby = cluster
    assert (await client.get("/runs")).headers["x-runwatch-read-source"] == "replica-0"
    standby.stop_server()
    for _ in range(3):
        read = await client.get("/runs")
        assert read.status_code == 200, read.text
        assert read.headers["x-runwatch-read-source"] == "primary"
    body = layer_run()
    assert (await client.post("/runs", json=body)).status_code == 201
    assert (await client.get(f"/runs/{body['id']}")).status_code == 200
