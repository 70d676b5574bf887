"""API keys: token generation and hashing, scopes, and the per-process cache of active keys."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runwatch.config import Settings
from runwatch.domain import API_KEY_SCOPES
from runwatch.errors import (
    Forbidden,
    RunwatchError,
    Unauthorized,
    describe_database_error,
    error_response,
    is_unmigrated,
    unavailable_response,
)

logger = logging.getLogger("runwatch")

SCOPE_RANK = {scope: rank for rank, scope in enumerate(API_KEY_SCOPES)}
TOKEN_PREFIX = "rw_"
# 32 random bytes: a key cannot be guessed, so one fast hash is enough to store
# it safely (a slow password hash protects low-entropy secrets, not these).
TOKEN_BYTES = 32
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_token() -> str:
    """A fresh API key, shown to its owner once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a key: hex SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of a key, enough to recognise it in `keys list`."""
    return token[: len(TOKEN_PREFIX) + 6]


def scope_allows(granted: str, needed: str) -> bool:
    """read < write < admin: a key may do what its scope and every lower scope may."""
    return SCOPE_RANK[granted] >= SCOPE_RANK[needed]


def scope_for_method(method: str) -> str:
    return "read" if method.upper() in READ_METHODS else "write"


@functools.lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not authorization:
        return None
    kind, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if kind.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


@dataclass(frozen=True)
class ActiveKey:
    id: str
    name: str
    scope: str
    token_hash: str


@dataclass(frozen=True)
class KeySet:
    """The keys that may be used, and whether any key was ever created."""

    by_hash: dict[str, ActiveKey]
    any_created: bool

    def find(self, token: str) -> ActiveKey | None:
        digest = hash_token(token)
        key = self.by_hash.get(digest)
        # The dict finds the candidate; the comparison that decides is constant-time.
        if key is not None and hmac.compare_digest(key.token_hash, digest):
            return key
        return None


class KeyCache:
    """The active keys, reloaded at most every `ttl_seconds` so a request costs no query.

    A key created or revoked by another process takes effect within the TTL.
    """

    def __init__(self, load: Callable[[], Awaitable[KeySet]], ttl_seconds: float) -> None:
        self._load = load
        self.ttl_seconds = ttl_seconds
        self._keys: KeySet | None = None
        self._loaded_at = 0.0
        # One reload at a time: requests arriving as the TTL ends wait for it
        # instead of each sending the same query.
        self._reloading = asyncio.Lock()

    def _fresh(self) -> KeySet | None:
        if self._keys is None or time.monotonic() - self._loaded_at >= self.ttl_seconds:
            return None
        return self._keys

    async def get(self) -> KeySet:
        keys = self._fresh()
        if keys is not None:
            return keys
        async with self._reloading:
            keys = self._fresh()
            if keys is None:
                keys = await self._load()
                self._keys, self._loaded_at = keys, time.monotonic()
            return keys

    def invalidate(self) -> None:
        self._keys = None


# Every route under these paths needs a key once one exists; health checks,
# metrics, the dashboard's files and the schema stay open.
GUARDED_PREFIXES = ("/runs", "/extraction-runs")
SECURITY_SCHEME = "apiKey"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from `runwatch keys create`, as `Authorization: Bearer <key>`.",
}


def is_guarded(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in GUARDED_PREFIXES)


def check_key(
    keys: KeySet, settings: Settings, method: str, authorization: str | None
) -> ActiveKey | None:
    """The key that allows this request (None when no key exists yet), or raise 401/403.

    Reads need a `read` key, writes a `write` key, once any key exists. With
    no key ever created, requests are let in: the server only starts that way
    on a loopback address or when told `--insecure` (see `check_open_access`).
    """
    if not keys.any_created:
        if is_loopback(settings.host) or settings.insecure:
            return None
        raise Unauthorized(NO_KEYS_MESSAGE)
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    key = keys.find(token)
    if key is None:
        raise Unauthorized("The API key is unknown or revoked.")
    needed = scope_for_method(method)
    if not scope_allows(key.scope, needed):
        raise Forbidden(f"This key has scope {key.scope!r}; this request needs {needed!r}.")
    return key


class RequireKey:
    """Decide the key of a guarded request before anything else is done with it.

    Runs ahead of routing, so that a request without a valid key is answered
    401 (or 403) before its body is read or its parameters are checked.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        keys: Callable[[], KeyCache],
    ) -> None:
        self.app = app
        self.settings = settings
        self.keys = keys  # the cache is made by the lifespan, after the middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        retry_after, path = self.settings.retry_after_seconds, scope["path"]
        response: Response | None = None
        try:
            keys = await self.keys().get()
            key = check_key(keys, self.settings, scope["method"], authorization)
        except RunwatchError as exc:
            response = error_response(exc, instance=path)
        except (DBAPIError, OSError, SQLAlchemyTimeoutError) as exc:
            response = unavailable_response(exc, retry_after_seconds=retry_after, path=path)
        if response is not None:
            await response(scope, receive, send)
            return
        if key is not None:
            state = scope.setdefault("state", {})
            state["api_key_id"] = key.id
            state["api_key_name"] = key.name  # for the request log; never the token
        await self.app(scope, receive, send)


NO_KEYS_MESSAGE = (
    "No API key exists. Create one with `runwatch keys create --name NAME --scope read` "
    "(or write/admin) and send it as `Authorization: Bearer <key>`."
)


_warned: set[tuple[str, str]] = set()


def _warn_once(message: str, host: str) -> None:
    # `runwatch serve` checks before it starts the app, and the app again at
    # start: say it once per process.
    if (message, host) not in _warned:
        _warned.add((message, host))
        logger.warning(message, host)


async def check_open_access(settings: Settings, cache: KeyCache) -> None:
    """At start: refuse to serve without keys on a non-loopback address unless told to."""
    try:
        keys = await cache.get()
    except Exception as exc:  # the database may be down at start; requests are checked anyway
        if is_unmigrated(exc):
            logger.warning(
                "the database is not migrated (%s): run `runwatch migrate`; until then "
                "requests are answered 503",
                describe_database_error(exc),
            )
        else:
            logger.warning(
                "could not read the API keys at start (%s); checking per request",
                describe_database_error(exc),
            )
        return
    if keys.any_created:
        logger.info("API keys configured: every request except health checks needs one")
        return
    if is_loopback(settings.host):
        _warn_once(
            "no API keys: accepting unauthenticated requests because bound to loopback (%s)",
            settings.host,
        )
        return
    if settings.insecure:
        _warn_once(
            "no API keys and RUNWATCH_INSECURE is set: anyone who reaches %s may read and write",
            settings.host,
        )
        return
    raise InsecureStart(
        f"Refusing to serve on {settings.host} without API keys. {NO_KEYS_MESSAGE} "
        "To serve without keys anyway, pass --insecure or set RUNWATCH_INSECURE=true."
    )


class InsecureStart(RuntimeError):
    """Bound to a non-loopback address with no API key and no explicit `--insecure`."""
