"""Fixtures: a real SQLite file and a real PostgreSQL per session; an app and client per test.

PostgreSQL comes from RUNWATCH_TEST_POSTGRES_URL (an admin URL; the suite
creates its own databases there) or is started from the installed server
binaries on a free port. Without either, PostgreSQL tests are skipped with the
reason printed, unless RUNWATCH_REQUIRE_POSTGRES=1, which makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.db.engine import Engines, create_engines
from runwatch.db.tables import DATA_VERSION_KEY, metadata, runwatch_state
from runwatch.migrate import upgrade
from tests.support.postgres import running_postgres

DIALECTS = ("sqlite", "postgresql")


class PostgresAdmin:
    """Creates databases on the session's PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    async def _execute(self, sql: str) -> None:
        url = make_url(self.admin_url)
        conn = await asyncpg.connect(
            user=url.username,
            password=url.password,
            host=url.host,
            port=url.port,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create_database(self, prefix: str = "runwatch_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[PostgresAdmin]:
    url = os.environ.get("RUNWATCH_TEST_POSTGRES_URL")
    if url:
        yield PostgresAdmin(url)
        return
    with running_postgres() as server:
        yield PostgresAdmin(server.url)


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Per dialect, one database migrated to head for the whole session (lazily)."""
    return {"_dir": str(tmp_path_factory.mktemp("sqlite"))}


@pytest.fixture
def database_url(
    dialect: str, migrated_urls: dict[str, str], request: pytest.FixtureRequest
) -> str:
    if dialect not in migrated_urls:
        if dialect == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(migrated_urls['_dir']) / 'runwatch.db'}"
        else:
            url = request.getfixturevalue("postgres_admin").create_database()
        asyncio.run(upgrade(url))
        migrated_urls[dialect] = url
    return migrated_urls[dialect]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auto_migrate=False)


async def _clean(engines: Engines) -> None:
    async with engines.write.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is runwatch_state:  # keep the data version: it only ever advances
                await conn.execute(delete(table).where(table.c.key != DATA_VERSION_KEY))
            else:
                await conn.execute(delete(table))


@pytest.fixture
async def engines(settings: Settings) -> AsyncIterator[Engines]:
    engines = create_engines(settings)
    await _clean(engines)
    try:
        yield engines
    finally:
        await _clean(engines)
        await engines.dispose()


@pytest.fixture
async def conn(engines: Engines) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that commits at the end of the test."""
    async with engines.write.begin() as connection:
        yield connection


@pytest.fixture
async def client(settings: Settings, engines: Engines) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runwatch.test") as c:
            yield c


def _strict_ci() -> bool:
    """Under the CI flags every external component is present, so nothing may skip."""
    return all(
        os.environ.get(flag) == "1"
        for flag in ("RUNWATCH_REQUIRE_POSTGRES", "RUNWATCH_REQUIRE_BROWSER")
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail") and _strict_ci():
        report.outcome = "failed"
        report.longrepr = (
            "skipped under RUNWATCH_REQUIRE_POSTGRES=1 and RUNWATCH_REQUIRE_BROWSER=1, where a "
            f"skip would hide a test from CI: {report.longrepr}"
        )
