"""Bulk loading of generated layer runs: COPY on PostgreSQL, executemany on SQLite.

Rows come from `runwatch.demo.generate_layer_runs` (skewed layers, status mix,
errors on failed runs), generated in chunks by a process pool so that Python
generation overlaps with the database's work. Secondary indexes are dropped
before the load and rebuilt after it, then the table is vacuumed and analysed,
which is how a large table looks after autovacuum has caught up.

On PostgreSQL the rows are then stored in the order they started
(`heap_order="started"`), as a service that records each run when it starts
stores them; every chunk spans the whole year, so the order they were
generated in (`"generated"`) scatters a day's runs over the whole table, which
makes every read by time touch one table page per row: the worst case.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.dialects import sqlite as sqlite_dialect

from runwatch.db.tables import layer_runs
from runwatch.demo import generate_layer_runs

CHUNK_ROWS = 50_000
HeapOrder = Literal["started", "generated"]


@dataclass(frozen=True)
class LoadReport:
    rows: int
    seconds: float
    insert_seconds: float
    index_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _sqlite_processors(columns: list[str]) -> list[Callable[[Any], Any] | None]:
    """The bind processors SQLAlchemy itself would apply, so stored text is identical."""
    dialect = sqlite_dialect.pysqlite.dialect()
    return [layer_runs.c[name].type.bind_processor(dialect) for name in columns]


def generate_chunk(
    index: int, rows: int, seed: int, end: datetime, days: float, dialect: str, columns: list[str]
) -> list[tuple[Any, ...]]:
    """One chunk of rows as tuples in `columns` order, ready for the dialect's driver."""
    chunk_seed = seed * 1_000_003 + index
    out: list[tuple[Any, ...]] = []
    if dialect == "postgresql":
        for row in generate_layer_runs(rows, seed=chunk_seed, end=end, days=days):
            errors = row["errors"]
            # asyncpg's jsonb codec takes JSON text.
            row["errors"] = None if errors is None else json.dumps(errors)
            out.append(tuple(row[name] for name in columns))
        return out
    processors = _sqlite_processors(columns)
    for row in generate_layer_runs(rows, seed=chunk_seed, end=end, days=days):
        out.append(
            tuple(
                proc(row[name]) if proc is not None else row[name]
                for name, proc in zip(columns, processors, strict=True)
            )
        )
    return out


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for index, start in enumerate(range(0, total, CHUNK_ROWS)):
        yield index, min(CHUNK_ROWS, total - start)


def default_workers() -> int:
    # Leave a core for the database, which is busy inserting what we generate.
    return max(1, (os.cpu_count() or 2) - 1)


class _Pipeline:
    """Generated chunks in order, at most `depth` in flight to bound memory."""

    def __init__(
        self,
        total: int,
        *,
        seed: int,
        end: datetime,
        days: float,
        dialect: str,
        columns: list[str],
        workers: int,
    ) -> None:
        self.pool = ProcessPoolExecutor(max_workers=workers)
        self.pending: list[Future[list[tuple[Any, ...]]]] = []
        self.todo = _chunks(total)
        self.args = (seed, end, days, dialect, columns)
        self.depth = workers + 2

    def _fill(self) -> None:
        while len(self.pending) < self.depth:
            nxt = next(self.todo, None)
            if nxt is None:
                return
            self.pending.append(self.pool.submit(generate_chunk, nxt[0], nxt[1], *self.args))

    def next_future(self) -> Future[list[tuple[Any, ...]]] | None:
        self._fill()
        return self.pending.pop(0) if self.pending else None

    def close(self) -> None:
        for fut in self.pending:
            fut.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _table_columns_present(existing: set[str]) -> list[str]:
    sample = next(generate_layer_runs(1, seed=0, days=1))
    return [name for name in sample if name in existing]


async def load_postgres(
    dsn: str,
    runs: int,
    *,
    seed: int = 42,
    days: float = 365.0,
    end: datetime | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    heap_order: HeapOrder = "started",
) -> LoadReport:
    """COPY `runs` generated rows into an empty, migrated `layer_runs` on PostgreSQL."""
    import asyncpg

    end = end or datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        existing = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1",
                "layer_runs",
            )
        }
        columns = _table_columns_present(existing)
        # Secondary indexes only; the primary key stays, so duplicates would still fail.
        indexes = await conn.fetch(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = 'layer_runs' AND i.schemaname = current_schema()
              AND NOT EXISTS (
                SELECT 1 FROM pg_constraint c
                WHERE c.conindid = (quote_ident(i.schemaname) || '.'
                                    || quote_ident(i.indexname))::regclass)
            """
        )
        started = time.perf_counter()
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
        pipeline = _Pipeline(
            runs,
            seed=seed,
            end=end,
            days=days,
            dialect="postgresql",
            columns=columns,
            workers=workers or default_workers(),
        )
        loaded = 0
        try:
            while (fut := pipeline.next_future()) is not None:
                records = await asyncio.wrap_future(fut)
                await conn.copy_records_to_table("layer_runs", records=records, columns=columns)
                loaded += len(records)
                if progress and loaded % (CHUNK_ROWS * 20) == 0:
                    rate = loaded / (time.perf_counter() - started)
                    progress(f"copied {loaded:,} rows ({rate:,.0f} rows/s)")
        finally:
            pipeline.close()
        inserted = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        if heap_order == "started":
            await conn.execute("CREATE INDEX load_started_order ON layer_runs (started_at, id)")
            await conn.execute("CLUSTER layer_runs USING load_started_order")
            await conn.execute("DROP INDEX load_started_order")
        for ix in indexes:
            await conn.execute(ix["indexdef"])
        await conn.execute("VACUUM (ANALYZE) layer_runs")
        done = time.perf_counter()
    finally:
        await conn.close()
    return LoadReport(loaded, done - started, inserted - started, done - inserted)


def load_sqlite(
    path: str,
    runs: int,
    *,
    seed: int = 42,
    days: float = 365.0,
    end: datetime | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Insert `runs` generated rows into an empty, migrated SQLite database file."""
    end = end or datetime.now(UTC)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # A bulk load that fails is simply rerun, so it needs no fsync.
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        existing = {r[1] for r in db.execute("PRAGMA table_info(layer_runs)")}
        columns = _table_columns_present(existing)
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'layer_runs' AND sql IS NOT NULL"
        ).fetchall()
        started = time.perf_counter()
        for name, _sql in indexes:
            db.execute(f'DROP INDEX "{name}"')
        placeholders = ", ".join("?" for _ in columns)
        names = ", ".join(columns)
        stmt = f"INSERT INTO layer_runs ({names}) VALUES ({placeholders})"
        pipeline = _Pipeline(
            runs,
            seed=seed,
            end=end,
            days=days,
            dialect="sqlite",
            columns=columns,
            workers=workers or default_workers(),
        )
        loaded = 0
        try:
            while (fut := pipeline.next_future()) is not None:
                records = fut.result()
                db.execute("BEGIN")
                db.executemany(stmt, records)
                db.execute("COMMIT")
                loaded += len(records)
                if progress and loaded % (CHUNK_ROWS * 20) == 0:
                    rate = loaded / (time.perf_counter() - started)
                    progress(f"inserted {loaded:,} rows ({rate:,.0f} rows/s)")
        finally:
            pipeline.close()
        inserted = time.perf_counter()
        for _name, sql in indexes:
            db.execute(sql)
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        done = time.perf_counter()
    finally:
        db.close()
    return LoadReport(loaded, done - started, inserted - started, done - inserted)
