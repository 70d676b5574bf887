"""`/runs/errors` and `/runs/stats/versions…`: what fails, and since which layer version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from runwatch.api.conditional import NOT_MODIFIED_RESPONSE, ConditionalWindow
from runwatch.api.deps import ReadConn, SettingsDep, TimeWindow, TimeWindowDep, parse_statuses
from runwatch.config import Settings
from runwatch.db.tables import LAYER_RUN_STATUSES
from runwatch.errors import InvalidArgument
from runwatch.queries import error_groups as eg
from runwatch.schemas.common import NO_NUL_PATTERN, problem_responses
from runwatch.schemas.operator import ErrorGroupPage, ErrorGroupSort

router = APIRouter(prefix="/runs", tags=["operator"])

NameQuery = Annotated[
    str | None, Query(min_length=1, max_length=200, pattern=NO_NUL_PATTERN, description="Exact.")
]
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
    _fresh: ConditionalWindow,
    conn: ReadConn,
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
) -> ErrorGroupPage:
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
    since, until, now = resolve_window(
        window, days, settings, getattr(request.state, "window_now", None)
    )
    filters = eg.ErrorFilter(
        since=since,
        until=until,
        layer_name=layer_name,
        statuses=parse_statuses(status_, LAYER_RUN_STATUSES),
        model_name=model_name,
        layer_hash=layer_hash,
    )
    page = await eg.list_error_groups(
        conn, filters=filters, sort=sort, limit=limit, cursor=cursor, now=now
    )
    return ErrorGroupPage.model_validate(page)
