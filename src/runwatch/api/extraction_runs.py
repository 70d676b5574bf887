"""`/extraction-runs`: create, claim, report, list, inspect, compare and summarise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from runwatch.api.deps import RunIdPath, SettingsDep, StatsDays, WriteConn
from runwatch.api.reads import ReadContext, serve_read
from runwatch.api.run_routes import ReadDocs, add_run_delete, add_run_reads
from runwatch.errors import InvalidArgument
from runwatch.kinds import EXTRACTION_RUNS
from runwatch.routing import ConcretePathsFirst
from runwatch.schemas.common import DOCUMENT_NAME_FILTER, NAME_FILTER, problem_responses
from runwatch.schemas.extraction_runs import (
    ClaimedRun,
    ClaimRequest,
    ClaimResult,
    ExtractionRunAccepted,
    ExtractionRunCreate,
    ExtractionRunDetail,
    ExtractionRunUpdate,
    ExtractionStatsSummary,
    GroupComparison,
    ReleaseRequest,
    RunComparison,
)
from runwatch.services import extraction_compare, extraction_lifecycle, extraction_stats

router = APIRouter(
    prefix="/extraction-runs", tags=["extraction runs"], route_class=ConcretePathsFirst
)

PromptQuery = Annotated[str | None, Query(description="Exact prompt id.", **NAME_FILTER)]
ConfigQuery = Annotated[str | None, Query(description="Exact config id.", **NAME_FILTER)]
DocumentQuery = Annotated[
    str | None, Query(description="Exact document name.", **DOCUMENT_NAME_FILTER)
]


def _check_lease(settings: SettingsDep, lease_seconds: int | None) -> None:
    if lease_seconds is not None and lease_seconds > settings.extraction_max_lease_seconds:
        raise InvalidArgument.at(
            ("body", "lease_seconds"),
            f"must be at most {settings.extraction_max_lease_seconds}",
        )


@router.get(
    "/compare",
    response_model=GroupComparison,
    summary="Compare two groups of runs document by document",
    responses=problem_responses(422, 503),
)
async def compare_groups(
    request: Request,
    settings: SettingsDep,
    a_prompt_id: PromptQuery = None,
    a_config_id: ConfigQuery = None,
    b_prompt_id: PromptQuery = None,
    b_config_id: ConfigQuery = None,
    document_name: DocumentQuery = None,
) -> Response:
    """Side a is the runs of `a_prompt_id` and/or `a_config_id`, side b likewise.

    For each document, the latest completed run of each side is paired; the answer has
    per-document metric deltas (b - a), each metric's mean on both sides over the paired
    documents, F1 wins/ties, and the documents only one side covers.
    """
    a, b = extraction_compare.group_sides(
        a_prompt_id=a_prompt_id,
        a_config_id=a_config_id,
        b_prompt_id=b_prompt_id,
        b_config_id=b_config_id,
    )

    async def work(read: ReadContext) -> bytes:
        result = await extraction_compare.compare_extraction_groups(
            read.conn,
            a=a,
            b=b,
            document_name=document_name,
            max_documents=settings.extraction_max_compare_documents,
        )
        return GroupComparison.model_validate(result).model_dump_json().encode()

    return await serve_read(request, work, versioned=False)


@router.get(
    "/stats/summary",
    response_model=ExtractionStatsSummary,
    summary="Summary of recent extraction runs",
    responses=problem_responses(422, 503),
)
async def stats_summary(
    request: Request,
    days: StatsDays,
    prompt_id: PromptQuery = None,
    config_id: ConfigQuery = None,
) -> Response:
    """Counts by status, cost and tokens, and per prompt and per config: runs, outcomes,
    mean precision/recall/F1 and p50/p95 `latency_ms` over runs created in the window.

    Sums over no runs are 0; means and percentiles over no values are null. Percentiles
    interpolate linearly between closest ranks.
    """

    async def work(read: ReadContext) -> bytes:
        summary = await extraction_stats.summarize_extraction_runs(
            read.conn, days=days, prompt_id=prompt_id, config_id=config_id
        )
        return ExtractionStatsSummary.model_validate(summary).model_dump_json().encode()

    return await serve_read(request, work, versioned=False)


@router.post(
    "/claim",
    response_model=ClaimResult,
    summary="Claim the oldest pending runs for a worker",
    responses=problem_responses(413, 422, 503),
)
async def claim_runs(conn: WriteConn, settings: SettingsDep, body: ClaimRequest) -> ClaimResult:
    """Move up to `max_runs` of the oldest pending runs to `running` for `worker_id`.

    Each run goes to exactly one claimer, however many claim at once. The worker must
    finish each run, or extend its lease with PATCH, before `lease_expires_at`: an expired
    run goes back to pending (or is failed once it has used `RUNWATCH_EXTRACTION_MAX_ATTEMPTS`
    claims). An empty `runs` list means there is nothing to do.
    """
    _check_lease(settings, body.lease_seconds)
    runs = await extraction_lifecycle.claim_extraction_runs(
        conn,
        worker_id=body.worker_id,
        max_runs=body.max_runs,
        lease_seconds=body.lease_seconds or settings.extraction_default_lease_seconds,
        max_attempts=settings.extraction_max_attempts,
    )
    return ClaimResult(runs=[ClaimedRun.model_validate(dict(run)) for run in runs])


async def _detail(read: ReadContext, row: Mapping[str, Any]) -> bytes:
    # Through the model: it nests the token counts and adds `lease_expired`.
    return ExtractionRunDetail.from_row(row).model_dump_json().encode()


add_run_reads(
    router,
    EXTRACTION_RUNS,
    docs=ReadDocs(
        list="""Light metadata of the runs matching every filter, newest first by default.

`since` and `until` bound `created_at`. `total` is exact. Page with `next_cursor`
(keyset) or `offset`. The `ETag` is a hash of the answer: send it in
`If-None-Match` to poll.""",
        export="""Every run matching the filters of `GET /extraction-runs`, in its sort order,
streamed.

NDJSON is one detail object (as `GET /extraction-runs/{run_id}`) per line;
CSV has a header line and one line per run, with `tokens.input` and
`tokens.output` as columns and `output`, `metrics` and `expected` as JSON text.""",
        detail="""The metadata plus `output`, `metrics`, `tokens`, `error`, `expected` and
lease state.""",
    ),
    detail_body=_detail,
)


@router.get(
    "/{run_id}/compare/{other_id}",
    response_model=RunComparison,
    summary="Compare two extraction runs",
    responses=problem_responses(404, 422, 503),
)
async def compare_runs(request: Request, run_id: RunIdPath, other_id: RunIdPath) -> Response:
    """Run a is `run_id`, run b is `other_id`, in any status.

    Every metric on either side with `difference` = b - a and `percent_difference`
    relative to a (null when a is 0 or a side is missing); the output leaf fields that
    differ, by dotted path; and counts of same, different and one-sided fields.
    """

    async def work(read: ReadContext) -> bytes:
        result = await extraction_compare.compare_extraction_runs(read.conn, run_id, other_id)
        return RunComparison.model_validate(result).model_dump_json().encode()

    return await serve_read(request, work, versioned=False)


@router.post(
    "",
    response_model=ExtractionRunAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Create a pending extraction run",
    responses={
        200: {"model": ExtractionRunAccepted, "description": "The same run already exists."},
        **problem_responses(409, 413, 422, 503),
    },
)
async def create_run(
    conn: WriteConn, body: ExtractionRunCreate, response: Response
) -> ExtractionRunAccepted:
    """Store a `pending` run for a worker to execute; 202 with `Location`.

    Idempotent by `id`: the same id with the same content answers 200 with the run's
    current status; with different content, 409.
    """
    run, created = await extraction_lifecycle.create_extraction_run(conn, body.model_dump())
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/extraction-runs/{run['id']}"
    message = (
        "Run queued; a worker will claim it."
        if created
        else f"Run already recorded; it is {run['status']}."
    )
    return ExtractionRunAccepted(run_id=run["id"], status=run["status"], message=message)


@router.patch(
    "/{run_id}",
    response_model=ExtractionRunDetail,
    summary="Start, extend, complete or fail an extraction run",
    responses=problem_responses(404, 409, 413, 422, 503),
)
async def update_run(
    conn: WriteConn, settings: SettingsDep, run_id: RunIdPath, body: ExtractionRunUpdate
) -> ExtractionRunDetail:
    """Runs move `pending → running → completed | failed`; anything else is 409.

    On a running run, `lease_seconds` extends the lease. `completed` takes `output`,
    `metrics`, `tokens` and `cost_usd`; without metrics, a run with `expected` is scored
    (precision, recall, F1 over leaf fields) and `latency_ms` is added from the
    timestamps. `failed` needs `error`. A finished run cannot change.
    """
    _check_lease(settings, body.lease_seconds)
    row = await extraction_lifecycle.update_extraction_run(
        conn,
        run_id,
        body.model_dump(exclude_unset=True),
        default_lease_seconds=settings.extraction_default_lease_seconds,
    )
    return ExtractionRunDetail.from_row(row)


@router.post(
    "/{run_id}/release",
    response_model=ExtractionRunDetail,
    summary="Give a running run back unfinished",
    responses=problem_responses(404, 409, 422, 503),
)
async def release_run(
    conn: WriteConn, run_id: RunIdPath, body: ReleaseRequest
) -> ExtractionRunDetail:
    """Put a running run back to `pending` (a worker stopping before it could finish).

    The attempt is not counted. 409 when the run is not running or another worker
    holds it.
    """
    row = await extraction_lifecycle.release_extraction_run(conn, run_id, worker_id=body.worker_id)
    return ExtractionRunDetail.from_row(row)


add_run_delete(
    router,
    EXTRACTION_RUNS,
    delete=extraction_lifecycle.delete_extraction_run,
    description="Delete the run (204); 404 if there is none.",
)
