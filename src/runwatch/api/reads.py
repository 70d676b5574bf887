"""The read path: one context per read (connection, version, ETag, window) and encoded answers.

Every cacheable GET goes through `serve_read`:

1. The ETag is `"<data version>-<hash of path, canonical query and window step>"`.
   Where the process already knows the version (PostgreSQL, kept current by
   notifications, no replicas), a matching `If-None-Match` is answered 304 and
   an answer already encoded for this tag is served again, both before any
   connection is taken from the pool.
2. Otherwise one connection is taken (a healthy replica, else the primary) and
   the version and purge horizon are read on it in one statement, so that a
   replica's answer is never labelled with a version it has not replayed.
3. The route's `work` runs its statements on that connection and returns the
   body as bytes (encoded once, from rows); the bytes are kept under the tag.

A connection found dead (a database restart) is replaced and the read tried
once more: reads are idempotent, and this is cheaper than pinging every
connection at checkout.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from runwatch.api.deps import (
    READ_SOURCE_HEADER,
    STANDBY_HEADER,
    open_read_connection,
    release_connection,
)
from runwatch.config import Settings
from runwatch.db.dialect import dialect_of
from runwatch.db.engine import PRIMARY
from runwatch.queries.data_state import DataState, read_data_state
from runwatch.queries.segment_cache import RollupCache
from runwatch.schemas.common import rfc3339
from runwatch.security import is_guarded

logger = logging.getLogger("runwatch")

# Clients may keep an answer but must revalidate it before each use.
CACHE_CONTROL = "no-cache"
JSON = "application/json"
NOT_MODIFIED_RESPONSE = {304: {"description": "Not modified: the `If-None-Match` tag is current."}}


def _default(value: Any) -> Any:
    # A UTC timestamp (all that the databases return) is written by orjson,
    # 2.5 times faster than `isoformat`; the fraction then loses its trailing
    # zeros, as `rfc3339` writes it. Any other goes through `rfc3339` itself.
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            text = orjson.dumps(value, option=orjson.OPT_UTC_Z)
            if value.microsecond:
                text = text[:-2].rstrip(b"0") + b'Z"'
            return orjson.Fragment(text)
        return rfc3339(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_json(body: Any) -> bytes:
    """JSON bytes for an answer: timestamps as `rfc3339` writes them (UTC, `Z`), like the
    schemas."""
    return orjson.dumps(body, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110, 13.1.2): `W/"x"` matches `"x"`; `*` matches anything."""
    if if_none_match.strip() == "*":
        return True
    return etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))


class ResponseCache:
    """Encoded answers by ETag, least recently used first out, within a byte budget.

    A tag names one data version, so an entry can never be served for newer
    data: after a write the tag changes and the old entry simply ages out.
    """

    def __init__(self, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, etag: str) -> bytes | None:
        entry = self._entries.get(etag)
        if entry is not None:
            self._entries.move_to_end(etag)
        return entry

    def put(self, etag: str, body: bytes) -> None:
        if len(body) > self.max_entry_bytes or etag in self._entries or not self.max_bytes:
            return
        self._entries[etag] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old)


@dataclass
class StateMemo:
    """The last data state this process read; the purge horizon is reused while current."""

    state: DataState | None = None

    def horizon_for(self, version: int) -> tuple[bool, datetime | None]:
        # A purge moves the horizon and the version in one transaction, so a
        # horizon read at this version or later is the one in force.
        if self.state is not None and self.state.version >= version:
            return True, self.state.purged_before
        return False, None


@dataclass
class ReadContext:
    """What one read needs: its connection, where it reads from, the window's "now", the
    process's cache of rollup aggregates (see queries/segment_cache) and the settings."""

    conn: AsyncConnection
    source: str
    version: int
    window_now: datetime
    _memo: StateMemo
    rollups: RollupCache
    settings: Settings

    def known_purged_before(self) -> tuple[bool, datetime | None]:
        """The purge horizon last read, and whether it is known to hold at this read's version."""
        known, horizon = self._memo.horizon_for(self.version)
        if not known and self._memo.state is not None:
            horizon = self._memo.state.purged_before
        return known, horizon

    def learned_purged_before(self, horizon: datetime | None) -> None:
        """Keep a horizon read on this read's connection (so at this version or later)."""
        self._memo.state = DataState(self.version, horizon)

    async def purged_before(self) -> datetime | None:
        """The layer-run purge horizon at this read's version (no query when already known)."""
        known, horizon = self._memo.horizon_for(self.version)
        if known:
            return horizon
        state = await read_data_state(self.conn)
        self._memo.state = state
        return state.purged_before


Work = Callable[[ReadContext], Awaitable[bytes]]


async def serve_read(
    request: Request, work: Work, *, window_seconds: int = 0, versioned: bool = True
) -> Response:
    """Answer a GET through the shared read path (see the module docstring).

    `window_seconds` > 0 marks a rolling window ("the last 7 days"): it moves
    in steps of that many seconds, `ReadContext.window_now` is the start of the
    current step, and the step is part of the tag, so the tag stays exact.

    `versioned=False` is for data whose writes do not advance the data version
    (extraction runs: a shared version row would make every claim wait for
    the one before it). The tag is then a hash of the answer itself: a poll
    still costs the query, but an unchanged answer is a bodiless 304.
    """
    app_state = request.app.state
    memo: StateMemo = app_state.state_memo
    rollups: RollupCache = app_state.rollup_cache
    settings: Settings = app_state.settings
    if_none_match = request.headers.get("if-none-match")
    if not versioned:
        now = datetime.now(UTC)

        async def by_content(conn: AsyncConnection, source: str) -> Response:
            body = await work(ReadContext(conn, source, 0, now, memo, rollups, settings))
            etag = f'"c{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
            return _answer(body, etag, source, if_none_match)

        return await on_read_connection(request, by_content)

    scope = request.scope
    # For answers decided before routing: this exact request is this route's.
    app_state.read_routes.remember(scope, window_seconds)
    digest, window_now = tag_basis(scope, window_seconds)
    responses: ResponseCache = app_state.response_cache

    def known_answer(version: int, source: str) -> Response | None:
        etag = f'"{version}-{digest}"'
        if if_none_match and etag_matches(if_none_match, etag):
            return _answer(b"", etag, source, if_none_match)
        hit = responses.get(etag)
        return None if hit is None else _answer(hit, etag, source, None)

    version_cache = app_state.version_cache
    known = version_cache.current if version_cache is not None else None
    if app_state.engines.replicas:
        known = None  # each replica's own version labels what it serves
    if known is not None:
        early = known_answer(known, PRIMARY)
        if early is not None:
            return early

    async def fresh(conn: AsyncConnection, source: str) -> Response:
        standby = None
        if source != PRIMARY:
            standby = str(await dialect_of(conn).serves_from_standby(conn)).lower()
        version = known
        if version is None:
            # The version cache's mark is taken before the version is read (see
            # db/sqlite_version.py); it learns the pair from the primary only.
            mark = version_cache.before_read() if version_cache and source == PRIMARY else None
            memo.state = await read_data_state(conn)
            version = memo.state.version
            if mark is not None:
                version_cache.learned(mark, version)
            early = known_answer(version, source)
            if early is not None:
                return _with_standby(early, standby)
        body = await work(ReadContext(conn, source, version, window_now, memo, rollups, settings))
        etag = f'"{version}-{digest}"'
        responses.put(etag, body)
        return _with_standby(_answer(body, etag, source, None), standby)

    return await on_read_connection(request, fresh)


def tag_basis(scope: Scope, window_seconds: int) -> tuple[str, datetime]:
    """What a read's tag is made of besides the version, and the "now" of its window.

    The path, the query as sent (reordering could merge two queries whose
    repeated parameters, the last of which wins, ask for different answers)
    and, for a rolling window, its current step.
    """
    step: int | str = ""
    if window_seconds:
        step = int(time.time() // window_seconds)
        window_now = datetime.fromtimestamp(step * window_seconds, UTC)
    else:
        window_now = datetime.now(UTC)
    basis = b"%s?%s#%s" % (scope["path"].encode(), scope["query_string"], str(step).encode())
    return hashlib.blake2b(basis, digest_size=8).hexdigest(), window_now


class ReadRoutes:
    """The route and window of each request `serve_read` has answered, by path and query.

    Least recently used first out. What it holds was learnt by routing the
    same request, so the early path never has to route.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._by_request: OrderedDict[tuple[str, bytes], tuple[Any, int]] = OrderedDict()

    def remember(self, scope: Scope, window_seconds: int) -> None:
        key = (scope["path"], scope["query_string"])
        if key in self._by_request:
            self._by_request.move_to_end(key)
            return
        self._by_request[key] = (scope.get("route"), window_seconds)
        if len(self._by_request) > self.maxsize:
            self._by_request.popitem(last=False)

    def get(self, scope: Scope) -> tuple[Any, int] | None:
        return self._by_request.get((scope["path"], scope["query_string"]))


class EarlyAnswers:
    """Answer a conditional or repeated GET before routing, when the version is known.

    Where the process knows the data version without asking (PostgreSQL,
    kept current by notifications, no replicas), a read whose `If-None-Match`
    is current gets its 304, and one whose answer was encoded at this version
    gets those bytes, without FastAPI's routing, parameters or a connection.
    Only a request `serve_read` has answered before takes part (its route and
    window are remembered then); keys are checked before this runs.
    """

    def __init__(self, app: ASGIApp, *, fastapi: Any) -> None:
        self.app = app
        self.fastapi = fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and is_guarded(scope["path"]):
            response = self._early(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _early(self, scope: Scope) -> Response | None:
        state = self.fastapi.state
        version_cache = state.version_cache
        if version_cache is None or state.engines.replicas:
            return None
        version = version_cache.current
        if version is None:
            return None
        if_none_match = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        known = state.read_routes.get(scope)
        if known is None:
            return None
        route, window_seconds = known
        digest, _ = tag_basis(scope, window_seconds)
        etag = f'"{version}-{digest}"'
        if if_none_match and etag_matches(if_none_match, etag):
            response = _answer(b"", etag, PRIMARY, if_none_match)
        else:
            hit = state.response_cache.get(etag)
            if hit is None:
                return None
            response = _answer(hit, etag, PRIMARY, None)
        scope["route"] = route  # for the request log and metrics, as routing would
        return response


def _answer(body: bytes, etag: str, source: str, if_none_match: str | None) -> Response:
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, READ_SOURCE_HEADER: source}
    if if_none_match and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


def _with_standby(response: Response, standby: str | None) -> Response:
    if standby is not None:
        response.headers[STANDBY_HEADER] = standby
    return response


T = TypeVar("T")


async def on_read_connection(
    request: Request, use: Callable[[AsyncConnection, str], Awaitable[T]]
) -> T:
    """Run `use` on a read connection, once more on a fresh one if the first was dead."""
    for attempt in (1, 2):
        source, conn = await open_read_connection(request)
        try:
            return await use(conn, source)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            logger.warning("read connection lost (%s); retrying once", type(exc).__name__)
        finally:
            await release_connection(conn, source)
    raise AssertionError("unreachable: the second attempt returns or raises")
