"""Retention: remove old layer runs in small transactions, keeping what the stats need."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from runwatch.queries.data_state import purged_before, set_purged_before
from runwatch.queries.layer_runs import delete_oldest_started_before


async def purge_layer_runs(
    engine: AsyncEngine,
    *,
    before: datetime,
    batch_size: int = 5000,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Delete runs that started before `before`, in small transactions; returns how many.

    The rollups are left as they are, so stats over long windows stay right;
    `total` of lists starts at the purge horizon from now on (it is moved
    first, so no list counts a run it can no longer show). `progress(n)` is
    called after each transaction with the runs it deleted.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    async with engine.begin() as conn:
        horizon = await purged_before(conn)
        if horizon is None or horizon < before:
            await set_purged_before(conn, before)
    deleted = 0
    while True:
        async with engine.begin() as conn:
            count = await delete_oldest_started_before(conn, before, limit=batch_size)
        deleted += count
        if progress is not None:
            progress(count)
        if count < batch_size:
            return deleted
