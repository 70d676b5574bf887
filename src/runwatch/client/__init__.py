"""The typed Python client of the runwatch API: `RunwatchClient` and `AsyncRunwatchClient`.

Both speak to a runwatch server over HTTP (httpx) and return the API's own
pydantic models. Configure them with arguments, or with `RUNWATCH_URL` and
`RUNWATCH_API_KEY`. Requests that fail with 502/503/504 or a network error are
retried with exponential back-off, honouring `Retry-After`, up to a cap; every
other error answer is raised as a typed `APIError` carrying the problem body.
See docs/client.md.

Each method is written once (`layer_runs.py`, `operator.py`,
`extraction_runs.py`) as a description of the requests it makes; the two
clients differ only in how they send them (`sync_client.py`, `async_client.py`).
"""

from runwatch.client.async_client import AsyncRunwatchClient
from runwatch.client.base import DEFAULT_TIMEOUT, DEFAULT_URL
from runwatch.client.calls import ExportFormat
from runwatch.client.errors import (
    APIError,
    ConflictError,
    ForbiddenError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    RunwatchConnectionError,
    RunwatchError,
    ServerError,
    TemporaryError,
    UnauthorizedError,
    UnavailableError,
    describe,
    error_for,
)
from runwatch.client.extraction_runs import ExtractionRunFilters
from runwatch.client.layer_runs import LayerRunFilters, LayerRunListFilters
from runwatch.client.operator import ErrorGroupFilters, Window
from runwatch.client.recording import RecordedRun
from runwatch.client.retries import RETRY_EXCEPTIONS, RETRY_STATUSES, RetryPolicy
from runwatch.client.sync_client import RunwatchClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "RETRY_EXCEPTIONS",
    "RETRY_STATUSES",
    "APIError",
    "AsyncRunwatchClient",
    "ConflictError",
    "ErrorGroupFilters",
    "ExportFormat",
    "ExtractionRunFilters",
    "ForbiddenError",
    "InvalidArgumentError",
    "LayerRunFilters",
    "LayerRunListFilters",
    "NotFoundError",
    "PayloadTooLargeError",
    "RecordedRun",
    "RetryPolicy",
    "RunwatchClient",
    "RunwatchConnectionError",
    "RunwatchError",
    "ServerError",
    "TemporaryError",
    "UnauthorizedError",
    "UnavailableError",
    "Window",
    "describe",
    "error_for",
]
