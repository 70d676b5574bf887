"""Request and response models for layer runs (the shapes in the HTTP contract)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from runwatch.domain import (
    FINGERPRINT_PATTERN,
    MAX_BATCH_RUNS,
    MAX_COUNT,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_RUN_ERRORS,
    MAX_TOKENS,
    LayerRunStatus,
    check_json_document,
)
from runwatch.schemas.common import (
    NAME_FILTER,
    ExportFormatQuery,
    LayerRunCost,
    Name,
    OptionalName,
    PagingQuery,
    RunCreate,
    RunPage,
    RunTimestamp,
    TokenCount,
    UtcTimestamp,
    WindowQuery,
    first_errors_only,
    max_items,
)

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]

ErrorList = (
    Annotated[
        list[dict[str, Any]],
        first_errors_only(dict[str, Any]),
        max_items(MAX_RUN_ERRORS),
        AfterValidator(check_json_document),
        Field(
            max_length=MAX_RUN_ERRORS,
            description="Structured errors, each an object (for example "
            '`{"message": "rate limited", "target": "user-42"}`): at most 1,000, '
            f"{MAX_JSON_BYTES // 1024 // 1024} MiB serialized and {MAX_JSON_DEPTH} levels deep.",
        ),
    ]
    | None
)

SUCCESS_RATE_DESCRIPTION = (
    "success ÷ (success + failed + partial): the finished runs that called a model; "
    "dry and running runs are not in it. Null when there are none."
)

PERCENTILE_DESCRIPTION = (
    "Nearest-rank percentile of the completed runs' durations, within 2% of the exact "
    "value (from logarithmic histogram rollups). Null when no run completed."
)

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


class LayerRunFilters(WindowQuery):
    """The filters and sort of `GET /runs` and its export."""

    layer_name: str | None = Field(None, description="Exact layer name.", **NAME_FILTER)
    status: str | None = Field(
        None,
        max_length=200,
        description="One status or several comma-separated: "
        "running, success, partial, failed, dry (`failed,partial`).",
    )
    model_name: str | None = Field(None, description="Exact model name.", **NAME_FILTER)
    sort: LayerRunSort = Field(
        "-started_at",
        description="Sort key, `-` for descending. Ties are broken by `id` in the same "
        "direction; runs with no value for the key come last.",
    )


class LayerRunListQuery(PagingQuery, LayerRunFilters):
    """The query of `GET /runs`: filters, sort and paging, validated in one pass."""

    error_fingerprint: str | None = Field(
        None,
        pattern=FINGERPRINT_PATTERN,
        description="Only runs with an error of this group (a `fingerprint` of "
        "`GET /runs/errors`); `total` is then a real count.",
    )
    stuck: bool | None = Field(
        None,
        description="`true`: only running runs past their layer's stuck threshold "
        "(see the README); `false`: every other run. `total` is then a real count.",
    )


class LayerRunSummaryQuery(BaseModel):
    """The query of `GET /runs/stats/summary`; `days` within the configured bound is checked by
    the route."""

    layer_name: str | None = Field(None, description="Exact layer name.", **NAME_FILTER)
    days: int = Field(
        7, ge=1, description="Window in days back from now, 1 to 30 (`RUNWATCH_MAX_STATS_DAYS`)."
    )


class LayerRunExportQuery(ExportFormatQuery, LayerRunFilters):
    """The query of `GET /runs/export`."""


class LayerRunCreate(RunCreate):
    """A run to record. Omit `id` to have the server assign a ULID."""

    layer_name: Name
    layer_hash: Name
    status: LayerRunStatus
    started_at: RunTimestamp
    completed_at: RunTimestamp | None = Field(
        None,
        description="Required for a final status, absent while running; at most now + 1 day.",
    )
    targets_matched: Count = 0
    targets_processed: Count = 0
    targets_skipped: Count = 0
    insights_created: Count = 0
    model_profile: OptionalName = None
    model_provider: OptionalName = None
    model_name: OptionalName = None
    tokens_input: TokenCount = None
    tokens_output: TokenCount = None
    tokens_total: TokenCount = Field(
        None, description="Defaults to input + output when both given."
    )
    estimated_cost_usd: LayerRunCost = None
    errors: ErrorList = None

    @model_validator(mode="after")
    def _completion_matches_status(self) -> LayerRunCreate:
        if self.status == "running" and self.completed_at is not None:
            raise ValueError("completed_at must be absent while status is 'running'")
        if self.status != "running" and self.completed_at is None:
            raise ValueError(f"completed_at is required when status is '{self.status}'")
        if self.completed_at is not None and self.completed_at < self.started_at:
            raise ValueError("completed_at must not precede started_at")
        _check_derived_total(self.tokens_input, self.tokens_output, self.tokens_total)
        return self


def _check_derived_total(
    tokens_input: int | None, tokens_output: int | None, tokens_total: int | None
) -> None:
    # tokens_total defaults to input + output, which must fit the same bound.
    if (
        tokens_total is None
        and tokens_input is not None
        and tokens_output is not None
        and tokens_input + tokens_output > MAX_TOKENS
    ):
        raise ValueError(
            f"tokens_input + tokens_output is {tokens_input + tokens_output}, more than "
            f"{MAX_TOKENS}: tokens_total (their sum by default) would be out of range"
        )


class LayerRunUpdate(BaseModel):
    """Progress or completion of a running run. Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    status: LayerRunStatus | None = Field(
        None,
        description="A final status completes the run; `completed_at` defaults to now.",
    )
    completed_at: RunTimestamp | None = None
    targets_matched: Count | None = None
    targets_processed: Count | None = None
    targets_skipped: Count | None = None
    insights_created: Count | None = None
    model_profile: OptionalName = None
    model_provider: OptionalName = None
    model_name: OptionalName = None
    tokens_input: TokenCount = None
    tokens_output: TokenCount = None
    tokens_total: TokenCount = None
    estimated_cost_usd: LayerRunCost = None
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


class LayerRunDetailNow(LayerRunDetail):
    """A stored run as `GET /runs/{run_id}` shows it: a running one with whether it is stuck."""

    stuck: bool = Field(
        False, description="Running for longer than its layer's stuck threshold (the README)."
    )
    stuck_since: UtcTimestamp | None = Field(
        None, description="When it became stuck: `started_at` + the threshold."
    )
    stuck_threshold_seconds: float | None = Field(None, description="Its layer's threshold now.")


class LayerRunPage(RunPage):
    runs: list[LayerRunSummary]


class LayerStats(BaseModel):
    runs: int
    insights: int
    successful: int
    failed: int
    partial: int = 0
    dry: int = 0
    running: int = 0
    success_rate: float | None = Field(None, description=SUCCESS_RATE_DESCRIPTION)
    tokens: int
    cost_usd: float
    mean_duration_seconds: float | None = Field(
        description="Mean duration of the layer's completed runs in the window."
    )
    stuck: int = Field(0, description="Its running runs past the stuck threshold.")
    duration_p50_seconds: float | None = Field(None, description=PERCENTILE_DESCRIPTION)
    duration_p95_seconds: float | None = Field(None, description=PERCENTILE_DESCRIPTION)
    duration_p99_seconds: float | None = Field(None, description=PERCENTILE_DESCRIPTION)


class StatsSummary(BaseModel):
    period_days: int
    since: UtcTimestamp = Field(description="Start of the window: runs started at or after it.")
    total_runs: int
    successful_runs: int
    failed_runs: int
    dry_runs: int
    partial_runs: int
    running_runs: int
    stuck_runs: int = Field(
        0, description="Running runs past their layer's stuck threshold, whenever they started."
    )
    success_rate: float | None = Field(None, description=SUCCESS_RATE_DESCRIPTION)
    duration_p50_seconds: float | None = Field(None, description=PERCENTILE_DESCRIPTION)
    duration_p95_seconds: float | None = Field(None, description=PERCENTILE_DESCRIPTION)
    duration_p99_seconds: float | None = Field(None, description=PERCENTILE_DESCRIPTION)
    total_insights: int
    total_tokens: int
    total_cost_usd: float
    by_layer: dict[str, LayerStats]


class LayerRunBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: Annotated[
        list[LayerRunCreate], first_errors_only(LayerRunCreate), max_items(MAX_BATCH_RUNS)
    ] = Field(
        min_length=1,
        max_length=MAX_BATCH_RUNS,
        description="Up to `RUNWATCH_MAX_BATCH_SIZE` (default 1,000) runs.",
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
