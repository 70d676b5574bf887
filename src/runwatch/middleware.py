"""ASGI middleware: request ids, security headers and CORS."""

from __future__ import annotations

import logging
import os
import re
import time
from contextvars import ContextVar

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runwatch.metrics import REQUEST_SECONDS, REQUESTS, child

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept only if it is short and printable, so that it can go
# into logs and headers without escaping or log injection.
_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("runwatch_request_id", default=None)
access_logger = logging.getLogger("runwatch.requests")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


_ID_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")
_SECURITY_PAIRS = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return request_id_var.get()


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class RequestContext:
    """Give each request an id (the client's `X-Request-ID` or a new one) and security headers;
    log it and count it in the metrics once it is answered.

    The id is echoed in the response, put in problem bodies and in log lines.
    Metrics are by route template (`/runs/{run_id}`), not by path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _ACCEPTABLE_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The raw list, as MutableHeaders would leave it: the id replaces any
                # the app set, and a security header the app set is kept.
                raw = [pair for pair in message.get("headers", ()) if pair[0] != _ID_NAME]
                present = {name for name, _ in raw}
                raw.append((_ID_NAME, request_id.encode("latin-1")))
                raw.extend(pair for pair in _SECURITY_PAIRS if pair[0] not in present)
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            duration_ms = round(seconds * 1000, 2)
            route = getattr(scope.get("route"), "path", None)
            method = scope.get("method", "")
            # A method is any token a client sends: outside the standard ones,
            # one label, so that no client can add series (and memory) at will.
            labels = (
                method if method in _METHODS else "other",
                route or "unmatched",
                str(status or 500),
            )
            child(REQUESTS, *labels).inc()
            child(REQUEST_SECONDS, *labels).observe(seconds)
            if access_logger.isEnabledFor(logging.INFO):
                self._log(scope, status, duration_ms, request_id, route)
            request_id_var.reset(token)

    @staticmethod
    def _log(
        scope: Scope, status: int, duration_ms: float, request_id: str, route: str | None
    ) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")
        access_logger.info(
            "%s %s %s %.1fms request_id=%s",
            method,
            path,
            status or "-",
            duration_ms,
            request_id,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "route": route,
                "status": status or None,
                "duration_ms": duration_ms,
                "key_name": scope.get("state", {}).get("api_key_name"),
            },
        )


def cors_middleware_options(origins: list[str]) -> dict[str, object]:
    """Options for Starlette's CORSMiddleware: the listed origins, bearer auth, no cookies."""
    return {
        "allow_origins": origins,
        "allow_methods": ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        "allow_headers": ["Authorization", "Content-Type", "If-None-Match", REQUEST_ID_HEADER],
        "expose_headers": ["ETag", "Retry-After", REQUEST_ID_HEADER],
        # Keys travel in the Authorization header, never in cookies.
        "allow_credentials": False,
        "max_age": 600,
    }


__all__ = [
    "REQUEST_ID_HEADER",
    "CORSMiddleware",
    "RequestContext",
    "cors_middleware_options",
    "current_request_id",
]
