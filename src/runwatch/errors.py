"""Domain errors, and the one renderer that turns every error into problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from runwatch.domain import MAX_PROBLEM_ERRORS
from runwatch.middleware import current_request_id
from runwatch.routing import allowed_methods

logger = logging.getLogger("runwatch")

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:runwatch:problem:"


class RunwatchError(Exception):
    """A failure the client can act on; rendered as problem+json with a stable `code`."""

    status: int = 500
    code: str = "internal"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}


class NotFound(RunwatchError):
    status, code, title = 404, "not_found", "Not found"


class InvalidArgument(RunwatchError):
    status, code, title = 422, "invalid_argument", "Invalid argument"

    @classmethod
    def at(cls, loc: Iterable[str | int], msg: str) -> InvalidArgument:
        """An invalid value at one location (`("query", "cursor")`, `("body", "status")`)."""
        loc = list(loc)
        return cls(f"{'.'.join(map(str, loc))}: {msg}", errors=[{"loc": loc, "msg": msg}])


class Conflict(RunwatchError):
    status, code, title = 409, "conflict", "Conflict"


class Unauthorized(RunwatchError):
    """No key, or a key that is unknown or revoked; answered with `WWW-Authenticate`."""

    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="runwatch"'})


class Forbidden(RunwatchError):
    """A valid key whose scope does not allow the request."""

    status, code, title = 403, "forbidden", "Forbidden"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: Sequence[dict[str, Any]] | None = None,
    error_count: int | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    """The single shape of every error body.

    At most `MAX_PROBLEM_ERRORS` validation errors are listed, and `error_count`
    says how many there are, so that an answer stays small however invalid the
    request. Text that cannot be encoded (a lone surrogate echoed from the
    request) is escaped.
    """
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": _encodable(detail),
        "code": code,
    }
    if instance:
        body["instance"] = instance
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    if errors is not None:
        errors = list(errors)
        body["errors"] = [_encodable_error(e) for e in errors[:MAX_PROBLEM_ERRORS]]
        body["error_count"] = max(error_count or 0, len(errors))
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _encodable_error(error: dict[str, Any]) -> dict[str, Any]:
    return {
        "loc": [part if isinstance(part, int) else _encodable(str(part)) for part in error["loc"]],
        "msg": _encodable(str(error["msg"])),
    }


_HTTP_CODES = {
    400: ("invalid_argument", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("invalid_argument", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("invalid_argument", "Unsupported media type"),
}


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors()[:MAX_PROBLEM_ERRORS]:
        loc = [str(part) if not isinstance(part, int) else part for part in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "invalid value"))})
    return out


def error_response(exc: RunwatchError, *, instance: str | None) -> JSONResponse:
    """The problem answer for a domain error."""
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=dict(exc.headers),
        instance=instance,
    )


def internal_error_response(request: Request, detail: str) -> JSONResponse:
    """500 for a failure the client cannot act on; the cause goes to the log, not the client."""
    return problem_response(
        status=500,
        code="internal",
        title="Internal error",
        detail=detail,
        instance=request.url.path,
    )


def unavailable_response(exc: Exception, *, retry_after_seconds: int, path: str) -> JSONResponse:
    """503 for a database that is down, refusing, out of connections, too slow or unmigrated."""
    if is_unmigrated(exc):
        # A database without runwatch's tables (never migrated, or behind
        # this version): nothing to retry until someone migrates it.
        logger.warning(
            "database not migrated, answering 503 to %s: %s; run `runwatch migrate`",
            path,
            describe_database_error(exc),
        )
        return problem_response(
            status=503,
            code="unavailable",
            title="Database not migrated",
            detail="The database has not been migrated to this version of runwatch: "
            "run `runwatch migrate`.",
            headers={"Retry-After": str(retry_after_seconds)},
            instance=path,
        )
    # Lost connections, refused connections, pool exhaustion and statement
    # timeouts: the request may be retried, so answer 503, never 500.
    logger.warning(
        "database unavailable for %s (request_id=%s): %s",
        path,
        current_request_id(),
        describe_database_error(exc),
    )
    return problem_response(
        status=503,
        code="unavailable",
        title="Service unavailable",
        detail="The database is unavailable or too slow; retry later.",
        headers={"Retry-After": str(retry_after_seconds)},
        instance=path,
    )


def install_error_handlers(app: FastAPI, *, retry_after_seconds: int) -> None:
    """Route every exception the app can raise through `problem_response`."""

    async def on_runwatch_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RunwatchError)
        return error_response(exc, instance=request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        count = len(exc.errors())
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem_response(
            status=422,
            code="invalid_argument",
            title="Invalid argument",
            detail=summary or "The request is invalid.",
            errors=errors,
            error_count=count,
            instance=request.url.path,
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode (bytes that are not
            # UTF-8, or nesting deeper than the parser's recursion limit): the
            # same 422 as any other body that is not valid JSON.
            return problem_response(
                status=422,
                code="invalid_argument",
                title="Invalid argument",
                detail="body: not a JSON document (invalid UTF-8 or nested too deeply)",
                errors=[{"loc": ["body"], "msg": "invalid UTF-8 or nested too deeply"}],
                instance=request.url.path,
            )
        code, title = _HTTP_CODES.get(exc.status_code, ("invalid_argument", "Bad request"))
        if exc.status_code >= 500:
            code, title = "internal", "Internal error"
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(
            status=exc.status_code,
            code=code,
            title=title,
            detail=detail,
            headers=headers,
            instance=request.url.path,
        )

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        return unavailable_response(
            exc, retry_after_seconds=retry_after_seconds, path=request.url.path
        )

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response(request, "An unexpected error occurred.")

    app.add_exception_handler(RunwatchError, on_runwatch_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    for db_error in (OperationalError, InterfaceError, PoolTimeoutError, OSError):
        app.add_exception_handler(db_error, on_database_error)
    app.add_exception_handler(DBAPIError, _dbapi_error_handler(on_database_error))
    app.add_exception_handler(Exception, on_unexpected_error)


def _dbapi_error_handler(on_database_error: Any) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated or _is_unavailable(exc) or is_unmigrated(exc):
            return await on_database_error(request, exc)
        logger.exception("database error on %s %s", request.method, request.url.path)
        return internal_error_response(request, "An unexpected database error occurred.")

    return handler


def _driver_error_names(exc: DBAPIError) -> str:
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    # SQLAlchemy's asyncpg adapter wraps the driver's error in a generic one
    # and chains the original, whose class names the cause.
    cause = getattr(exc.orig, "__cause__", None)
    if cause is not None:
        name += " " + type(cause).__name__
    return name


def is_unmigrated(exc: BaseException) -> bool:
    """A missing table or column: the database is not at this version's schema."""
    if not isinstance(exc, DBAPIError):
        return False
    names = _driver_error_names(exc)
    if "UndefinedTable" in names or "UndefinedColumn" in names:
        return True
    message = str(exc.orig)
    return "no such table" in message or "no such column" in message


def describe_database_error(exc: BaseException) -> str:
    """The driver's reason in one line, without the SQL statement SQLAlchemy appends."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = getattr(exc.orig, "__cause__", None) or exc.orig
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _is_unavailable(exc: DBAPIError) -> bool:
    """asyncpg reports timeouts and shutdowns as DBAPIError subclasses with these names."""
    name = _driver_error_names(exc)
    return any(
        marker in name
        for marker in (
            "QueryCanceled",
            "ConnectionDoesNotExist",
            "CannotConnectNow",
            "AdminShutdown",
            "ConnectionFailure",
            "TooManyConnections",
            "InterfaceError",
        )
    )
