"""A PostgreSQL that goes away and comes back: bounded 503s, readiness, no lost accepted write.

Uses its own server (not the session's), since the test stops and restarts it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from runwatch.api import export
from runwatch.config import Settings
from tests.factories import layer_run
from tests.security.conftest import serve
from tests.support.postgres import TemporaryPostgres, running_postgres

# A hang guard, not a timing assertion: a request that never answers fails the test.
HANG_GUARD_SECONDS = 30


@pytest.fixture(scope="module")
def server() -> Iterator[TemporaryPostgres]:
    with running_postgres(migrated=True) as pg:
        yield pg


def outage_settings(pg: TemporaryPostgres, **overrides: Any) -> Settings:
    return Settings(
        database_url=pg.url,
        auto_migrate=False,
        db_connect_timeout=2,
        db_pool_timeout=2,
        retry_after_seconds=3,
        **overrides,
    )


async def call(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
    return await asyncio.wait_for(client.request(method, path, **kw), HANG_GUARD_SECONDS)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "3"
    assert response.json()["code"] == "unavailable"


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`, polling; fail (rather than hang) if it never holds."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def stored_ids(pg: TemporaryPostgres) -> set[str]:
    url = make_url(pg.url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    try:
        return {row["id"] for row in await conn.fetch("SELECT id FROM layer_runs")}
    finally:
        await conn.close()


async def test_outage_then_recovery_loses_no_accepted_write(server: TemporaryPostgres) -> None:
    answers: list[tuple[str, int]] = []
    stop_writing = asyncio.Event()

    async with serve(outage_settings(server)) as client:

        async def writer() -> None:
            n = 0
            while not stop_writing.is_set():
                n += 1
                body = layer_run(id=f"outage-{n:05d}")
                response = await call(client, "POST", "/runs", json=body)
                answers.append((body["id"], response.status_code))
                await asyncio.sleep(0.005)

        writing = asyncio.create_task(writer())
        await until(lambda: sum(s == 201 for _, s in answers) >= 20, "20 accepted writes")
        await asyncio.to_thread(server.stop_server)
        try:
            await until(lambda: any(s == 503 for _, s in answers), "a refused write")
            for method, path in [
                ("GET", "/runs"),
                ("GET", "/runs/outage-00001"),
                ("GET", "/runs/stats/summary"),
                ("GET", "/extraction-runs"),
                ("POST", "/extraction-runs/claim"),
            ]:
                kw = {"json": {"worker_id": "w1"}} if method == "POST" else {}
                assert_unavailable(await call(client, method, path, **kw))
            assert_unavailable(await call(client, "POST", "/runs", json=layer_run()))
            assert_unavailable(await call(client, "GET", "/readyz"))
            assert (await call(client, "GET", "/healthz")).status_code == 200
        finally:
            await asyncio.to_thread(server.start_server)

        # The same app serves again once the pool reconnects, with no restart.
        for _ in range(200):
            if (await call(client, "GET", "/runs")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await call(client, "GET", "/runs")).status_code == 200
        assert (await call(client, "GET", "/readyz")).status_code == 200
        accepted_before = sum(status == 201 for _, status in answers)
        await until(
            lambda: sum(s == 201 for _, s in answers) >= accepted_before + 5,
            "writes accepted after the restart",
        )
        stop_writing.set()
        await writing

    statuses = {status for _, status in answers}
    assert statuses <= {201, 503}, statuses
    assert 503 in statuses
    accepted = {run_id for run_id, status in answers if status == 201}
    missing = accepted - await stored_ids(server)
    assert not missing, f"answered 201 but not stored: {sorted(missing)}"


async def test_slow_query_is_cut_by_the_statement_timeout(server: TemporaryPostgres) -> None:
    async with serve(outage_settings(server, db_statement_timeout_ms=200)) as client:
        assert (await call(client, "GET", "/runs")).status_code == 200
        url = make_url(server.url)
        locker = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database="postgres"
        )
        try:
            # Another session holds the table: every statement on it waits
            # until the statement timeout cancels it.
            async with locker.transaction():
                await locker.execute("LOCK TABLE layer_runs IN ACCESS EXCLUSIVE MODE")
                # A query not answered before, so that no encoded answer can serve it.
                assert_unavailable(await call(client, "GET", "/runs?limit=7"))
                assert_unavailable(await call(client, "POST", "/runs", json=layer_run(id="slow-1")))
        finally:
            await locker.close()
        assert (await call(client, "GET", "/runs")).status_code == 200
        assert "slow-1" not in await stored_ids(server)


async def test_the_first_export_after_a_restart_is_served(
    server: TemporaryPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks, so that the export takes several pooled connections.
    monkeypatch.setattr(export, "FIRST_CHUNK", 5)
    monkeypatch.setattr(export, "MAX_CHUNK", 9)
    async with serve(outage_settings(server)) as client:
        runs = [layer_run(id=f"export-restart-{i:03d}") for i in range(60)]
        assert (await call(client, "POST", "/runs/batch", json={"runs": runs})).status_code == 200
        ids = {run["id"] for run in runs}

        async def exported(fmt: str) -> set[str]:
            response = await call(client, "GET", f"/runs/export?format={fmt}")
            assert response.status_code == 200, response.text
            lines = response.text.splitlines()
            if fmt == "csv":
                return {line.split(",", 1)[0] for line in lines[1:]}
            return {json.loads(line)["id"] for line in lines}

        assert ids <= await exported("ndjson")
        # Every connection in the pool is now dead, though the database is back.
        await asyncio.to_thread(server.stop_server)
        await asyncio.to_thread(server.start_server)
        assert ids <= await exported("ndjson")  # each chunk retried once on a fresh connection
        await asyncio.to_thread(server.stop_server)
        await asyncio.to_thread(server.start_server)
        assert ids <= await exported("csv")
