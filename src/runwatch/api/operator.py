"""`/runs/errors` and `/runs/stats/versions…`: what fails, and since which layer version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from runwatch.api.deps import SettingsDep, TimeWindow, TimeWindowDep, parse_statuses
from runwatch.api.reads import NOT_MODIFIED_RESPONSE, ReadContext, encode_json, serve_read
from runwatch.config import Settings
from runwatch.domain import LAYER_RUN_STATUSES
from runwatch.errors import InvalidArgument
from runwatch.queries import error_groups as eg
from runwatch.queries.error_filters import ErrorFilter
from runwatch.routing import ConcretePathsFirst
from runwatch.schemas.common import NAME_FILTER, problem_responses
from runwatch.schemas.operator import (
    ErrorGroupPage,
    ErrorGroupSort,
    RegressionList,
    VersionCompare,
    VersionList,
)
from runwatch.services import layer_versions

router = APIRouter(prefix="/runs", tags=["operator"], route_class=ConcretePathsFirst)

NameQuery = Annotated[str | None, Query(description="Exact.", **NAME_FILTER)]
DaysQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description="Window of `days` back from `until` (or now), 1 to "
        "`RUNWATCH_MAX_DAILY_TIMESERIES_DAYS` (366); default 7. Not with `since`.",
    ),
]
RESPONSES = {**NOT_MODIFIED_RESPONSE, **problem_responses(422, 503)}


def resolve_window(
    window: TimeWindow, days: int | None, settings: Settings, now: datetime | None
) -> tuple[datetime, datetime | None, datetime]:
    """`(since, until, now)`: `since`, else `days` (default 7) before `until` or now."""
    now = now or datetime.now(UTC)
    limit = settings.max_daily_timeseries_days
    if days is not None and window.since is not None:
        raise InvalidArgument.at(("query", "days"), "give since or days, not both")
    if days is not None and days > limit:
        raise InvalidArgument.at(("query", "days"), f"must be at most {limit}")
    since = window.since or (window.until or now) - timedelta(days=days or 7)
    if (window.until or now) - since > timedelta(days=limit):
        raise InvalidArgument.at(("query", "since"), f"the window may span at most {limit} days")
    return since, window.until, now


@router.get(
    "/errors",
    response_model=ErrorGroupPage,
    summary="Error groups: what is failing, by fingerprint",
    responses=RESPONSES,
)
async def error_groups(
    request: Request,
    settings: SettingsDep,
    window: TimeWindowDep,
    days: DaysQuery = None,
    layer_name: NameQuery = None,
    status_: Annotated[
        str | None,
        Query(
            alias="status", max_length=200, description="One status or several, comma-separated."
        ),
    ] = None,
    model_name: NameQuery = None,
    layer_hash: NameQuery = None,
    sort: Annotated[
        ErrorGroupSort, Query(description="Largest first: `errors`, `runs` or `last_seen`.")
    ] = "errors",
    limit: Annotated[int | None, Query(ge=1, description="Groups per page (default 20).")] = None,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")
    ] = None,
) -> Response:
    """The errors of the runs that started in the window, grouped by fingerprint.

    A fingerprint is the error's `type` plus its message with numbers, hex ids,
    UUIDs and quoted text replaced (the rules are in the README), so the same
    failure with different ids is one group. Counts are exact and come from
    rollups kept on every write, so they survive `runwatch purge`. `layers` counts
    runs per layer; `days` counts per UTC day. Groups are ordered largest first
    by `sort`, ties by fingerprint; page with `next_cursor`.
    """
    limit = limit or settings.default_page_size
    if limit > settings.max_page_size:
        raise InvalidArgument.at(("query", "limit"), f"must be at most {settings.max_page_size}")
    statuses = parse_statuses(status_, LAYER_RUN_STATUSES)
    resolve_window(window, days, settings, None)  # 422 before any query

    async def work(read: ReadContext) -> bytes:
        since, until, now = resolve_window(window, days, settings, read.window_now)
        filters = ErrorFilter(
            since=since,
            until=until,
            layer_name=layer_name,
            statuses=statuses,
            model_name=model_name,
            layer_hash=layer_hash,
        )
        page = await eg.list_error_groups(
            read.conn,
            filters=filters,
            sort=sort,
            limit=limit,
            cursor=cursor,
            now=now,
            cache=read.rollups,
        )
        return encode_json(page)

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)


LayerQuery = Annotated[str, Query(description="Exact.", **NAME_FILTER)]
HashQuery = Annotated[str, Query(description="A layer_hash.", **NAME_FILTER)]


@router.get(
    "/stats/versions",
    response_model=VersionList,
    summary="One layer's versions, one row per layer_hash",
    responses=RESPONSES,
)
async def versions(
    request: Request,
    settings: SettingsDep,
    window: TimeWindowDep,
    layer_name: LayerQuery,
    days: DaysQuery = None,
) -> Response:
    """Per `layer_hash` of the layer's runs that started in the window, in order of first use.

    Counts per status, `success_rate` (success ÷ (success + failed + partial)),
    mean duration of the completed runs, and insights, tokens and cost per run.
    Exact, from rollups kept on every write.
    """
    resolve_window(window, days, settings, None)  # 422 before any query

    async def work(read: ReadContext) -> bytes:
        since, until, now = resolve_window(window, days, settings, read.window_now)
        rows = await layer_versions.list_versions(
            read.conn, layer_name=layer_name, since=since, until=until, now=now, cache=read.rollups
        )
        body = {"layer_name": layer_name, "since": since, "until": until, "versions": rows}
        return encode_json(body)

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)


@router.get(
    "/stats/versions/compare",
    response_model=VersionCompare,
    summary="Two versions of a layer side by side, with significance tests",
    responses={**RESPONSES, **problem_responses(404)},
)
async def compare(
    request: Request,
    settings: SettingsDep,
    window: TimeWindowDep,
    layer_name: LayerQuery,
    a: HashQuery,
    b: HashQuery,
    days: DaysQuery = None,
) -> Response:
    """Versions `a` and `b` (layer_hash values) and their differences, b - a.

    `tests.success_rate` is the two-sided two-proportion z-test (pooled) on
    success ÷ (success + failed + partial); `tests.mean_duration_seconds` and
    `tests.cost_per_run_usd` are Welch's test on the means, computed from each
    side's count, sum and sum of squares, with the statistic read against the
    normal distribution. `significant` means p < 0.05. 404 when either version
    has no runs in the window.
    """
    resolve_window(window, days, settings, None)  # 422 before any query

    async def work(read: ReadContext) -> bytes:
        since, until, now = resolve_window(window, days, settings, read.window_now)
        answer = await layer_versions.compare_versions(
            read.conn,
            layer_name=layer_name,
            a=a,
            b=b,
            since=since,
            until=until,
            now=now,
            cache=read.rollups,
        )
        return VersionCompare.model_validate(answer).model_dump_json().encode()

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)


@router.get(
    "/stats/regressions",
    response_model=RegressionList,
    summary="Layers whose newest version is significantly worse than the one before",
    responses=RESPONSES,
)
async def regressions(
    request: Request,
    settings: SettingsDep,
    window: TimeWindowDep,
    days: DaysQuery = None,
    layer_name: NameQuery = None,
) -> Response:
    """For each layer, its newest version (`b`, latest first use) against the one before (`a`).

    Compared only when both have at least `RUNWATCH_REGRESSION_MIN_RUNS` (20)
    finished runs in the window; listed when the success rate is significantly
    lower, or the mean duration or cost per run significantly higher (p < 0.05,
    the tests of the compare).
    """
    resolve_window(window, days, settings, None)  # 422 before any query

    async def work(read: ReadContext) -> bytes:
        since, until, now = resolve_window(window, days, settings, read.window_now)
        found = await layer_versions.find_regressions(
            read.conn,
            since=since,
            until=until,
            min_runs=settings.regression_min_runs,
            layer_name=layer_name,
            now=now,
            cache=read.rollups,
        )
        body = {
            "since": since,
            "until": until,
            "min_runs": settings.regression_min_runs,
            "regressions": found,
        }
        return RegressionList.model_validate(body).model_dump_json().encode()

    return await serve_read(request, work, window_seconds=settings.stats_etag_seconds)
