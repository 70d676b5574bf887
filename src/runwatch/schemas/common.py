"""Shared field types: UTC timestamps in and out, run ids, problem bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from runwatch.db.types import as_utc
from runwatch.domain import (
    MAX_DOCUMENT_NAME_CHARS,
    MAX_ERROR_CHARS,
    MAX_EXTRACTION_COST_USD,
    MAX_LAYER_RUN_COST_USD,
    MAX_METRIC_NAME_CHARS,
    MAX_NAME_CHARS,
    MAX_PROBLEM_ERRORS,
    MAX_TOKENS,
    NO_NUL_PATTERN,
    check_filter_timestamp,
    check_run_id,
    check_run_timestamp,
    check_text,
    to_utc_checked,
)

RUN_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`: four-digit years, fractional seconds only when present.

    Every timestamp of every answer goes through here (40 on a page of runs).
    isoformat writes every year with four digits (strftime does not before
    1000), and a UTC value's ends in `+00:00`, which `Z` replaces.
    """
    if value.tzinfo is not UTC:
        value = as_utc(value)
    if value.microsecond:
        return value.isoformat()[:-6].rstrip("0") + "Z"
    return value.isoformat()[:-6] + "Z"


# In: any ISO 8601 / RFC 3339 timestamp; without an offset it is taken as UTC.
# Out: RFC 3339 in UTC with a `Z`.
UtcTimestamp = Annotated[
    datetime,
    AfterValidator(to_utc_checked),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]
# A run's own timestamps (`started_at`, `completed_at`): 2000-01-01 to now + 1 day.
RunTimestamp = Annotated[
    datetime,
    AfterValidator(check_run_timestamp),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    Field(description="RFC 3339; from 2000-01-01T00:00:00Z to now + 1 day."),
]
# A timestamp to filter on (`since`, `until`): 1970-01-01 to 2200-01-01.
FilterTimestamp = Annotated[
    datetime,
    AfterValidator(check_filter_timestamp),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]

RunId = Annotated[
    str,
    StringConstraints(pattern=RUN_ID_PATTERN),
    AfterValidator(check_run_id),
    Field(
        description="1-64 characters of `A-Za-z0-9_.:-`, other than `batch`, `claim`, "
        "`compare`, `errors` and `export` (paths of their own).",
        examples=["01HQXYZ3K8V5M2N4P6R8T0W2Y4"],
    ),
]

# Text in a body: no U+0000 and no lone surrogate (see runwatch.domain.check_text).
_TEXT_RULES = AfterValidator(check_text)
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS), _TEXT_RULES]
OptionalName = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS), _TEXT_RULES] | None
DocumentName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_DOCUMENT_NAME_CHARS), _TEXT_RULES
]
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME_CHARS), _TEXT_RULES
]
ErrorText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ERROR_CHARS), _TEXT_RULES]

# A name to filter on, as a query parameter's constraints (see runwatch.domain.NO_NUL_PATTERN).
NAME_FILTER: dict[str, Any] = {
    "min_length": 1,
    "max_length": MAX_NAME_CHARS,
    "pattern": NO_NUL_PATTERN,
}
DOCUMENT_NAME_FILTER: dict[str, Any] = {**NAME_FILTER, "max_length": MAX_DOCUMENT_NAME_CHARS}

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None
# Costs in US dollars: finite, never negative, and at most their kind's bound.
LayerRunCost = Annotated[float, Field(ge=0, le=MAX_LAYER_RUN_COST_USD, allow_inf_nan=False)] | None
ExtractionRunCost = (
    Annotated[float, Field(ge=0, le=MAX_EXTRACTION_COST_USD, allow_inf_nan=False)] | None
)


class RunCreate(BaseModel):
    """What creating a run of any kind takes first: its id, or none for a server-made ULID."""

    model_config = ConfigDict(extra="forbid")

    id: RunId | None = None


class WindowQuery(BaseModel):
    """`since` and `until`: a window on the kind's time (layer runs' `started_at`,
    extraction runs' `created_at`); their order is checked by the route."""

    model_config = ConfigDict(extra="forbid")

    since: FilterTimestamp | None = Field(
        None,
        description="Runs from this time on (RFC 3339; no offset = UTC; 1970-01-01 to "
        "2200-01-01): `started_at` of a layer run, `created_at` of an extraction run.",
    )
    until: FilterTimestamp | None = Field(
        None, description="Runs before this time (as `since`; exclusive)."
    )


class PagingQuery(BaseModel):
    """`offset`, `limit` and `cursor`; the configured bounds are checked by the route."""

    offset: int = Field(
        0,
        ge=0,
        description="Rows to skip (at most `RUNWATCH_MAX_OFFSET`, default 100,000). "
        "Prefer `cursor` for deep pages.",
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Page size, 1 to `RUNWATCH_MAX_PAGE_SIZE` (default 100); default 20.",
    )
    cursor: str | None = Field(
        None,
        max_length=1024,
        description="`next_cursor` from the previous page; continues after it in "
        "constant time. Cannot be combined with a non-zero `offset`.",
    )


ExportFormat = Literal["ndjson", "csv"]


class ExportFormatQuery(BaseModel):
    format: ExportFormat = Field(
        "ndjson",
        description="`ndjson`: one detail object per line; `csv`: a header line, then one "
        "flattened line per run.",
    )


class RunPage(BaseModel):
    """What every page of runs has; each kind names the type of its `runs`."""

    runs: list[Any]
    total: int = Field(description="Exact number of runs matching the filters.")
    offset: int
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def first_errors_only(item_type: Any) -> WrapValidator:
    """Validate a list's items one by one and stop after the first few invalid values.

    A list of thousands of invalid items would otherwise cost an error object
    each (time and memory), for an answer that lists only the first ones anyway.
    """
    adapter: TypeAdapter[Any] = TypeAdapter(item_type)

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(value, list):
            return handler(value)
        items: list[Any] = []
        errors: list[InitErrorDetails] = []
        for index, item in enumerate(value):
            try:
                items.append(adapter.validate_python(item))
            except ValidationError as exc:
                errors += [
                    InitErrorDetails(
                        type=PydanticCustomError(e["type"], "{msg}", {"msg": e["msg"]}),
                        loc=(index, *e["loc"]),
                        input=e.get("input"),
                    )
                    for e in exc.errors()
                ]
                if len(errors) >= MAX_PROBLEM_ERRORS:
                    break
        if errors:
            raise ValidationError.from_exception_data("items", errors)
        return handler(items)

    return WrapValidator(validate)


def max_items(limit: int) -> BeforeValidator:
    """Refuse a list or object longer than `limit` before any of its items is validated."""

    def check(value: Any) -> Any:
        if isinstance(value, (list, dict)) and len(value) > limit:
            raise ValueError(f"at most {limit} items; got {len(value)}")
        return value

    return BeforeValidator(check)


ProblemCode = Literal[
    "not_found",
    "invalid_argument",
    "conflict",
    "unauthorized",
    "forbidden",
    "payload_too_large",
    "unavailable",
    "internal",
]


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An error answer (RFC 9457), served as `application/problem+json`."""

    type: str
    title: str
    status: int
    detail: str
    code: ProblemCode = Field(description="Stable machine code, one of the values listed.")
    instance: str | None = None
    request_id: str | None = Field(None, description="The request's `X-Request-ID`.")
    errors: list[ValidationItem] | None = Field(
        None, description="The first 20 invalid values, each with where it is and what is wrong."
    )
    error_count: int | None = Field(
        None, description="How many invalid values there are in all (`errors` lists 20 at most)."
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json answers."""
    descriptions = {
        404: "No such run.",
        409: "Conflicts with the stored state.",
        413: "Request body too large.",
        422: "A parameter or the body is invalid; `errors` names each one.",
        503: "The database is unavailable; retry after `Retry-After` seconds.",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, "Error."),
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }
