"""Annotated dependencies: settings, read/write connections, paging and common query checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from runwatch.api.query_models import documented_query_names
from runwatch.config import Settings
from runwatch.db.dialect import dialect_of
from runwatch.db.engine import PRIMARY, Engines
from runwatch.errors import InvalidArgument
from runwatch.metrics import PoolGauge
from runwatch.queries.data_state import NEW_VERSION_INFO_KEY
from runwatch.schemas.common import RUN_ID_PATTERN, FilterTimestamp

logger = logging.getLogger("runwatch")

RunIdPath = Annotated[
    str, Path(pattern=RUN_ID_PATTERN, description="The run's id (1-64 of `A-Za-z0-9_.:-`).")
]


async def get_settings(request: Request) -> Settings:
    # async, like every dependency here: FastAPI runs a plain `def` in a thread.
    return request.app.state.settings


def get_engines(request: Request) -> Engines:
    return request.app.state.engines


READ_FROM_HEADER = "X-Runwatch-Read-From"
READ_SOURCE_HEADER = "X-Runwatch-Read-Source"
STANDBY_HEADER = "X-Runwatch-Standby"


async def open_read_connection(request: Request) -> tuple[str, AsyncConnection]:
    """A connection to a healthy replica, else to the primary.

    `X-Runwatch-Read-From: primary` pins the read to the primary (read your own
    writes). The source is remembered for the request, so that its ETag check
    and its query read the same replica.
    """
    engines: Engines = request.app.state.engines
    state = request.scope.setdefault("state", {})  # `request.state`'s own dict
    prefer = state.get("read_source")
    if request.headers.get(READ_FROM_HEADER, "").lower() == PRIMARY:
        prefer = PRIMARY
    for name, engine in engines.read_candidates(prefer=prefer):
        try:
            conn = await _checkout(engine, name)
        except (DBAPIError, OSError, TimeoutError):
            if name == PRIMARY:
                raise
            logger.warning("read replica %s unavailable; skipping it for now", name)
            engines.mark_down(name)
            continue
        state["read_source"] = name
        return name, conn
    raise AssertionError("the primary is always a candidate")


async def _checkout(engine: AsyncEngine, name: str) -> AsyncConnection:
    gauge = PoolGauge.of(name)
    gauge.waiting.inc()
    try:
        conn = await engine.connect()
    finally:
        gauge.waiting.dec()
    gauge.in_use.inc()
    return conn


async def release_connection(conn: AsyncConnection, name: str) -> None:
    try:
        await conn.close()
    finally:
        PoolGauge.of(name).in_use.dec()


async def _write_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    # The transaction commits when the route returns and before the answer is
    # sent (scope="function"), so a failed commit is never answered with a 2xx.
    conn, transaction = await _begin_write(request.app.state.engines.write)
    try:
        conn.info.pop(NEW_VERSION_INFO_KEY, None)
        try:
            yield conn
        except BaseException:
            await transaction.rollback()
            raise
        await transaction.commit()
        # Committed: this process's cached version may move on now, so that its
        # next conditional GET sees this write even before the notification.
        version = conn.info.pop(NEW_VERSION_INFO_KEY, None)
        cache = getattr(request.app.state, "version_cache", None)
        if version is not None and cache is not None:
            cache.observe(version)
    finally:
        await release_connection(conn, "write")


async def _begin_write(engine: AsyncEngine) -> tuple[AsyncConnection, AsyncTransaction]:
    """A connection with its write transaction begun, on a connection known to be alive.

    Pooled connections are not pinged at checkout (reads retry instead). A
    write cannot be retried once it has run, so on PostgreSQL its transaction
    starts with a trivial statement: if the connection died with a database
    restart, nothing has been done yet and a fresh connection is taken.
    """
    for attempt in (1, 2):
        conn = await _checkout(engine, "write")
        try:
            transaction = await conn.begin()
            if dialect_of(conn).checks_write_connections:
                await conn.exec_driver_sql("SELECT 1")
            return conn, transaction
        except DBAPIError as exc:
            await release_connection(conn, "write")
            if attempt == 2 or not exc.connection_invalidated:
                raise
            logger.warning("write connection lost (%s); taking a fresh one", type(exc).__name__)
        except BaseException:
            await release_connection(conn, "write")
            raise
    raise AssertionError("unreachable: the second attempt returns or raises")


SettingsDep = Annotated[Settings, Depends(get_settings)]
WriteConn = Annotated[AsyncConnection, Depends(_write_connection, scope="function")]


@dataclass(frozen=True)
class Paging:
    """`offset`, `limit` and `cursor`, checked against the configured limits."""

    offset: int
    limit: int
    cursor: str | None


def check_paging(
    settings: Settings, *, offset: int, limit: int | None, cursor: str | None
) -> Paging:
    """The configured bounds, which a schema cannot know: 422 naming the parameter."""
    if limit is None:
        limit = settings.default_page_size
    if limit > settings.max_page_size:
        raise InvalidArgument.at(("query", "limit"), f"must be at most {settings.max_page_size}")
    if offset > settings.max_offset:
        raise InvalidArgument.at(
            ("query", "offset"),
            f"must be at most {settings.max_offset}; use cursor to page deeper",
        )
    if cursor is not None and offset:
        raise InvalidArgument.at(("query", "offset"), "cannot be combined with cursor")
    return Paging(offset=offset, limit=limit, cursor=cursor)


def check_window(since: datetime | None, until: datetime | None) -> TimeWindow:
    if since is not None and until is not None and until < since:
        raise InvalidArgument.at(("query", "until"), "must not be earlier than since")
    return TimeWindow(since=since, until=until)


async def stats_days(
    request: Request,
    days: Annotated[
        int,
        Query(
            ge=1, description="Window in days back from now, 1 to 30 (`RUNWATCH_MAX_STATS_DAYS`)."
        ),
    ] = 7,
) -> int:
    """The `days` of a summary, within the configured bound (422 naming it beyond)."""
    return check_stats_days(request.app.state.settings, days)


def check_stats_days(settings: Settings, days: int) -> int:
    """`days` if within `RUNWATCH_MAX_STATS_DAYS`, else 422 naming it."""
    if days > settings.max_stats_days:
        raise InvalidArgument.at(("query", "days"), f"must be at most {settings.max_stats_days}")
    return days


StatsDays = Annotated[int, Depends(stats_days)]


@dataclass(frozen=True)
class TimeWindow:
    """`since` (inclusive) and `until` (exclusive) bounds on a run's start time."""

    since: datetime | None
    until: datetime | None


async def time_window(
    since: Annotated[
        FilterTimestamp | None,
        Query(
            description="Runs started at or after this time (RFC 3339; no offset = UTC; "
            "1970-01-01 to 2200-01-01)."
        ),
    ] = None,
    until: Annotated[
        FilterTimestamp | None,
        Query(
            description="Runs started before this time (RFC 3339; no offset = UTC; "
            "1970-01-01 to 2200-01-01)."
        ),
    ] = None,
) -> TimeWindow:
    return check_window(since, until)


TimeWindowDep = Annotated[TimeWindow, Depends(time_window)]


def parse_statuses(raw: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated `status` parameter as a tuple of known statuses, or 422."""
    if raw is None:
        return ()
    values = tuple(dict.fromkeys(part.strip() for part in raw.split(",")))
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise InvalidArgument.at(
            ("query", "status"),
            f"unknown status {', '.join(repr(v) for v in unknown) or repr(raw)}; "
            f"expected one or more of {', '.join(allowed)}, comma-separated",
        )
    return values


def _query_names(dependant: Dependant) -> frozenset[str]:
    names: set[str] = set()
    for param in dependant.query_params:
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):  # a query model
            names |= {field.alias or name for name, field in model.model_fields.items()}
        else:
            names.add(param.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def reject_unknown_query_params(request: Request) -> None:
    """422 for a query parameter the route does not take (a typo must not widen a filter)."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    # Worked out once per route, then a set difference per request.
    allowed = getattr(route, _ALLOWED_ATTRIBUTE, None)
    if allowed is None:
        # Those FastAPI reads, and those a route reads itself and declares.
        allowed = _query_names(dependant) | documented_query_names(route.openapi_extra)
        setattr(route, _ALLOWED_ATTRIBUTE, allowed)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise InvalidArgument(
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            errors=[{"loc": ["query", name], "msg": "unknown parameter"} for name in unknown],
        )


_ALLOWED_ATTRIBUTE = "runwatch_query_names"
