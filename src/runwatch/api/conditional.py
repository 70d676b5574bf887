"""Conditional GETs: ETags from the shared data version, 304 without running the query."""

from __future__ import annotations

import hashlib
import time

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.queries.rollups import data_version

# Clients may keep an answer but must revalidate it before each use; a
# revalidation that matches costs one primary-key lookup, not the query.
CACHE_CONTROL = "no-cache"


def _representation_key(request: Request, extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    return f"{request.url.path}?{query}#{extra}"


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x".
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in candidates


async def conditional(
    request: Request, response: Response, conn: AsyncConnection, *, window_seconds: int = 0
) -> Response | None:
    """Set `ETag` and `Cache-Control`; return a 304 response if the client's copy is current.

    The tag is the data version (advanced by every write, in the writer's
    transaction, so all API processes on one database agree) plus a digest of
    the request. Answers over a rolling window ("the last 7 days") also change
    as time passes: `window_seconds` adds the current time slot to the tag.
    """
    version = await data_version(conn)
    extra = str(int(time.time() // window_seconds)) if window_seconds else ""
    digest = hashlib.blake2b(_representation_key(request, extra).encode(), digest_size=8)
    etag = f'"{version}-{digest.hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return None
