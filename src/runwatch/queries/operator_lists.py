"""`GET /runs` narrowed to one error group or to the stuck runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, not_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.config import Settings
from runwatch.db.tables import layer_runs
from runwatch.kinds import LAYER_RUNS
from runwatch.queries.error_filters import error_fingerprint_condition
from runwatch.queries.pagination import Page, fetch_page
from runwatch.queries.runs import RunFilter, filter_params, filter_shape, run_conditions, sort_spec
from runwatch.queries.segment_cache import NO_CACHE, RollupCache
from runwatch.queries.stuck import stuck_runs_condition

t = layer_runs


async def list_runs_matching(
    conn: AsyncConnection,
    *,
    filters: RunFilter,
    error_fingerprint: str | None,
    stuck: bool | None,
    settings: Settings,
    now: datetime,
    sort: str = "-started_at",
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
    cache: RollupCache = NO_CACHE,
) -> Page:
    """A page of the runs matching `filters` and the operator's narrowing, with their number.

    The stuck thresholds depend on the data, so these statements are built for
    each request; the count is a real one, in the page's statement.
    """
    conditions: list[ColumnElement[bool]] = run_conditions(LAYER_RUNS, filter_shape(filters))
    if error_fingerprint is not None:
        conditions.append(error_fingerprint_condition(error_fingerprint))
    if stuck is not None:
        condition = await stuck_runs_condition(
            conn, layer_name=filters.value("layer_name"), settings=settings, now=now, cache=cache
        )
        conditions.append(condition if stuck else not_(condition))

    def build() -> tuple[Select[Any], Select[Any] | None]:
        query = select(*LAYER_RUNS.list_columns).where(*conditions)
        return query, select(func.count()).select_from(t).where(*conditions)

    return await fetch_page(
        conn,
        shape=None,
        build=build,
        params=filter_params(filters),
        spec=sort_spec(LAYER_RUNS, sort),
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
