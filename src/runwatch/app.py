"""`create_app(settings)`: the lifespan owns the engines; routers and error handlers."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext

from fastapi import Depends, FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runwatch import __version__
from runwatch.api import extraction_runs, health, layer_runs, operator
from runwatch.api.deps import reject_unknown_query_params
from runwatch.api.reads import EarlyAnswers, ReadRoutes, ResponseCache, StateMemo
from runwatch.compression import GZipWithETags
from runwatch.config import Settings
from runwatch.dashboard import install_dashboard
from runwatch.db.engine import Engines, create_engines
from runwatch.db.sqlite_version import WalVersionCache, shm_path
from runwatch.db.version_watch import DataVersionCache
from runwatch.errors import install_error_handlers, problem_response
from runwatch.metrics import install_metrics
from runwatch.middleware import CORSMiddleware, RequestContext, cors_middleware_options
from runwatch.migrate import upgrade
from runwatch.openapi import app_options, install_api_docs
from runwatch.queries.api_keys import load_key_set
from runwatch.queries.segment_cache import RollupCache
from runwatch.routing import DirectRoutes, give_concrete_paths_precedence
from runwatch.schemas.common import problem_responses
from runwatch.security import (
    KeyCache,
    KeySet,
    RequireKey,
    check_open_access,
)

logger = logging.getLogger("runwatch")

DESCRIPTION = """
Introspection API over the history of LLM pipeline runs.

* Every error is `application/problem+json` with a stable `code`
  (`not_found`, `invalid_argument`, `conflict`, `unauthorized`, `forbidden`,
  `payload_too_large`, `unavailable`, `internal`) and the request's `request_id`.
* Once an API key exists, send it as `Authorization: Bearer <key>`: reads need a
  `read` key, writes a `write` key (401 without a valid key, 403 with too small a scope).
* Timestamps go out as RFC 3339 in UTC (`2026-01-23T03:00:00Z`); one that comes in
  without an offset is taken as UTC.
* Limits (all configurable, see the README): `limit` 1-100, `offset` ≤ 100,000,
  `days` 1-30, batches ≤ 1,000 runs, request bodies ≤ 8 MiB.
* A run's `started_at` is from 2000-01-01T00:00:00Z to now + 1 day, its `completed_at`
  no later than now + 1 day; `since` and `until` from 1970 to 2200. Text may not hold
  U+0000 or lone surrogates. A problem lists at most 20 `errors` and counts them in
  `error_count` (docs/security.md lists every bound).
* Unknown query parameters are rejected (422) rather than ignored.
"""


class BodySizeLimit:
    """Answer 413 to a request body larger than the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"The request body is larger than {self.max_bytes} bytes."
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(
                status=413, code="payload_too_large", title="Payload too large", detail=detail
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read, so the app's
                    # handlers render it like any other error.
                    raise StarletteHTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)


VersionCache = DataVersionCache | WalVersionCache


def version_cache(settings: Settings, engines: Engines) -> VersionCache | None:
    """What keeps this process's data version without a query: notifications on PostgreSQL,
    the WAL-index header on a SQLite file; None where neither can (an in-memory database)."""
    if engines.dialect.announces_versions:
        cache = DataVersionCache(settings.database_url, connect_timeout=settings.db_connect_timeout)
        cache.start()
        return cache
    path = shm_path(settings.database_url)
    return WalVersionCache(path) if path is not None else None


# Young collections once this many more container objects are alive than were
# (CPython's default is 700, which a single list page's rows pass and free again).
SERVING_GC_THRESHOLD = 10_000


@contextmanager
def settled_heap() -> Iterator[None]:
    """Keep the garbage collector from stalling a serving process, until the app stops.

    What exists once the app has started (modules, routes, schemas: about
    130,000 objects) lives as long as the process, yet a full collection
    walks all of it: 80 ms every few seconds under load, during which no
    request is answered. `gc.freeze` leaves it out of every collection, and a
    higher first threshold stops young collections from running over the
    objects a request holds only while it is answered. Both are undone when
    the app stops.
    """
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(SERVING_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def create_app(settings: Settings | None = None, *, serving: bool = False) -> FastAPI:
    """Build the application; engines are created in the lifespan, not here.

    `serving`: the app is its process's for as long as it runs (`runwatch
    serve`), so once started the process's heap is settled (`settled_heap`).
    Tests and embedders, which build many apps in one process, leave it off.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.should_auto_migrate:
            await upgrade(settings.database_url)
        engines = create_engines(settings)
        app.state.engines = engines

        async def load_keys() -> KeySet:
            async with engines.write.connect() as conn:
                return await load_key_set(conn)

        app.state.key_cache = KeyCache(load_keys, settings.api_key_cache_seconds)
        await check_open_access(settings, app.state.key_cache)
        app.state.version_cache = version_cache(settings, engines)
        try:
            with settled_heap() if serving else nullcontext():
                yield
        finally:
            if app.state.version_cache is not None:
                await app.state.version_cache.stop()
            await engines.dispose()

    app = FastAPI(
        title="runwatch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query_params)],
        **app_options(),
    )
    app.state.settings = settings
    app.state.serving = serving
    app.state.response_cache = ResponseCache(
        max_bytes=settings.response_cache_bytes,
        max_entry_bytes=min(settings.response_cache_bytes, 1024 * 1024),
    )
    app.state.state_memo = StateMemo()
    app.state.rollup_cache = RollupCache(settings.rollup_cache_rows)
    app.state.read_routes = ReadRoutes()
    app.state.version_cache = None
    install_error_handlers(app, retry_after_seconds=settings.retry_after_seconds)
    app.include_router(health.router)
    # Health checks stay open; every data route needs a key once one exists
    # (checked by RequireKey, ahead of routing).
    guarded = {"responses": problem_responses(401, 403)}
    app.include_router(operator.router, **guarded)
    app.include_router(layer_runs.router, **guarded)
    app.include_router(extraction_runs.router, **guarded)
    # /runs/errors is not a run id: concrete paths win over /runs/{run_id}, in any order.
    give_concrete_paths_precedence(app)
    install_dashboard(app)
    install_api_docs(app, settings)
    install_metrics(app)
    # Inside the early answers: a request they answer needs no route.
    app.add_middleware(DirectRoutes, fastapi=app)
    # Inside the key check: only a request with a valid key gets an early answer.
    app.add_middleware(EarlyAnswers, fastapi=app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Ahead of the body limit: a request without a valid key is answered 401
    # before any of its body is read.
    app.add_middleware(RequireKey, settings=settings, keys=lambda: app.state.key_cache)
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, **cors_middleware_options(settings.cors_origin_list))
    app.add_middleware(GZipWithETags)
    # Outermost, so that every answer (a 413 too) carries the request id.
    app.add_middleware(RequestContext)
    return app


def create_served_app() -> FastAPI:
    """The app of one `runwatch serve` worker process, its settings from the environment."""
    return create_app(serving=True)
