"""Request and response models for layer runs (the shapes in the HTTP contract)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from runwatch.schemas.common import NO_NUL_PATTERN, Name, OptionalName, RunId, UtcTimestamp
from runwatch.schemas.extraction_runs import MAX_JSON_BYTES, MAX_JSON_DEPTH, _check_json

LayerRunStatus = Literal["running", "success", "partial", "failed", "dry"]
FinalLayerRunStatus = Literal["success", "partial", "failed", "dry"]

INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Tokens = Annotated[int, Field(ge=0, le=INT32_MAX)] | None
# Bounded so that the rollups' integer nano-dollar sums cannot overflow.
MAX_COST_USD = 1_000_000
Cost = Annotated[float, Field(ge=0, le=MAX_COST_USD, allow_inf_nan=False)] | None


def _bounded_errors(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The same bounds as extraction runs' JSON: deep or huge documents would
    # cost every reader of the run, not only the writer.
    _check_json(value)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{size} bytes of JSON; at most {MAX_JSON_BYTES}")
    return value


ErrorList = (
    Annotated[
        list[dict[str, Any]],
        AfterValidator(_bounded_errors),
        Field(
            max_length=1000,
            description="Structured errors, each an object (for example "
            '`{"message": "rate limited", "target": "user-42"}`): at most 1,000, '
            f"{MAX_JSON_BYTES // 1024 // 1024} MiB serialized and {MAX_JSON_DEPTH} levels deep.",
        ),
    ]
    | None
)

SORT_KEYS = ("started_at", "duration_seconds", "estimated_cost_usd", "tokens_total")
LayerRunSort = Literal[
    "started_at",
    "-started_at",
    "duration_seconds",
    "-duration_seconds",
    "estimated_cost_usd",
    "-estimated_cost_usd",
    "tokens_total",
    "-tokens_total",
]


_NAME_FILTER = {"min_length": 1, "max_length": 200, "pattern": NO_NUL_PATTERN}


class LayerRunListQuery(BaseModel):
    """The query of `GET /runs`: filters, sort and paging, validated in one pass."""

    model_config = ConfigDict(extra="forbid")

    layer_name: str | None = Field(None, description="Exact layer name.", **_NAME_FILTER)
    status: str | None = Field(
        None,
        max_length=200,
        description="One status or several comma-separated: "
        "running, success, partial, failed, dry (`failed,partial`).",
    )
    model_name: str | None = Field(None, description="Exact model name.", **_NAME_FILTER)
    since: UtcTimestamp | None = Field(
        None, description="Runs started at or after this time (RFC 3339; no offset = UTC)."
    )
    until: UtcTimestamp | None = Field(
        None, description="Runs started before this time (RFC 3339; no offset = UTC)."
    )
    sort: LayerRunSort = Field(
        "-started_at",
        description="Sort key, `-` for descending. Ties are broken by `id` in the same "
        "direction; runs with no value for the key come last.",
    )
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


class LayerRunCreate(BaseModel):
    """A run to record. Omit `id` to have the server assign a ULID."""

    model_config = ConfigDict(extra="forbid")

    id: RunId | None = None
    layer_name: Name
    layer_hash: Name
    status: LayerRunStatus
    started_at: UtcTimestamp
    completed_at: UtcTimestamp | None = Field(
        None, description="Required for a final status, absent while running."
    )
    targets_matched: Count = 0
    targets_processed: Count = 0
    targets_skipped: Count = 0
    insights_created: Count = 0
    model_profile: OptionalName = None
    model_provider: OptionalName = None
    model_name: OptionalName = None
    tokens_input: Tokens = None
    tokens_output: Tokens = None
    tokens_total: Tokens = Field(None, description="Defaults to input + output when both given.")
    estimated_cost_usd: Cost = None
    errors: ErrorList = None

    @model_validator(mode="after")
    def _completion_matches_status(self) -> LayerRunCreate:
        if self.status == "running" and self.completed_at is not None:
            raise ValueError("completed_at must be absent while status is 'running'")
        if self.status != "running" and self.completed_at is None:
            raise ValueError(f"completed_at is required when status is '{self.status}'")
        if self.completed_at is not None and self.completed_at < self.started_at:
            raise ValueError("completed_at must not precede started_at")
        return self


class LayerRunUpdate(BaseModel):
    """Progress or completion of a running run. Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    status: LayerRunStatus | None = Field(
        None,
        description="A final status completes the run; `completed_at` defaults to now.",
    )
    completed_at: UtcTimestamp | None = None
    targets_matched: Count | None = None
    targets_processed: Count | None = None
    targets_skipped: Count | None = None
    insights_created: Count | None = None
    model_profile: OptionalName = None
    model_provider: OptionalName = None
    model_name: OptionalName = None
    tokens_input: Tokens = None
    tokens_output: Tokens = None
    tokens_total: Tokens = None
    estimated_cost_usd: Cost = None
    errors: ErrorList = None


class LayerRunSummary(BaseModel):
    """One run in a list."""

    id: str
    layer_name: str
    status: LayerRunStatus
    started_at: UtcTimestamp
    completed_at: UtcTimestamp | None
    duration_seconds: float | None = Field(description="completed - started; null while running.")
    targets_processed: int
    insights_created: int
    tokens_total: int | None
    estimated_cost_usd: float | None
    model_name: str | None


class LayerRunDetail(LayerRunSummary):
    """Every stored field of one run."""

    layer_hash: str
    targets_matched: int
    targets_skipped: int
    model_profile: str | None
    model_provider: str | None
    tokens_input: int | None
    tokens_output: int | None
    errors: list[dict[str, Any]] | None


class LayerRunPage(BaseModel):
    runs: list[LayerRunSummary]
    total: int = Field(description="Exact number of runs matching the filters.")
    offset: int
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class LayerStats(BaseModel):
    runs: int
    insights: int
    successful: int
    failed: int
    tokens: int
    cost_usd: float
    mean_duration_seconds: float | None = Field(
        description="Mean duration of the layer's completed runs in the window."
    )


class StatsSummary(BaseModel):
    period_days: int
    since: UtcTimestamp = Field(description="Start of the window: runs started at or after it.")
    total_runs: int
    successful_runs: int
    failed_runs: int
    dry_runs: int
    partial_runs: int
    running_runs: int
    total_insights: int
    total_tokens: int
    total_cost_usd: float
    by_layer: dict[str, LayerStats]


class LayerRunBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[LayerRunCreate] = Field(
        min_length=1, description="Up to `RUNWATCH_MAX_BATCH_SIZE` (default 1,000) runs."
    )


class BatchItemResult(BaseModel):
    id: str
    result: Literal["created", "already_present"]


class BatchResult(BaseModel):
    created: int
    already_present: int
    results: list[BatchItemResult]


class StatusCounts(BaseModel):
    running: int = 0
    success: int = 0
    partial: int = 0
    failed: int = 0
    dry: int = 0


class TimeseriesBucket(BaseModel):
    start: UtcTimestamp
    runs: int
    by_status: StatusCounts
    insights: int
    tokens: int
    cost_usd: float


class Timeseries(BaseModel):
    bucket: Literal["hour", "day"]
    period_days: int
    start: UtcTimestamp = Field(description="Start of the first bucket.")
    end: UtcTimestamp = Field(description="End of the last bucket (the current one, partial).")
    layer_name: str | None
    buckets: list[TimeseriesBucket] = Field(
        description="Contiguous and zero-filled, oldest first; the last is the current bucket."
    )
