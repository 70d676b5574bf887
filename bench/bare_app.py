"""A bare app: the statements runwatch runs for a request, on raw asyncpg, encoded with orjson.

What a request costs with the same SQL and none of the service around it.
The harness captures the statements runwatch runs for each path (see
`bench.dbref`) and writes them to a plan file (`BENCH_BARE_PLAN`, a pickle
of `{"dsn", "pool_size", "routes": {path with query: [(sql, params), ...]}}`).
For a request, this app looks its path and query up, runs those statements
in order on one pooled asyncpg connection (prepared once per connection by
asyncpg's statement cache, no transaction, as runwatch reads on PostgreSQL),
and answers every row as JSON encoded by orjson. Served by uvicorn with one
worker, like `runwatch serve`. PostgreSQL only.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request, Response

with Path(os.environ["BENCH_BARE_PLAN"]).open("rb") as fh:
    PLAN: dict[str, Any] = pickle.load(fh)
ROUTES: dict[str, list[tuple[str, tuple[Any, ...]]]] = PLAN["routes"]
# The same per-connection setting runwatch's engine makes (see runwatch.db.engine).
SERVER_SETTINGS = {"application_name": "bench-bare", "plan_cache_mode": "force_custom_plan"}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = PLAN["pool_size"]
    app.state.pool = await asyncpg.create_pool(
        PLAN["dsn"], min_size=min(size, 10), max_size=size, server_settings=SERVER_SETTINGS
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.get("/{rest:path}")
async def captured(request: Request) -> Response:
    query = request.scope["query_string"].decode("latin-1")
    key = request.scope["path"] + ("?" + query if query else "")
    steps = ROUTES.get(key)
    if steps is None:
        return Response(b'{"error":"no plan for this path"}', status_code=404)
    async with request.app.state.pool.acquire() as conn:
        results = [[dict(r) for r in await conn.fetch(sql, *params)] for sql, params in steps]
    return Response(
        orjson.dumps(results, default=_default, option=orjson.OPT_NON_STR_KEYS),
        media_type="application/json",
    )
