"""`GET /runs` narrowed to one error group or to the stuck runs: which runs are stuck now.

The stuck condition is decided from the layers' thresholds (`services/stuck.py`);
the page is read by `queries/operator_lists.py`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, not_
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.config import Settings
from runwatch.queries.operator_lists import list_runs_narrowed
from runwatch.queries.pagination import Page
from runwatch.queries.runs import RunFilter
from runwatch.queries.segment_cache import NO_CACHE, RollupCache
from runwatch.services.stuck import stuck_runs_condition


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

    With `stuck`, the runs stuck now (or, when false, all the others) by the
    thresholds of the layer filtered on, or of every layer.
    """
    condition: ColumnElement[bool] | None = None
    if stuck is not None:
        stuck_now = await stuck_runs_condition(
            conn, layer_name=filters.value("layer_name"), settings=settings, now=now, cache=cache
        )
        condition = stuck_now if stuck else not_(stuck_now)
    return await list_runs_narrowed(
        conn,
        filters=filters,
        error_fingerprint=error_fingerprint,
        condition=condition,
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
