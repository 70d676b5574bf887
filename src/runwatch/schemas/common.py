"""Shared field types: UTC timestamps in and out, run ids, problem bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer, StringConstraints

from runwatch.db.types import as_utc

RUN_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`: four-digit years, fractional seconds only when present."""
    text = as_utc(value).replace(tzinfo=None).isoformat()
    if value.microsecond:
        text = text.rstrip("0")
    return text + "Z"


# In: any ISO 8601 / RFC 3339 timestamp; without an offset it is taken as UTC.
# Out: RFC 3339 in UTC with a `Z`.
UtcTimestamp = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]

RunId = Annotated[
    str,
    StringConstraints(pattern=RUN_ID_PATTERN),
    Field(
        description="1-64 characters of `A-Za-z0-9_.:-`.", examples=["01HQXYZ3K8V5M2N4P6R8T0W2Y4"]
    ),
]

# PostgreSQL text cannot hold U+0000, so no name may contain it (on either database).
NO_NUL_PATTERN = r"^[^\x00]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)]
OptionalName = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL_PATTERN)] | None


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An error answer (RFC 9457), served as `application/problem+json`."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(
        description="Stable machine code: not_found, invalid_argument, conflict, unauthorized, "
        "forbidden, payload_too_large, unavailable, internal."
    )
    instance: str | None = None
    request_id: str | None = Field(None, description="The request's `X-Request-ID`.")
    errors: list[ValidationItem] | None = None


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
