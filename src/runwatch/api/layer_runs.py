"""`/runs`: record, list, inspect, update, delete and summarise layer runs."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from runwatch.api.deps import (
    Paging,
    SettingsDep,
    TimeWindowDep,
    WriteConn,
    check_paging,
    check_window,
    parse_statuses,
)
from runwatch.api.export import (
    EXPORT_RESPONSES,
    ExportKind,
    FormatQuery,
    csv_columns,
    export_response,
)
from runwatch.api.reads import NOT_MODIFIED_RESPONSE, ReadContext, encode_json, serve_read
from runwatch.db.tables import LAYER_RUN_STATUSES
from runwatch.domain import NO_NUL_PATTERN
from runwatch.errors import InvalidArgument
from runwatch.metrics import RUNS_RECORDED
from runwatch.queries import layer_runs as q
from runwatch.queries.export import layer_run_export_query
from runwatch.queries.operator_lists import list_runs_matching
from runwatch.queries.pagination import Page
from runwatch.queries.stuck import stuck_state
from runwatch.queries.summary import summarize_layer_runs
from runwatch.routing import ConcretePathsFirst
from runwatch.schemas.common import RUN_ID_PATTERN, problem_responses
from runwatch.schemas.layer_runs import (
    BatchResult,
    LayerRunBatch,
    LayerRunCreate,
    LayerRunDetail,
    LayerRunDetailNow,
    LayerRunListQuery,
    LayerRunPage,
    LayerRunSort,
    LayerRunUpdate,
    StatsSummary,
    Timeseries,
)

router = APIRouter(prefix="/runs", tags=["layer runs"], route_class=ConcretePathsFirst)

# Plain `str` keys (column names are a subclass), as the JSON encoder wants.
SUMMARY_KEYS = tuple(str(column.name) for column in q.SUMMARY_COLUMNS)
DETAIL_KEYS = tuple(str(column.name) for column in q.DETAIL_COLUMNS)

RunIdPath = Annotated[
    str, Path(pattern=RUN_ID_PATTERN, description="The run's id (1-64 of `A-Za-z0-9_.:-`).")
]
StatusQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="One status or several comma-separated: "
        + ", ".join(LAYER_RUN_STATUSES)
        + " (`failed,partial`).",
    ),
]
NOT_MODIFIED = NOT_MODIFIED_RESPONSE
LayerNameQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=200, pattern=NO_NUL_PATTERN, description="Exact layer name."),
]


@router.get(
    "",
    response_model=LayerRunPage,
    summary="List layer runs",
    responses={**NOT_MODIFIED, **problem_responses(422, 503)},
)
async def list_runs(
    request: Request, query: Annotated[LayerRunListQuery, Query()], settings: SettingsDep
) -> Response:
    """Runs matching every filter given, newest first by default.

    `total` is exact. Page with `next_cursor` (keyset: constant cost at any depth,
    and no run is skipped or repeated while runs are added) or with `offset`.
    `total` for layer, status and time filters comes from the rollups; with
    `model_name` it is a real count. Send `If-None-Match` with the `ETag` to poll.
    """
    paging = check_paging(settings, offset=query.offset, limit=query.limit, cursor=query.cursor)
    window = check_window(query.since, query.until)
    filters = q.LayerRunFilter(
        layer_name=query.layer_name,
        statuses=parse_statuses(query.status, LAYER_RUN_STATUSES),
        since=window.since,
        until=window.until,
        model_name=query.model_name,
    )
    sort = query.sort
    if query.error_fingerprint is not None or query.stuck is not None:
        return await _list_operator_runs(request, query, settings, filters, paging)

    async def work(read: ReadContext) -> bytes:
        page = await q.list_layer_runs(
            read.conn,
            filters=filters,
            sort=sort,
            limit=paging.limit,
            offset=paging.offset,
            cursor=paging.cursor,
            with_total=True,
            purge_horizon=await read.purged_before(),
        )
        return page_json(page, paging)

    return await serve_read(request, work)


def page_json(page: Page, paging: Paging) -> bytes:
    """The `LayerRunPage` body of a page of runs, encoded from its rows."""
    return encode_json(
        {
            "runs": [{key: row[key] for key in SUMMARY_KEYS} for row in page.rows],
            "total": page.total,
            "offset": paging.offset,
            "limit": paging.limit,
            "next_cursor": page.next_cursor,
        }
    )


async def _list_operator_runs(
    request: Request,
    query: LayerRunListQuery,
    settings: SettingsDep,
    filters: q.LayerRunFilter,
    paging: Paging,
) -> Response:
    """`GET /runs` narrowed to one error group or to the stuck runs (a real count)."""

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
        return page_json(page, paging)

    # Which runs are stuck changes as time passes, as a rolling window does.
    window = settings.stats_etag_seconds if query.stuck is not None else 0
    return await serve_read(request, work, window_seconds=window)


@router.get(
    "/stats/summary",
    response_model=StatsSummary,
    summary="Summary of recent runs",
    responses={**NOT_MODIFIED, **problem_responses(422, 503)},
)
async def stats_summary(
    request: Request,
    settings: SettingsDep,
    days: Annotated[
        int,
        Query(
            ge=1, description="Window in days back from now, 1 to 30 (`RUNWATCH_MAX_STATS_DAYS`)."
        ),
    ] = 7,
    layer_name: LayerNameQuery = None,
) -> Response:
    """Counts and sums over every run that started in the last `days` days.

    Sums over no runs are 0. `by_layer` has one entry per layer with runs in the window.
    Answered from the hourly and daily rollups plus the raw rows of the first,
    partial hour, so it is exact and its cost does not grow with the table; runs
    removed by `runwatch purge` still count here. The window moves in steps of
    `RUNWATCH_STATS_ETAG_SECONDS` (10): `since` is `days` before the start of the
    current step. Poll with `If-None-Match`: the `ETag` changes on every write and
    at each step.
    """
    if days > settings.max_stats_days:
        raise InvalidArgument.at(("query", "days"), f"must be at most {settings.max_stats_days}")

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
    responses={**NOT_MODIFIED, **problem_responses(422, 503)},
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
        series = await q.layer_run_timeseries(
            read.conn, grain=bucket, days=days, layer_name=layer_name, now=read.window_now
        )
        return Timeseries.model_validate(series).model_dump_json().encode()

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)


EXPORT = ExportKind(
    model=LayerRunDetail, columns=csv_columns(LayerRunDetail, json_fields=("errors",))
)


# A concrete path, not a run id, whatever the order (see runwatch/routing.py).
@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="Export layer runs as NDJSON or CSV",
    responses={**EXPORT_RESPONSES, **problem_responses(422, 503)},
)
async def export_runs(
    request: Request,
    window: TimeWindowDep,
    format_: FormatQuery = "ndjson",
    layer_name: LayerNameQuery = None,
    status_: Annotated[StatusQuery, Query(alias="status")] = None,
    model_name: Annotated[
        str | None,
        Query(
            min_length=1, max_length=200, pattern=NO_NUL_PATTERN, description="Exact model name."
        ),
    ] = None,
    sort: Annotated[
        LayerRunSort, Query(description="As for `GET /runs`; ties broken by `id`.")
    ] = "-started_at",
) -> StreamingResponse:
    """Every run matching the filters of `GET /runs`, in its sort order, streamed.

    NDJSON is one detail object (as `GET /runs/{run_id}`) per line; CSV has a
    header line and one line per run, `errors` as JSON text. Read in keyset
    chunks, so memory stays constant however many runs match.
    """
    filters = q.LayerRunFilter(
        layer_name=layer_name,
        statuses=parse_statuses(status_, LAYER_RUN_STATUSES),
        since=window.since,
        until=window.until,
        model_name=model_name,
    )
    spec = q.sort_spec(sort)
    query = layer_run_export_query(
        filters,
        spec,
        fields=EXPORT.fields,
        dialect=request.app.state.engines.dialect,
        format=format_,
        csv_lines=EXPORT.flat_csv,
    )
    return await export_response(request, kind=EXPORT, query=query, format=format_, filename="runs")


@router.get(
    "/{run_id}",
    response_model=LayerRunDetailNow,
    # The stuck fields are sent for running runs only; every stored field always is.
    response_model_exclude_unset=True,
    summary="One layer run",
    responses={**NOT_MODIFIED, **problem_responses(404, 422, 503)},
)
async def get_run(request: Request, settings: SettingsDep, run_id: RunIdPath) -> Response:
    """Every field of the run, with `duration_seconds` and `errors`.

    A running run also has `stuck` (running longer than its layer's threshold),
    `stuck_since` and `stuck_threshold_seconds`. Whether a run is stuck changes
    as time passes, so the tag moves in steps of `RUNWATCH_STATS_ETAG_SECONDS`.
    """

    async def work(read: ReadContext) -> bytes:
        row = await q.get_layer_run(read.conn, run_id)
        run = {key: row[key] for key in DETAIL_KEYS}
        run.update(
            await stuck_state(
                read.conn, run, settings=settings, now=read.window_now, cache=read.rollups
            )
        )
        return encode_json(run)

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
    run, created = await q.create_layer_run(conn, body.model_dump())
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
    outcome = await q.create_layer_runs(conn, runs)
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
    run = await q.update_layer_run(conn, run_id, changes)
    if run["status"] != "running":
        RUNS_RECORDED.labels("layer", run["status"]).inc()
    return LayerRunDetail.model_validate(dict(run))


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a layer run",
    responses=problem_responses(404, 422, 503),
)
async def delete_run(conn: WriteConn, run_id: RunIdPath) -> Response:
    """Delete the run (204); its contribution to the stats goes with it. 404 if none."""
    await q.delete_layer_run(conn, run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
