"""Response models for the operator's answers: error groups, layer versions, regressions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runwatch.schemas.common import UtcTimestamp

FINGERPRINT_PATTERN = r"^[0-9a-f]{16}$"
ErrorGroupSort = Literal["errors", "runs", "last_seen"]


class ErrorGroupDay(BaseModel):
    date: str = Field(description="A UTC day, `YYYY-MM-DD`.")
    errors: int
    runs: int


class ErrorGroup(BaseModel):
    fingerprint: str = Field(description="16 hex digits naming the group (type + template).")
    type: str = Field(description="The errors' `type` (or `code`); empty when they have none.")
    message: str = Field(description="The message template: variable parts as `<num>` etc.")
    sample_message: str = Field(description="One real message of the group, as first seen.")
    errors: int = Field(description="Errors of this group in the window (a run may have several).")
    runs: int = Field(description="Runs with at least one error of this group in the window.")
    layers: dict[str, int] = Field(description="Runs per layer, most first.")
    first_seen: UtcTimestamp = Field(description="Start of the earliest such run in the window.")
    last_seen: UtcTimestamp = Field(description="Start of the latest such run in the window.")
    sample_run_ids: list[str] = Field(description="Up to 5 of its runs, latest first.")
    days: list[ErrorGroupDay] = Field(
        description="Per UTC day of the window, oldest first, zero-filled."
    )


class ErrorGroupPage(BaseModel):
    since: UtcTimestamp
    until: UtcTimestamp | None
    total_groups: int = Field(description="Exact number of groups in the window.")
    total_errors: int = Field(description="Exact number of errors in the window.")
    groups: list[ErrorGroup]
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
