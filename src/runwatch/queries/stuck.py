"""Stuck layer runs: running for longer than their layer's threshold.

A layer's threshold is `RUNWATCH_STUCK_P95_MULTIPLE` (3) times the p95
duration of its runs completed in the last 7 days, and never less than
`RUNWATCH_STUCK_FLOOR_SECONDS` (1800); a layer with no such runs has the floor.
`RUNWATCH_STUCK_AFTER_SECONDS` replaces this with fixed thresholds, for every
layer or per layer. A stuck run is stuck since `started_at + threshold`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.config import Settings
from runwatch.db.tables import layer_runs
from runwatch.percentiles import percentiles
from runwatch.queries.durations import duration_bin_counts

t = layer_runs
RECENT = timedelta(days=7)


async def stuck_thresholds(
    conn: AsyncConnection, *, layers: Iterable[str], settings: Settings, now: datetime
) -> dict[str, float]:
    """Seconds after which a running run of each layer is stuck."""
    every, per_layer = settings.stuck_overrides
    out = {name: per_layer.get(name, every) for name in layers}
    wanted = [name for name, seconds in out.items() if seconds is None]
    if wanted:
        counts = await duration_bin_counts(
            conn, since=now - RECENT, until=None, layer_name=wanted[0] if len(wanted) == 1 else None
        )
        by_layer: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for (layer, _version), bins in counts.items():
            for index, n in bins.items():
                by_layer[layer][index] += n
        for name in wanted:
            p95 = percentiles(by_layer.get(name, {}), (95,))[95]
            base = 0.0 if p95 is None else p95 * settings.stuck_p95_multiple
            out[name] = max(settings.stuck_floor_seconds, base)
    return {name: float(seconds or 0.0) for name, seconds in out.items()}


async def _running_layers(conn: AsyncConnection, layer_name: str | None) -> list[str]:
    query = select(t.c.layer_name).where(t.c.status == "running").group_by(t.c.layer_name)
    if layer_name is not None:
        query = query.where(t.c.layer_name == layer_name)
    return [row[0] for row in await conn.execute(query)]


def _stuck_condition(thresholds: Mapping[str, float], now: datetime) -> ColumnElement[bool]:
    if not thresholds:
        return false()
    return and_(
        t.c.status == "running",
        or_(
            *(
                and_(t.c.layer_name == name, t.c.started_at < now - timedelta(seconds=seconds))
                for name, seconds in sorted(thresholds.items())
            )
        ),
    )


async def stuck_runs_condition(
    conn: AsyncConnection, *, layer_name: str | None, settings: Settings, now: datetime
) -> ColumnElement[bool]:
    """The WHERE clause that picks the stuck runs (of one layer, or of all)."""
    layers = await _running_layers(conn, layer_name)
    thresholds = await stuck_thresholds(conn, layers=layers, settings=settings, now=now)
    return _stuck_condition(thresholds, now)


async def stuck_counts(
    conn: AsyncConnection, *, settings: Settings, now: datetime, layer_name: str | None = None
) -> dict[str, int]:
    """Stuck runs per layer, whenever they started."""
    layers = await _running_layers(conn, layer_name)
    if not layers:  # nothing running: nothing stuck, and no more queries
        return {}
    thresholds = await stuck_thresholds(conn, layers=layers, settings=settings, now=now)
    condition = _stuck_condition(thresholds, now)
    query = select(t.c.layer_name, func.count()).where(condition).group_by(t.c.layer_name)
    return {name: int(n) for name, n in await conn.execute(query)}


async def stuck_state(
    conn: AsyncConnection, run: Mapping[str, Any], *, settings: Settings, now: datetime
) -> dict[str, Any]:
    """`stuck`, `stuck_since` and `stuck_threshold_seconds` of a running run; nothing otherwise."""
    if run["status"] != "running":
        return {}
    name = run["layer_name"]
    seconds = (await stuck_thresholds(conn, layers=[name], settings=settings, now=now))[name]
    since = run["started_at"] + timedelta(seconds=seconds)
    stuck = since < now
    return {
        "stuck": stuck,
        "stuck_since": since if stuck else None,
        "stuck_threshold_seconds": seconds,
    }
