"""`/runs`: record, list, inspect, update, delete and summarise layer runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from runwatch.api.deps import Paging, RunIdPath, SettingsDep, WriteConn, check_stats_days
from runwatch.api.query_models import parse_query, query_parameters
from runwatch.api.reads import NOT_MODIFIED_RESPONSE, ReadContext, encode_json, serve_read
from runwatch.api.run_routes import ReadDocs, add_run_delete, add_run_reads, page_json
from runwatch.config import Settings
from runwatch.domain import NO_NUL_PATTERN
from runwatch.errors import InvalidArgument
from runwatch.kinds import LAYER_RUNS
from runwatch.metrics import RUNS_RECORDED
from runwatch.queries.runs import RunFilter
from runwatch.routing import ConcretePathsFirst
from runwatch.schemas.common import problem_responses
from runwatch.schemas.layer_runs import (
    BatchResult,
    LayerRunBatch,
    LayerRunCreate,
    LayerRunDetail,
    LayerRunDetailNow,
    LayerRunListQuery,
    LayerRunSummaryQuery,
    LayerRunUpdate,
    StatsSummary,
    Timeseries,
)
from runwatch.services import layer_lifecycle
from runwatch.services.layer_summary import summarize_layer_runs
from runwatch.services.layer_timeseries import layer_run_timeseries
from runwatch.services.operator_lists import list_runs_matching
from runwatch.services.stuck import stuck_state

router = APIRouter(prefix="/runs", tags=["layer runs"], route_class=ConcretePathsFirst)

LayerNameQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=200, pattern=NO_NUL_PATTERN, description="Exact layer name."),
]


def _list_operator_runs(
    request: Request, query: LayerRunListQuery, filters: RunFilter, paging: Paging
) -> Awaitable[Response] | None:
    """`GET /runs` narrowed to one error group or to the stuck runs (a real count)."""
    if query.error_fingerprint is None and query.stuck is None:
        return None
    settings = request.app.state.settings

    async def work(read: ReadContext) -> bytes:
        page = await list_runs_matching(
            read.conn,
            filters=filters,
            error_fingerprint=query.error_fingerprint,
            stuck=query.stuck,
            settings=settings,
            now=read.window_now,
            cache=read.rollups,
            sort=query.sort,
            limit=paging.limit,
            offset=paging.offset,
            cursor=paging.cursor,
        )
        return page_json(LAYER_RUNS, page, paging)

    # Which runs are stuck changes as time passes, as a rolling window does.
    window = settings.stats_etag_seconds if query.stuck is not None else 0
    return serve_read(request, work, window_seconds=window)


async def _detail_now(read: ReadContext, row: Mapping[str, Any]) -> bytes:
    """The stored run, and for a running one whether it is stuck now."""
    run = {key: row[key] for key in LAYER_RUNS.detail_keys}
    run.update(
        await stuck_state(
            read.conn, run, settings=read.settings, now=read.window_now, cache=read.rollups
        )
    )
    return encode_json(run)


add_run_reads(
    router,
    LAYER_RUNS,
    docs=ReadDocs(
        list="""Runs matching every filter given, newest first by default.

`total` is exact. Page with `next_cursor` (keyset: constant cost at any depth,
and no run is skipped or repeated while runs are added) or with `offset`.
`total` for layer, status and time filters comes from the rollups; with
`model_name`, `error_fingerprint` or `stuck` it is a real count. Send
`If-None-Match` with the `ETag` to poll.""",
        export="""Every run matching the filters of `GET /runs`, in its sort order, streamed.

NDJSON is one detail object (as `GET /runs/{run_id}`) per line; CSV has a
header line and one line per run, `errors` as JSON text. Read in keyset
chunks, so memory stays constant however many runs match.""",
        detail="""Every field of the run, with `duration_seconds` and `errors`.

A running run also has `stuck` (running longer than its layer's threshold),
`stuck_since` and `stuck_threshold_seconds`. Whether a run is stuck changes
as time passes, so the tag moves in steps of `RUNWATCH_STATS_ETAG_SECONDS`.""",
    ),
    narrowed_list=_list_operator_runs,
    detail_model=LayerRunDetailNow,
    detail_body=_detail_now,
    detail_moves_with_time=True,
)


@router.get(
    "/stats/summary",
    response_model=StatsSummary,
    summary="Summary of recent runs",
    responses={**NOT_MODIFIED_RESPONSE, **problem_responses(422, 503)},
    # What a dashboard polls: its query is read in one validation (see query_models.py).
    openapi_extra=query_parameters(LayerRunSummaryQuery),
)
async def stats_summary(request: Request) -> Response:
    """Counts and sums over every run that started in the last `days` days.

    Sums over no runs are 0. `by_layer` has one entry per layer with runs in the window.
    Answered from the hourly and daily rollups plus the raw rows of the first,
    partial hour, so it is exact and its cost does not grow with the table; runs
    removed by `runwatch purge` still count here. The window moves in steps of
    `RUNWATCH_STATS_ETAG_SECONDS` (10): `since` is `days` before the start of the
    current step. Poll with `If-None-Match`: the `ETag` changes on every write and
    at each step.
    """
    query = parse_query(LayerRunSummaryQuery, request)
    settings: Settings = request.app.state.settings
    days, layer_name = check_stats_days(settings, query.days), query.layer_name

    async def work(read: ReadContext) -> bytes:
        known, horizon = read.known_purged_before()
        summary = await summarize_layer_runs(
            read.conn,
            days=days,
            layer_name=layer_name,
            now=read.window_now,
            purge_horizon=horizon,
            learn_horizon=None if known else read.learned_purged_before,
            settings=settings,
            cache=read.rollups,
        )
        return encode_json(summary)

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)


@router.get(
    "/stats/timeseries",
    response_model=Timeseries,
    summary="Runs per hour or day, for charts",
    responses={**NOT_MODIFIED_RESPONSE, **problem_responses(422, 503)},
)
async def stats_timeseries(
    request: Request,
    settings: SettingsDep,
    days: Annotated[
        int,
        Query(
            ge=1,
            description="How far back: 1-30 days of hourly buckets "
            "(`RUNWATCH_MAX_STATS_DAYS`), 1-366 of daily ones "
            "(`RUNWATCH_MAX_DAILY_TIMESERIES_DAYS`).",
        ),
    ] = 7,
    bucket: Annotated[Literal["hour", "day"], Query(description="Bucket size.")] = "hour",
    layer_name: LayerNameQuery = None,
) -> Response:
    """Contiguous, zero-filled buckets of run counts per status, insights, tokens and cost.

    Whole UTC hours or days, oldest first, the last one being the current
    (partial) bucket; read from the rollups, so purged runs still count.
    """
    limit = settings.max_stats_days if bucket == "hour" else settings.max_daily_timeseries_days
    if days > limit:
        raise InvalidArgument.at(("query", "days"), f"must be at most {limit} for {bucket}s")

    async def work(read: ReadContext) -> bytes:
        series = await layer_run_timeseries(
            read.conn, grain=bucket, days=days, layer_name=layer_name, now=read.window_now
        )
        return Timeseries.model_validate(series).model_dump_json().encode()

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)


@router.post(
    "",
    response_model=LayerRunDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Record a layer run",
    responses={
        200: {"model": LayerRunDetail, "description": "The same run was already recorded."},
        **problem_responses(409, 413, 422, 503),
    },
)
async def create_run(conn: WriteConn, body: LayerRunCreate, response: Response) -> LayerRunDetail:
    """Record a run; 201 with `Location`.

    Idempotent by `id`: sending the same id with the same content again answers 200
    with the stored run; with different content, 409.
    """
    run, created = await layer_lifecycle.create_layer_run(conn, body.model_dump())
    if created:
        RUNS_RECORDED.labels("layer", run["status"]).inc()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/runs/{run['id']}"
    return LayerRunDetail.model_validate(dict(run))


@router.post(
    "/batch",
    response_model=BatchResult,
    summary="Record up to 1,000 layer runs",
    responses=problem_responses(409, 413, 422, 503),
)
async def create_runs_batch(
    conn: WriteConn, settings: SettingsDep, body: LayerRunBatch
) -> Response:
    """Record many runs at once, all or nothing.

    Every run is validated before any is stored; one invalid run (422) or one id that
    exists with different content (409) stores none. Each result says whether the run
    was `created` or `already_present` (same id, same content).
    """
    if len(body.runs) > settings.max_batch_size:
        raise InvalidArgument.at(
            ("body", "runs"), f"at most {settings.max_batch_size} runs per batch"
        )
    runs = body.model_dump()["runs"]
    outcome = await layer_lifecycle.create_layer_runs(conn, runs)
    recorded = Counter(
        run["status"] for run, (_, created) in zip(runs, outcome, strict=True) if created
    )
    for run_status, count in recorded.items():
        RUNS_RECORDED.labels("layer", run_status).inc(count)
    created_count = sum(1 for _, created in outcome if created)
    # The answer is encoded from plain values: `BatchResult` is its declared schema.
    answer = {
        "created": created_count,
        "already_present": len(outcome) - created_count,
        "results": [
            {"id": run_id, "result": "created" if created else "already_present"}
            for run_id, created in outcome
        ],
    }
    return Response(encode_json(answer), media_type="application/json")


@router.patch(
    "/{run_id}",
    response_model=LayerRunDetail,
    summary="Update a running layer run",
    responses=problem_responses(404, 409, 413, 422, 503),
)
async def update_run(conn: WriteConn, run_id: RunIdPath, body: LayerRunUpdate) -> LayerRunDetail:
    """Report progress of a `running` run, or complete it with a final status.

    A final status (`success`, `partial`, `failed`, `dry`) sets `completed_at` (now,
    unless given; never before `started_at`). A completed run cannot change: 409.
    """
    changes = body.model_dump(exclude_unset=True)
    run = await layer_lifecycle.update_layer_run(conn, run_id, changes)
    if run["status"] != "running":
        RUNS_RECORDED.labels("layer", run["status"]).inc()
    return LayerRunDetail.model_validate(dict(run))


add_run_delete(
    router,
    LAYER_RUNS,
    delete=layer_lifecycle.delete_layer_run,
    description="Delete the run (204); its contribution to the stats goes with it. 404 if none.",
)
