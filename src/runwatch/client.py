"""The typed Python client of the runwatch API: `RunwatchClient` and `AsyncRunwatchClient`.

Both speak to a runwatch server over HTTP (httpx) and return the API's own
pydantic models. Configure them with arguments, or with `RUNWATCH_URL` and
`RUNWATCH_API_KEY`. Requests that fail with 502/503/504 or a network error are
retried with exponential back-off, honouring `Retry-After`, up to a cap; every
other error answer is raised as a typed `APIError` carrying the problem body.
See docs/client.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any, Generic, Literal, TypedDict, TypeVar, Unpack

import anyio
import httpx
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from ulid import ULID

from runwatch.schemas.common import Problem
from runwatch.schemas.extraction_runs import (
    ClaimedRun,
    ClaimResult,
    ExtractionRunAccepted,
    ExtractionRunCreate,
    ExtractionRunDetail,
    ExtractionRunPage,
    ExtractionRunSummary,
    ExtractionRunUpdate,
    ExtractionStatsSummary,
    GroupComparison,
    RunComparison,
)
from runwatch.schemas.layer_runs import (
    BatchItemResult,
    BatchResult,
    LayerRunCreate,
    LayerRunDetail,
    LayerRunDetailNow,
    LayerRunPage,
    LayerRunSummary,
    LayerRunUpdate,
    StatsSummary,
    Timeseries,
)
from runwatch.schemas.operator import (
    ErrorGroup,
    ErrorGroupPage,
    ErrorGroupSort,
    RegressionList,
    VersionCompare,
    VersionList,
)

__all__ = [
    "APIError",
    "AsyncRunwatchClient",
    "ConflictError",
    "ErrorGroupFilters",
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
]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({502, 503, 504})
# Network failures worth another try: the server restarting, a dropped connection.
RETRY_EXCEPTIONS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
ExportFormat = Literal["ndjson", "csv"]

M = TypeVar("M")


# --- errors -----------------------------------------------------------------


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


# --- retries ----------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that met a `TemporaryError`.

    Delays double from `backoff` up to `max_delay`; a `Retry-After` from the
    server replaces the computed delay but is capped by `max_delay` too.
    `retries=0` sends each request once.
    """

    retries: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """The wait after the `failures`-th consecutive failure (1, 2, …)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return min(self.backoff * 2 ** max(failures - 1, 0), self.max_delay)


# --- request descriptions shared by both clients ----------------------------


class LayerRunFilters(TypedDict, total=False):
    """The filters and sort of `GET /runs` (and its export)."""

    layer_name: str
    status: str | Sequence[str]
    since: datetime | str
    until: datetime | str
    model_name: str
    sort: str


class LayerRunListFilters(LayerRunFilters, total=False):
    """`LayerRunFilters` and the operator's filters of `GET /runs`."""

    error_fingerprint: str
    stuck: bool


class ErrorGroupFilters(TypedDict, total=False):
    """The window, filters and sort of `GET /runs/errors`."""

    days: int
    since: datetime | str
    until: datetime | str
    layer_name: str
    status: str | Sequence[str]
    model_name: str
    layer_hash: str
    sort: ErrorGroupSort


class ExtractionRunFilters(TypedDict, total=False):
    """The filters and sort of `GET /extraction-runs` (and its export)."""

    prompt_id: str
    config_id: str
    document_name: str
    status: str | Sequence[str]
    since: datetime | str
    until: datetime | str
    sort: str


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _params(**values: Any) -> dict[str, str]:
    return {name: _param(value) for name, value in values.items() if value is not None}


def _body(value: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A request body from a model and/or keyword fields, JSON-ready."""
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json", exclude_unset=True)
    else:
        data = dict(value or {})
    data.update(fields)
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _param(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _with_id(body: dict[str, Any]) -> dict[str, Any]:
    # An id made here makes creation idempotent: a retry after a lost answer
    # finds the run already stored and is answered 200, not a duplicate.
    if not body.get("id"):
        body["id"] = str(ULID())
    return body


@dataclass(frozen=True)
class _Call(Generic[M]):
    """One request and how to read its answer (`parse` None: no body)."""

    method: str
    path: str
    parse: Callable[[bytes], M] | None = None
    params: Mapping[str, str] | None = None
    body: Any = None


class _Window(TypedDict):
    days: int | None
    since: datetime | str | None
    until: datetime | str | None


def _model(cls: type[M]) -> Callable[[bytes], M]:
    adapter: TypeAdapter[M] = TypeAdapter(cls)
    return adapter.validate_json


_LIST_RUNS = _model(LayerRunPage)
_RUN = _model(LayerRunDetail)
_RUN_NOW = _model(LayerRunDetailNow)
_BATCH = _model(BatchResult)
_SUMMARY = _model(StatsSummary)
_TIMESERIES = _model(Timeseries)
_X_LIST = _model(ExtractionRunPage)
_X_RUN = _model(ExtractionRunDetail)
_X_ACCEPTED = _model(ExtractionRunAccepted)
_X_CLAIM = _model(ClaimResult)
_X_COMPARE = _model(RunComparison)
_X_GROUPS = _model(GroupComparison)
_X_SUMMARY = _model(ExtractionStatsSummary)
_JSON_OBJECT = _model(dict[str, Any])
_ERROR_GROUPS = _model(ErrorGroupPage)
_VERSIONS = _model(VersionList)
_VERSION_COMPARE = _model(VersionCompare)
_REGRESSIONS = _model(RegressionList)


class _Calls:
    """Every endpoint as a `_Call`: the one place that knows paths and parameters."""

    @staticmethod
    def health() -> _Call[dict[str, Any]]:
        return _Call("GET", "/healthz", _JSON_OBJECT)

    @staticmethod
    def ready() -> _Call[dict[str, Any]]:
        return _Call("GET", "/readyz", _JSON_OBJECT)

    @staticmethod
    def list_runs(
        limit: int | None, offset: int | None, cursor: str | None, filters: LayerRunListFilters
    ) -> _Call[LayerRunPage]:
        params = _params(limit=limit, offset=offset, cursor=cursor, **filters)
        return _Call("GET", "/runs", _LIST_RUNS, params)

    @staticmethod
    def get_run(run_id: str) -> _Call[LayerRunDetailNow]:
        return _Call("GET", f"/runs/{run_id}", _RUN_NOW)

    @staticmethod
    def create_run(body: dict[str, Any]) -> _Call[LayerRunDetail]:
        return _Call("POST", "/runs", _RUN, body=_with_id(body))

    @staticmethod
    def create_batch(bodies: list[dict[str, Any]]) -> _Call[BatchResult]:
        return _Call("POST", "/runs/batch", _BATCH, body={"runs": [_with_id(b) for b in bodies]})

    @staticmethod
    def update_run(run_id: str, body: dict[str, Any]) -> _Call[LayerRunDetail]:
        return _Call("PATCH", f"/runs/{run_id}", _RUN, body=body)

    @staticmethod
    def delete_run(run_id: str) -> _Call[None]:
        return _Call("DELETE", f"/runs/{run_id}")

    @staticmethod
    def runs_summary(days: int, layer_name: str | None) -> _Call[StatsSummary]:
        return _Call(
            "GET", "/runs/stats/summary", _SUMMARY, _params(days=days, layer_name=layer_name)
        )

    @staticmethod
    def runs_timeseries(days: int, bucket: str, layer_name: str | None) -> _Call[Timeseries]:
        params = _params(days=days, bucket=bucket, layer_name=layer_name)
        return _Call("GET", "/runs/stats/timeseries", _TIMESERIES, params)

    @staticmethod
    def list_error_groups(
        limit: int | None, cursor: str | None, filters: ErrorGroupFilters
    ) -> _Call[ErrorGroupPage]:
        params = _params(limit=limit, cursor=cursor, **filters)
        return _Call("GET", "/runs/errors", _ERROR_GROUPS, params)

    @staticmethod
    def list_layer_versions(layer_name: str, window: _Window) -> _Call[VersionList]:
        params = _params(layer_name=layer_name, **window)
        return _Call("GET", "/runs/stats/versions", _VERSIONS, params)

    @staticmethod
    def compare_layer_versions(
        layer_name: str, a: str, b: str, window: _Window
    ) -> _Call[VersionCompare]:
        params = _params(layer_name=layer_name, a=a, b=b, **window)
        return _Call("GET", "/runs/stats/versions/compare", _VERSION_COMPARE, params)

    @staticmethod
    def list_regressions(layer_name: str | None, window: _Window) -> _Call[RegressionList]:
        params = _params(layer_name=layer_name, **window)
        return _Call("GET", "/runs/stats/regressions", _REGRESSIONS, params)

    @staticmethod
    def list_extraction_runs(
        limit: int | None, offset: int | None, cursor: str | None, filters: ExtractionRunFilters
    ) -> _Call[ExtractionRunPage]:
        params = _params(limit=limit, offset=offset, cursor=cursor, **filters)
        return _Call("GET", "/extraction-runs", _X_LIST, params)

    @staticmethod
    def get_extraction_run(run_id: str) -> _Call[ExtractionRunDetail]:
        return _Call("GET", f"/extraction-runs/{run_id}", _X_RUN)

    @staticmethod
    def create_extraction_run(body: dict[str, Any]) -> _Call[ExtractionRunAccepted]:
        return _Call("POST", "/extraction-runs", _X_ACCEPTED, body=_with_id(body))

    @staticmethod
    def update_extraction_run(run_id: str, body: dict[str, Any]) -> _Call[ExtractionRunDetail]:
        return _Call("PATCH", f"/extraction-runs/{run_id}", _X_RUN, body=body)

    @staticmethod
    def delete_extraction_run(run_id: str) -> _Call[None]:
        return _Call("DELETE", f"/extraction-runs/{run_id}")

    @staticmethod
    def claim(worker_id: str, max_runs: int, lease_seconds: int | None) -> _Call[ClaimResult]:
        body: dict[str, Any] = {"worker_id": worker_id, "max_runs": max_runs}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return _Call("POST", "/extraction-runs/claim", _X_CLAIM, body=body)

    @staticmethod
    def release(run_id: str, worker_id: str | None) -> _Call[ExtractionRunDetail]:
        body = {"worker_id": worker_id} if worker_id is not None else {}
        return _Call("POST", f"/extraction-runs/{run_id}/release", _X_RUN, body=body)

    @staticmethod
    def compare_runs(run_id: str, other_id: str) -> _Call[RunComparison]:
        return _Call("GET", f"/extraction-runs/{run_id}/compare/{other_id}", _X_COMPARE)

    @staticmethod
    def compare_groups(**params: str | None) -> _Call[GroupComparison]:
        return _Call("GET", "/extraction-runs/compare", _X_GROUPS, _params(**params))

    @staticmethod
    def extraction_summary(
        days: int, prompt_id: str | None, config_id: str | None
    ) -> _Call[ExtractionStatsSummary]:
        params = _params(days=days, prompt_id=prompt_id, config_id=config_id)
        return _Call("GET", "/extraction-runs/stats/summary", _X_SUMMARY, params)


def _export_params(format: ExportFormat, filters: Mapping[str, Any]) -> dict[str, str]:
    return _params(format=format, **filters)


def _merge_batches(results: list[BatchResult]) -> BatchResult:
    items: list[BatchItemResult] = [item for result in results for item in result.results]
    return BatchResult(
        created=sum(r.created for r in results),
        already_present=sum(r.already_present for r in results),
        results=items,
    )


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _LineCounter:
    """Counts the rows in a streamed export, for progress (CSV: less the header)."""

    def __init__(self, format: ExportFormat) -> None:
        self.pending_header = format == "csv"
        self.rows = 0

    def feed(self, chunk: bytes) -> int:
        lines = chunk.count(b"\n")
        if self.pending_header and lines:
            lines -= 1
            self.pending_header = False
        self.rows += lines
        return lines


# --- record_run -------------------------------------------------------------


@dataclass
class RecordedRun:
    """The run `record_run` is recording: set its counters while it runs.

    On a clean exit the run is completed with `status` (default `success`);
    when the block raises, it is `failed` and the exception is appended to
    `errors` as `{"type", "message", "traceback"}`.
    """

    id: str
    layer_name: str
    layer_hash: str
    started_at: datetime
    status: Literal["success", "partial", "failed", "dry"] | None = None
    targets_matched: int = 0
    targets_processed: int = 0
    targets_skipped: int = 0
    insights_created: int = 0
    tokens_input: int | None = None
    tokens_output: int | None = None
    tokens_total: int | None = None
    estimated_cost_usd: float | None = None
    model_profile: str | None = None
    model_provider: str | None = None
    model_name: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    detail: LayerRunDetail | None = None
    """The stored run once the block has exited."""

    def creation(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "layer_name": self.layer_name,
            "layer_hash": self.layer_hash,
            "status": "running",
            "started_at": self.started_at,
        }
        for name in ("model_profile", "model_provider", "model_name"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body

    def completion(self, exc: BaseException | None) -> dict[str, Any]:
        if exc is not None:
            self.errors.append(
                {
                    "type": type(exc).__name__,
                    "message": str(exc)[:10_000],
                    "traceback": "".join(traceback.format_exception(exc))[-10_000:],
                }
            )
        status = "failed" if exc is not None else (self.status or "success")
        body: dict[str, Any] = {"status": status}
        for name in (
            "targets_matched",
            "targets_processed",
            "targets_skipped",
            "insights_created",
            "tokens_input",
            "tokens_output",
            "tokens_total",
            "estimated_cost_usd",
            "model_profile",
            "model_provider",
            "model_name",
        ):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.errors:
            body["errors"] = self.errors
        return body


def _new_recorded_run(layer_name: str, layer_hash: str, fields: Mapping[str, Any]) -> RecordedRun:
    return RecordedRun(
        id=fields.get("id") or str(ULID()),
        layer_name=layer_name,
        layer_hash=layer_hash,
        started_at=datetime.now(UTC),
        **{k: v for k, v in fields.items() if k != "id"},
    )


# --- configuration ----------------------------------------------------------


def _headers(api_key: str | None, read_from_primary: bool) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "runwatch-client"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if read_from_primary:
        headers["X-Runwatch-Read-From"] = "primary"
    return headers


def _resolve(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    url = url or os.environ.get("RUNWATCH_URL") or DEFAULT_URL
    api_key = api_key if api_key is not None else os.environ.get("RUNWATCH_API_KEY") or None
    return url.rstrip("/"), api_key


# --- the synchronous client -------------------------------------------------


class RunwatchClient:
    """The runwatch API from synchronous code.

    `url` defaults to `RUNWATCH_URL` (else http://127.0.0.1:8000), `api_key` to
    `RUNWATCH_API_KEY`. `read_from_primary` reads your own writes when the
    server reads from replicas. Pass `http_client` to use an httpx client of
    your own (its base URL and transport are used as they are).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        read_from_primary: bool = False,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, api_key = _resolve(url, api_key)
        if http_client is not None and url is None:
            self.url = str(http_client.base_url).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._headers = _headers(api_key, read_from_primary)
        self.http = http_client or httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> RunwatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # plumbing

    def _retrying(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = send()
                if response.status_code < 400:
                    return response
                raise error_for(response)
            except RETRY_EXCEPTIONS as exc:
                error: TemporaryError = RunwatchConnectionError(f"cannot reach {self.url}")
                error.__cause__ = exc
            except TemporaryError as exc:
                error = exc
            except httpx.HTTPError as exc:  # a bad URL, say: trying again cannot help
                raise RunwatchError(f"cannot send to {self.url}: {exc}") from exc
            failures += 1
            if failures > self.retry.retries:
                raise error
            time.sleep(self.retry.delay(failures, error.retry_after))

    def _send(self, call: _Call[M]) -> M:
        response = self._retrying(
            lambda: self.http.request(
                call.method, call.path, params=call.params, json=call.body, headers=self._headers
            )
        )
        return call.parse(response.content) if call.parse else None  # type: ignore[return-value]

    @contextlib.contextmanager
    def _stream(self, path: str, params: Mapping[str, str]) -> Iterator[httpx.Response]:
        def send() -> httpx.Response:
            request = self.http.build_request("GET", path, params=params, headers=self._headers)
            response = self.http.send(request, stream=True)
            if response.status_code >= 400:
                response.read()
                response.close()
            return response

        response = self._retrying(send)
        try:
            yield response
        except RETRY_EXCEPTIONS as exc:
            raise RunwatchConnectionError(f"the export from {self.url} broke off") from exc
        finally:
            response.close()

    # health

    def health(self) -> dict[str, Any]:
        """`GET /healthz`."""
        return self._send(_Calls.health())

    def ready(self) -> dict[str, Any]:
        """`GET /readyz`: raises `UnavailableError` while the database is not ready."""
        return self._send(_Calls.ready())

    # layer runs

    def list_runs(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[LayerRunListFilters],
    ) -> LayerRunPage:
        """One page of `GET /runs`."""
        return self._send(_Calls.list_runs(limit, offset, cursor, filters))

    def iter_runs(
        self, *, page_size: int = 100, **filters: Unpack[LayerRunListFilters]
    ) -> Iterator[LayerRunSummary]:
        """Every run matching the filters, page after page by `next_cursor`."""
        cursor: str | None = None
        while True:
            page = self.list_runs(limit=page_size, cursor=cursor, **filters)
            yield from page.runs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_run(self, run_id: str) -> LayerRunDetailNow:
        """`GET /runs/{run_id}`; a running run also says whether it is stuck."""
        return self._send(_Calls.get_run(run_id))

    def create_run(
        self, run: LayerRunCreate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> LayerRunDetail:
        """Record a run (a model, a mapping and/or keyword fields); an id is made if none."""
        return self._send(_Calls.create_run(_body(run, fields)))

    def create_runs(
        self, runs: Iterable[LayerRunCreate | Mapping[str, Any]], *, batch_size: int = 1000
    ) -> BatchResult:
        """Record many runs, `batch_size` per request (each request all or nothing)."""
        results = [
            self._send(_Calls.create_batch([_body(run, {}) for run in chunk]))
            for chunk in _chunks(runs, batch_size)
        ]
        return _merge_batches(results)

    def update_run(
        self,
        run_id: str,
        changes: LayerRunUpdate | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> LayerRunDetail:
        return self._send(_Calls.update_run(run_id, _body(changes, fields)))

    def delete_run(self, run_id: str) -> None:
        self._send(_Calls.delete_run(run_id))

    def runs_summary(self, *, days: int = 7, layer_name: str | None = None) -> StatsSummary:
        return self._send(_Calls.runs_summary(days, layer_name))

    def runs_timeseries(
        self,
        *,
        days: int = 7,
        bucket: Literal["hour", "day"] = "hour",
        layer_name: str | None = None,
    ) -> Timeseries:
        return self._send(_Calls.runs_timeseries(days, bucket, layer_name))

    @contextlib.contextmanager
    def record_run(
        self, *, layer_name: str, layer_hash: str, **fields: Any
    ) -> Iterator[RecordedRun]:
        """Create the run as `running`; complete it on exit, or fail it with the exception."""
        run = _new_recorded_run(layer_name, layer_hash, fields)
        self.create_run(run.creation())
        try:
            yield run
        except BaseException as exc:
            try:
                run.detail = self.update_run(run.id, run.completion(exc))
            except RunwatchError as report:
                exc.add_note(f"runwatch: run {run.id} was not marked failed: {describe(report)}")
            raise
        run.detail = self.update_run(run.id, run.completion(None))

    def export_runs(
        self,
        out: IO[bytes],
        *,
        format: ExportFormat = "ndjson",
        progress: Callable[[int], object] | None = None,
        **filters: Unpack[LayerRunFilters],
    ) -> int:
        """Stream `GET /runs/export` into `out`; returns the rows written."""
        return self._export("/runs/export", out, format, progress, filters)

    def iter_export_runs(self, **filters: Unpack[LayerRunFilters]) -> Iterator[LayerRunDetail]:
        """Every matching run in full, streamed (NDJSON) rather than paged."""
        for line in self._export_lines("/runs/export", filters):
            yield LayerRunDetail.model_validate_json(line)

    # operator

    def list_error_groups(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[ErrorGroupFilters],
    ) -> ErrorGroupPage:
        """One page of `GET /runs/errors`: the errors of the window grouped by fingerprint."""
        return self._send(_Calls.list_error_groups(limit, cursor, filters))

    def iter_error_groups(
        self, *, page_size: int = 100, **filters: Unpack[ErrorGroupFilters]
    ) -> Iterator[ErrorGroup]:
        """Every error group of the window, page after page by `next_cursor`."""
        cursor: str | None = None
        while True:
            page = self.list_error_groups(limit=page_size, cursor=cursor, **filters)
            yield from page.groups
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def list_layer_versions(
        self,
        layer_name: str,
        *,
        days: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> VersionList:
        """`GET /runs/stats/versions`: one row per `layer_hash` of the layer."""
        window = _Window(days=days, since=since, until=until)
        return self._send(_Calls.list_layer_versions(layer_name, window))

    def compare_layer_versions(
        self,
        layer_name: str,
        a: str,
        b: str,
        *,
        days: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> VersionCompare:
        """`GET /runs/stats/versions/compare`: versions `a` and `b`, differences b - a."""
        window = _Window(days=days, since=since, until=until)
        return self._send(_Calls.compare_layer_versions(layer_name, a, b, window))

    def list_regressions(
        self,
        *,
        layer_name: str | None = None,
        days: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> RegressionList:
        """`GET /runs/stats/regressions`: newest versions significantly worse than before."""
        window = _Window(days=days, since=since, until=until)
        return self._send(_Calls.list_regressions(layer_name, window))

    # extraction runs

    def list_extraction_runs(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[ExtractionRunFilters],
    ) -> ExtractionRunPage:
        return self._send(_Calls.list_extraction_runs(limit, offset, cursor, filters))

    def iter_extraction_runs(
        self, *, page_size: int = 100, **filters: Unpack[ExtractionRunFilters]
    ) -> Iterator[ExtractionRunSummary]:
        cursor: str | None = None
        while True:
            page = self.list_extraction_runs(limit=page_size, cursor=cursor, **filters)
            yield from page.runs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_extraction_run(self, run_id: str) -> ExtractionRunDetail:
        return self._send(_Calls.get_extraction_run(run_id))

    def create_extraction_run(
        self, run: ExtractionRunCreate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ExtractionRunAccepted:
        return self._send(_Calls.create_extraction_run(_body(run, fields)))

    def create_extraction_runs(
        self, runs: Iterable[ExtractionRunCreate | Mapping[str, Any]]
    ) -> list[ExtractionRunAccepted]:
        """Create many pending runs, one request each, in order."""
        return [self.create_extraction_run(run) for run in runs]

    def update_extraction_run(
        self,
        run_id: str,
        changes: ExtractionRunUpdate | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> ExtractionRunDetail:
        return self._send(_Calls.update_extraction_run(run_id, _body(changes, fields)))

    def delete_extraction_run(self, run_id: str) -> None:
        self._send(_Calls.delete_extraction_run(run_id))

    def claim_extraction_runs(
        self, *, worker_id: str, max_runs: int = 1, lease_seconds: int | None = None
    ) -> list[ClaimedRun]:
        return self._send(_Calls.claim(worker_id, max_runs, lease_seconds)).runs

    def release_extraction_run(
        self, run_id: str, *, worker_id: str | None = None
    ) -> ExtractionRunDetail:
        return self._send(_Calls.release(run_id, worker_id))

    def compare_extraction_runs(self, run_id: str, other_id: str) -> RunComparison:
        return self._send(_Calls.compare_runs(run_id, other_id))

    def compare_extraction_groups(
        self,
        *,
        a_prompt_id: str | None = None,
        a_config_id: str | None = None,
        b_prompt_id: str | None = None,
        b_config_id: str | None = None,
        document_name: str | None = None,
    ) -> GroupComparison:
        return self._send(
            _Calls.compare_groups(
                a_prompt_id=a_prompt_id,
                a_config_id=a_config_id,
                b_prompt_id=b_prompt_id,
                b_config_id=b_config_id,
                document_name=document_name,
            )
        )

    def extraction_runs_summary(
        self, *, days: int = 7, prompt_id: str | None = None, config_id: str | None = None
    ) -> ExtractionStatsSummary:
        return self._send(_Calls.extraction_summary(days, prompt_id, config_id))

    def export_extraction_runs(
        self,
        out: IO[bytes],
        *,
        format: ExportFormat = "ndjson",
        progress: Callable[[int], object] | None = None,
        **filters: Unpack[ExtractionRunFilters],
    ) -> int:
        """Stream `GET /extraction-runs/export` into `out`; returns the rows written."""
        return self._export("/extraction-runs/export", out, format, progress, filters)

    def iter_export_extraction_runs(
        self, **filters: Unpack[ExtractionRunFilters]
    ) -> Iterator[ExtractionRunDetail]:
        for line in self._export_lines("/extraction-runs/export", filters):
            yield ExtractionRunDetail.model_validate_json(line)

    # export plumbing

    def _export(
        self,
        path: str,
        out: IO[bytes],
        format: ExportFormat,
        progress: Callable[[int], object] | None,
        filters: Mapping[str, Any],
    ) -> int:
        counter = _LineCounter(format)
        with self._stream(path, _export_params(format, filters)) as response:
            for chunk in response.iter_bytes():
                out.write(chunk)
                rows = counter.feed(chunk)
                if progress is not None and rows:
                    progress(rows)
        return counter.rows

    def _export_lines(self, path: str, filters: Mapping[str, Any]) -> Iterator[str]:
        with self._stream(path, _export_params("ndjson", filters)) as response:
            for line in response.iter_lines():
                if line:
                    yield line


# --- the asynchronous client ------------------------------------------------


class AsyncRunwatchClient:
    """The runwatch API from asyncio code; the same methods as `RunwatchClient`, awaited."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        read_from_primary: bool = False,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, api_key = _resolve(url, api_key)
        if http_client is not None and url is None:
            self.url = str(http_client.base_url).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._headers = _headers(api_key, read_from_primary)
        self.http = http_client or httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncRunwatchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # plumbing

    async def _retrying(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = await send()
                if response.status_code < 400:
                    return response
                raise error_for(response)
            except RETRY_EXCEPTIONS as exc:
                error: TemporaryError = RunwatchConnectionError(f"cannot reach {self.url}")
                error.__cause__ = exc
            except TemporaryError as exc:
                error = exc
            except httpx.HTTPError as exc:  # a bad URL, say: trying again cannot help
                raise RunwatchError(f"cannot send to {self.url}: {exc}") from exc
            failures += 1
            if failures > self.retry.retries:
                raise error
            await anyio.sleep(self.retry.delay(failures, error.retry_after))

    async def _send(self, call: _Call[M]) -> M:
        response = await self._retrying(
            lambda: self.http.request(
                call.method, call.path, params=call.params, json=call.body, headers=self._headers
            )
        )
        return call.parse(response.content) if call.parse else None  # type: ignore[return-value]

    @contextlib.asynccontextmanager
    async def _stream(self, path: str, params: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        async def send() -> httpx.Response:
            request = self.http.build_request("GET", path, params=params, headers=self._headers)
            response = await self.http.send(request, stream=True)
            if response.status_code >= 400:
                await response.aread()
                await response.aclose()
            return response

        response = await self._retrying(send)
        try:
            yield response
        except RETRY_EXCEPTIONS as exc:
            raise RunwatchConnectionError(f"the export from {self.url} broke off") from exc
        finally:
            await response.aclose()

    # health

    async def health(self) -> dict[str, Any]:
        return await self._send(_Calls.health())

    async def ready(self) -> dict[str, Any]:
        return await self._send(_Calls.ready())

    # layer runs

    async def list_runs(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[LayerRunListFilters],
    ) -> LayerRunPage:
        return await self._send(_Calls.list_runs(limit, offset, cursor, filters))

    async def iter_runs(
        self, *, page_size: int = 100, **filters: Unpack[LayerRunListFilters]
    ) -> AsyncIterator[LayerRunSummary]:
        cursor: str | None = None
        while True:
            page = await self.list_runs(limit=page_size, cursor=cursor, **filters)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_run(self, run_id: str) -> LayerRunDetailNow:
        """`GET /runs/{run_id}`; a running run also says whether it is stuck."""
        return await self._send(_Calls.get_run(run_id))

    async def create_run(
        self, run: LayerRunCreate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> LayerRunDetail:
        return await self._send(_Calls.create_run(_body(run, fields)))

    async def create_runs(
        self, runs: Iterable[LayerRunCreate | Mapping[str, Any]], *, batch_size: int = 1000
    ) -> BatchResult:
        results = [
            await self._send(_Calls.create_batch([_body(run, {}) for run in chunk]))
            for chunk in _chunks(runs, batch_size)
        ]
        return _merge_batches(results)

    async def update_run(
        self,
        run_id: str,
        changes: LayerRunUpdate | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> LayerRunDetail:
        return await self._send(_Calls.update_run(run_id, _body(changes, fields)))

    async def delete_run(self, run_id: str) -> None:
        await self._send(_Calls.delete_run(run_id))

    async def runs_summary(self, *, days: int = 7, layer_name: str | None = None) -> StatsSummary:
        return await self._send(_Calls.runs_summary(days, layer_name))

    async def runs_timeseries(
        self,
        *,
        days: int = 7,
        bucket: Literal["hour", "day"] = "hour",
        layer_name: str | None = None,
    ) -> Timeseries:
        return await self._send(_Calls.runs_timeseries(days, bucket, layer_name))

    @contextlib.asynccontextmanager
    async def record_run(
        self, *, layer_name: str, layer_hash: str, **fields: Any
    ) -> AsyncIterator[RecordedRun]:
        """Create the run as `running`; complete it on exit, or fail it with the exception."""
        run = _new_recorded_run(layer_name, layer_hash, fields)
        await self.create_run(run.creation())
        try:
            yield run
        except BaseException as exc:
            try:
                run.detail = await self.update_run(run.id, run.completion(exc))
            except RunwatchError as report:
                exc.add_note(f"runwatch: run {run.id} was not marked failed: {describe(report)}")
            raise
        run.detail = await self.update_run(run.id, run.completion(None))

    async def export_runs(
        self,
        out: IO[bytes],
        *,
        format: ExportFormat = "ndjson",
        progress: Callable[[int], object] | None = None,
        **filters: Unpack[LayerRunFilters],
    ) -> int:
        return await self._export("/runs/export", out, format, progress, filters)

    async def iter_export_runs(
        self, **filters: Unpack[LayerRunFilters]
    ) -> AsyncIterator[LayerRunDetail]:
        async for line in self._export_lines("/runs/export", filters):
            yield LayerRunDetail.model_validate_json(line)

    # operator

    async def list_error_groups(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[ErrorGroupFilters],
    ) -> ErrorGroupPage:
        return await self._send(_Calls.list_error_groups(limit, cursor, filters))

    async def iter_error_groups(
        self, *, page_size: int = 100, **filters: Unpack[ErrorGroupFilters]
    ) -> AsyncIterator[ErrorGroup]:
        cursor: str | None = None
        while True:
            page = await self.list_error_groups(limit=page_size, cursor=cursor, **filters)
            for group in page.groups:
                yield group
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def list_layer_versions(
        self,
        layer_name: str,
        *,
        days: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> VersionList:
        window = _Window(days=days, since=since, until=until)
        return await self._send(_Calls.list_layer_versions(layer_name, window))

    async def compare_layer_versions(
        self,
        layer_name: str,
        a: str,
        b: str,
        *,
        days: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> VersionCompare:
        window = _Window(days=days, since=since, until=until)
        return await self._send(_Calls.compare_layer_versions(layer_name, a, b, window))

    async def list_regressions(
        self,
        *,
        layer_name: str | None = None,
        days: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> RegressionList:
        window = _Window(days=days, since=since, until=until)
        return await self._send(_Calls.list_regressions(layer_name, window))

    # extraction runs

    async def list_extraction_runs(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[ExtractionRunFilters],
    ) -> ExtractionRunPage:
        return await self._send(_Calls.list_extraction_runs(limit, offset, cursor, filters))

    async def iter_extraction_runs(
        self, *, page_size: int = 100, **filters: Unpack[ExtractionRunFilters]
    ) -> AsyncIterator[ExtractionRunSummary]:
        cursor: str | None = None
        while True:
            page = await self.list_extraction_runs(limit=page_size, cursor=cursor, **filters)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_extraction_run(self, run_id: str) -> ExtractionRunDetail:
        return await self._send(_Calls.get_extraction_run(run_id))

    async def create_extraction_run(
        self, run: ExtractionRunCreate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ExtractionRunAccepted:
        return await self._send(_Calls.create_extraction_run(_body(run, fields)))

    async def create_extraction_runs(
        self, runs: Iterable[ExtractionRunCreate | Mapping[str, Any]], *, concurrency: int = 8
    ) -> list[ExtractionRunAccepted]:
        """Create many pending runs, up to `concurrency` requests at a time; results in order."""
        bodies = list(runs)
        results: list[ExtractionRunAccepted | None] = [None] * len(bodies)
        limiter = anyio.Semaphore(max(concurrency, 1))

        async def create(index: int, run: Any) -> None:
            async with limiter:
                results[index] = await self.create_extraction_run(run)

        async with anyio.create_task_group() as group:
            for index, run in enumerate(bodies):
                group.start_soon(create, index, run)
        return [r for r in results if r is not None]

    async def update_extraction_run(
        self,
        run_id: str,
        changes: ExtractionRunUpdate | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> ExtractionRunDetail:
        return await self._send(_Calls.update_extraction_run(run_id, _body(changes, fields)))

    async def delete_extraction_run(self, run_id: str) -> None:
        await self._send(_Calls.delete_extraction_run(run_id))

    async def claim_extraction_runs(
        self, *, worker_id: str, max_runs: int = 1, lease_seconds: int | None = None
    ) -> list[ClaimedRun]:
        return (await self._send(_Calls.claim(worker_id, max_runs, lease_seconds))).runs

    async def release_extraction_run(
        self, run_id: str, *, worker_id: str | None = None
    ) -> ExtractionRunDetail:
        return await self._send(_Calls.release(run_id, worker_id))

    async def compare_extraction_runs(self, run_id: str, other_id: str) -> RunComparison:
        return await self._send(_Calls.compare_runs(run_id, other_id))

    async def compare_extraction_groups(
        self,
        *,
        a_prompt_id: str | None = None,
        a_config_id: str | None = None,
        b_prompt_id: str | None = None,
        b_config_id: str | None = None,
        document_name: str | None = None,
    ) -> GroupComparison:
        return await self._send(
            _Calls.compare_groups(
                a_prompt_id=a_prompt_id,
                a_config_id=a_config_id,
                b_prompt_id=b_prompt_id,
                b_config_id=b_config_id,
                document_name=document_name,
            )
        )

    async def extraction_runs_summary(
        self, *, days: int = 7, prompt_id: str | None = None, config_id: str | None = None
    ) -> ExtractionStatsSummary:
        return await self._send(_Calls.extraction_summary(days, prompt_id, config_id))

    async def export_extraction_runs(
        self,
        out: IO[bytes],
        *,
        format: ExportFormat = "ndjson",
        progress: Callable[[int], object] | None = None,
        **filters: Unpack[ExtractionRunFilters],
    ) -> int:
        return await self._export("/extraction-runs/export", out, format, progress, filters)

    async def iter_export_extraction_runs(
        self, **filters: Unpack[ExtractionRunFilters]
    ) -> AsyncIterator[ExtractionRunDetail]:
        async for line in self._export_lines("/extraction-runs/export", filters):
            yield ExtractionRunDetail.model_validate_json(line)

    # export plumbing

    async def _export(
        self,
        path: str,
        out: IO[bytes],
        format: ExportFormat,
        progress: Callable[[int], object] | None,
        filters: Mapping[str, Any],
    ) -> int:
        counter = _LineCounter(format)
        async with self._stream(path, _export_params(format, filters)) as response:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                rows = counter.feed(chunk)
                if progress is not None and rows:
                    progress(rows)
        return counter.rows

    async def _export_lines(self, path: str, filters: Mapping[str, Any]) -> AsyncIterator[str]:
        async with self._stream(path, _export_params("ndjson", filters)) as response:
            async for line in response.aiter_lines():
                if line:
                    yield line
