"""The data version cache stops answering when its notification connection drops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import asyncpg
import pytest

from runwatch.db import version_watch
from runwatch.db.dialect import DATA_VERSION_CHANNEL
from runwatch.db.version_watch import DataVersionCache
from tests.support.postgres import TemporaryPostgres, running_postgres

# A hang guard, not a timing assertion: a state never reached fails the test.
HANG_GUARD_SECONDS = 30


@pytest.fixture(scope="module")
def pg() -> Iterator[TemporaryPostgres]:
    with running_postgres(migrated=True) as server:
        yield server


@pytest.fixture(autouse=True)
def no_health_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the periodic check out of the picture, only noticing the closed
    # connection itself can make the cache stop answering.
    monkeypatch.setattr(version_watch, "HEALTH_CHECK_SECONDS", 3600.0)


async def until(predicate: Callable[[], bool], what: str) -> None:
    step = 0.02
    for _ in range(int(HANG_GUARD_SECONDS / step)):
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"never: {what}")


async def bump_version(pg: TemporaryPostgres) -> int:
    """What a writer does: advance the version and announce it at commit."""
    conn = await asyncpg.connect(pg.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with conn.transaction():
            version = await conn.fetchval(
                "UPDATE runwatch_state SET number = number + 1 WHERE key = 'data_version'"
                " RETURNING number"
            )
            await conn.execute("SELECT pg_notify($1, $2)", DATA_VERSION_CHANNEL, str(version))
        return int(version)
    finally:
        await conn.close()


async def test_a_restart_stops_the_cache_until_it_has_reread_the_version(
    pg: TemporaryPostgres,
) -> None:
    cache = DataVersionCache(pg.url, connect_timeout=2)
    cache.start()
    try:
        await until(lambda: cache.current is not None, "listening")
        before = await bump_version(pg)
        await until(lambda: cache.current == before, "heard the write")

        await asyncio.to_thread(pg.stop_server)
        await until(lambda: cache.current is None, "stopped answering after the server went")
        await asyncio.to_thread(pg.start_server)
        after = await bump_version(pg)
        assert after > before
        # Never the old version again: not answering, or the new one.
        await until(lambda: cache.current is not None, "listening again")
        await until(lambda: cache.current == after, "re-read or heard the new version")
    finally:
        await cache.stop()


async def test_a_killed_connection_stops_the_cache(pg: TemporaryPostgres) -> None:
    cache = DataVersionCache(pg.url, connect_timeout=2)
    cache.start()
    admin = await asyncpg.connect(pg.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await until(lambda: cache.current is not None, "listening")
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert killed == 1
        await until(lambda: cache.current is None, "stopped answering")
        version = await bump_version(pg)
        await until(lambda: cache.current == version, "back, with the new version")
    finally:
        await admin.close()
        await cache.stop()
