"""Stuck layer runs: running for longer than their layer's threshold.

A layer's threshold is `RUNWATCH_STUCK_P95_MULTIPLE` (3) times the p95
duration of its runs completed in the last 7 days, and never less than
`RUNWATCH_STUCK_FLOOR_SECONDS` (1800); a layer with no such runs has the floor.
`RUNWATCH_STUCK_AFTER_SECONDS` replaces this with fixed thresholds, for every
layer or per layer. A stuck run is stuck since `started_at + threshold`.
The durations are read, and the stuck runs picked and counted, by the SQL in
`queries/stuck.py`, which takes the thresholds decided here as values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.config import Settings
from runwatch.queries import stuck as repo
from runwatch.queries.durations import EMPTY, BinKey, Histograms
from runwatch.queries.segment_cache import NO_CACHE, RollupCache


@dataclass(frozen=True)
class Thresholds:
    """Seconds after which a running run is stuck: per layer named, else `default`."""

    by_layer: dict[str, float]
    default: float

    def of(self, layer_name: str) -> float:
        return self.by_layer.get(layer_name, self.default)

    def exceptions(self) -> list[tuple[str, float]]:
        """The layers whose threshold is not the default, by name."""
        return sorted((name, s) for name, s in self.by_layer.items() if s != self.default)


def thresholds_from(
    histograms: Histograms,
    extra: Mapping[BinKey | None, dict[int, int]],
    *,
    layers: Iterable[str],
    settings: Settings,
) -> Thresholds:
    """The thresholds of `layers` (and of every layer with per-layer settings) from recent runs."""
    every, per_layer = settings.stuck_overrides
    out: dict[str, float] = dict(per_layer)
    for name in layers:
        if name in out:
            continue
        if every is not None:
            out[name] = every
            continue
        key = (name, "")
        p95 = histograms.get(key, EMPTY).percentiles(extra.get(key), (95,))[95]
        base = 0.0 if p95 is None else p95 * settings.stuck_p95_multiple
        out[name] = max(settings.stuck_floor_seconds, base)
    default = every if every is not None else settings.stuck_floor_seconds
    return Thresholds({name: float(s) for name, s in out.items()}, float(default))


def recent_layers(histograms: Histograms, extra: Mapping[BinKey | None, Any]) -> set[str]:
    """The layers with runs completed in the window (those whose threshold is not a default)."""
    return {key[0] for key in (*histograms, *extra) if key is not None}


def lowest_threshold(settings: Settings) -> float:
    """No layer's threshold is below this: p95-based ones are at least the floor."""
    every, per_layer = settings.stuck_overrides
    return min([settings.stuck_floor_seconds if every is None else every, *per_layer.values()])


async def recent_thresholds(
    conn: AsyncConnection,
    *,
    settings: Settings,
    now: datetime,
    layer_name: str | None = None,
    cache: RollupCache = NO_CACHE,
) -> Thresholds:
    """The thresholds of every layer with recent runs (or of one), from the last 7 days."""
    every, _per_layer = settings.stuck_overrides
    if every is not None:
        return thresholds_from({}, {}, layers=(), settings=settings)
    histograms, extra = await repo.recent_durations(
        conn, now=now, layer_name=layer_name, cache=cache
    )
    layers = recent_layers(histograms, extra) if layer_name is None else {layer_name}
    return thresholds_from(histograms, extra, layers=layers, settings=settings)


async def stuck_thresholds(
    conn: AsyncConnection,
    *,
    layers: Iterable[str],
    settings: Settings,
    now: datetime,
    cache: RollupCache = NO_CACHE,
) -> dict[str, float]:
    """Seconds after which a running run of each layer is stuck."""
    layers = list(layers)
    every, per_layer = settings.stuck_overrides
    wanted = [name for name in layers if per_layer.get(name, every) is None]
    if not wanted:
        return {name: float(per_layer.get(name, every) or 0.0) for name in layers}
    found = await recent_thresholds(
        conn,
        settings=settings,
        now=now,
        layer_name=wanted[0] if len(wanted) == 1 else None,
        cache=cache,
    )
    return {name: found.of(name) for name in layers}


async def stuck_runs_condition(
    conn: AsyncConnection,
    *,
    layer_name: str | None,
    settings: Settings,
    now: datetime,
    cache: RollupCache = NO_CACHE,
) -> ColumnElement[bool]:
    """The WHERE clause that picks the stuck runs (of one layer, or of all)."""
    found = await recent_thresholds(
        conn, settings=settings, now=now, layer_name=layer_name, cache=cache
    )
    return repo.stuck_condition(found.default, found.exceptions(), now)


async def count_stuck(
    conn: AsyncConnection,
    running: repo.RunningRuns,
    thresholds: Thresholds,
    *,
    settings: Settings,
    now: datetime,
    layer_name: str | None = None,
) -> dict[str, int]:
    """Stuck runs per layer, from the running runs a summary read with its raw runs.

    They tell unless a layer with older runs has a threshold longer than the
    runs read one by one reach; then the stuck runs are counted in one statement.
    """
    longest = lowest_threshold(settings) + repo.RUNNING_ONE_BY_ONE.total_seconds()
    if any(thresholds.of(layer) > longest for layer in running.older):
        return await repo.stuck_counts(
            conn,
            default=thresholds.default,
            named=thresholds.exceptions(),
            now=now,
            layer_name=layer_name,
        )
    out = dict(running.older)
    for layer, started in running.recent:
        if started < now - timedelta(seconds=thresholds.of(layer)):
            out[layer] = out.get(layer, 0) + 1
    return out


async def stuck_state(
    conn: AsyncConnection,
    run: Mapping[str, Any],
    *,
    settings: Settings,
    now: datetime,
    cache: RollupCache = NO_CACHE,
) -> dict[str, Any]:
    """`stuck`, `stuck_since` and `stuck_threshold_seconds` of a running run; nothing otherwise."""
    if run["status"] != "running":
        return {}
    name = run["layer_name"]
    seconds = (
        await stuck_thresholds(conn, layers=[name], settings=settings, now=now, cache=cache)
    )[name]
    since = run["started_at"] + timedelta(seconds=seconds)
    stuck = since < now
    return {
        "stuck": stuck,
        "stuck_since": since if stuck else None,
        "stuck_threshold_seconds": seconds,
    }
