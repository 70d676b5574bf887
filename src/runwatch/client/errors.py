"""What the client raises: `RunwatchError` and the typed errors of the API's problem answers."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from pydantic import ValidationError as PydanticValidationError

from runwatch.schemas.common import Problem


class RunwatchError(Exception):
    """Anything the client raises."""


class TemporaryError(RunwatchError):
    """The API could not be reached or is unavailable for now: try again later."""

    retry_after: float | None = None


class RunwatchConnectionError(TemporaryError):
    """No answer: the connection failed, timed out or broke off."""


class APIError(RunwatchError):
    """An error answer; `problem` is its problem+json body (RFC 9457)."""

    def __init__(self, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(f"{problem.status} {problem.code}: {problem.detail}")
        self.problem = problem
        self.status = problem.status
        self.code = problem.code
        self.detail = problem.detail
        self.retry_after = retry_after


class InvalidArgumentError(APIError):
    """400 or 422: a parameter or the body is invalid; `problem.errors` names each one."""


class UnauthorizedError(APIError):
    """401: no API key, or one that is unknown or revoked."""


class ForbiddenError(APIError):
    """403: the key's scope does not allow the request."""


class NotFoundError(APIError):
    """404."""


class ConflictError(APIError):
    """409: the request conflicts with the stored state."""


class PayloadTooLargeError(APIError):
    """413."""


class UnavailableError(APIError, TemporaryError):
    """502, 503 or 504 (after the retries): the database or the server is unavailable."""


class ServerError(APIError):
    """Any other error status."""


_ERRORS: dict[int, type[APIError]] = {
    400: InvalidArgumentError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidArgumentError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}
_CODES = {
    400: "invalid_argument",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_argument",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def error_for(response: httpx.Response) -> APIError:
    """The typed exception for an error answer, with its problem body."""
    status = response.status_code
    try:
        problem = Problem.model_validate_json(response.content)
    except PydanticValidationError:
        # Not from runwatch itself (a proxy in front of it, say): make one up.
        text = response.text.strip().replace("\n", " ")[:500]
        problem = Problem(
            type="about:blank",
            title=response.reason_phrase or "Error",
            status=status,
            detail=text or response.reason_phrase or f"HTTP {status}",
            code=_CODES.get(status, "internal"),
        )
    cls = _ERRORS.get(status, ServerError)
    return cls(problem, retry_after=_retry_after(response))


def describe(exc: BaseException) -> str:
    """One line saying why a request failed (for logs)."""
    if isinstance(exc, APIError):
        text = f"{exc.status} {exc.code}: {exc.detail}"
    elif isinstance(exc, RunwatchConnectionError) and exc.__cause__ is not None:
        cause = exc.__cause__
        text = f"{exc}: {type(cause).__name__}: {cause}".rstrip(": ")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())
