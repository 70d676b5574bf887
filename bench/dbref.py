"""The database's own cost: the SQL each endpoint runs, replayed straight on the driver.

The statements are captured, not rewritten by hand: each endpoint is called
once in-process (the real app from `create_app`, called as an ASGI callable
by `bench.cpu.InProcessApp`) while a SQLAlchemy `before_cursor_execute` listener records every
statement with its bound parameters. Replaying those on a bare asyncpg
connection (prepared, as SQLAlchemy's asyncpg dialect does) or a bare
sqlite3 connection gives the time the database needs for one request, with
no pool, ORM-free Core compilation, validation, serialisation or HTTP around it.
Transaction BEGIN/COMMIT round trips are not included.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.cpu import Freshener, InProcessApp
from bench.load import percentiles_ms

Statement = tuple[str, tuple[Any, ...]]


@dataclass
class Capture:
    """The statements one request ran, in order."""

    path: str
    status: int
    statements: list[Statement]


class _Recorder:
    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.enabled = False

    def __call__(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if not self.enabled or executemany:
            return  # writes are measured end to end by the batch client instead
        params = tuple(parameters) if parameters is not None else ()
        self.statements.append((statement, params))


@dataclass
class CaptureGroup:
    """The requests of one endpoint; `fresh`: no answer may come from a cache."""

    requests: Sequence[tuple[str, dict[str, str]]]
    fresh: bool = True


async def capture_statements(
    database_url: str, groups: Sequence[CaptureGroup], *, marker_layer: str
) -> list[list[Capture]]:
    """Call each request in-process once and record the SQL it ran.

    Each group's first request is made once beforehand, so that what a process
    does once (connecting, loading keys, preparing) is not recorded; then, for
    a fresh group, the data version is moved on with a write (see
    `bench.cpu.Freshener`) so that no answer recorded comes from a cache.
    """
    recorder = _Recorder()
    event.listen(Engine, "before_cursor_execute", recorder)
    out: list[list[Capture]] = []
    try:
        async with InProcessApp(database_url) as client:
            freshener = Freshener(client, marker_layer)
            try:
                for group in groups:
                    requests = list(group.requests)
                    first_path, first_headers = requests[0]
                    reply = await client.request("GET", first_path, first_headers)
                    etag = reply.headers.get("etag")
                    if reply.status == 200 and etag and "If-None-Match" in first_headers:
                        # The tag went stale (a write, or the window moved): poll with the new one.
                        requests = [(p, {**h, "If-None-Match": etag}) for p, h in requests]
                    if group.fresh:
                        await freshener.bump()
                    captures = []
                    for path, headers in requests:
                        recorder.statements = []
                        recorder.enabled = True
                        reply = await client.request("GET", path, headers)
                        recorder.enabled = False
                        captures.append(Capture(path, reply.status, recorder.statements))
                    out.append(captures)
            finally:
                await freshener.settle()
    finally:
        event.remove(Engine, "before_cursor_execute", recorder)
    return out


@dataclass
class ReplayResult:
    iterations: int
    p50_ms: float
    p99_ms: float
    statements: int


def is_read(statement: str) -> bool:
    head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    return head in ("SELECT", "WITH", "VALUES")


async def replay_postgres(
    dsn: str, captures: Sequence[Capture], *, seconds: float, max_iterations: int = 5000
) -> ReplayResult:
    """Run each capture's statements on one asyncpg connection, round robin, for `seconds`."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        prepared = [
            [(await conn.prepare(sql), params) for sql, params in c.statements if is_read(sql)]
            for c in captures
        ]
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        i = 0
        while i < max_iterations and (time.perf_counter() < deadline or i < 5):
            steps = prepared[i % len(prepared)]
            started = time.perf_counter()
            for stmt, params in steps:
                await stmt.fetch(*params)
            samples.append(time.perf_counter() - started)
            i += 1
    finally:
        await conn.close()
    p50, p99 = percentiles_ms(samples)
    return ReplayResult(len(samples), p50, p99, len(prepared[0]) if prepared else 0)


def replay_sqlite(
    path: str, captures: Sequence[Capture], *, seconds: float, max_iterations: int = 5000
) -> ReplayResult:
    """Run each capture's statements on one sqlite3 connection, round robin, for `seconds`."""
    db = sqlite3.connect(path)
    try:
        steps_per_capture = [
            [(sql, params) for sql, params in c.statements if is_read(sql)] for c in captures
        ]
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        i = 0
        while i < max_iterations and (time.perf_counter() < deadline or i < 5):
            steps = steps_per_capture[i % len(steps_per_capture)]
            started = time.perf_counter()
            for sql, params in steps:
                db.execute(sql, params).fetchall()
            samples.append(time.perf_counter() - started)
            i += 1
    finally:
        db.close()
    p50, p99 = percentiles_ms(samples)
    return ReplayResult(
        len(samples), p50, p99, len(steps_per_capture[0]) if steps_per_capture else 0
    )


def capture_sync(
    database_url: str, groups: Sequence[CaptureGroup], *, marker_layer: str
) -> list[list[Capture]]:
    return asyncio.run(capture_statements(database_url, groups, marker_layer=marker_layer))
