"""Conditional GETs: ETags from the shared data version, 304 before any query runs."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response

from runwatch.api.deps import open_read_connection, release_read_connection
from runwatch.queries.rollups import data_version

# Clients may keep an answer but must revalidate it before each use.
CACHE_CONTROL = "no-cache"
NOT_MODIFIED_RESPONSE = {304: {"description": "Not modified: the `If-None-Match` tag is current."}}


class NotModified(Exception):
    """The client's copy is current; answered 304 with these headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("not modified")
        self.headers = headers


async def current_data_version(request: Request) -> int:
    """From the process's notification-fed cache, else one primary-key lookup.

    With read replicas the version is read on the replica that will serve the
    request: a replica may lag the primary, and its data must never be
    labelled with a version it has not replayed yet.
    """
    cache = getattr(request.app.state, "version_cache", None)
    version = cache.current if cache is not None else None
    if version is not None and not request.app.state.engines.replicas:
        return version
    source, conn = await open_read_connection(request)
    try:
        return await data_version(conn)
    finally:
        await release_read_connection(conn, source)


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110, 13.1.2): W/"x" matches "x".
    return etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))


async def _check(request: Request, response: Response, window_seconds: int) -> None:
    version = await current_data_version(request)
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    slot: int | str = ""
    if window_seconds:
        slot = int(time.time() // window_seconds)
        # The route computes its rolling window as of the start of this slot,
        # so within a slot the answer depends on the data alone: the tag is exact.
        request.state.window_now = datetime.fromtimestamp(slot * window_seconds, UTC)
    digest = hashlib.blake2b(f"{request.url.path}?{query}#{slot}".encode(), digest_size=8)
    etag = f'"{version}-{digest.hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _matches(if_none_match, etag):
        raise NotModified(headers)
    response.headers.update(headers)


async def _unchanged_since(request: Request, response: Response) -> None:
    # Which runs are stuck changes as time passes, as a rolling window does.
    stuck = "stuck" in request.query_params
    await _check(request, response, request.app.state.settings.stats_etag_seconds if stuck else 0)


async def _unchanged_in_window(request: Request, response: Response) -> None:
    await _check(request, response, request.app.state.settings.stats_etag_seconds)


# Put first among a route's parameters, so that a 304 is answered before the
# route's own database connection is even taken from the pool.
Conditional = Annotated[None, Depends(_unchanged_since)]
# Rolling windows ("the last 7 days") change as time passes, not only on
# writes: they move in steps of RUNWATCH_STATS_ETAG_SECONDS, and so does the tag.
ConditionalWindow = Annotated[None, Depends(_unchanged_in_window)]


def install_not_modified_handler(app: FastAPI) -> None:
    async def on_not_modified(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotModified)
        return Response(status_code=304, headers=exc.headers)

    app.add_exception_handler(NotModified, on_not_modified)
