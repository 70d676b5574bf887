"""Request and response models for extraction runs, with bounded JSON bodies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
)

from runwatch.domain import (
    MAX_METRIC_VALUE,
    MAX_METRICS,
    ExtractionRunStatus,
    check_json_document,
)
from runwatch.schemas.common import (
    DOCUMENT_NAME_FILTER,
    NAME_FILTER,
    DocumentName,
    ErrorText,
    ExportFormatQuery,
    ExtractionRunCost,
    MetricName,
    Name,
    PagingQuery,
    RunCreate,
    RunPage,
    TokenCount,
    UtcTimestamp,
    WindowQuery,
    max_items,
)

ExtractionRunSort = Literal["created_at", "-created_at", "cost_usd", "-cost_usd"]

# Limits on the JSON a client sends (see docs/extraction-runs.md, "Limits").
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(check_json_document),
    Field(description="A JSON object: at most 1 MiB serialized and 32 levels deep."),
]
Metrics = Annotated[
    dict[MetricName, Annotated[float, Field(ge=-MAX_METRIC_VALUE, le=MAX_METRIC_VALUE)]],
    max_items(MAX_METRICS),
    Field(
        max_length=MAX_METRICS,
        description="Named numbers (`precision`, `recall`, `f1`, `latency_ms`, …), at most 100.",
    ),
]
# Who holds a run: any name the worker gives itself.
WorkerId = Name
LeaseSeconds = Annotated[
    int,
    Field(ge=1, description="Seconds from now; at most `RUNWATCH_EXTRACTION_MAX_LEASE_SECONDS`."),
]


class ExtractionRunFilters(WindowQuery):
    """The filters and sort of `GET /extraction-runs` and its export."""

    prompt_id: str | None = Field(None, description="Exact prompt id.", **NAME_FILTER)
    config_id: str | None = Field(None, description="Exact config id.", **NAME_FILTER)
    document_name: str | None = Field(
        None, description="Exact document name.", **DOCUMENT_NAME_FILTER
    )
    status: str | None = Field(
        None,
        max_length=200,
        description="One status or several comma-separated: pending, running, completed, failed.",
    )
    sort: ExtractionRunSort = Field(
        "-created_at", description="Sort key, `-` for descending; ties broken by `id`."
    )


class ExtractionRunListQuery(PagingQuery, ExtractionRunFilters):
    """The query of `GET /extraction-runs`."""


class ExtractionRunExportQuery(ExportFormatQuery, ExtractionRunFilters):
    """The query of `GET /extraction-runs/export`."""


class ExtractionRunCreate(RunCreate):
    """A run to execute. Omit `id` to have the server assign a ULID."""

    prompt_id: Name
    config_id: Name
    document_name: DocumentName
    expected: JsonObject | None = Field(
        None, description="Ground truth: when given, a completion without metrics is scored."
    )


class ExtractionRunAccepted(BaseModel):
    run_id: str
    status: ExtractionRunStatus
    message: str


class Tokens(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: TokenCount = None
    output: TokenCount = None


class ExtractionRunUpdate(BaseModel):
    """A transition or progress report. Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    status: ExtractionRunStatus | None = Field(
        None,
        description="`running` starts a pending run; `completed` or `failed` finishes a "
        "running one. Any other move is 409.",
    )
    worker_id: WorkerId | None = Field(
        None, description="Who is reporting; 409 when another worker holds the run."
    )
    lease_seconds: LeaseSeconds | None = Field(
        None, description="Extend (or, when starting, set) the lease to now + this many seconds."
    )
    output: JsonObject | None = None
    metrics: Metrics | None = None
    tokens: Tokens | None = None
    cost_usd: ExtractionRunCost = None
    error: ErrorText | None = Field(
        None, description="Why the run failed; required with status `failed`."
    )


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: WorkerId
    max_runs: int = Field(1, ge=1, le=100, description="Most runs to hand out, 1-100.")
    lease_seconds: LeaseSeconds | None = Field(
        None, description="Default `RUNWATCH_EXTRACTION_DEFAULT_LEASE_SECONDS` (300)."
    )


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: WorkerId | None = None


class ClaimedRun(BaseModel):
    """What a worker needs to execute a run (ground truth is not handed out)."""

    id: str
    prompt_id: str
    config_id: str
    document_name: str
    status: ExtractionRunStatus
    created_at: UtcTimestamp
    started_at: UtcTimestamp
    attempts: int
    worker_id: str
    lease_expires_at: UtcTimestamp


class ClaimResult(BaseModel):
    runs: list[ClaimedRun]


class ExtractionRunSummary(BaseModel):
    """Light metadata: one run in a list."""

    id: str
    prompt_id: str
    config_id: str
    document_name: str
    status: ExtractionRunStatus
    created_at: UtcTimestamp
    started_at: UtcTimestamp | None
    completed_at: UtcTimestamp | None
    cost_usd: float | None


class TokensOut(BaseModel):
    input: int | None
    output: int | None


class ExtractionRunDetail(ExtractionRunSummary):
    """Every stored field of one run."""

    output: dict[str, Any] | None
    metrics: dict[str, float] | None
    tokens: TokensOut
    error: str | None
    expected: dict[str, Any] | None
    attempts: int
    worker_id: str | None
    lease_expires_at: UtcTimestamp | None

    @computed_field(  # type: ignore[prop-decorator]
        description="Running, and its worker's lease has run out: the worker is gone or late, "
        "and the next claim takes the run back (or fails it after its last attempt)."
    )
    @property
    def lease_expired(self) -> bool:
        return (
            self.status == "running"
            and self.lease_expires_at is not None
            and self.lease_expires_at <= datetime.now(UTC)
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ExtractionRunDetail:
        return cls.model_validate(detail_fields(row))


def detail_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run's columns as a detail's fields: the token counts together as `tokens`."""
    data = dict(row)
    data["tokens"] = {"input": data.pop("tokens_input"), "output": data.pop("tokens_output")}
    return data


class ExtractionRunPage(RunPage):
    runs: list[ExtractionRunSummary]


class MetricComparison(BaseModel):
    metric: str
    run_a: float | None
    run_b: float | None
    difference: float | None = Field(description="run_b - run_a; null when a side is missing.")
    percent_difference: float | None = Field(
        description="difference / |run_a| * 100; null when run_a is 0 or a side is missing."
    )


class FieldDifference(BaseModel):
    field: str = Field(description="Dotted path of the leaf (`invoice.total`, `items.0.sku`).")
    status: Literal["same", "different", "only_in_a", "only_in_b"]
    run_a: Any
    run_b: Any


class CompareSummary(BaseModel):
    fields_same: int
    fields_different: int
    fields_only_in_a: int
    fields_only_in_b: int


class RunComparison(BaseModel):
    run_a: ExtractionRunSummary
    run_b: ExtractionRunSummary
    metric_comparisons: list[MetricComparison]
    field_differences: list[FieldDifference] = Field(
        description="Leaf fields that are not the same; `summary` counts all of them."
    )
    summary: CompareSummary


class GroupSideOut(BaseModel):
    prompt_id: str | None
    config_id: str | None


class DocumentComparison(BaseModel):
    document_name: str
    run_a: str = Field(description="Id of side a's latest completed run on this document.")
    run_b: str
    metric_comparisons: list[MetricComparison]


class MeanComparison(BaseModel):
    metric: str
    documents: int = Field(description="Paired documents with this metric on both sides.")
    mean_a: float
    mean_b: float
    difference: float | None
    percent_difference: float | None


class WinTieLoss(BaseModel):
    wins_a: int
    wins_b: int
    ties: int
    missing: int = Field(description="Paired documents where a side has no f1.")


class GroupComparison(BaseModel):
    a: GroupSideOut
    b: GroupSideOut
    document_name: str | None
    documents_compared: int
    documents: list[DocumentComparison]
    means: list[MeanComparison]
    f1: WinTieLoss
    documents_only_in_a: list[str]
    documents_only_in_b: list[str]


class GroupStats(BaseModel):
    runs: int
    pending: int
    running: int
    completed: int
    failed: int
    mean_precision: float | None
    mean_recall: float | None
    mean_f1: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    cost_usd: float
    tokens_input: int
    tokens_output: int


class ExtractionStatsSummary(BaseModel):
    period_days: int
    since: UtcTimestamp = Field(description="Start of the window: runs created at or after it.")
    total_runs: int
    pending_runs: int
    running_runs: int
    completed_runs: int
    failed_runs: int
    total_cost_usd: float
    total_tokens_input: int
    total_tokens_output: int
    total_tokens: int
    mean_precision: float | None
    mean_recall: float | None
    mean_f1: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    by_prompt: dict[str, GroupStats]
    by_config: dict[str, GroupStats]
