"""Annotated dependencies: settings, read/write connections, paging and common query checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from fastapi.dependencies.models import Dependant
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runwatch.config import Settings
from runwatch.db.dialect import serves_from_standby
from runwatch.db.engine import PRIMARY, Engines
from runwatch.errors import InvalidArgument
from runwatch.metrics import PoolGauge
from runwatch.queries.rollups import NEW_VERSION_INFO_KEY
from runwatch.schemas.common import FilterTimestamp

logger = logging.getLogger("runwatch")


def get_settings(request: Request) -> Settings:
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
    engines = get_engines(request)
    prefer = getattr(request.state, "read_source", None)
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
        request.state.read_source = name
        return name, conn
    raise AssertionError("the primary is always a candidate")


async def _checkout(engine: AsyncEngine, name: str) -> AsyncConnection:
    gauge = PoolGauge(name)
    gauge.waiting.inc()
    try:
        conn = await engine.connect()
    finally:
        gauge.waiting.dec()
    gauge.in_use.inc()
    return conn


async def release_read_connection(conn: AsyncConnection, name: str) -> None:
    await _release(conn, name)


async def _release(conn: AsyncConnection, name: str) -> None:
    try:
        await conn.close()
    finally:
        PoolGauge(name).in_use.dec()


async def _read_connection(request: Request, response: Response) -> AsyncIterator[AsyncConnection]:
    source, conn = await open_read_connection(request)
    try:
        response.headers[READ_SOURCE_HEADER] = source
        async with conn.begin():
            if source != PRIMARY:
                response.headers[STANDBY_HEADER] = str(await serves_from_standby(conn)).lower()
            yield conn
    finally:
        await _release(conn, source)


async def _write_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    # The transaction commits when the route returns and before the answer is
    # sent (scope="function"), so a failed commit is never answered with a 2xx.
    conn = await _checkout(get_engines(request).write, "write")
    try:
        conn.info.pop(NEW_VERSION_INFO_KEY, None)
        async with conn.begin():
            yield conn
        # Committed: this process's cached version may move on now, so that its
        # next conditional GET sees this write even before the notification.
        version = conn.info.pop(NEW_VERSION_INFO_KEY, None)
        cache = getattr(request.app.state, "version_cache", None)
        if version is not None and cache is not None:
            cache.observe(version)
    finally:
        await _release(conn, "write")


SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadConn = Annotated[AsyncConnection, Depends(_read_connection, scope="function")]
WriteConn = Annotated[AsyncConnection, Depends(_write_connection, scope="function")]


class Paging:
    """`offset`, `limit` and `cursor`, checked against the configured limits."""

    def __init__(
        self,
        request: Request,
        offset: Annotated[
            int,
            Query(
                ge=0,
                description="Rows to skip (at most `RUNWATCH_MAX_OFFSET`, default 100,000). "
                "Prefer `cursor` for deep pages.",
            ),
        ] = 0,
        limit: Annotated[
            int | None,
            Query(
                ge=1,
                description="Page size, 1 to `RUNWATCH_MAX_PAGE_SIZE` (default 100); default 20.",
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                max_length=1024,
                description="`next_cursor` from the previous page; continues after it in "
                "constant time. Cannot be combined with a non-zero `offset`.",
            ),
        ] = None,
    ) -> None:
        settings = get_settings(request)
        if limit is None:
            limit = settings.default_page_size
        if limit > settings.max_page_size:
            raise InvalidArgument.at(
                ("query", "limit"), f"must be at most {settings.max_page_size}"
            )
        if offset > settings.max_offset:
            raise InvalidArgument.at(
                ("query", "offset"),
                f"must be at most {settings.max_offset}; use cursor to page deeper",
            )
        if cursor is not None and offset:
            raise InvalidArgument.at(("query", "offset"), "cannot be combined with cursor")
        self.offset = offset
        self.limit = limit
        self.cursor = cursor


PagingDep = Annotated[Paging, Depends()]


class TimeWindow:
    """`since` (inclusive) and `until` (exclusive) bounds on a run's start time."""

    def __init__(
        self,
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
    ) -> None:
        if since is not None and until is not None and until < since:
            raise InvalidArgument.at(("query", "until"), "must not be earlier than since")
        self.since: datetime | None = since
        self.until: datetime | None = until


TimeWindowDep = Annotated[TimeWindow, Depends()]


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


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query_params(request: Request) -> None:
    """422 for a query parameter the route does not take (a typo must not widen a filter)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _query_names(dependant)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise InvalidArgument(
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            errors=[{"loc": ["query", name], "msg": "unknown parameter"} for name in unknown],
        )
