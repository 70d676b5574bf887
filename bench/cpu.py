"""CPU per request, in-process: the real app called as an ASGI callable, with no network.

The app comes from `runwatch.app.create_app(Settings(...))` on the loaded
database with its lifespan running. Each call builds a minimal HTTP scope and
awaits the app with a `receive` that hands over the (empty) body and a `send`
that collects the answer; `time.process_time()` around that await is the CPU
one request costs the process: routing, dependencies, the database driver's
Python side, encoding, middleware. It includes SQLite's own work (an
in-process database, on aiosqlite's thread) but not a PostgreSQL server's,
which is another process.

Statements per request are counted by a SQLAlchemy `before_cursor_execute`
listener on every engine in the process, which here are the app's.

"Fresh" cases never let a cache answer: whenever a request would repeat one
made since the data last changed, a marker run is first recorded (or the
previous one deleted) through the same app, outside the timing and the count,
so the data version moves on and the data ends as it began.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from sqlalchemy import event
from sqlalchemy.engine import Engine
from ulid import ULID

from bench.load import json_body
from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.demo import generate_layer_runs


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class StatementCounter:
    """Counts the statements every engine in the process sends while `enabled`."""

    def __init__(self) -> None:
        self.count = 0
        self.enabled = False

    def __call__(self, *_args: Any) -> None:
        if self.enabled:
            self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(Engine, "before_cursor_execute", self)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        event.remove(Engine, "before_cursor_execute", self)


class InProcessApp:
    """The app with its lifespan running, called as an ASGI callable.

    Built as `runwatch serve` builds it (`serving=True`), so that the garbage
    collector runs in this process as it does in the server's.
    """

    def __init__(self, database_url: str) -> None:
        settings = Settings(database_url=database_url, auto_migrate=False)
        self.app = create_app(settings, serving=True)
        self._stack = AsyncExitStack()
        self._state: dict[str, Any] = {}

    async def __aenter__(self) -> InProcessApp:
        state = await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        self._state = dict(state) if state else {}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def scope(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        raw_path, _, query = path.partition("?")
        raw_headers = [(b"host", b"bench")]
        raw_headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("bench", 80),
            "extensions": {},
        }
        if self._state:
            scope["state"] = dict(self._state)
        return scope

    async def call(self, scope: dict[str, Any], body: bytes = b"") -> Reply:
        """One request through the app, as a server would deliver it."""
        delivered = False
        finished = asyncio.Event()
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished.set()

        await self.app(scope, receive, send)
        finished.set()
        decoded = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        return Reply(status, decoded, b"".join(chunks))

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Reply:
        hdrs = dict(headers or {})
        if body:
            hdrs.setdefault("content-type", "application/json")
            hdrs.setdefault("content-length", str(len(body)))
        return await self.call(self.scope(method, path, hdrs), body)


def marker_run(layer: str) -> tuple[str, bytes]:
    """A new run of `layer` started a minute ago: its id and its `POST /runs` body."""
    row = next(generate_layer_runs(1, seed=int(time.time_ns() % 1_000_000), days=1 / 1440))
    dropped = {"duration_seconds", "created_at", "updated_at"}
    run = {k: v for k, v in row.items() if k not in dropped}
    run["id"] = f"bench-marker-{ULID()}"
    run["layer_name"] = layer
    for key in ("started_at", "completed_at"):
        if run[key] is not None:
            run[key] = run[key].isoformat()
    return run["id"], json_body(run)


class Freshener:
    """Moves the data version on: records a marker run, or deletes the one it recorded."""

    def __init__(self, client: InProcessApp, layer: str) -> None:
        self.client = client
        self.layer = layer
        self.pending: str | None = None
        self.writes = 0

    async def bump(self) -> None:
        if self.pending is None:
            run_id, body = marker_run(self.layer)
            reply = await self.client.request("POST", "/runs", body=body)
            if reply.status != 201:
                raise RuntimeError(f"POST /runs answered {reply.status}: {reply.body[:300]!r}")
            self.pending = run_id
        else:
            reply = await self.client.request("DELETE", f"/runs/{self.pending}")
            if reply.status != 204:
                raise RuntimeError(f"DELETE /runs/… answered {reply.status}: {reply.body[:300]!r}")
            self.pending = None
        self.writes += 1
        # Let the version notification of the write reach the process's listener.
        await asyncio.sleep(0.002)

    async def settle(self) -> None:
        """Leave no marker run behind."""
        if self.pending is not None:
            await self.bump()


@dataclass
class CpuCase:
    """One endpoint: the requests to cycle through, and whether each must be fresh."""

    name: str
    requests: Sequence[tuple[str, dict[str, str]]]
    fresh: bool = True
    expect: int = 200
    follow_etag: bool = False  # a polling client: take each 200's ETag for If-None-Match


@dataclass
class CpuResult:
    name: str
    calls: int
    cpu_ms_mean: float
    cpu_ms_p50: float
    statements_per_request: float
    writes_between: int
    unexpected: dict[int, int] = field(default_factory=dict)


async def _measure_case(
    client: InProcessApp,
    counter: StatementCounter,
    freshener: Freshener,
    case: CpuCase,
    *,
    calls: int,
    warmup: int,
) -> CpuResult:
    seen: set[str] = set()
    requests = list(case.requests)
    headers_now = [dict(h) for _, h in requests]
    samples: list[float] = []
    statements = 0
    unexpected: dict[int, int] = {}
    writes_before = freshener.writes
    i = 0
    while len(samples) < calls:
        if sum(unexpected.values()) > calls + warmup:
            raise RuntimeError(f"{case.name}: answers other than {case.expect}: {unexpected}")
        slot = i % len(requests)
        i += 1
        path = requests[slot][0]
        if case.fresh and path in seen:
            seen.clear()
            await freshener.bump()
        seen.add(path)
        scope = client.scope("GET", path, headers_now[slot])
        counter.count = 0
        counter.enabled = True
        started = time.process_time()
        reply = await client.call(scope)
        spent = time.process_time() - started
        counter.enabled = False
        if case.follow_etag and reply.status == 200 and "etag" in reply.headers:
            headers_now[slot]["If-None-Match"] = reply.headers["etag"]
        if reply.status != case.expect:
            # A polled answer whose window moved on comes back 200 once: not counted.
            if not (case.follow_etag and reply.status == 200):
                unexpected[reply.status] = unexpected.get(reply.status, 0) + 1
            continue
        if i <= warmup:
            continue
        samples.append(spent)
        statements += counter.count
    return CpuResult(
        name=case.name,
        calls=len(samples),
        cpu_ms_mean=1000 * statistics.fmean(samples),
        cpu_ms_p50=1000 * statistics.median(samples),
        statements_per_request=statements / len(samples),
        writes_between=freshener.writes - writes_before,
        unexpected=unexpected,
    )


async def measure(
    database_url: str,
    cases: Sequence[CpuCase],
    *,
    marker_layer: str,
    calls: int,
    warmup: int,
) -> list[CpuResult]:
    """CPU per call and statements per call of each case, `calls` calls after `warmup`."""
    results = []
    with StatementCounter() as counter:
        async with InProcessApp(database_url) as client:
            freshener = Freshener(client, marker_layer)
            try:
                for case in cases:
                    results.append(
                        await _measure_case(
                            client, counter, freshener, case, calls=calls, warmup=warmup
                        )
                    )
            finally:
                await freshener.settle()
    return results


def measure_sync(
    database_url: str,
    cases: Sequence[CpuCase],
    *,
    marker_layer: str,
    calls: int,
    warmup: int,
) -> list[CpuResult]:
    return asyncio.run(
        measure(database_url, cases, marker_layer=marker_layer, calls=calls, warmup=warmup)
    )
