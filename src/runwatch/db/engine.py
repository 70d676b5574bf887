"""Engines: one for reads and one for writes, with SQLite pragmas and PostgreSQL timeouts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runwatch.config import Settings
from runwatch.db.dialect import Dialect, dialect_of
from runwatch.db.sqlite_version import shm_path

PRIMARY = "primary"


@dataclass
class Replica:
    """A read-only PostgreSQL standby, skipped for a while after it fails."""

    name: str
    engine: AsyncEngine
    down_until: float = 0.0


@dataclass
class Engines:
    """Writes go to the primary; reads go to a healthy replica, else to the primary."""

    read: AsyncEngine
    write: AsyncEngine
    replicas: tuple[Replica, ...] = ()
    replica_retry_seconds: float = 10.0
    _next: int = field(default=0, repr=False)

    @property
    def dialect(self) -> Dialect:
        return dialect_of(self.write)

    def read_candidates(self, *, prefer: str | None = None) -> list[tuple[str, AsyncEngine]]:
        """Readers to try in order: replicas in turn (healthy ones), then the primary."""
        if prefer == PRIMARY or not self.replicas:
            return [(PRIMARY, self.read)]
        now = time.monotonic()
        count = len(self.replicas)
        start, self._next = self._next, (self._next + 1) % count
        ordered = [self.replicas[(start + i) % count] for i in range(count)]
        ordered.sort(key=lambda r: r.name != prefer)  # a pinned replica first
        healthy = [(r.name, r.engine) for r in ordered if r.down_until <= now]
        return [*healthy, (PRIMARY, self.read)]

    def mark_down(self, name: str) -> None:
        for replica in self.replicas:
            if replica.name == name:
                replica.down_until = time.monotonic() + self.replica_retry_seconds

    async def dispose(self) -> None:
        # `read` may share `write`'s pool (an autocommit view of the same engine).
        await self.write.dispose()
        if self.read.sync_engine.pool is not self.write.sync_engine.pool:
            await self.read.dispose()
        for replica in self.replicas:
            await replica.engine.dispose()


def create_engines(settings: Settings) -> Engines:
    """Build the engines for `settings.database_url`; nothing connects until first use."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return Engines(
            # Reads run each statement on its own (no BEGIN): a read's version
            # is read before its data, so the data is never older than its tag.
            read=_sqlite_engine(settings, begin=None),
            # A writer takes SQLite's write lock when its transaction begins, so
            # two writers queue on busy_timeout instead of one failing at once
            # when it upgrades a read lock.
            write=_sqlite_engine(settings, begin="BEGIN IMMEDIATE"),
        )
    engine = create_postgres_engine(settings.database_url, settings)
    replicas = tuple(
        Replica(name=f"replica-{i}", engine=_autocommit(create_postgres_engine(url, settings)))
        for i, url in enumerate(settings.read_database_urls)
    )
    return Engines(
        read=_autocommit(engine),
        write=engine,
        replicas=replicas,
        replica_retry_seconds=settings.replica_retry_seconds,
    )


def _autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, without BEGIN/COMMIT around reads.

    At READ COMMITTED a transaction gives a read nothing (each statement sees
    its own snapshot either way), and costs two round trips per request.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def create_postgres_engine(url: str, settings: Settings) -> AsyncEngine:
    server_settings = {
        "application_name": "runwatch",
        # Statements are prepared once per connection; a generic plan made
        # without the time bounds can scan a whole table where the actual
        # bounds select one hour. Plan each execution with its values.
        "plan_cache_mode": "force_custom_plan",
    }
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout,
        "server_settings": server_settings,
    }
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # No ping at checkout: a read that meets a connection killed by a
        # database restart is retried once (api/reads.py), and a write checks
        # its connection as its transaction begins (api/deps.py). SQLAlchemy
        # then replaces every pooled connection older than the failure.
        connect_args=connect_args,
    )


def _sqlite_engine(settings: Settings, *, begin: str | None) -> AsyncEngine:
    # A file's connections are kept as PostgreSQL's are (each is a thread of
    # aiosqlite's and four PRAGMAs to open); an in-memory database has one.
    sizes: dict[str, Any] = {}
    if shm_path(settings.database_url) is not None:
        sizes = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
    engine = create_async_engine(
        settings.database_url,
        pool_timeout=settings.db_pool_timeout,
        connect_args={"timeout": settings.db_connect_timeout},
        **sizes,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (see the "begin" listener below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed while one writer commits.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode and much
        # faster than FULL; only an OS crash can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.db_connect_timeout * 1000)}")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine
