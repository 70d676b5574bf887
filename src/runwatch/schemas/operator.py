"""Response models for the operator's answers: error groups, layer versions, regressions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runwatch.schemas.common import UtcTimestamp
from runwatch.schemas.layer_runs import PERCENTILE_DESCRIPTION

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


class StatusCounts(BaseModel):
    running: int
    success: int
    partial: int
    failed: int
    dry: int


class VersionRow(BaseModel):
    layer_hash: str
    first_seen: UtcTimestamp = Field(description="Start of its earliest run in the window.")
    last_seen: UtcTimestamp = Field(description="Start of its latest run in the window.")
    runs: int
    finished_runs: int = Field(description="success + failed + partial.")
    by_status: StatusCounts
    success_rate: float | None = Field(description="success ÷ (success + failed + partial).")
    mean_duration_seconds: float | None = Field(description="Over its completed runs.")
    duration_p50_seconds: float | None = Field(description=PERCENTILE_DESCRIPTION)
    duration_p95_seconds: float | None = Field(description=PERCENTILE_DESCRIPTION)
    duration_p99_seconds: float | None = Field(description=PERCENTILE_DESCRIPTION)
    insights_per_run: float | None
    tokens_per_run: float | None
    cost_per_run_usd: float | None = Field(description="Over its runs with a known cost.")


class VersionList(BaseModel):
    layer_name: str
    since: UtcTimestamp
    until: UtcTimestamp | None
    versions: list[VersionRow] = Field(description="In order of first use in the window.")


class Differences(BaseModel):
    success_rate: float | None
    mean_duration_seconds: float | None
    cost_per_run_usd: float | None
    tokens_per_run: float | None
    insights_per_run: float | None
    runs: float | None


class SignificanceTest(BaseModel):
    test: str = Field(description="`two-proportion z-test` or `Welch's test`.")
    p_value: float | None = Field(description="Two-sided; null when it cannot be computed.")
    significant: bool = Field(description="p < 0.05.")


class SignificanceTests(BaseModel):
    success_rate: SignificanceTest
    mean_duration_seconds: SignificanceTest
    cost_per_run_usd: SignificanceTest


class VersionCompare(BaseModel):
    layer_name: str
    a: VersionRow
    b: VersionRow
    differences: Differences = Field(description="b - a.")
    tests: SignificanceTests


class Regression(VersionCompare):
    worse: list[Literal["success_rate", "mean_duration_seconds", "cost_per_run_usd"]] = Field(
        description="What is significantly worse in `b`, the newest version, than in `a`."
    )


class RegressionList(BaseModel):
    since: UtcTimestamp
    until: UtcTimestamp | None
    min_runs: int = Field(description="Finished runs each version needs to be compared.")
    regressions: list[Regression]
