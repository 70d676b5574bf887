"""`GET /runs` narrowed to one error group or by a condition on the runs (the stuck ones)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_runs
from runwatch.kinds import LAYER_RUNS
from runwatch.queries.error_filters import error_fingerprint_condition
from runwatch.queries.pagination import Page, fetch_page
from runwatch.queries.runs import RunFilter, filter_params, filter_shape, run_conditions, sort_spec

t = layer_runs


async def list_runs_narrowed(
    conn: AsyncConnection,
    *,
    filters: RunFilter,
    error_fingerprint: str | None,
    condition: ColumnElement[bool] | None,
    sort: str = "-started_at",
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
) -> Page:
    """A page of the runs matching `filters`, the error group and `condition`, with their number.

    `condition` depends on the data (the stuck thresholds), so these statements
    are built for each request; the count is a real one, in the page's statement.
    """
    conditions: list[ColumnElement[bool]] = run_conditions(LAYER_RUNS, filter_shape(filters))
    if error_fingerprint is not None:
        conditions.append(error_fingerprint_condition(error_fingerprint))
    if condition is not None:
        conditions.append(condition)

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
